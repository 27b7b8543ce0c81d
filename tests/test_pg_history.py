"""The history shipper (nac/pg/ship.py) against a real PostgreSQL (tests/pgserver.py): a
journal's decisions, from either of its history tiers, reach PostgreSQL in order and exactly
once, whatever stops a shipment half way."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nac.history import reader, tiers
from nac.pg import connect, schema
from nac.pg import ship as pg_ship
from nac.pg.journal import journal_id, noted
from nac.pg.link import Link
from nac.pg.ship import NOTE, HistoryShipper, ship, shipped_upto
from nac.store import Store
from tests.helpdesk_rows import decision
from tests.interop import subprocess_env
from tests.pgserver import PgServer

DAY = 86400.0


def _journal(tmp_path: Path, name: str = "journal.db") -> str:
    path = str(tmp_path / name)
    Store(path).close()
    return path


def _commit(path: str, macs: list[str], *, node: str | None = "node-a", ts: float | None = None) -> None:
    """One group commit (a batch in the recent tier) of a decision per MAC."""
    store = Store(path)
    try:
        tiers.write_batch(store.conn, [decision(ts or time.time(), mac) for mac in macs], [], node=node)
    finally:
        store.close()


def _macs(count: int, start: int = 0) -> list[str]:
    return [f"02:00:00:00:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}" for i in range(start, start + count)]


def _pg(url: str) -> psycopg.Connection[Any]:
    conn = connect(url)
    schema.upgrade(conn, "test")
    return conn


def _shipped(pg: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return pg.execute("SELECT journal, id, mac, node FROM history ORDER BY journal, id").fetchall()


def _ship_everything(path: str, pg: psycopg.Connection[Any], *, limit: int = 1000) -> str:
    conn = tiers.connect(path, sync=False)
    try:
        journal = journal_id(conn)
        while rows := reader.after(conn, shipped_upto(pg, journal), limit):
            ship(pg, journal, "node-a", rows)
        return journal
    finally:
        conn.close()


def test_both_tiers_ship_in_order_exactly_once(tmp_path: Path, pg_url: str) -> None:
    path = _journal(tmp_path)
    _commit(path, _macs(3))
    _commit(path, _macs(2, 3), node=None)  # a batch from before servers had a node
    conn = tiers.connect(path, sync=False)
    assert tiers.move_recent(conn, 100) == 5  # these two are in main.history now
    conn.close()
    _commit(path, _macs(4, 5))  # and these in the recent tier
    pg = _pg(pg_url)
    journal = _ship_everything(path, pg, limit=2)
    rows = _shipped(pg)
    assert [r[1] for r in rows] == list(range(1, 10))
    assert [r[2] for r in rows] == _macs(9)
    assert {r[3] for r in rows} == {"node-a"}  # the node-less batch is the journal's node's
    assert shipped_upto(pg, journal) == 9
    _ship_everything(path, pg)  # nothing new: nothing shipped again
    assert len(_shipped(pg)) == 9
    _commit(path, _macs(1, 9))
    _ship_everything(path, pg)
    assert [r[1] for r in _shipped(pg)] == list(range(1, 11))


def test_a_shipment_that_fails_half_way_leaves_nothing_behind(tmp_path: Path, pg_url: str) -> None:
    path = _journal(tmp_path)
    _commit(path, _macs(5))
    pg = _pg(pg_url)
    conn = tiers.connect(path, sync=False)
    journal = journal_id(conn)
    rows = reader.after(conn, 0, 100)
    broken = [*rows[:3], (rows[3][0], *([None] * (len(rows[3]) - 1)))]  # ts NOT NULL: refused
    with pytest.raises(psycopg.Error):
        ship(pg, journal, "node-a", broken)
    assert _shipped(pg) == []
    assert shipped_upto(pg, journal) == 0  # the watermark rolled back with the rows
    ship(pg, journal, "node-a", rows)
    assert [r[1] for r in _shipped(pg)] == [1, 2, 3, 4, 5]
    with pytest.raises(psycopg.errors.UniqueViolation):  # a row cannot be stored twice
        ship(pg, journal, "node-a", rows[-1:])
    conn.close()


def test_a_new_journal_under_the_same_node_ships_afresh(tmp_path: Path, pg_url: str) -> None:
    pg = _pg(pg_url)
    first = _journal(tmp_path, "first.db")
    _commit(first, _macs(3))
    one = _ship_everything(first, pg)
    second = _journal(tmp_path, "second.db")  # the server's disk replaced: ids start at 1 again
    _commit(second, _macs(2, 100))
    two = _ship_everything(second, pg)
    assert one != two
    assert [(r[0], r[1]) for r in _shipped(pg)] == sorted([(one, 1), (one, 2), (one, 3), (two, 1), (two, 2)])


def test_pruned_rows_are_skipped_not_waited_for(tmp_path: Path, pg_url: str) -> None:
    path = _journal(tmp_path)
    _commit(path, _macs(4))
    conn = tiers.connect(path, sync=False)
    tiers.move_recent(conn, 100)
    conn.execute("DELETE FROM main.history WHERE id <= 2")  # as retention does
    conn.commit()
    conn.close()
    pg = _pg(pg_url)
    _ship_everything(path, pg)
    assert [r[1] for r in _shipped(pg)] == [3, 4]


def test_the_thread_ships_while_the_journal_grows_and_after_an_outage(
    tmp_path: Path, pg: PgServer, pg_url: str
) -> None:
    path = _journal(tmp_path)
    admin = connect(pg.url())
    db = _pg(pg_url)
    link = Link(pg_url, purpose="history")
    shipper = HistoryShipper(link, path, node="node-a", interval=0.05)
    shipper.start()
    try:
        for start in range(0, 300, 30):
            _commit(path, _macs(30, start))
        _wait(lambda: len(_shipped(db)) == 300)
        _wait(lambda: _noted(path) == 300)  # the journal's note of it, for the metrics
        # PostgreSQL refuses the shipper's connection for a while (as a restart would).
        name = db.info.dbname
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false".encode())
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            (name, db.info.backend_pid),
        )
        for start in range(300, 400, 20):
            _commit(path, _macs(20, start))
        _wait(lambda: not link.up)
        _wait(lambda: shipper.unshipped == 100)
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true".encode())
        _wait(lambda: len(_shipped(db)) == 400 and shipper.unshipped == 0, within=15)
        assert [r[1] for r in _shipped(db)] == list(range(1, 401))
        assert link.reconnects == 1
    finally:
        shipper.stop()
        admin.close()


def test_a_journal_that_cannot_be_read_is_counted_and_retried(tmp_path: Path, pg_url: str) -> None:
    path = _journal(tmp_path)
    _commit(path, _macs(2))
    _pg(pg_url)
    blocker = sqlite3.connect(path)
    blocker.execute("PRAGMA locking_mode=EXCLUSIVE")
    blocker.execute("BEGIN EXCLUSIVE")  # the journal locked against every reader
    shipper = HistoryShipper(Link(pg_url, purpose="history"), path, node="node-a", interval=0.05)
    shipper.start()
    try:
        _wait(lambda: shipper.failures >= 1, within=30)
        blocker.rollback()
        blocker.close()
        _wait(lambda: shipper.shipped == 2, within=30)
    finally:
        shipper.stop()


def _noted(path: str) -> int | None:
    conn = tiers.connect(path, sync=False)
    try:
        return noted(conn, NOTE)
    finally:
        conn.close()


def _wait(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_pruning_postgresql_takes_every_servers_old_decisions_in_steps(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = time.time() - 10 * DAY
    path = _journal(tmp_path)
    _commit(path, _macs(7), ts=old)
    _commit(path, _macs(3, 7))
    pg = _pg(pg_url)
    _ship_everything(path, pg)
    monkeypatch.setattr(pg_ship, "PRUNE_STEP", 2)  # several transactions
    other = connect(pg_url)
    with other.transaction():  # another server is pruning now
        other.execute("SELECT pg_advisory_xact_lock(%s)", (pg_ship._PRUNE_LOCK,))
        assert pg_ship.prune(pg, time.time() - DAY, wait=False) is None
    assert pg_ship.prune(pg, time.time() - DAY, wait=False) == 7
    assert [r[2] for r in _shipped(pg)] == _macs(3, 7)
    # The CLI: every server's decisions, whichever server's database it is given.
    _commit(path, _macs(2, 10), ts=old)
    _ship_everything(path, pg)
    done = subprocess.run(
        [sys.executable, "-m", "nac", "history", "prune", "--older-than", "1d", "--db", pg_url],
        capture_output=True,
        text=True,
        check=False,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "deleted 2 decisions older than 1d"
    assert len(_shipped(pg)) == 3


def test_the_thread_prunes_postgresql_by_the_servers_retention(tmp_path: Path, pg_url: str) -> None:
    path = _journal(tmp_path)
    _commit(path, _macs(4), ts=time.time() - 3 * DAY)
    _commit(path, _macs(2, 4))
    db = _pg(pg_url)
    link = Link(pg_url, purpose="history")
    shipper = HistoryShipper(link, path, node="node-a", interval=0.05, retention=DAY)
    shipper.start()
    try:
        _wait(lambda: shipper.pruned == 4)
        assert [r[2] for r in _shipped(db)] == _macs(2, 4)
    finally:
        shipper.stop()
