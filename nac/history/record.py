"""The history row one decision produces (its fields are the history table's columns)."""

from __future__ import annotations

from typing import NamedTuple


class HistoryRecord(NamedTuple):
    """One decision, as stored.

    A NamedTuple rather than a frozen dataclass: it is built once per request on the hot path
    (a frozen dataclass's ``__init__`` costs several times more) and ``executemany`` takes it
    as the row as it is.  Immutable and keyword-constructed all the same.
    """

    ts: float  # receive time, seconds since the epoch (UTC); `time` is derived from it
    mac: str | None
    vendor: str | None
    prefix: str | None
    prefix_bits: int | None
    action: str
    vlan: str | None
    rule: str
    reason: str
    client: str
    nas_ip: str
    method: str
    user_name: str | None
    calling_station_id: str | None
    called_station_id: str | None
    nas_port: int | None
    nas_port_id: str | None
    nas_port_type: str | None
    nas_identifier: str | None
    src: str
    message_authenticator: int  # 1 if the request carried one (BlastRADIUS readiness)
    reply: int  # the RADIUS code sent
    snapshot: str  # registry snapshot that identified the vendor


COLUMNS = HistoryRecord._fields
#: A stored row: the record, then the microseconds the decision took.
HISTORY_COLUMNS = (*COLUMNS, "latency_us")


def record_row(record: HistoryRecord, latency_us: int) -> tuple[object, ...]:
    return (*record, latency_us)
