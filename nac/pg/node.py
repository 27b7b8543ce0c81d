"""A server's PostgreSQL side (`nac serve --db postgresql://...`): its node name, its journal
(the local SQLite file it decides and records from, as a single server does), and the
threads that talk to PostgreSQL beside the event loop.

nac/serve/run.py calls :meth:`PgNode.start_up` before anything opens the journal (and before
workers are forked), then :meth:`start` in the process that serves (worker 0 of several) and
:meth:`stop` when it stops.  The threads started here share nothing with the event loop but
the journal file (each its own SQLite connection) and the metrics they expose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Final

from nac.pg import PgUnreachableError, coa, connect, redact, schema
from nac.pg.follow import POLL_SECONDS, RulesFollower, copy_registry, copy_rules, listen
from nac.pg.link import Link
from nac.pg.sessions import SessionShipper
from nac.pg.ship import HistoryShipper
from nac.pg.store import PgStore
from nac.store import Store

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("nac.pg")

#: Where `nac serve --db postgresql://...` keeps its journal without --journal / [server] journal.
DEFAULT_JOURNAL: Final = "nac-journal.db"


class PgNode:
    def __init__(
        self,
        url: str,
        *,
        node: str,
        journal: str,
        poll: float = POLL_SECONDS,
        clients: Collection[str] = (),
        retention: float | None = None,
    ) -> None:
        """``clients``: the names in this server's client table (it may send a job another
        server left unclaimed to one of those NASes); ``retention``: seconds of history
        PostgreSQL keeps (``[history] retention``; the servers' shortest wins)."""
        self.url = url
        self.where = redact(url)
        self.node = node  # this server's name on the rows it will ship
        self.journal = journal
        self.rules_link = Link(url, purpose="rules", setup=lambda conn: listen(conn, self.where))
        self.follower = RulesFollower(self.rules_link, journal, poll=poll)
        self.history_link = Link(url, purpose="history", setup=lambda conn: schema.require(conn, self.where))
        self.shipper = HistoryShipper(self.history_link, journal, node=node, retention=retention)
        self.sessions_link = Link(url, purpose="sessions", setup=self._require)
        self.sessions = SessionShipper(self.sessions_link, journal, node=node)
        self.jobs_link = Link(url, purpose="Disconnect / CoA jobs", setup=self._listen_jobs)
        self.jobs = coa.JobFollower(self.jobs_link, journal, node=node, clients=clients)

    def _require(self, conn: psycopg.Connection[Any]) -> None:
        schema.require(conn, self.where)

    def _listen_jobs(self, conn: psycopg.Connection[Any]) -> None:
        schema.require(conn, self.where)
        coa.listen(conn)

    def start_up(self) -> None:
        """Bring PostgreSQL's schema up to date and copy its rules and registry in force into
        the journal, so the server starts on them; when PostgreSQL is unreachable, start on the
        journal's rules
        (a warning says which).  A schema newer than this nac knows is refused
        (DatabaseFileError): the server does not start."""
        try:
            conn = connect(self.url)
        except PgUnreachableError as exc:
            self.rules_link.lost(exc)
            self._starting_on_journal()
            return
        import psycopg  # noqa: PLC0415 - connect() loaded it

        store = Store(self.journal)
        try:
            changes = schema.upgrade(conn, self.where)  # a newer schema: refused, no start
            if changes:
                log.info("PostgreSQL %s: %s", self.where, "; ".join(changes))
            PgStore(self.url, conn=conn).initialize()
            copy_rules(conn, store, self.where)
            copy_registry(conn, store, self.where)
            self.rules_link.up = True
        except (psycopg.OperationalError, PgUnreachableError) as exc:  # it went away meanwhile
            self.rules_link.lost(exc)
            self._starting_on_journal()
        finally:
            store.close()
            conn.close()  # workers are forked next: the threads open their own

    def _starting_on_journal(self) -> None:
        store = Store(self.journal)
        try:
            mirrored = store.mirrored()
        finally:
            store.close()
        if mirrored is None:
            log.warning(
                "starting without PostgreSQL's rules: the journal %s never held them, so the"
                " shipped policy applies until PostgreSQL is back",
                self.journal,
            )
        else:
            version = mirrored[1].partition("@")[0]
            log.warning(
                "starting on the rules the journal %s holds (PostgreSQL's rules version %s) until"
                " PostgreSQL is back",
                self.journal,
                version,
            )

    def start(self) -> None:
        """Start the threads (in the process that serves)."""
        self.follower.start()
        self.shipper.start()
        self.sessions.start()
        self.jobs.start()

    def stop(self) -> None:
        self.follower.stop()
        self.shipper.stop()
        self.sessions.stop()
        self.jobs.stop()

    def gauges(self) -> dict[str, Callable[[], float]]:
        """For /metrics: ``nac_pg_up`` is 1 while the rules connection is up."""
        return {
            "pg_up": lambda: float(self.rules_link.up),
            "pg_history_up": lambda: float(self.history_link.up),
            "pg_history_unshipped": lambda: float(self.shipper.unshipped),
            "pg_sessions_up": lambda: float(self.sessions_link.up),
            "pg_sessions_unshipped": lambda: float(self.sessions.unshipped),
            "pg_coa_up": lambda: float(self.jobs_link.up),
            "pg_coa_unreported": lambda: float(self.jobs.unreported),
        }

    def totals(self) -> dict[str, Callable[[], float]]:
        """Counters kept here, for /metrics: reconnections after an outage."""
        return {
            "pg_reconnects": lambda: float(self.rules_link.reconnects),
            "pg_history_shipped": lambda: float(self.shipper.shipped),
            "pg_history_pruned": lambda: float(self.shipper.pruned),
            "pg_history_journal_failures": lambda: float(self.shipper.failures),
            "pg_sessions_shipped": lambda: float(self.sessions.shipped),
            "pg_sessions_journal_failures": lambda: float(self.sessions.failures),
            "pg_coa_claimed": lambda: float(self.jobs.claimed),
            "pg_coa_reported": lambda: float(self.jobs.reported),
            "pg_coa_refused": lambda: float(self.jobs.refused),
            "pg_coa_journal_failures": lambda: float(self.jobs.failures),
        }
