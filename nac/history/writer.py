"""The server's side of history: the group commit, and the upkeep of both tiers around it.

The event loop calls :meth:`HistoryWriter.commit` once per batch of decisions, before their
replies leave, :meth:`HistoryWriter.tick` once per tick, and :meth:`HistoryWriter.close` on
stop.  Everything else (the indexer's and the WAL copier's threads, collection of indexed
batches, checkpoints, retention, what to do when the disk refuses a commit) happens in here.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from nac.history import macindex, tiers
from nac.history.indexer import POST_HIGH, POST_MAX, WAL_HARD, WAL_HIGH, WAL_TAIL, Copier, Indexer, WalIndex
from nac.history.prune import Retention
from nac.history.record import HistoryRecord, record_row
from nac.radius.accounting import SessionEvent

log = logging.getLogger("nac.history")

#: Decisions kept in memory while the database cannot be written (on_failure = "answer");
#: beyond this, replies are withheld as in the default mode.  ~1 KiB each.
BACKLOG_MAX: Final = 200_000
#: How long one group commit may wait for a lock (the CLI's writes take milliseconds); past it
#: the batch counts as failed instead of stalling the event loop.
COMMIT_BUSY_MS: Final = 250
#: Seconds a stopping server spends indexing the recent tier.
FLUSH_ON_STOP: Final = 10.0
#: Longest the event loop indexes MACs per tick when the backlog is over POST_HIGH: a tick's worth
#: of full load takes a fraction of it.
ASSIST_SECONDS: Final = 0.05
#: Seconds without an assist before the event loop hands indexing back to the thread.  Handed
#: back between two assists, the idle thread starts writing rows, and the next assist must wait
#: for its transaction on main: under full load that cost a tenth of the rate.
HAND_BACK_AFTER: Final = 2.0
#: Segments of the MAC index past which the event loop merges some too when it indexes: the
#: thread that merges them gets no core under load that never lets up.
SEGMENTS_HIGH: Final = 256
#: The interpreter's switch interval while the history threads run (CPython's default is 5 ms):
#: the idle-priority indexer, which runs Python between its SQLite calls, otherwise keeps the
#: GIL that long whenever the event loop returns from a system call (bench/README.md).
SWITCH_INTERVAL: Final = 0.0005
#: Indexed batches each group commit deletes from the recent tier when the indexer has moved
#: some: a commit appends one, so collection keeps pace a few small rows at a time.
COLLECT_PER_COMMIT: Final = 4
#: Indexed batches a tick deletes besides (when no commits come to do it): about a millisecond.
COLLECT_CHUNK: Final = 100
#: Seconds between two retention passes.
RETENTION_INTERVAL: Final = 60.0
#: What a commit the database refuses does to the batch's replies.
ON_FAILURE: Final = ("withhold", "answer")


class HistoryWriter:
    """History as the server writes it, over the server's own connection ``conn`` to the
    database at ``path``.  Counts into ``counters`` (the server's metrics)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        *,
        counters: Counter[str],
        on_failure: str = "withhold",
        retention: float | None = None,
        node: str | None = None,
    ) -> None:
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure: {on_failure!r}")
        self.conn = conn
        self.path = path
        self.counters = counters
        self.on_failure = on_failure
        self.retention = retention  # seconds; None keeps history for ever
        self.node = node  # this server's name on every row and session it writes
        #: Why the last commit failed (for the caller's drop log); None after a good one.
        self.error: str | None = None
        self.indexer = Indexer(path)
        self._indexing = False  # this process runs the indexer (one per database)
        self._copier: Copier | None = None
        self._main_copier: Copier | None = None
        self._wal_index: WalIndex | None = None  # the recent tier's; see close()
        self._wal_index_failed = False
        self._main_wal_index: WalIndex | None = None
        self._collected_upto = 0  # recent batches through this id are collected
        self._unindexed = 0  # decisions not in the MAC index
        self._last_assist = float("-inf")
        self._unstored = 0  # decisions not in the rows table
        self._backlog_rows: list[Sequence[object]] = []
        self._backlog_events: list[SessionEvent] = []
        self._backlog_since: float | None = None
        self._retention = Retention(path)
        self._next_retention = 0.0
        self._switch_interval: float | None = None

    @property
    def gauges(self) -> dict[str, Callable[[], float]]:
        """What the metrics show of history."""
        return {
            # Decisions on disk and visible, not yet in the MAC index.
            "history_unindexed": lambda: float(self._unindexed),
            # Decisions on disk and visible, not yet in the rows table (written when idle).
            "history_unstored": lambda: float(self._unstored),
            "history_indexer_failures": lambda: float(
                self.indexer.failures
                + self.indexer.checkpoint_failures
                + (self._copier.failures if self._copier is not None else 0)
                + (self._main_copier.failures if self._main_copier is not None else 0)
            ),
            # Decisions answered but not yet on disk (on_failure = "answer").
            "history_backlog": lambda: float(len(self._backlog_rows)),
            "history_backlog_seconds": lambda: (
                time.monotonic() - self._backlog_since if self._backlog_since is not None else 0.0
            ),
        }

    def start(self, *, indexing: bool) -> None:
        """Before the first commit.  ``indexing``: this process keeps the tiers (one per
        database: a server's workers share it, and worker 0 indexes)."""
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the indexer's thread checkpoints
        self.conn.execute(f"PRAGMA busy_timeout={COMMIT_BUSY_MS}")
        self._indexing = indexing
        if not indexing:
            return
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.indexer.start()
        wal_index = self._recent_wal_index()
        if wal_index is not None:
            self._copier = Copier(tiers.recent_path(self.path), wal_index.read)
            self._copier.start()
        # Main's WAL too: under full load the event loop writes the MAC index there, and the
        # idle thread that checkpoints it otherwise gets no core.
        try:
            self._main_wal_index = WalIndex(self.path)
        except OSError as exc:
            log.warning("cannot read the database's WAL-index: %s", exc)
        else:
            self._main_copier = Copier(self.path, self._main_wal_index.read)
            self._main_copier.start()

    # -- the group commit ------------------------------------------------------------------

    def commit(self, rows: Sequence[Sequence[object]], events: Sequence[SessionEvent]) -> bool:
        """Write one batch's rows (``HISTORY_COLUMNS``) and accounting events, with any held
        back, in one transaction; False if the batch's replies must be withheld.

        When the database cannot be written (disk full, locked past the busy timeout),
        ``on_failure`` decides: "withhold" (fail closed, the default) sends no reply, so the
        NAS retries or fails over to the other server; "answer" (fail open) sends the decisions
        and keeps their rows in memory, written as soon as the database takes them."""
        counters = self.counters
        all_rows = self._backlog_rows + list(rows) if self._backlog_rows else rows
        all_events = self._backlog_events + list(events) if self._backlog_events else events
        upto = self.indexer.upto
        collect = (upto, COLLECT_PER_COMMIT) if upto > self._collected_upto else None
        try:
            collected = self._write(all_rows, all_events, collect)
        except sqlite3.Error as exc:
            counters["history_write_failures"] += 1
            self.error = str(exc)
            failing_open = self.on_failure == "answer"
            if failing_open and len(all_rows) + len(all_events) <= BACKLOG_MAX:
                self._backlog_rows, self._backlog_events = list(all_rows), list(all_events)
                if self._backlog_since is None:
                    self._backlog_since = time.monotonic()
                    log.error(
                        "history write failed (%s): answering anyway (on_history_failure = answer), "
                        "keeping decisions in memory until the database takes them",
                        exc,
                    )
                return True
            if failing_open:
                log.error("history backlog full (%d rows): withholding replies", len(all_rows))
            return False
        self.error = None
        if self._backlog_since is not None:
            log.warning(
                "history writable again: %d decisions kept in memory for %.1f s are now on disk",
                len(self._backlog_rows),
                time.monotonic() - self._backlog_since,
            )
            self._backlog_since = None
        self._backlog_rows, self._backlog_events = [], []
        if collect is not None and collected < COLLECT_PER_COMMIT:
            self._collected_upto = upto  # all caught up (but the newest batch)
        counters["history_rows"] += len(all_rows)
        counters["session_events"] += len(all_events)
        return True

    def _write(
        self,
        rows: Sequence[Sequence[object]],
        events: Sequence[SessionEvent],
        collect: tuple[int, int] | None,
    ) -> int:
        return tiers.write_batch(self.conn, rows, events, collect=collect, node=self.node)

    def record(self, record: HistoryRecord) -> None:
        """One decision outside the request path (a CoA result), committed now; raises
        sqlite3.Error when the database refuses it."""
        tiers.write_batch(self.conn, [record_row(record, 0)], (), node=self.node)

    @property
    def pending(self) -> bool:
        """Whether decisions are held in memory, waiting for the database."""
        return bool(self._backlog_rows or self._backlog_events)

    # -- upkeep ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Once per tick of the event loop: the tiers (in the indexing process), and a
        retention pass when one is due."""
        if self._indexing:
            self.tend()
            if self.retention is not None and now >= self._next_retention:
                self._next_retention = now + RETENTION_INTERVAL
                self._retention.start(self.retention)

    def tend(self) -> None:
        """Delete up to COLLECT_CHUNK batches the indexer has copied and read the backlogs.
        Past POST_HIGH decisions outside the MAC index, index them here, at the event loop's
        priority: the idle thread gets no core under load that never lets up, and a device's
        story must not wait for the load to end.  Past WAL_HIGH or WAL_HARD, checkpoint the
        recent tier here (see nac/history/indexer.py).  Main's WAL is copied by a Copier of its
        own: a checkpoint here would wait for the disk on every tick."""
        conn = self.conn
        indexer = self.indexer
        try:
            tiers.collect_recent(conn, COLLECT_CHUNK)
            top = tiers.top_id(conn)
            self._unstored = max(0, top - tiers.indexed_upto(conn))
            self._unindexed = macindex.backlog(conn, top)
            if _wal_long(self._recent_wal_index(), tiers.recent_path(self.path)):
                # The recent tier's alone: the thread has copied most of its frames already and
                # the event loop is its only writer, so this pass ends with every frame copied
                # and the next group commit rewinds the WAL.  Main's WAL has a Copier of its
                # own (see start()).
                conn.execute("PRAGMA recent.wal_checkpoint(PASSIVE)").fetchall()
                self.counters["history_wal_rewinds"] += 1
            if self._unindexed <= POST_HIGH:
                if time.monotonic() - self._last_assist >= HAND_BACK_AFTER:
                    indexer.hand_back()
                return
            if not indexer.loop_indexes:
                log.info(
                    "history: %d decisions outside the MAC index: the server indexes them itself",
                    self._unindexed,
                )
            indexer.take_over(within=0.2)
            self._last_assist = time.monotonic()
            self.counters["history_index_assists"] += 1
            until = time.monotonic() + ASSIST_SECONDS
            while self._unindexed > POST_HIGH - POST_MAX and time.monotonic() < until:
                if not indexer.post(conn):
                    break
                self._unindexed = macindex.backlog(conn, top)
            if macindex.segments(conn) > SEGMENTS_HIGH:
                macindex.merge_step(conn)
        except sqlite3.Error as exc:
            log.warning("history tiers (event loop): %s", exc)

    def _recent_wal_index(self) -> WalIndex | None:
        """The recent tier's WAL-index reader, opened once (see WalIndex); None if it cannot be
        read, and then the file's size stands in (see _wal_long)."""
        if self._wal_index is None and not self._wal_index_failed:
            try:
                self._wal_index = WalIndex(tiers.recent_path(self.path))
            except OSError as exc:
                self._wal_index_failed = True
                log.warning("cannot read the recent tier's WAL-index: %s", exc)
        return self._wal_index

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """After the last commit: stop the threads and index what is left, for up to
        FLUSH_ON_STOP seconds (the rest waits for the next start; it is on disk and visible
        either way)."""
        for copier in (self._copier, self._main_copier):
            if copier is not None:
                copier.stop()
        self._copier = self._main_copier = None
        if not self._indexing:
            return
        self._indexing = False
        self.indexer.stop()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)  # the thread is gone
        try:
            while self.indexer.post(self.conn):  # the MAC index first: cheap
                pass
            moved = self.indexer.flush(self.conn, within=FLUSH_ON_STOP)
            while tiers.collect_recent(self.conn, COLLECT_CHUNK * 10):
                pass
            left = tiers.recent_backlog(self.conn)
        except sqlite3.Error as exc:
            log.warning("history indexer at stop: %s", exc)
            return
        if moved or left:
            log.info("history indexed at stop: %d decisions; %d left for the next start", moved, left)
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave short WALs behind
        except sqlite3.Error as exc:
            log.warning("final WAL checkpoint failed: %s", exc)

    def close(self) -> None:
        """Once the database connection is closed: the WAL-index reader (never before, see
        WalIndex)."""
        for index in (self._wal_index, self._main_wal_index):
            if index is not None:
                index.close()
        self._wal_index = self._main_wal_index = None


def _wal_long(index: WalIndex | None, db_path: str) -> bool:
    """Whether the event loop should rewind the WAL of the database at ``db_path`` now (see
    nac/history/indexer.py WAL_HIGH); the file's size stands in when the WAL-index cannot be
    read."""
    held = index.read() if index is not None else None
    if held is None:
        return _file_size(db_path + "-wal") > WAL_HARD
    frames, uncopied = held
    return frames > WAL_HARD or (frames > WAL_HIGH and uncopied <= WAL_TAIL)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
