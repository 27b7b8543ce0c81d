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
back, this thread ships the backlog in SHIP_MAX-row transactions.  It runs at nice
+``SHIP_NICE``: under full load it takes what the event loop leaves and catches up after.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from nac.history import reader, tiers
from nac.pg.link import Link

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("nac.pg")

#: Most decisions one shipment takes: a transaction of a few tens of milliseconds.
SHIP_MAX: Final = 5_000
#: Seconds between two looks at the journal once everything is shipped.
SHIP_INTERVAL: Final = 0.25
#: The thread's nice value (as the WAL copier's): PostgreSQL waits, deciding does not.
SHIP_NICE: Final = 10

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


def journal_id(conn: sqlite3.Connection) -> str:
    """The journal's id (made once, kept in its meta table)."""
    found = conn.execute("SELECT value FROM main.meta WHERE key = 'journal_id'").fetchone()
    if found is not None:
        return str(found[0])
    made = str(uuid.uuid4())
    with conn:
        conn.execute("INSERT OR IGNORE INTO main.meta (key, value) VALUES ('journal_id', ?)", (made,))
    return str(conn.execute("SELECT value FROM main.meta WHERE key = 'journal_id'").fetchone()[0])


def noted_upto(conn: sqlite3.Connection) -> int | None:
    """The watermark the journal noted at its last shipment (None: never shipped, or unreadable)."""
    try:
        found = conn.execute("SELECT value FROM main.meta WHERE key = 'pg_shipped_upto'").fetchone()
        conn.rollback()
    except sqlite3.Error:
        return None
    return None if found is None else int(found[0])


def note_upto(conn: sqlite3.Connection, upto: int) -> None:
    """Note PostgreSQL's new watermark in the journal, for the metrics alone: PostgreSQL's own
    stays the one shipping starts from.  A note that fails is skipped."""
    try:
        with conn:
            conn.execute(
                "INSERT INTO main.meta (key, value) VALUES ('pg_shipped_upto', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(upto),),
            )
    except sqlite3.Error as exc:
        log.debug("history shipper: noting the watermark in the journal: %s", exc)


def shipped_upto(pg: psycopg.Connection[Any], journal: str) -> int:
    found = pg.execute("SELECT upto FROM history_shipped WHERE journal = %s", (journal,)).fetchone()
    return 0 if found is None else int(found[0])


def ship(pg: psycopg.Connection[Any], journal: str, node: str, rows: Sequence[Sequence[Any]]) -> int:
    """COPY ``rows`` (id first, as nac/history/reader.py's after() gives them) and raise the
    journal's watermark to the last one's id, in one transaction; returns that id.  A row
    without a node (written before servers had one) is this ``node``'s: a journal is one
    server's."""
    with pg.transaction(), pg.cursor() as cursor:
        with cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row((journal, *row[:_NODE], row[_NODE] or node))
        upto = int(rows[-1][0])
        cursor.execute(
            "INSERT INTO history_shipped (journal, node, upto) VALUES (%s, %s, %s)"
            " ON CONFLICT (journal) DO UPDATE SET node = EXCLUDED.node, upto = EXCLUDED.upto,"
            " shipped_at = now()",
            (journal, node, upto),
        )
    return upto


class HistoryShipper:
    """The thread; :meth:`start` and :meth:`stop` from the server's main thread.  ``shipped``,
    ``unshipped`` and ``failures`` are what /metrics shows."""

    def __init__(self, link: Link, journal_path: str, *, node: str, interval: float = SHIP_INTERVAL) -> None:
        self.link = link
        self.journal_path = journal_path
        self.node = node
        self.interval = interval
        self.shipped = 0  # decisions shipped by this process
        self.unshipped = 0  # decisions in the journal after the watermark, at the last look
        self.failures = 0  # journal reads that failed (PostgreSQL's are the link's)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nac-pg-history", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the shipment in flight (what is left ships at the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, SHIP_NICE)  # this thread only (Linux)
        except (AttributeError, OSError) as exc:
            log.info("history shipper keeps normal priority: %s", exc)
        conn = None
        try:
            while conn is None and not self._stop.is_set():
                conn = self._open()
            if conn is not None:
                self._ship_all(conn)
        finally:
            if conn is not None:
                conn.close()
            self.link.close()

    def _open(self) -> sqlite3.Connection | None:
        """The thread's connection to the journal, or None (counted, logged) to try again."""
        try:
            conn = tiers.connect(self.journal_path, sync=False)
            conn.execute("PRAGMA main.cache_size=-1024")
        except sqlite3.Error as exc:
            self.failures += 1
            log.warning("history shipper cannot open the journal %s: %s; retrying", self.journal_path, exc)
            self._stop.wait(max(self.interval, 1.0))
            return None
        return conn

    def _ship_all(self, conn: sqlite3.Connection) -> None:
        import psycopg  # noqa: PLC0415 - the server loads it only with a PostgreSQL database

        journal: str | None = None
        # PostgreSQL's watermark, read at each (re)connection; until then the journal's note of
        # it, so that a server started during an outage counts what waits.
        upto: int | None = noted_upto(conn)
        connected: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            pg = self.link.connection()
            if pg is None:
                self._look(conn, upto)
                self._stop.wait(max(self.interval, self.link.retry_in()))
                continue
            try:
                if journal is None:
                    journal = journal_id(conn)
                if pg is not connected:  # PostgreSQL is the watermark's owner: ask it again
                    connected, upto = pg, shipped_upto(pg, journal)
                assert upto is not None
                rows = reader.after(conn, upto, SHIP_MAX)
                if rows:
                    upto = ship(pg, journal, self.node, rows)
                    note_upto(conn, upto)
                    self.shipped += len(rows)
                self._look(conn, upto)
            except psycopg.Error as exc:
                self.link.lost(exc)
                connected = None
                continue
            except sqlite3.Error as exc:  # a locked or failing journal: try again
                self.failures += 1
                log.warning("history shipper: reading the journal %s: %s; retrying", self.journal_path, exc)
                self._stop.wait(self.interval)
                continue
            if len(rows) < SHIP_MAX:
                self._stop.wait(self.interval)

    def _look(self, conn: sqlite3.Connection, upto: int | None) -> None:
        """What is left to ship: the journal's newest id over the watermark (a read the
        metrics can be a moment behind on)."""
        if upto is None:
            return
        try:
            self.unshipped = max(0, tiers.top_id(conn) - upto)
            conn.rollback()
        except sqlite3.Error:
            pass
