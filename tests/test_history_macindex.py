"""The MAC index (nac/history/macindex.py): every decision of a MAC found exactly once, whether
its batch is indexed yet or not, while segments are merged, after a crash in a merge, and
after retention."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from nac.helpdesk import queries as helpdesk
from nac.history import format as blob_format
from nac.history import macindex, reader, tiers
from nac.store import Store
from tests.helpdesk_rows import decision

DATA = Path(__file__).parent / "data"
MACS = [f"00:00:5e:00:53:{i:02x}" for i in range(5)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "nac.db"))


def _commit(store: Store, n: int, *, start: float, action: str = "accept") -> None:
    """One group commit of ``n`` decisions, MACs round-robin, a second apart from ``start``."""
    rows = [decision(start + i, MACS[i % len(MACS)], action) for i in range(n)]
    tiers.write_batch(store.conn, rows, [])


def _everything(conn: sqlite3.Connection) -> dict[str, list[int]]:
    return {mac: [p.id for p in macindex.lookup(conn, mac)] for mac in MACS}


def test_a_pass_groups_the_decisions_by_mac_and_lookups_see_both_sides_of_the_watermark(store: Store) -> None:
    conn = store.conn
    _commit(store, 10, start=1000.0)
    _commit(store, 10, start=2000.0)
    assert macindex.post(conn, 5) == 10  # whole batches: the first alone
    assert macindex.upto(conn) == 10
    assert macindex.segments(conn) == 1
    # A row per MAC seen, not per decision.
    assert conn.execute("SELECT COUNT(*) FROM main.history_mac").fetchone()[0] == len(MACS)
    # Ids 11..20 are still only in the recent tier: found all the same, once each, by id.
    assert _everything(conn)[MACS[0]] == [1, 6, 11, 16]
    found = macindex.lookup(conn, MACS[1])
    assert [(p.id, p.ts, p.action) for p in found] == [
        (2, 1001.0, "accept"),
        (7, 1006.0, "accept"),
        (12, 2001.0, "accept"),
        (17, 2006.0, "accept"),
    ]
    assert macindex.post(conn, 100) == 10
    assert macindex.post(conn, 100) == 0  # nothing new: no empty segment
    assert _everything(conn)[MACS[0]] == [1, 6, 11, 16]
    assert macindex.lookup(conn, "00:00:5e:00:53:ff") == []


def test_keys_are_written_beside_each_batch_and_read_instead_of_its_rows(store: Store) -> None:
    _commit(store, 3, start=1000.0)
    keys = store.conn.execute("SELECT keys FROM recent.history_batches").fetchone()[0]
    assert blob_format.decode_keys(keys) == (MACS[:3], [1000.0, 1001.0, 1002.0], ["accept"] * 3)
    # A batch written before batches had keys is read from its rows.
    store.conn.execute("UPDATE recent.history_batches SET keys = NULL")
    store.conn.commit()
    assert [p.id for p in macindex.lookup(store.conn, MACS[2])] == [3]
    assert macindex.post(store.conn, 100) == 3
    assert [p.id for p in macindex.lookup(store.conn, MACS[2])] == [3]


def test_merges_keep_every_decision_once_at_every_step_and_resume_after_a_crash(tmp_path: Path) -> None:
    db = str(tmp_path / "nac.db")
    store = Store(db)
    for k in range(macindex.FANOUT + 3):
        _commit(store, 7, start=1000.0 + 100 * k)
        macindex.post(store.conn, 100)
    expected = _everything(store.conn)
    assert sum(len(ids) for ids in expected.values()) == 7 * (macindex.FANOUT + 3)
    assert macindex.segments(store.conn) == macindex.FANOUT + 3
    # One MAC per step: every intermediate state answers the same.
    assert macindex.merge_step(store.conn, chunk=1)
    assert _everything(store.conn) == expected
    assert macindex.merge_step(store.conn, chunk=1)
    store.close()  # "crashes" in the middle of the merge
    store = Store(db)
    assert _everything(store.conn) == expected
    steps = 0
    while macindex.merge_step(store.conn, chunk=1):
        steps += 1
        assert _everything(store.conn) == expected
    assert steps >= len(MACS) - 2
    levels = sorted(r[0] for r in store.conn.execute("SELECT level FROM main.history_mac_segments"))
    assert levels == [0, 0, 0, 1]
    assert store.conn.execute(
        "SELECT COUNT(*) FROM main.history_mac_segments WHERE merging_into IS NOT NULL"
    ).fetchone() == (0,)
    store.close()


def test_retention_hides_pruned_decisions_drops_old_segments_and_merges_leave_them_out(store: Store) -> None:
    conn = store.conn
    for k in range(macindex.FANOUT):
        _commit(store, 5, start=1000.0 * (k + 1))
        macindex.post(conn, 100)
    # Decisions before 2002.5: the whole first segment and part of the second.
    assert macindex.mark_pruned(conn, 2002.5) == 1
    assert macindex.segments(conn) == macindex.FANOUT - 1
    assert [p.ts for p in macindex.lookup(conn, MACS[3])][:2] == [2003.0, 3003.0]
    assert all(p.ts >= 2002.5 for mac in MACS for p in macindex.lookup(conn, mac))
    _commit(store, 5, start=9000.0)
    macindex.post(conn, 100)
    while macindex.merge_step(conn):
        pass
    stored = [
        ts
        for (blob,) in conn.execute("SELECT postings FROM main.history_mac")
        for ts in blob_format.decode_postings(blob)[1]
    ]
    assert min(stored) >= 2002.5  # the merge left the pruned ones behind


def test_an_older_database_gets_its_rows_indexed_once_and_loses_the_per_row_mac_index(tmp_path: Path) -> None:
    for file in (DATA / "history-v1").iterdir():
        shutil.copy(file, tmp_path / file.name)
    db = str(tmp_path / "nac.db")
    old = sqlite3.connect(db)
    assert "history_mac_action" in {r[1] for r in old.execute("PRAGMA index_list(history)")}
    in_main = old.execute("SELECT id, mac FROM history ORDER BY id").fetchall()
    old.close()
    assert in_main
    store = Store(db)
    try:
        conn = store.conn
        assert "history_mac_action" not in {r[1] for r in conn.execute("PRAGMA main.index_list(history)")}
        for id_, mac in in_main:
            assert id_ in [p.id for p in macindex.lookup(conn, mac)]
        # The unindexed batches (six decisions in the recent tier) come next, found meanwhile.
        tail = tiers.top_id(conn) - macindex.upto(conn)
        assert tail == 6
        assert macindex.post(conn, 100) == 6
    finally:
        store.close()


def test_a_device_s_history_reads_its_rows_alone_from_either_tier(store: Store) -> None:
    """`nac history --mac` and `nac why` never unpack the recent tier into the view: under load
    that never lets up it holds millions of decisions, the device a handful."""
    conn = store.conn
    now = time.time()
    for k in range(4):
        rows = [
            decision(now - 400 + 100 * k + i, MACS[i % 2], "reject" if i % 3 == 0 else "accept")
            for i in range(6)
        ]
        tiers.write_batch(conn, rows, [])
    tiers.move_recent(conn, 12)  # two batches in main; two only in the recent tier
    everything = helpdesk.query_history(conn, helpdesk.HistoryFilter(limit=None))
    mine = [r for r in everything if r["mac"] == MACS[0]]
    assert conn.execute("SELECT COUNT(*) FROM temp.recent_history").fetchone() == (12,)  # that sync
    conn.execute("DELETE FROM temp.recent_history")  # a fresh connection's state, for the check below
    conn.commit()
    got = helpdesk.query_history(conn, helpdesk.HistoryFilter(mac=MACS[0], limit=None))
    assert got == mine
    assert conn.execute("SELECT COUNT(*) FROM temp.recent_history").fetchone() == (0,)  # no sync
    # Filters the index can answer (action, paging) and ones only the rows can (rule).
    assert (
        helpdesk.query_history(conn, helpdesk.HistoryFilter(mac=MACS[0], action="reject", limit=2))
        == [r for r in mine if r["action"] == "reject"][:2]
    )
    page = helpdesk.query_history(conn, helpdesk.HistoryFilter(mac=MACS[0], limit=3))
    after = helpdesk.query_history(conn, helpdesk.HistoryFilter(mac=MACS[0], limit=3, before=page[-1]["id"]))
    assert page + after == mine[:6]
    assert (
        helpdesk.query_history(conn, helpdesk.HistoryFilter(mac=MACS[0], rule="ban-huawei", limit=1))
        == [r for r in mine if r["rule"] == "ban-huawei"][:1]
    )
    assert helpdesk.query_history(conn, helpdesk.HistoryFilter(mac=MACS[0], offset=5, limit=2)) == mine[5:7]
    assert reader.decision_ts(conn, 10**9) is None


def test_why_counts_from_the_index_what_the_rows_say(store: Store) -> None:
    conn = store.conn
    now = time.time()
    actions = ["accept", "reject", "reject", "accept", "reject", "reject", "reject"]
    tiers.write_batch(conn, [decision(now - 100 + i, MACS[0], a) for i, a in enumerate(actions)], [])
    macindex.post(conn, 100)
    report = helpdesk.why(conn, MACS[0], decide=None, now=now)
    assert report.streak is not None
    assert report.refused is not None
    assert (report.streak.action, report.streak.count) == ("reject", 3)
    assert report.streak.since_ts == now - 100 + 4
    assert report.streak.before is not None
    assert report.streak.before.action == "accept"
    assert report.refused.count == 5


def test_the_latest_decisions_come_from_the_newest_batches_while_the_rows_table_is_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = store.conn
    now = time.time()
    for k in range(10):
        rows = [decision(now - 1000 + 10 * k + i, MACS[i % len(MACS)], "accept") for i in range(5)]
        if k == 0:
            rows[0] = decision(now - 1000, MACS[0], "reject")  # the one a selective filter finds
        tiers.write_batch(conn, rows, [])
    tiers.move_recent(conn, 5)  # the first batch in the rows table, nine behind
    monkeypatch.setattr(reader, "NEWEST_FIRST_MIN", 10)
    monkeypatch.setattr(reader, "NEWEST_STEP", 2)
    latest = helpdesk.query_history(conn, helpdesk.HistoryFilter(limit=7, offset=1))
    assert conn.execute("SELECT COUNT(*) FROM temp.recent_history").fetchone() == (0,)  # no sync
    assert conn.execute(f"SELECT COUNT(*) FROM temp.{reader.SCOPE}").fetchone() == (10,)  # noqa: S608
    refused = helpdesk.query_history(conn, helpdesk.HistoryFilter(action="reject", limit=5))
    monkeypatch.setattr(reader, "NEWEST_FIRST_MIN", 10**9)  # the view, as a small backlog reads it
    assert latest == helpdesk.query_history(conn, helpdesk.HistoryFilter(limit=7, offset=1))
    assert [r["id"] for r in latest] == list(range(49, 42, -1))
    assert refused == helpdesk.query_history(conn, helpdesk.HistoryFilter(action="reject", limit=5))
    assert [r["id"] for r in refused] == [1]  # in the rows table: found through the view


def test_decisions_without_a_mac_move_the_watermark_and_make_no_segment(store: Store) -> None:
    row = list(decision(1000.0, MACS[0]))
    row[1] = None  # HISTORY_COLUMNS' mac: a request nac could not read a MAC from
    tiers.write_batch(store.conn, [tuple(row)], [])
    assert macindex.post(store.conn, 100) == 1
    assert macindex.upto(store.conn) == 1
    assert macindex.segments(store.conn) == 0


def test_a_merge_step_unpacks_a_bounded_amount_and_full_segments_merge_no_further(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = store.conn
    for k in range(macindex.FANOUT * 2):
        _commit(store, 10, start=1000.0 + 100 * k)
        macindex.post(conn, 100)
    expected = _everything(conn)
    monkeypatch.setattr(macindex, "MERGE_STEP_BYTES", 1)  # one MAC a step
    steps = 0
    while macindex.merge_step(conn):
        steps += 1
        assert _everything(conn) == expected
    assert steps == 2 * len(MACS)  # two merges of five MACs, one MAC a step
    monkeypatch.setattr(macindex, "SEGMENT_FULL", 80)
    levels = [r[0] for r in conn.execute("SELECT level FROM main.history_mac_segments")]
    assert levels == [1, 1]  # 80 decisions each: full, so no merge into level 2
    assert not macindex.merge_step(conn)
    assert _everything(conn) == expected


def test_posting_lists_of_interleaving_segments_are_joined_in_id_order() -> None:
    joined = macindex._join([([5, 9], [5.0, 9.0], ["a", "b"]), ([1, 7], [1.0, 7.0], ["c", "d"])])
    assert joined == ([1, 5, 7, 9], [1.0, 5.0, 7.0, 9.0], ["c", "a", "d", "b"])
