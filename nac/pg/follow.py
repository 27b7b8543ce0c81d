"""The rules follower: a thread that keeps the server's journal (its local SQLite file) holding
PostgreSQL's rules, defaults and IEEE registry in force.

It LISTENs on ``nac_rules`` and ``nac_registry`` and also polls every POLL_SECONDS (a NOTIFY
is lost while the connection is down, and at each reconnect it checks at once).  When
PostgreSQL's rules version moved, it copies the rules and defaults into the journal in one
SQLite transaction (nac/store.py Store.mirror_policy), which bumps the journal's rules
version; when its registry version moved (an import or a rollback), the active snapshot and
its entries likewise (Store.mirror_registry, which bumps the journal's registry version).  The
server's PolicyPoller swaps them in at its next tick, as it does for a `nac rules add` or a
`nac oui import` on SQLite.  Deciding never waits for this thread: the event loop reads only
the journal.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from nac.errors import NacError
from nac.pg import REGISTRY_CHANNEL, RULES_CHANNEL, schema
from nac.pg import registry as pg_registry
from nac.pg.link import Link
from nac.pg.store import published
from nac.store import Store

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("nac.pg")

#: Seconds between two checks of PostgreSQL's rules version when no NOTIFY came.
POLL_SECONDS: Final = 5.0
#: Seconds the thread waits for a NOTIFY at a time: how soon it sees it is asked to stop.
WAKE_SECONDS: Final = 0.2


def copy_rules(conn: psycopg.Connection[Any], store: Store, where: str) -> int | None:
    """Copy PostgreSQL's rules and defaults into ``store`` if they moved since the last copy
    (or the journal's were changed locally since); the journal's new rules version, or None
    when nothing needed copying."""
    found = published(conn)
    source = f"{found.version}@{where}"
    mirrored = store.mirrored()
    if mirrored is not None and mirrored[1] == source:
        if mirrored[0] == store.rules_version():
            return None
        log.warning(
            "the rules in the journal %s were changed there; PostgreSQL's replace them (change"
            " rules with --db %s)",
            store.path,
            where,
        )
    local = store.mirror_policy(found.defaults, found.records, source=source)
    log.info(
        "rules version %d from PostgreSQL: %d rules copied into the journal (its rules version %d)",
        found.version,
        len(found.records),
        local,
    )
    return local


def copy_registry(conn: psycopg.Connection[Any], store: Store, where: str) -> int | None:
    """Copy PostgreSQL's registry in force into ``store`` if its registry version moved since the
    last copy (or the journal's registry was changed locally since); the journal's new registry
    version, or None when nothing needed copying."""
    mirrored = store.mirrored("registry_mirrored")
    if mirrored is not None and mirrored[1] == f"{pg_registry.version(conn)}@{where}":
        if mirrored[0] == store.registry_version():
            return None
        log.warning(
            "the registry in the journal %s was changed there; PostgreSQL's replaces it (import"
            " with --db %s)",
            store.path,
            where,
        )
    found = pg_registry.published(conn)  # read whole: an import may have committed meanwhile
    local = store.mirror_registry(found.snapshot, found.entries, source=f"{found.version}@{where}")
    log.info(
        "registry version %d from PostgreSQL: %s copied into the journal (its registry version %d)",
        found.version,
        "the bundled registry" if found.snapshot is None else f"{len(found.entries)} entries",
        local,
    )
    return local


def listen(conn: psycopg.Connection[Any], where: str) -> None:
    """A follower connection's setup: the schema is one this nac knows, and LISTEN."""
    schema.require(conn, where)
    conn.execute(f"LISTEN {RULES_CHANNEL}")
    conn.execute(f"LISTEN {REGISTRY_CHANNEL}")


class RulesFollower:
    """The thread; :meth:`start` and :meth:`stop` from the server's main thread."""

    def __init__(self, link: Link, journal: str, *, poll: float = POLL_SECONDS) -> None:
        self.link = link
        self.journal = journal
        self.poll = poll
        self.copies = 0
        self.registry_copies = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nac-pg-rules", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        store = Store(self.journal)  # this thread's own SQLite connection
        try:
            self._follow(store)
        finally:
            store.close()
            self.link.close()

    def _follow(self, store: Store) -> None:
        import psycopg  # noqa: PLC0415 - the server loads it only with a PostgreSQL database

        listening: psycopg.Connection[Any] | None = None
        due = 0.0  # when to compare the rules versions next
        while not self._stop.is_set():
            conn = self.link.connection()
            if conn is None:
                self._stop.wait(max(WAKE_SECONDS, self.link.retry_in()))
                continue
            try:
                if conn is not listening:  # a new connection: it may have missed NOTIFYs
                    listening, due = conn, 0.0
                if time.monotonic() >= due:
                    due = time.monotonic() + self.poll
                    if copy_rules(conn, store, self.link.where) is not None:
                        self.copies += 1
                    if copy_registry(conn, store, self.link.where) is not None:
                        self.registry_copies += 1
                for _ in conn.notifies(timeout=WAKE_SECONDS, stop_after=1):
                    due = 0.0  # announced: copy at once
            except psycopg.Error as exc:
                self.link.lost(exc)
                listening = None
            except (sqlite3.Error, NacError) as exc:  # the journal: a full or locked disk
                log.error(
                    "cannot copy the rules or registry into the journal %s: %s; retrying", self.journal, exc
                )
                self._stop.wait(self.poll)
