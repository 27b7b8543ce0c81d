"""The history shipper: a thread that copies a server's decisions from its journal (the local
SQLite file's history tiers, nac/history/tiers.py) into PostgreSQL, in order and exactly once.

The event loop records every decision in the journal before its reply is sent, as a single
server does; this thread follows behind.  Each shipment is one PostgreSQL transaction that
COPYs the next decisions and raises the journal's watermark (``history_shipped.upto``) with
them, so a crash or an outage at any point leaves PostgreSQL with a prefix of the journal,
and the next shipment starts where the last committed one ended.  The watermark lives in
PostgreSQL, keyed by the journal's own id (meta ``journal_id``, made at its first shipment):
a journal recreated under the same node name starts afresh, without colliding.  Rows are
keyed (journal, id) as well, so even a watermark gone wrong could not store a row twice.

While PostgreSQL is away the journal simply grows (``nac_pg_history_unshipped``); when it is
back, this thread ships the backlog in SHIP_MAX-row transactions.  It runs at nice +10
(nac/pg/journal.py): under full load it takes what the event loop leaves and catches up after.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from nac.history import reader, tiers
from nac.pg.journal import JournalShipper, ship_rows, watermark
from nac.pg.link import Link

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("nac.pg")

#: Most decisions one shipment takes: a transaction of a few tens of milliseconds.
SHIP_MAX: Final = 5_000
#: Seconds between two looks at the journal once everything is shipped.
SHIP_INTERVAL: Final = 0.25
#: Decisions one pruning transaction deletes: PostgreSQL's rows go in small steps, as the
#: journal's do, so no lock is held long.
PRUNE_STEP: Final = 10_000
#: Seconds between two retention passes of a server over PostgreSQL's history.
RETENTION_INTERVAL: Final = 60.0
#: pg_try_advisory_xact_lock's key for pruning: one server at a time prunes.
_PRUNE_LOCK: Final = 0x6E616370  # "nacp"
#: PostgreSQL's table of each journal's watermark, and the journal's meta key for its note.
TABLE: Final = "history_shipped"
NOTE: Final = "pg_shipped_upto"

#: The columns a shipped row has, after (journal, id): the journal's own, node included.
COLUMNS: Final = tiers.STORED_COLUMNS
_PG_TYPES: Final = {
    "ts": "double precision NOT NULL",
    "prefix_bits": "integer",
    "nas_port": "bigint",
    "message_authenticator": "integer NOT NULL",
    "reply": "integer NOT NULL",
    "latency_us": "bigint",
    "node": "text NOT NULL",
    **dict.fromkeys(
        ("action", "rule", "reason", "client", "nas_ip", "method", "src", "snapshot"), "text NOT NULL"
    ),
}
#: The schema migration that adds history (nac/pg/schema.py applies it).
HISTORY_SCHEMA: Final = (
    # seq: one id across every journal, for the helpdesk's paging (a journal's own ids repeat).
    "CREATE TABLE history (seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE, journal text NOT NULL,"
    " id bigint NOT NULL, "
    + ", ".join(f"{name} {_PG_TYPES.get(name, 'text')}" for name in COLUMNS)
    + ", PRIMARY KEY (journal, id))",
    "CREATE INDEX history_ts ON history (ts, seq)",
    "CREATE INDEX history_mac_ts ON history (mac, ts)",
    """CREATE TABLE history_shipped (
        journal text PRIMARY KEY,
        node text NOT NULL,
        upto bigint NOT NULL,
        shipped_at timestamptz NOT NULL DEFAULT now()
    )""",
)
_COPY: Final = f"COPY history (journal, id, {', '.join(COLUMNS)}) FROM STDIN"
_NODE: Final = len(COLUMNS)  # a row's index of node, after its id


def upload(cursor: psycopg.Cursor[Any], journal: str, node: str, rows: Sequence[Sequence[Any]]) -> int:
    """COPY ``rows`` (id first, as nac/history/reader.py's after() gives them); returns the
    last one's id.  A row without a node (written before servers had one) is this ``node``'s:
    a journal is one server's."""
    with cursor.copy(_COPY) as copy:
        for row in rows:
            copy.write_row((journal, *row[:_NODE], row[_NODE] or node))
    return int(rows[-1][0])


def ship(pg: psycopg.Connection[Any], journal: str, node: str, rows: Sequence[Sequence[Any]]) -> int:
    """``rows`` and the journal's watermark, in one transaction; returns the new watermark."""
    return ship_rows(pg, TABLE, journal, node, lambda cursor: upload(cursor, journal, node, rows))


def shipped_upto(pg: psycopg.Connection[Any], journal: str) -> int:
    return watermark(pg, TABLE, journal)


def prune(pg: psycopg.Connection[Any], before: float, *, wait: bool = True) -> int | None:
    """Delete every server's decisions older than ``before`` (seconds since the epoch), in
    PRUNE_STEP transactions; how many.  Only one server prunes at a time: without ``wait``,
    None when another is pruning now (the retention pass tries again later)."""
    lock = "pg_advisory_xact_lock(%s)" if wait else "pg_try_advisory_xact_lock(%s)"
    total = 0
    while True:
        with pg.transaction():
            got = pg.execute(f"SELECT {lock}", (_PRUNE_LOCK,)).fetchone()
            if not wait and (got is None or not got[0]):
                return None if total == 0 else total
            deleted = pg.execute(
                "DELETE FROM history WHERE seq IN"
                " (SELECT seq FROM history WHERE ts < %s ORDER BY ts LIMIT %s)",
                (before, PRUNE_STEP),
            ).rowcount
        total += max(0, deleted)
        if deleted < PRUNE_STEP:
            return total


class HistoryShipper(JournalShipper):
    """The thread (nac/pg/journal.py runs it)."""

    name: ClassVar[str] = "pg-history"
    table: ClassVar[str] = TABLE
    note_key: ClassVar[str] = NOTE
    most: ClassVar[int] = SHIP_MAX

    def __init__(
        self,
        link: Link,
        journal: str,
        *,
        node: str,
        interval: float = SHIP_INTERVAL,
        retention: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``retention``: seconds of every server's history PostgreSQL keeps (the server's
        ``[history] retention``); None keeps it for ever."""
        super().__init__(link, journal, node=node, interval=interval)
        self.retention = retention
        self.pruned = 0  # decisions this server pruned from PostgreSQL
        self._clock = clock
        self._next_retention = 0.0

    def shipped_some(self, pg: psycopg.Connection[Any]) -> None:
        """After a look at the journal: a retention pass over PostgreSQL when one is due."""
        if self.retention is None or time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + RETENTION_INTERVAL
        deleted = prune(pg, self._clock() - self.retention, wait=False)
        if deleted:
            self.pruned += deleted
            log.info(
                "history retention: %d decisions older than %.0f s deleted from PostgreSQL",
                deleted,
                self.retention,
            )

    def connect(self) -> sqlite3.Connection:
        conn = tiers.connect(self.journal, sync=False)
        conn.execute("PRAGMA main.cache_size=-1024")
        return conn

    def read(self, conn: sqlite3.Connection, above: int, limit: int) -> list[tuple[Any, ...]]:
        return reader.after(conn, above, limit)

    def upload(self, cursor: psycopg.Cursor[Any], journal: str, rows: Sequence[Sequence[Any]]) -> int:
        return upload(cursor, journal, self.node, rows)

    def left(self, conn: sqlite3.Connection, upto: int) -> int:
        return max(0, tiers.top_id(conn) - upto)
