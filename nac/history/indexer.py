"""Moves decisions from the recent history tier into the MAC index and the rows table, and
checkpoints both WALs, off the request path.

The server's group commit appends a batch to the recent tier (nac/history/tiers.py explains
the tiers); this thread puts those batches into the MAC index (nac/history/macindex.py), then
unpacks them into ``main.history``, then merges the index's segments.  It runs at
``SCHED_IDLE``: it gets the core only when the event loop has nothing to do, so a burst (a
switch stack rebooting, 5,000 ports re-authenticating) is answered at the speed of the append
alone and indexed afterwards.  Under load that never lets up, the event loop itself indexes
the MACs on every tick once more than ``POST_HIGH`` decisions wait: that costs a small part of
deciding, so the server keeps its rate and every decision is in the MAC index within a second
or two.  The rows wait for an idle core, in the recent tier, where every reader sees them.

The same thread checkpoints the two WAL files every ``CHECKPOINT_INTERVAL``: at normal priority
the checkpoints took the core from the event loop (bench/README.md).  A thread at idle priority
can be stopped anywhere, though, holding a lock or a snapshot for as long as a burst lasts; so
when the event loop has to take over indexing (backlog over its mark) it asks the thread to
stand down and waits for it, which gives it the core to finish what it holds.  The recent
tier's WAL the event loop rewinds itself (see ``WAL_HIGH``), without waiting for the thread.

Each batch is a read of the recent tier, then one transaction on the main database.  The batch
size adapts so that a transaction holds main's write lock for about ``TARGET_SECONDS``: the CLI and
the server's accounting updates (sessions live in main) wait at most that long for it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from typing import Final

from nac import dbfile
from nac.history import macindex, tiers

log = logging.getLogger("nac.history.indexer")

#: Seconds the thread sleeps when the recent tier is empty.
INTERVAL: Final = 0.5
#: Aim for transactions this long (seconds): the batch grows or shrinks to match.
TARGET_SECONDS: Final = 0.05
MIN_BATCH: Final = 200
MAX_BATCH: Final = 20_000
#: Above this many decisions not in the MAC index, the event loop indexes them itself on every
#: tick, keeping the backlog at about this mark.  A burst shorter than a few seconds of full
#: load is answered at the speed of the append alone and indexed by this thread afterwards;
#: a MAC lookup reads this many at most batch by batch (bench/README.md).
POST_HIGH: Final = 250_000
#: Most decisions one MAC index pass takes: what it unpacks at once is memory the server keeps
#: (pymalloc's arenas), so a pass stays about as large as the backlog the event loop allows.
POST_MAX: Final = 20_000
#: Seconds of merging the MAC index's segments per pass of the thread when it has nothing else.
MERGE_SECONDS: Final = 0.05
#: Seconds between checkpoints.
CHECKPOINT_INTERVAL: Final = 0.5
#: The recent tier's WAL holding more than this (bytes of frames), of which at most WAL_TAIL not
#: yet copied by this thread: the event loop finishes the copy itself.  A WAL is rewound only when
#: a commit starts with every frame copied, and under load only the loop's own pass (the only
#: writer's) ends between two commits.  Each pass is a short stall of the loop: the mark bounds
#: how often (bench/README.md, "History and sustained load").
WAL_HIGH: Final = 32 * 1024 * 1024
WAL_TAIL: Final = 1024 * 1024
#: Past this much the event loop rewinds the WAL whatever is left to copy: under full load this
#: thread copies nothing.  Below dbfile.WAL_SIZE_LIMIT, so that no commit ever has to truncate
#: the file (checked below).
WAL_HARD: Final = 96 * 1024 * 1024
if not WAL_TAIL < WAL_HIGH < WAL_HARD < dbfile.WAL_SIZE_LIMIT:
    raise ValueError("the WAL marks must rise: WAL_TAIL < WAL_HIGH < WAL_HARD < WAL_SIZE_LIMIT")


class WalIndex:
    """Reads how long the WAL of a database is, from its WAL-index (the ``-shm`` file), through
    a descriptor kept open for as long as the reader lives.

    Never open and close the ``-shm`` file per read: closing any descriptor of a file drops
    every POSIX lock the process holds on it, SQLite's own included; the next process to open
    the database (the CLI) then takes SQLite's "dead man switch" lock alone, resets the
    ``-shm`` file, and the server's connections die of SIGBUS on their mapping of it (found
    by a 60 s load test with a `nac history` at its end).  So: open it once, close it only
    after every connection of this process to that database is closed."""

    def __init__(self, db_path: str) -> None:
        self._fd: int | None = os.open(db_path + "-shm", os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> tuple[int, int] | None:
        """The bytes of frames the WAL holds now (its size in use, not the file's, which a
        rewind leaves as it was) and of those not yet copied into the database file: mxFrame
        in the header and nBackfill in the checkpoint information after it
        (https://www.sqlite.org/walformat.html); ``None`` if they cannot be read.  A racy
        read, good for a heuristic: the header may change under it."""
        if self._fd is None:
            return None
        try:
            head = os.pread(self._fd, 100, 0)
        except OSError:
            return None
        if len(head) < 100:
            return None
        version, _, _, _, _, page, frames = struct.unpack_from("=IIIBBHI", head)
        (backfilled,) = struct.unpack_from("=I", head, 96)
        if version != 3007000 or backfilled > frames:
            return None
        frame = (65536 if page == 1 else int(page)) + 24
        return int(frames) * frame, (int(frames) - int(backfilled)) * frame

    def close(self) -> None:
        """Only once this process's connections to the database are closed (see above)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


#: Bytes of the recent tier's WAL not yet copied past which the Copier copies them.
COPY_BACKLOG: Final = 512 * 1024
#: Seconds between two looks of the Copier at the WAL-index.
COPY_INTERVAL: Final = 0.05
#: The Copier's nice value: about a tenth of the core while the event loop wants all of it.
COPIER_NICE: Final = 10


class Copier:
    """Copies the recent tier's WAL into its database file (PASSIVE checkpoints), at nice +10.

    Under load that never lets up the idle-priority Indexer gets no core at all, and nothing
    would copy the WAL until the event loop had to copy all of it at WAL_HARD, a long stall.
    Copying costs a few microseconds a
    frame, a few percent of the core at full load: at nice +10 this thread gets that in short
    slices (the event loop, at nice 0, preempts it as soon as a request arrives), and the
    event loop's own rewinds stay short (WAL_TAIL).  A PASSIVE checkpoint never waits for, or
    blocks, the server's commits."""

    def __init__(self, recent_path: str, read: Callable[[], tuple[int, int] | None]) -> None:
        self.path = recent_path
        self._read = read  # the server's WalIndex.read: never a descriptor of this thread's own
        self.passes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nac-wal-copier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, COPIER_NICE)  # this thread only (Linux)
        except (AttributeError, OSError) as exc:
            log.info("WAL copier keeps normal priority: %s", exc)
        try:
            conn = sqlite3.connect(self.path, timeout=dbfile.BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            log.error("WAL copier cannot open %s: %s", self.path, exc)
            return
        failing = False
        try:
            while not self._stop.wait(COPY_INTERVAL):
                held = self._read()
                if held is None or held[1] < COPY_BACKLOG:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.passes += 1
                    failing = False
                except sqlite3.Error as exc:
                    self.failures += 1  # nac_history_indexer_failures
                    if not failing:  # once per run of failures, not every COPY_INTERVAL
                        log.warning("WAL copier: %s; retrying", exc)
                    failing = True
        finally:
            conn.close()


def lower_priority() -> bool:
    """Put the calling thread in SCHED_IDLE (Linux): it runs only on an otherwise idle core."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that refuses it
        log.info("indexer keeps normal priority: %s", exc)
        return False
    return True


class Indexer:
    """The background mover.  ``backlog`` (rows waiting) and ``moved`` are read by the metrics."""

    def __init__(self, path: str, *, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.backlog = 0
        self.moved = 0
        self.posted = 0
        self.upto = 0  # the watermark after this thread's (or the event loop's) last batch
        self.failures = 0
        self._batch = 2_000
        self._lock = threading.Lock()  # one move at a time: this thread's or the event loop's
        self._stop = threading.Event()
        # Set while the event loop indexes itself (over POST_HIGH): then this thread, which
        # gets the core only in moments, would start a batch and hold its read snapshot for
        # as long as the load lasts, and no checkpoint could ever rewind the WALs.
        self._loop_indexes = threading.Event()
        self._stood_down = threading.Event()  # the thread holds nothing and waits
        self._last_checkpoint = 0.0
        self.checkpoint_failures = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nac-indexer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def take_over(self, within: float = 0.2) -> bool:
        """The event loop takes over indexing and checkpoints: the thread stands down, and this
        waits (up to ``within`` seconds) until it has.  Blocking here is the point: it gives
        the core to the idle thread, which then finishes whatever it holds."""
        self._loop_indexes.set()
        if self._thread is None or not self._thread.is_alive():
            return True
        return self._stood_down.wait(within)

    def hand_back(self) -> None:
        self._loop_indexes.clear()

    @property
    def loop_indexes(self) -> bool:
        return self._loop_indexes.is_set()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """PASSIVE checkpoints of both files (they never wait for readers or writers)."""
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._last_checkpoint = time.monotonic()

    def post(self, conn: sqlite3.Connection, limit: int = POST_MAX) -> int:
        """Put what was committed since the last pass into the MAC index (one segment);
        returns how many decisions."""
        with self._lock:
            posted = macindex.post(conn, min(limit, POST_MAX))
            self.posted += posted
        return posted

    def step(self, conn: sqlite3.Connection) -> int:
        """Move one batch with ``conn`` (which has the recent tier attached) into the rows
        table, indexing it first if need be; returns how many rows left the recent tier."""
        with self._lock:
            batch = self._batch
            started = time.monotonic()
            moved = tiers.move_recent(conn, batch)
            took = time.monotonic() - started
            if moved >= batch and took > 0:
                scaled = int(batch * TARGET_SECONDS / took)
                self._batch = max(MIN_BATCH, min(MAX_BATCH, (batch + scaled) // 2))
            self.moved += moved
            self.backlog = tiers.recent_backlog(conn)
            self.upto = tiers.indexed_upto(conn)
        return moved

    def flush(self, conn: sqlite3.Connection, *, within: float) -> int:
        """Move everything (at the caller's priority) for at most ``within`` seconds."""
        deadline = time.monotonic() + within
        total = 0
        while time.monotonic() < deadline:
            moved = self.step(conn)
            total += moved
            if not moved:
                break
        return total

    def _run(self) -> None:
        lower_priority()
        try:
            conn = tiers.connect(self.path, sync=False)
            conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are explicit, below
            # Small caches (KiB): the batch in transit needs ~1 MiB; the MAC index's pages are
            # too many to keep anyway, and every MiB here counts in the server's RSS.
            conn.execute("PRAGMA temp.cache_size=-1024")
            conn.execute("PRAGMA main.cache_size=-1024")
        except sqlite3.Error as exc:
            log.error("history indexer cannot open %s: %s", self.path, exc)
            return
        try:
            while not self._stop.is_set():
                if self._loop_indexes.is_set():
                    self._stood_down.set()
                    self._stop.wait(self.interval)
                    continue
                self._stood_down.clear()
                if self._loop_indexes.is_set():  # asked between the check and the clear
                    continue
                try:
                    # The MAC index first (cheap, and what the helpdesk searches), then rows;
                    # merges when nothing else is left.
                    self.post(conn)
                    moved = self.step(conn)
                    if moved < MIN_BATCH:
                        macindex.merge(conn, within=MERGE_SECONDS)
                except sqlite3.Error as exc:
                    # Busy (a long CLI transaction) or a full disk: the rows stay in the recent
                    # tier, where the helpdesk already sees them; try again later.
                    self.failures += 1
                    log.warning("history indexer: %s; retrying in %.1f s", exc, self.interval)
                    moved = 0
                if time.monotonic() - self._last_checkpoint >= CHECKPOINT_INTERVAL:
                    try:
                        self.checkpoint(conn)
                    except sqlite3.Error as exc:
                        self.checkpoint_failures += 1
                        log.warning("WAL checkpoint failed: %s", exc)
                if moved < MIN_BATCH:
                    self._stood_down.set()  # holding nothing while it waits
                    self._stop.wait(min(self.interval, CHECKPOINT_INTERVAL))
        finally:
            conn.close()
