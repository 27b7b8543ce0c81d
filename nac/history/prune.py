"""History retention: decisions older than a span leave both tiers, in short transactions."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Final

from nac.errors import PolicyError
from nac.history import macindex, tiers

log = logging.getLogger("nac.history")

#: Rows one prune transaction deletes.  A batch of 5,000 commits in tens of milliseconds on a
#: laptop, so the server's group commit (which waits for the lock only briefly) is held back
#: briefly, never for the whole prune.
PRUNE_BATCH: Final = 5000
#: Pause between prune batches, so a waiting writer gets the lock between them.
PRUNE_PAUSE: Final = 0.005


def prune(
    conn: sqlite3.Connection,
    older_than_seconds: float,
    *,
    now: float | None = None,
    batch: int = PRUNE_BATCH,
    pause: float = PRUNE_PAUSE,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Delete history rows older than ``older_than_seconds``, ``batch`` rows per transaction;
    returns how many.  Safe while the server runs: each batch holds the write lock briefly and
    the pause between batches lets the server's group commit in.  Call it from its own thread
    (or process) with its own connection: it blocks for as long as the deletion takes."""
    if older_than_seconds <= 0:
        raise PolicyError("the retention span must be positive")
    cutoff = (time.time() if now is None else now) - older_than_seconds
    deleted = 0
    # Both tiers (nac/history/tiers.py), each file in transactions of its own (a connection without the
    # recent tier has only main's).  Recent batches at or below the watermark are copies of
    # main's rows, which the server collects; older unindexed ones go whole, as their last
    # decision passes the cutoff.
    while True:
        with conn:
            n = conn.execute(
                "DELETE FROM main.history WHERE id IN"
                " (SELECT id FROM main.history WHERE ts < ? ORDER BY ts LIMIT ?)",
                (cutoff, batch),
            ).rowcount
        deleted += n
        if n < batch:
            break
        sleep(pause)
    if tiers.has_recent(conn):
        while True:
            rows, batches = tiers.prune_recent(conn, cutoff, max(1, batch // 100))
            deleted += rows
            if batches < max(1, batch // 100):
                break
            sleep(pause)
    if macindex.present(conn):
        macindex.mark_pruned(conn, cutoff)
    return deleted


class Retention:
    """Prunes the history of the database at ``path`` in a thread of its own, with a
    connection of its own: it deletes in batches, and the event loop must not wait for it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread: threading.Thread | None = None

    def start(self, older_than_seconds: float) -> bool:
        """Start a pass unless one is running; False if one is."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._thread = threading.Thread(
            target=self._run, args=(older_than_seconds,), name="nac-retention", daemon=True
        )
        self._thread.start()
        return True

    def _run(self, older_than_seconds: float) -> None:
        try:
            conn = tiers.connect(self.path, sync=False)
        except sqlite3.Error as exc:
            log.warning("history retention: %s", exc)
            return
        try:
            deleted = prune(conn, older_than_seconds)
        except sqlite3.Error as exc:
            log.warning("history retention: %s", exc)
            return
        finally:
            conn.close()
        if deleted:
            log.info(
                "history retention: removed %d decisions older than %d days",
                deleted,
                older_than_seconds // 86400,
            )
