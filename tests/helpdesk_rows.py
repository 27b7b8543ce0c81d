"""History rows for the helpdesk tests: a decision with every field a helpdesk filters on."""

from __future__ import annotations

from typing import Any

from nac.history import tiers
from nac.history.record import HistoryRecord, record_row
from nac.store import Store

REASONS = {
    "accept": "no rule matched; the policy's default is accept",
    "reject": "ministry ban",
    "quarantine": "q",
}


def decision(ts: float, mac: str, action: str = "accept", **fields: Any) -> tuple[object, ...]:
    """One history row; ``fields`` override HistoryRecord's defaults below."""
    values: dict[str, Any] = {
        "ts": ts,
        "mac": mac,
        "vendor": "Xircom",
        "prefix": mac[:8].upper(),
        "prefix_bits": 24,
        "action": action,
        "vlan": "666" if action == "quarantine" else None,
        "rule": {"accept": "default", "reject": "ban-huawei", "quarantine": "q"}[action],
        "reason": REASONS[action],
        "client": "access-sw1",
        "nas_ip": "192.0.2.10",
        "method": "mab",
        "user_name": mac.replace(":", ""),
        "calling_station_id": mac.replace(":", "-").upper(),
        "called_station_id": None,
        "nas_port": 50107,
        "nas_port_id": "GigabitEthernet1/0/7",
        "nas_port_type": "Ethernet",
        "nas_identifier": "sw1",
        "src": "192.0.2.10:50000",
        "message_authenticator": 1,
        "reply": 3 if action == "reject" else 2,
        "snapshot": "test@0",
    }
    values.update(fields)
    return record_row(HistoryRecord(**values), 120)


def write(db: str, rows: list[tuple[object, ...]]) -> None:
    store = Store(db)
    try:
        tiers.write_batch(store.conn, rows, ())
    finally:
        store.close()
