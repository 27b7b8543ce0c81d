"""What the threads that carry a server's journal (its local SQLite file) to PostgreSQL share.

:class:`JournalThread` is a thread with a Link of its own (nac/pg/link.py) and a connection
of its own to the journal, opened again after a failure (a full or locked disk).
:class:`JournalShipper` is the loop that ships a journal's rows in order, exactly once: each
shipment writes the rows and raises the journal's watermark in PostgreSQL in one transaction,
and the next starts from PostgreSQL's watermark, read again at each connection.  The journal
only keeps a note of it, so that a server restarted during an outage can still say what waits.
nac/pg/ship.py (decisions) and nac/pg/sessions.py (session changes) are the two shippers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from nac.errors import NacError
from nac.pg.link import Link
from nac.store import Store

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("nac.pg")


def journal_id(conn: sqlite3.Connection) -> str:
    """The journal's id (made once, kept in its meta table): what PostgreSQL knows it by, so
    that a journal made anew under the same node name starts afresh without colliding."""
    found = conn.execute("SELECT value FROM main.meta WHERE key = 'journal_id'").fetchone()
    if found is not None:
        return str(found[0])
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO main.meta (key, value) VALUES ('journal_id', ?)", (str(uuid.uuid4()),)
        )
    return str(conn.execute("SELECT value FROM main.meta WHERE key = 'journal_id'").fetchone()[0])


def noted(conn: sqlite3.Connection, key: str) -> int | None:
    """The watermark the journal noted under ``key`` (None: never shipped, or unreadable)."""
    try:
        found = conn.execute("SELECT value FROM main.meta WHERE key = ?", (key,)).fetchone()
        conn.rollback()
    except sqlite3.Error:
        return None
    return None if found is None else int(found[0])


def note(conn: sqlite3.Connection, key: str, upto: int) -> None:
    """Note PostgreSQL's new watermark in the journal, for the metrics alone: PostgreSQL's own
    stays the one shipping starts from.  A note that fails is skipped."""
    try:
        with conn:
            conn.execute(
                "INSERT INTO main.meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, str(upto)),
            )
    except sqlite3.Error as exc:
        log.debug("noting %s in the journal: %s", key, exc)


def watermark(pg: psycopg.Connection[Any], table: str, journal: str) -> int:
    """How far PostgreSQL holds ``journal``'s rows, by the watermark ``table``."""
    found = pg.execute(f"SELECT upto FROM {table} WHERE journal = %s", (journal,)).fetchone()  # noqa: S608
    return 0 if found is None else int(found[0])


def raise_watermark(cursor: psycopg.Cursor[Any], table: str, journal: str, node: str, upto: int) -> None:
    """In the shipment's transaction: ``journal``'s rows are in PostgreSQL through ``upto``."""
    cursor.execute(
        f"INSERT INTO {table} (journal, node, upto) VALUES (%s, %s, %s)"  # noqa: S608 - a constant
        " ON CONFLICT (journal) DO UPDATE SET node = EXCLUDED.node, upto = EXCLUDED.upto, shipped_at = now()",
        (journal, node, upto),
    )


def ship_rows(
    pg: psycopg.Connection[Any],
    table: str,
    journal: str,
    node: str,
    upload: Callable[[psycopg.Cursor[Any]], int],
) -> int:
    """One shipment: ``upload`` writes the rows (and says how far they go), then the watermark
    rises to it, in one transaction; returns the new watermark."""
    with pg.transaction(), pg.cursor() as cursor:
        upto = upload(cursor)
        raise_watermark(cursor, table, journal, node, upto)
    return upto


class JournalThread:
    """The thread; :meth:`start` and :meth:`stop` from the server's main thread.  A subclass
    names it, adds to the journal what it needs (:meth:`prepare`) or opens it its own way
    (:meth:`connect`), and does its work in :meth:`work`.  ``failures`` counts the journal's
    failures (PostgreSQL's are the link's)."""

    name: ClassVar[str]  # the thread's name, and what log lines call it
    #: The thread's nice value (as the WAL copier's): PostgreSQL waits, deciding does not.
    nice: ClassVar[int] = 10

    def __init__(self, link: Link, journal: str, *, node: str, interval: float) -> None:
        self.link = link
        self.journal = journal
        self.node = node  # this server's name on what it ships
        self.interval = interval
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"nac-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the transaction in flight (what is left waits for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def connect(self) -> sqlite3.Connection:
        """This thread's connection to the journal, through a Store of its own, with what
        :meth:`prepare` adds; raises sqlite3.Error or NacError."""
        store = Store(self.journal)
        try:
            self.prepare(store.conn)
        except sqlite3.Error:
            store.close()
            raise
        self._store = store
        return store.conn

    def prepare(self, conn: sqlite3.Connection) -> None:
        """What the thread keeps in the journal besides (made the first time it opens it)."""

    def close(self, conn: sqlite3.Connection) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        else:
            conn.close()

    def work(self, conn: sqlite3.Connection) -> None:
        """Until stopped (``self._stop``)."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.nice)  # this thread only (Linux)
        except (AttributeError, OSError) as exc:
            log.info("%s keeps normal priority: %s", self.name, exc)
        conn = None
        try:
            while conn is None and not self._stop.is_set():
                conn = self._open()
            if conn is not None:
                self.work(conn)
        finally:
            if conn is not None:
                self.close(conn)
            self.link.close()

    def _open(self) -> sqlite3.Connection | None:
        """:meth:`connect`, or None (counted, logged) to try again."""
        try:
            return self.connect()
        except (sqlite3.Error, NacError) as exc:  # a full or locked disk: retried
            self.failures += 1
            log.warning("%s cannot open the journal %s: %s; retrying", self.name, self.journal, exc)
            self._stop.wait(max(self.interval, 1.0))
            return None


class JournalShipper(JournalThread):
    """Ships rows the journal numbers in order (ids, change counters) to PostgreSQL.  A subclass
    says what: :meth:`read` the rows after a number, :meth:`upload` them in the shipment's
    transaction, :meth:`left` counts what waits; ``table`` is PostgreSQL's watermark table and
    ``note_key`` the journal's meta key for its note.  ``shipped`` and ``unshipped`` are what
    /metrics shows."""

    table: ClassVar[str]
    note_key: ClassVar[str]
    most: ClassVar[int]  # rows a shipment takes at most

    def __init__(self, link: Link, journal: str, *, node: str, interval: float) -> None:
        super().__init__(link, journal, node=node, interval=interval)
        self.shipped = 0  # rows shipped by this process
        self.unshipped = 0  # rows in the journal after the watermark, at the last look

    def read(self, conn: sqlite3.Connection, above: int, limit: int) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def upload(self, cursor: psycopg.Cursor[Any], journal: str, rows: Sequence[Sequence[Any]]) -> int:
        """Write ``rows``; returns the number the watermark rises to."""
        raise NotImplementedError

    def left(self, conn: sqlite3.Connection, upto: int) -> int:
        raise NotImplementedError

    def shipped_some(self, pg: psycopg.Connection[Any]) -> None:
        """After each look at the journal, while PostgreSQL is up: upkeep of a subclass's."""

    def ship(self, pg: psycopg.Connection[Any], journal: str, rows: Sequence[Sequence[Any]]) -> int:
        return ship_rows(
            pg, self.table, journal, self.node, lambda cursor: self.upload(cursor, journal, rows)
        )

    def work(self, conn: sqlite3.Connection) -> None:
        import psycopg  # noqa: PLC0415 - the server loads it only with a PostgreSQL database

        journal: str | None = None
        # PostgreSQL's watermark, read at each (re)connection; until then the journal's note.
        upto = noted(conn, self.note_key)
        connected: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            pg = self.link.connection()
            if pg is None:
                self._look(conn, upto)
                self._stop.wait(max(self.interval, self.link.retry_in()))
                continue
            rows: list[tuple[Any, ...]] = []
            try:
                if journal is None:
                    journal = journal_id(conn)
                if pg is not connected:  # PostgreSQL owns the watermark: ask it again
                    connected, upto = pg, watermark(pg, self.table, journal)
                assert upto is not None
                rows = self.read(conn, upto, self.most)
                if rows:
                    upto = self.ship(pg, journal, rows)
                    note(conn, self.note_key, upto)
                    self.shipped += len(rows)
                self._look(conn, upto)
                self.shipped_some(pg)
            except psycopg.Error as exc:
                self.link.lost(exc)
                connected = None
                continue
            except sqlite3.Error as exc:  # a locked or failing journal: try again
                self.failures += 1
                log.warning("%s: reading the journal %s: %s; retrying", self.name, self.journal, exc)
                self._stop.wait(self.interval)
                continue
            if len(rows) < self.most:
                self._stop.wait(self.interval)

    def _look(self, conn: sqlite3.Connection, upto: int | None) -> None:
        """What is left to ship (unknown until a watermark is known: then the last count stands)."""
        if upto is None:
            return
        try:
            self.unshipped = self.left(conn, upto)
            conn.rollback()
        except sqlite3.Error:
            pass
