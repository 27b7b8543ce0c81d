"""History's on-disk format: the recent tier's batches in format 1 (MessagePack), files written
by that format's first version and by the nac before it (marshal), read and nothing lost."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nac.helpdesk import queries as helpdesk
from nac.history import format as blob_format
from nac.history import reader, tiers
from nac.history.record import HISTORY_COLUMNS, HistoryRecord, record_row
from nac.store import Store

DATA = Path(__file__).parent / "data"
WIDTH = len(HISTORY_COLUMNS)


def fixture_row(i: int, action: str) -> tuple[object, ...]:
    """Decision ``i`` of the fixture files, as the script that wrote them built it."""
    return record_row(
        HistoryRecord(
            ts=1790000000.0 + i + 0.123456,
            mac=f"00:e0:fc:00:00:{i:02x}",
            vendor="Huawei Technologies Co.,Ltd",
            prefix="00:E0:FC",
            prefix_bits=24,
            action=action,
            vlan="666" if action == "quarantine" else None,
            rule="ban-huawei" if action != "accept" else "default",
            reason=f"fixture {i}: ü",
            client="sw1",
            nas_ip="192.0.2.1",
            method="mab",
            user_name=f"00e0fc0000{i:02x}",
            calling_station_id=f"00-E0-FC-00-00-{i:02X}",
            called_station_id="00-11-22-33-44-55",
            nas_port=50100 + i,
            nas_port_id=f"Gi1/0/{i}",
            nas_port_type="Ethernet",
            nas_identifier="sw1.example",
            src="192.0.2.1:1645",
            message_authenticator=1,
            reply=3 if action == "reject" else 2,
            snapshot="bundled-2024",
        ),
        40 + i,
    )


#: The twelve decisions in each fixture database: four group commits of three.
EXPECTED = [fixture_row(i, ("reject", "accept", "quarantine")[(i - 1) % 3]) for i in range(1, 13)]


def _copy(name: str, tmp_path: Path) -> str:
    for file in (DATA / name).iterdir():
        shutil.copy(file, tmp_path / file.name)
        (tmp_path / file.name).chmod(0o600)
    return str(tmp_path / "nac.db")


def _every_row(db: str) -> list[tuple[object, ...]]:
    store = Store.readonly(db)
    try:
        columns = ", ".join(HISTORY_COLUMNS)
        rows = reader.execute(store.conn, f"SELECT {columns} FROM history ORDER BY id")  # noqa: S608
        return [tuple(row) for row in rows]
    finally:
        store.close()


def test_a_batch_of_format_1_is_read_and_written_byte_for_byte() -> None:
    """The blob kept from format 1's first version: this nac reads it, and writes the same
    rows as the same bytes (a change to the format shows here before it ships)."""
    blob = (DATA / "history-v1" / "batch-v1.bin").read_bytes()
    assert blob[:5] == b"NACH\x01"
    assert blob_format.decode(blob, WIDTH) == EXPECTED[9:]
    assert blob_format.encode(EXPECTED[9:]) == blob
    # It is plain MessagePack after the header: another tool reads it without nac.
    assert [tuple(row) for row in msgpack.unpackb(blob[5:])] == EXPECTED[9:]


def test_a_database_written_by_format_1_is_read_whole(tmp_path: Path) -> None:
    db = _copy("history-v1", tmp_path)
    assert _every_row(db) == EXPECTED  # six indexed into main, six in the recent tier
    store = Store(db)
    try:
        assert tiers.recent_backlog(store.conn) == 6
        tiers.move_recent(store.conn, 100)
        rows = helpdesk.query_history(store.conn, helpdesk.HistoryFilter(mac="00:e0:fc:00:00:0c"))
        assert [row["reason"] for row in rows] == ["fixture 12: ü"]
    finally:
        store.close()
    assert _every_row(db) == EXPECTED


def test_a_database_from_before_the_format_is_converted_and_nothing_is_lost(tmp_path: Path) -> None:
    """The nac before format 1 wrote the recent tier's batches with marshal: the first writable
    open rewrites them in format 1, and every decision reads as it was written."""
    db = _copy("history-marshal", tmp_path)
    recent = sqlite3.connect(tiers.recent_path(db))
    before = [blob[:4] for (blob,) in recent.execute("SELECT rows FROM history_batches")]
    recent.close()
    assert before
    assert not any(prefix == blob_format.MAGIC for prefix in before)
    legacy = _marshal_rows()
    store = Store(db)  # the writable open converts
    try:
        blobs = [blob for (blob,) in store.conn.execute("SELECT rows FROM recent.history_batches")]
        assert blobs
        assert all(blob_format.is_current(blob) for blob in blobs)
        assert not tiers.outdated(store.conn)
    finally:
        store.close()
    assert _every_row(db) == legacy


def _marshal_rows() -> list[tuple[object, ...]]:
    """The decisions the marshal fixture holds, as its script wrote them (no ü, a whole ts)."""
    rows = []
    for i in range(1, 13):
        row = list(EXPECTED[i - 1])
        row[HISTORY_COLUMNS.index("ts")] = 1790000000.0 + i
        row[HISTORY_COLUMNS.index("reason")] = f"fixture {i}"
        rows.append(tuple(row))
    return rows


def test_a_reader_of_a_database_from_before_upgrades_it_first(tmp_path: Path) -> None:
    db = _copy("history-marshal", tmp_path)
    assert _every_row(db) == _marshal_rows()  # Store.readonly converts it (it may write here)


def test_a_batch_from_a_newer_nac_or_not_nacs_is_refused() -> None:
    rows = EXPECTED[:2]
    newer = b"NACH\x02" + blob_format.encode(rows)[5:]
    with pytest.raises(blob_format.FormatError, match="newer"):
        blob_format.decode(newer, WIDTH)
    with pytest.raises(blob_format.FormatError, match="not a nac history batch"):
        blob_format.decode(b"\xdb\x02\x00\x00\x00", WIDTH)
    with pytest.raises(blob_format.FormatError, match="fields"):
        blob_format.decode(blob_format.encode([row[:-1] for row in rows]), WIDTH)


FIELD = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(),
)


@given(st.lists(st.tuples(*[FIELD] * 4), min_size=1, max_size=20))
def test_any_row_of_nones_integers_floats_and_text_round_trips(rows: list[tuple[object, ...]]) -> None:
    assert blob_format.decode(blob_format.encode(rows), 4) == rows


def test_a_database_with_the_mac_index_of_format_1_is_read_whole(tmp_path: Path) -> None:
    """tests/data/history-macindex-v1: the twelve decisions in four group commits, the first
    two in the rows table, the first three in the MAC index (a segment each: posting lists
    and batch keys in format 1), the fourth in its batch alone."""
    db = _copy("history-macindex-v1", tmp_path)
    raw = sqlite3.connect(db)
    postings = [blob for (blob,) in raw.execute("SELECT postings FROM history_mac")]
    raw.close()
    assert len(postings) == 9
    assert all(blob[:5] == b"NACP\x01" for blob in postings)
    assert _every_row(db) == EXPECTED
    ts, action = HISTORY_COLUMNS.index("ts"), HISTORY_COLUMNS.index("action")
    for store in (Store.readonly(db), Store(db)):
        try:
            for i, row in enumerate(EXPECTED, start=1):
                mac = f"00:e0:fc:00:00:{i:02x}"
                assert reader.mac_decisions(store.conn, mac) == [(i, row[ts], row[action])]
                found = helpdesk.query_history(store.conn, helpdesk.HistoryFilter(mac=mac))
                assert [(r["id"], r["reason"], r["node"]) for r in found] == [
                    (i, f"fixture {i}: ü", "fixture")
                ]
        finally:
            store.close()
