"""History's two tiers (nac/history/tiers.py): the server appends to the recent tier, the indexer moves
rows into the MAC-indexed main table, and every reader sees both as one ``history``."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nac.config import load_config
from nac.helpdesk import queries as helpdesk
from nac.history import indexer, macindex, prune, tiers, writer
from nac.history.indexer import Indexer
from nac.history.record import HISTORY_COLUMNS
from nac.history.tiers import (
    collect_recent,
    connect,
    move_recent,
    recent_backlog,
    recent_path,
    sync_recent,
)
from nac.serve import run, server
from nac.store import Store
from tests.helpdesk_rows import decision

DAY = 86400.0


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "nac.db")


def _write(db: str, macs: list[str], ts: float | None = None) -> None:
    """One group commit (one batch in the recent tier) of a decision per MAC."""
    store = Store(db)
    try:
        tiers.write_batch(store.conn, [decision(ts or time.time(), mac) for mac in macs], [])
    finally:
        store.close()


def _ids(conn: sqlite3.Connection, table: str) -> list[int]:
    if table == "history":
        sync_recent(conn)
    return [row[0] for row in conn.execute(f"SELECT id FROM {table} ORDER BY id")]  # noqa: S608


def _batches(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    return conn.execute("SELECT id, last FROM recent.history_batches ORDER BY id").fetchall()


def test_a_decision_is_visible_at_once_and_keeps_its_id_when_indexed(db: str) -> None:
    _write(db, ["00:00:00:00:00:01", "00:00:00:00:00:02"])
    _write(db, ["00:00:00:00:00:03"])
    conn = connect(db)
    assert _batches(conn) == [(1, 2), (3, 3)]  # one row per group commit, with its id range
    assert _ids(conn, "main.history") == []
    sync_recent(conn)
    assert [r[0] for r in conn.execute("SELECT mac FROM history ORDER BY id")] == [
        "00:00:00:00:00:01",
        "00:00:00:00:00:02",
        "00:00:00:00:00:03",
    ]
    assert move_recent(conn, 1) == 2  # the oldest batch, whole
    assert _ids(conn, "main.history") == [1, 2]
    assert _ids(conn, "history") == [1, 2, 3]  # the batch left in the recent tier is hidden
    assert recent_backlog(conn) == 1
    assert move_recent(conn, 100) == 1
    assert move_recent(conn, 100) == 0
    assert _ids(conn, "main.history") == [1, 2, 3]
    assert _ids(conn, "history") == [1, 2, 3]
    assert collect_recent(conn, 1) == 1
    assert _batches(conn) == [(3, 3)]
    assert collect_recent(conn, 100) == 1
    assert collect_recent(conn, 100) == 0
    assert _batches(conn) == []
    assert _ids(conn, "history") == [1, 2, 3]
    # Every column survives the trip through the batch, the NULLs and the numbers too.
    row = dict(zip([d[0] for d in conn.execute("SELECT * FROM main.history").description],
                   conn.execute("SELECT * FROM main.history WHERE id = 3").fetchone(), strict=True))
    expected = decision(0, "00:00:00:00:00:03")
    assert [row[c] for c in HISTORY_COLUMNS if c != "ts"] == list(expected[1:])
    assert row["time"].endswith("Z")
    # The MAC index holds each decision once, and main.history no per-row MAC index.
    assert [p.id for p in macindex.lookup(conn, "00:00:00:00:00:03")] == [3]
    assert "history_mac_action" not in {r[1] for r in conn.execute("PRAGMA main.index_list(history)")}
    conn.close()


def test_a_reader_keeps_up_with_new_indexed_and_pruned_batches(db: str) -> None:
    """A long-lived reader (`nac web`) syncs again and again: new batches appear, indexed ones
    are shown from main instead (once), and batches pruned before indexing disappear."""
    now = time.time()
    _write(db, ["00:00:00:00:00:01"], ts=now - 100 * DAY)
    _write(db, ["00:00:00:00:00:02", "00:00:00:00:00:03"])
    reader = Store.readonly(db)
    assert sync_recent(reader.conn) == 3  # its first read (it syncs no sooner: `nac why` never does)
    assert reader.conn.execute("SELECT COUNT(*) FROM temp.recent_history").fetchone() == (3,)
    assert sync_recent(reader.conn) == 0  # nothing new
    assert _ids(reader.conn, "history") == [1, 2, 3]
    _write(db, ["00:00:00:00:00:04"])
    assert _ids(reader.conn, "history") == [1, 2, 3, 4]
    writer = connect(db)
    assert prune.prune(writer, 90 * DAY) == 1  # batch 1, never indexed
    assert _ids(reader.conn, "history") == [2, 3, 4]
    assert move_recent(writer, 2) == 2
    assert _ids(reader.conn, "history") == [2, 3, 4]
    collect_recent(writer, 100)
    move_recent(writer, 100)
    assert _ids(reader.conn, "history") == [2, 3, 4]
    assert reader.conn.execute("SELECT COUNT(*) FROM temp.recent_history").fetchone() == (0,)
    writer.close()
    reader.close()


def test_ids_keep_rising_after_the_recent_tier_empties_or_is_lost(db: str) -> None:
    _write(db, ["00:00:00:00:00:01", "00:00:00:00:00:02"])
    conn = connect(db)
    move_recent(conn, 100)
    collect_recent(conn, 100)
    conn.close()
    _write(db, ["00:00:00:00:00:03"])  # recent is empty: its sequence does not reuse ids
    conn = connect(db)
    assert _ids(conn, "history") == [1, 2, 3]
    move_recent(conn, 100)
    conn.close()
    for suffix in ("", "-wal", "-shm"):  # an operator deleted the tier: ids follow main's
        Path(recent_path(db) + suffix).unlink(missing_ok=True)
    _write(db, ["00:00:00:00:00:04"])
    conn = connect(db)
    assert _ids(conn, "history") == [1, 2, 3, 4]
    conn.close()


def test_ids_stay_above_the_watermark_when_main_was_pruned_empty_and_the_tier_lost(db: str) -> None:
    _write(db, ["00:00:00:00:00:01", "00:00:00:00:00:02"], ts=time.time() - 100 * DAY)
    conn = connect(db)
    move_recent(conn, 100)
    assert prune.prune(conn, 90 * DAY) == 2
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(recent_path(db) + suffix).unlink(missing_ok=True)
    _write(db, ["00:00:00:00:00:03"])
    conn = connect(db)
    assert _ids(conn, "history") == [3]  # not id 1, which the watermark would hide for ever
    assert move_recent(conn, 100) == 1
    conn.close()


def test_workers_sharing_the_tier_never_take_the_same_ids(db: str) -> None:
    """Each group commit takes its id range inside its own write transaction."""
    Store(db).close()
    errors: list[BaseException] = []

    def commit_many(n: int) -> None:
        store = Store(db)
        try:
            for i in range(50):
                tiers.write_batch(store.conn, [decision(time.time(), f"00:00:00:00:{n:02x}:{i:02x}")] * 3, [])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=commit_many, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = connect(db)
    assert _ids(conn, "history") == list(range(1, 601))
    assert move_recent(conn, 10_000) == 600
    assert conn.execute("SELECT COUNT(*) FROM main.history").fetchone() == (600,)
    conn.close()


def test_a_tier_of_the_older_row_per_decision_layout_is_indexed_and_converted(db: str) -> None:
    """A database from before the batches: its unindexed recent rows go to main at the next open."""
    Store(db).close()
    old = sqlite3.connect(recent_path(db))
    old.execute("DROP TABLE history_batches")
    old.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        + ", ".join(HISTORY_COLUMNS)
        + ", time TEXT GENERATED ALWAYS AS (strftime('%Y-%m-%dT%H:%M:%fZ', ts, 'unixepoch')) VIRTUAL)"
    )
    columns = ", ".join(HISTORY_COLUMNS)
    marks = ", ".join("?" * len(HISTORY_COLUMNS))
    old.executemany(
        f"INSERT INTO history ({columns}) VALUES ({marks})",  # noqa: S608
        [decision(time.time(), f"00:00:00:00:00:0{i}") for i in (1, 2)],
    )
    old.commit()
    old.close()
    reader = Store.readonly(db)  # a reader does not convert: it sees main alone meanwhile
    assert tiers.history_count(reader.conn) == 0
    reader.close()
    _write(db, ["00:00:00:00:00:03"])
    conn = connect(db)
    assert _ids(conn, "main.history") == [1, 2]
    assert _ids(conn, "history") == [1, 2, 3]
    assert conn.execute("SELECT name FROM recent.sqlite_master WHERE name = 'history'").fetchone() is None
    conn.close()


def test_a_read_only_reader_sees_both_tiers_and_cannot_write_either(db: str) -> None:
    _write(db, ["00:00:00:00:00:01"])
    conn = connect(db)
    move_recent(conn, 100)
    conn.close()
    _write(db, ["00:00:00:00:00:02"])
    reader = Store.readonly(db)
    sync_recent(reader.conn)
    assert [r[0] for r in reader.conn.execute("SELECT mac FROM history ORDER BY id")] == [
        "00:00:00:00:00:01",
        "00:00:00:00:00:02",
    ]
    for table in ("main.history", "recent.history_batches"):
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute(f"DELETE FROM {table}")  # noqa: S608
    reader.close()


def test_a_read_only_reader_of_a_database_without_the_tier_reads_main_alone(db: str) -> None:
    _write(db, ["00:00:00:00:00:01"])
    conn = connect(db)
    move_recent(conn, 100)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(recent_path(db) + suffix).unlink(missing_ok=True)
    reader = Store.readonly(db)
    assert [r[0] for r in reader.conn.execute("SELECT mac FROM history")] == ["00:00:00:00:00:01"]
    reader.close()
    assert not os.path.exists(recent_path(db))  # a reader never creates it


def test_the_helpdesk_finds_a_device_in_either_tier(db: str) -> None:
    now = time.time()
    store = Store(db)
    tiers.write_batch(store.conn, [decision(now - 60, "00:e0:fc:00:00:01", "reject")], [])
    move_recent(store.conn, 100)  # one row in main, its hidden copy and a new one in recent
    tiers.write_batch(store.conn, [decision(now, "00:e0:fc:00:00:01", "reject")], [])
    rows = helpdesk.query_history(store.conn, helpdesk.HistoryFilter(mac="00:e0:fc:00:00:01"))
    assert [row["id"] for row in rows] == [2, 1]  # newest first, across tiers
    assert tiers.history_count(store.conn) == 2
    store.close()


def test_prune_removes_old_rows_from_both_tiers(db: str) -> None:
    now = time.time()
    store = Store(db)
    old, new = decision(now - 100 * DAY, "00:00:00:00:00:01"), decision(now, "00:00:00:00:00:02")
    tiers.write_batch(store.conn, [old, new], [])
    move_recent(store.conn, 100)
    # The recent tier prunes whole batches (one group commit: milliseconds of decisions).
    tiers.write_batch(store.conn, [decision(now - 100 * DAY, "00:00:00:00:00:03")], [])
    tiers.write_batch(store.conn, [decision(now, "00:00:00:00:00:04")], [])
    assert prune.prune(store.conn, 90 * DAY) == 2
    sync_recent(store.conn)
    assert [r[0] for r in store.conn.execute("SELECT mac FROM history ORDER BY mac")] == [
        "00:00:00:00:00:02",
        "00:00:00:00:00:04",
    ]
    store.close()


def test_the_indexer_thread_moves_what_the_server_appends(db: str) -> None:
    _write(db, [f"00:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(3000)])
    worker = Indexer(db, interval=0.05)
    worker.start()
    try:
        conn = connect(db)
        deadline = time.monotonic() + 20
        while conn.execute("SELECT COUNT(*) FROM main.history").fetchone()[0] < 3000:
            assert time.monotonic() < deadline, "the indexer did not move the rows"
            time.sleep(0.05)
        _write(db, ["00:00:00:00:ff:ff"])  # and what comes later
        while conn.execute("SELECT COUNT(*) FROM main.history").fetchone()[0] < 3001:
            assert time.monotonic() < deadline, "the indexer stopped moving rows"
            time.sleep(0.05)
        assert recent_backlog(conn) == 0
        assert worker.moved == 3001
        conn.close()
    finally:
        worker.stop()


def test_flush_moves_everything_and_the_batch_stays_in_bounds(db: str) -> None:
    _write(db, [f"00:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(5000)])
    worker = Indexer(db)
    conn = connect(db)
    assert worker.flush(conn, within=30) == 5000
    assert recent_backlog(conn) == 0
    assert indexer.MIN_BATCH <= worker._batch <= indexer.MAX_BATCH
    conn.close()


def test_the_indexer_thread_runs_at_idle_priority(db: str) -> None:
    seen: list[int] = []

    def probe() -> None:
        if indexer.lower_priority():
            seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert seen == [os.SCHED_IDLE]
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # only that thread, not the process


@pytest.fixture
def nac(db: str) -> Iterator[server.Server]:
    """An in-process server on ``db`` whose indexer thread is never started: only the event
    loop's own code (HistoryWriter.tend) touches the tiers."""
    config = load_config(db=db)
    built = run.build_server(config, run.load_shared(config), lambda: config)
    yield built
    built.close_store()


def test_past_the_high_water_mark_the_event_loop_indexes_the_macs_and_leaves_the_rows(
    nac: server.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load that never lets up the SCHED_IDLE indexer gets no core: the server's tick
    puts every decision into the MAC index itself once POST_HIGH wait, and leaves the rows,
    which cost more than deciding, for an idle core."""
    for start in range(0, 3000, 100):  # 30 group commits
        macs = [f"00:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(start, start + 100)]
        tiers.write_batch(nac.store.conn, [decision(time.time(), mac) for mac in macs], [])
    monkeypatch.setattr(writer, "POST_HIGH", 1000)
    nac.history.tend()  # the indexer thread was never started: only the loop indexes
    assert nac.counters["history_index_assists"] == 1
    assert nac.history.indexer.loop_indexes  # the idle thread stays out meanwhile
    assert nac.metrics.gauges["history_unindexed"]() == 0
    assert nac.metrics.gauges["history_unstored"]() == 3000
    assert recent_backlog(nac.store.conn) == 3000  # no row written
    conn = nac.store.conn
    assert [p.id for p in macindex.lookup(conn, "00:00:00:00:0b:b7")] == [3000]
    tiers.write_batch(conn, [decision(time.time(), "00:00:00:00:0b:b7")], [])
    monkeypatch.setattr(writer, "POST_HIGH", 400_000)
    nac.history.tend()  # under the mark, but the last assist was just now: the loop keeps it
    assert nac.counters["history_index_assists"] == 1
    assert nac.history.indexer.loop_indexes
    monkeypatch.setattr(writer, "HAND_BACK_AFTER", 0.0)
    nac.history.tend()  # long enough without one: the thread's job again
    assert not nac.history.indexer.loop_indexes
    assert nac.metrics.gauges["history_unindexed"]() == 1
    # Found all the same, from the recent tier's batch.
    assert [p.id for p in macindex.lookup(conn, "00:00:00:00:0b:b7")] == [3000, 3001]


@pytest.fixture
def wal(nac: server.Server) -> Iterator[indexer.WalIndex]:
    """A reader of the recent tier's WAL-index, closed after the server's database (WalIndex)."""
    nac.store.conn.execute("PRAGMA wal_autocheckpoint=0")  # as serve() sets it
    reader = indexer.WalIndex(recent_path(nac.store.path))
    yield reader
    nac.close_store()
    reader.close()


def test_a_wal_past_its_mark_is_checkpointed_by_the_event_loop_and_rewound_by_the_next_commit(
    nac: server.Server, wal: indexer.WalIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a steady stream of commits the thread's checkpoints never let a WAL rewind: past
    WAL_HARD the server, the recent tier's only writer, checkpoints it itself, and its next
    group commit starts the WAL over (the file keeps its size; its frames restart at 0)."""
    recent = recent_path(nac.store.path)
    for i in range(20):
        tiers.write_batch(nac.store.conn, [decision(time.time(), f"00:00:00:00:00:{i:02x}")], [])
    held = wal.read()
    assert held is not None
    frames, uncopied = held
    assert frames > 20 * 1024
    assert frames == os.path.getsize(recent + "-wal") - 32  # the header, read right (32: WAL header)
    assert uncopied == frames  # no checkpoint yet
    monkeypatch.setattr(writer, "WAL_HARD", frames - 1)
    nac.history.tend()
    assert nac.counters["history_wal_rewinds"] == 1
    assert nac.counters["history_index_assists"] == 0  # the backlog is small
    assert not nac.history.indexer.loop_indexes
    after_pass = wal.read()
    assert after_pass is not None
    assert after_pass[1] == 0  # every frame copied into the database file
    tiers.write_batch(nac.store.conn, [decision(time.time(), "00:00:00:00:01:00")], [])
    after = wal.read()
    assert after is not None
    assert after[0] < 4 * 1024  # started over
    nac.history.tend()  # under the mark now: nothing to do
    assert nac.counters["history_wal_rewinds"] == 1


def test_past_the_soft_mark_the_event_loop_waits_for_the_thread_to_copy_most_frames(
    nac: server.Server, wal: indexer.WalIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between WAL_HIGH and WAL_HARD the loop only finishes what the idle thread has nearly
    done: copying a long WAL itself would stall the requests for tens of milliseconds."""
    for i in range(20):
        tiers.write_batch(nac.store.conn, [decision(time.time(), f"00:00:00:00:00:{i:02x}")], [])
    held = wal.read()
    assert held is not None
    monkeypatch.setattr(writer, "WAL_HIGH", 1024)
    monkeypatch.setattr(writer, "WAL_TAIL", 2 * 1048)
    nac.history.tend()  # 20+ frames uncopied: the thread's job
    assert nac.counters["history_wal_rewinds"] == 0
    checkpointer = connect(nac.store.path)
    checkpointer.execute("PRAGMA recent.wal_checkpoint(PASSIVE)")  # the thread's pass
    checkpointer.close()
    tiers.write_batch(nac.store.conn, [decision(time.time(), "00:00:00:00:01:00")], [])  # one more frame
    nac.history.tend()  # long, and nearly all copied: the loop finishes it
    assert nac.counters["history_wal_rewinds"] == 1
    tiers.write_batch(nac.store.conn, [decision(time.time(), "00:00:00:00:01:01")], [])
    after = wal.read()
    assert after is not None
    assert after[0] < held[0]  # rewound


# The writer: a Store that commits, reads the WAL-index the server's way, tells the test it has,
# waits while another process opens the database, then commits again.
_WRITER = """
import sys, time
from nac import store
from nac.history import indexer, tiers
from tests.helpdesk_rows import decision
db = sys.argv[1]
s = store.Store(db)
for i in range(100):
    tiers.write_batch(s.conn, [decision(time.time(), "00:00:00:00:00:01")], [])
reader = indexer.WalIndex(tiers.recent_path(db))
for _ in range(3):
    assert reader.read() is not None
print("read", flush=True)
sys.stdin.readline()
for i in range(50):
    tiers.write_batch(s.conn, [decision(time.time(), f"00:00:00:00:01:{i:02x}")], [])
print("wrote", tiers.history_count(s.conn), flush=True)
s.close()
reader.close()
"""
# SQLite's "dead man switch": a byte of the -shm file that every process with the database
# open holds a shared POSIX lock on (os_unix.c, UNIX_SHM_DMS: 120 + 8).
_DMS = 128


def _dms_holder(shm: str) -> int | None:
    """The pid of a process holding SQLite's lock on the -shm file's DMS byte, or None."""
    fd = os.open(shm, os.O_RDWR)  # a descriptor of the test's own: no lock of the test's to lose
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, _DMS, 1, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else int(pid)


def test_reading_the_wal_index_keeps_sqlite_s_locks_so_another_process_cannot_reset_it(db: str) -> None:
    """Opening and closing the -shm file per read dropped SQLite's POSIX locks on it (closing
    any descriptor of a file drops them all): the next process to open the database took the
    file as abandoned and reset it under the server's mapping, and the server died of SIGBUS."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert writer.stdout is not None
    assert writer.stdin is not None
    try:
        assert writer.stdout.readline().strip() == "read"
        assert _dms_holder(recent_path(db) + "-shm") == writer.pid  # SQLite's lock, still held
        other = connect(db)  # what `nac history` does meanwhile
        assert other.execute("SELECT COUNT(*) FROM history").fetchone() == (100,)
        other.close()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        out, _ = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, f"the writer died: {writer.returncode} (-7 is SIGBUS)"
    assert out.strip() == "wrote 150"


def test_the_copier_copies_the_recent_wal_at_low_priority_while_the_server_writes(db: str) -> None:
    """Under full load the idle-priority indexer gets no core: the Copier (nice +10) copies
    the recent tier's WAL as it grows, so the event loop's own rewinds stay short."""
    writer = Store(db)
    writer.conn.execute("PRAGMA wal_autocheckpoint=0")  # as serve() sets it
    reader = indexer.WalIndex(recent_path(db))
    copier = indexer.Copier(recent_path(db), reader.read)
    copier.start()
    try:
        thread = copier._thread
        assert thread is not None
        assert thread.native_id is not None
        deadline = time.monotonic() + 5
        while os.getpriority(os.PRIO_PROCESS, thread.native_id) != indexer.COPIER_NICE:
            assert time.monotonic() < deadline, "the copier did not lower its priority"
            time.sleep(0.01)
        macs = [f"00:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(100)]
        for _ in range(40):  # about 1 MiB of frames
            tiers.write_batch(writer.conn, [decision(time.time(), mac) for mac in macs], [])
        deadline = time.monotonic() + 10
        while True:
            held = reader.read()
            assert held is not None
            if copier.passes and held[1] < indexer.COPY_BACKLOG:
                break
            assert time.monotonic() < deadline, f"the copier did not copy the WAL: {held}"
            time.sleep(0.02)
        assert held[0] > indexer.COPY_BACKLOG  # copied, not rewound: the writer rewinds it
        assert copier.failures == 0
    finally:
        copier.stop()
        writer.close()
        reader.close()


def test_the_event_loop_indexing_macs_never_checkpoints_main_and_a_copier_does(
    nac: server.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past POST_HIGH the loop writes the MAC index into main on every tick; a checkpoint there
    would wait for the disk each time, so main's WAL has a Copier of its own."""
    conn = nac.store.conn
    monkeypatch.setattr(writer, "POST_HIGH", 0)
    monkeypatch.setattr(indexer.Indexer, "start", lambda self: None)  # the loop's work alone
    checkpoints: list[str] = []
    monkeypatch.setattr(indexer.Indexer, "checkpoint", lambda self, c: checkpoints.append("loop"))
    nac.history.start(indexing=True)
    try:
        main_wal = nac.history._main_wal_index
        assert main_wal is not None
        for k in range(60):
            macs = [f"00:00:00:{k:02x}:{i // 256:02x}:{i % 256:02x}" for i in range(200)]
            tiers.write_batch(conn, [decision(time.time(), mac) for mac in macs], [])
            nac.history.tend()
        assert macindex.backlog(conn, tiers.top_id(conn)) == 0
        assert checkpoints == []
        deadline = time.monotonic() + 10
        while True:
            held = main_wal.read()
            assert held is not None
            if held[0] > indexer.COPY_BACKLOG and held[1] < indexer.COPY_BACKLOG:
                break  # main's frames grew past the mark and the Copier copied them
            assert time.monotonic() < deadline, f"main's WAL was not copied: {held}"
            time.sleep(0.02)
    finally:
        nac.history.stop()
