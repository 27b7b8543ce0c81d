"""Disconnect and CoA from any server: jobs queued in PostgreSQL, sent by the server that saw
the session's accounting.

`nac disconnect`, `nac reauth` and `--apply now` on PostgreSQL queue one row per active
session in ``coa_jobs``, addressed to the session's node (the one whose journal holds the
session and whose client table holds the NAS's secret), and announce it on ``nac_coa``.
In each server a job follower thread claims the jobs addressed to its node
(``FOR UPDATE SKIP LOCKED``), copies them into its journal's own jobs table, where the
server's CoA dispatcher (nac/serve/coa_jobs.py) sends them as it sends a local
`nac disconnect`, and reports each answer back to PostgreSQL's row, which the CLI waits on.
A job its server leaves unclaimed for TAKEOVER seconds (it is down) is taken by any server
whose client table names the job's NAS, with the session's row as PostgreSQL has it.

Sent once: the copy into the journal commits first, with the PostgreSQL job's id in
``pg_coa_jobs`` (its primary key), and the claim second, while the row is still locked.  A
crash between the two leaves the row pending in PostgreSQL and copied in the journal; the next
claim finds the copy and only marks the row claimed.  Results are reported until the journal
says they were: a repeat writes the same values again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from nac.pg.journal import JournalThread
from nac.pg.link import Link

if TYPE_CHECKING:
    import psycopg

    from nac.policy.decide import Policy
    from nac.sessions.enforce import Change

log = logging.getLogger("nac.pg")

#: The channel a queued job is announced on (its payload: the node it is addressed to).
COA_CHANNEL: Final = "nac_coa"
#: Seconds between two looks for jobs and answers when no announcement came.
POLL_SECONDS: Final = 0.25
#: Most jobs one claim takes (the dispatcher paces each NAS: nac/sessions/store.py).
CLAIM_MAX: Final = 200
#: Seconds after which a job its own server has not claimed (down, or cut off from
#: PostgreSQL) may be taken by any server whose client table names the job's NAS.
TAKEOVER: Final = 5.0
#: A job's states that the CLI still waits on.
WAITING: Final = ("pending", "sent")

COA_SCHEMA: Final = (
    """CREATE TABLE coa_jobs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        node text NOT NULL,
        client text NOT NULL,
        nas_ip text NOT NULL,
        session_id text NOT NULL,
        mac text,
        kind text NOT NULL,
        reason text NOT NULL,
        requested double precision NOT NULL,
        requested_by text NOT NULL,
        vlan_change boolean NOT NULL DEFAULT false,
        status text NOT NULL DEFAULT 'pending',
        claimed double precision,
        attempts integer NOT NULL DEFAULT 0,
        error_cause integer,
        detail text,
        finished double precision
    )""",
    "CREATE INDEX coa_jobs_pending ON coa_jobs (node, id) WHERE status = 'pending'",
)

_LOCAL: Final = (
    "CREATE TABLE IF NOT EXISTS pg_coa_jobs (pg_id INTEGER PRIMARY KEY,"
    " job INTEGER NOT NULL UNIQUE, reported INTEGER NOT NULL DEFAULT 0)"
)
_JOB_ROWS: Final = (
    "SELECT id, kind, status, attempts, error_cause, detail, mac, client, nas_ip, session_id, node"
    " FROM coa_jobs WHERE id = ANY(%s) ORDER BY id"
)


# -- the CLI's side ------------------------------------------------------------------------


def request_action(
    pg: psycopg.Connection[Any],
    *,
    mac: str,
    kind: str,
    reason: str,
    requested_by: str,
    now: float,
    vlan_change: bool = False,
) -> list[int]:
    """Queue a Disconnect or re-authorize for every active session of ``mac``, on whichever
    server saw it; the job ids (none: no active session)."""
    with pg.transaction():
        rows = pg.execute(
            "INSERT INTO coa_jobs (node, client, nas_ip, session_id, mac, kind, reason, requested,"
            " requested_by, vlan_change) SELECT node, client, nas_ip, session_id, mac, %s, %s, %s, %s, %s"
            " FROM sessions WHERE mac = %s AND status = 'active' ORDER BY node, client RETURNING id, node",
            (kind, reason, now, requested_by, vlan_change, mac),
        ).fetchall()
        for node in sorted({str(row[1]) for row in rows}):  # delivered at commit
            pg.execute("SELECT pg_notify(%s, %s)", (COA_CHANNEL, node))
    return [int(row[0]) for row in rows]


def jobs(pg: psycopg.Connection[Any], ids: Sequence[int]) -> list[dict[str, Any]]:
    with pg.cursor() as cursor:
        cursor.execute(_JOB_ROWS, (list(ids),))
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def wait_jobs(pg: psycopg.Connection[Any], ids: Sequence[int], *, wait: float) -> list[dict[str, Any]]:
    """The jobs' rows once their servers have reported them all, or as they stand after
    ``wait`` s (as nac/sessions/store.py's wait_jobs does for one server)."""
    deadline = time.monotonic() + wait
    rows = jobs(pg, ids)
    while time.monotonic() < deadline and any(r["status"] in WAITING for r in rows):
        time.sleep(0.1)
        rows = jobs(pg, ids)
    return rows


def enforce(
    pg: psycopg.Connection[Any],
    before: Policy,
    after: Policy,
    *,
    reason: str,
    requested_by: str,
    now: float,
    sessions: Sequence[dict[str, Any]],
) -> list[tuple[Change, list[int]]]:
    """nac/sessions/enforce.py's enforce over every server's active ``sessions``."""
    from nac.sessions.enforce import changes_in  # noqa: PLC0415 - loads the policy engine

    queued = []
    for change in changes_in(sessions, before, after, now=now):
        ids = request_action(
            pg, mac=change.mac, kind=change.kind, reason=reason, requested_by=requested_by, now=now,
            vlan_change=change.before.vlan != change.after.vlan,
        )  # fmt: skip
        queued.append((change, ids))
    return queued


# -- the server's side ---------------------------------------------------------------------


#: The session columns a job taken over brings into the taker's journal.
_SESSION: Final = (
    "nas_identifier", "mac", "user_name", "nas_port", "nas_port_id", "called_station_id",
    "calling_station_id", "framed_ip", "vlan", "started", "updated", "audit_session_id",
)  # fmt: skip
_PENDING: Final = (
    "SELECT j.id, j.node, j.client, j.nas_ip, j.session_id, j.kind, j.reason, j.requested,"  # noqa: S608
    " j.requested_by, j.vlan_change, s.session_id IS NOT NULL AS known,"
    f" {', '.join(f's.{c}' for c in _SESSION)}"
    " FROM coa_jobs j LEFT JOIN sessions s ON s.node = j.node AND s.client = j.client"
    " AND s.nas_ip = j.nas_ip AND s.session_id = j.session_id"
    " WHERE j.status = 'pending' AND (j.node = %s OR (j.client = ANY(%s) AND j.requested < %s))"
    " ORDER BY j.id LIMIT %s FOR UPDATE OF j SKIP LOCKED"
)


def pending(
    pg: psycopg.Connection[Any], node: str, *, clients: Collection[str] = (), now: float
) -> list[dict[str, Any]]:
    """Lock the pending jobs ``node`` may take (inside the caller's transaction): those
    addressed to it, and those its own server left for TAKEOVER s on a NAS this server knows
    too (``clients``: the names in its client table), each with its session's columns."""
    with pg.cursor() as cursor:
        cursor.execute(_PENDING, (node, sorted(clients), now - TAKEOVER, CLAIM_MAX))
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def claim(
    pg: psycopg.Connection[Any], conn: sqlite3.Connection, node: str, *, now: float,
    clients: Collection[str] = (),
) -> tuple[int, int]:  # fmt: skip
    """Copy the jobs ``node`` may take into the journal, then mark them sent in PostgreSQL (a
    job whose session neither the journal nor PostgreSQL holds is answered 'error' at once);
    (jobs copied, jobs refused)."""
    with pg.transaction():
        rows = pending(pg, node, clients=clients, now=now)
        if not rows:
            return 0, 0
        missing = copy_in(conn, rows)
        taken = [row["id"] for row in rows if row["id"] not in missing]
        if taken:
            pg.execute("UPDATE coa_jobs SET status = 'sent', claimed = %s WHERE id = ANY(%s)", (now, taken))
        if missing:
            pg.execute(
                "UPDATE coa_jobs SET status = 'error', detail = %s, finished = %s WHERE id = ANY(%s)",
                (f"the session is not in {node}'s journal", now, sorted(missing)),
            )
    for row in rows:
        if row["node"] != node and row["id"] not in missing:
            log.info(
                "%s %s on %s: taken over from %s, which did not claim it in %.0f s",
                row["kind"], row["mac"], row["client"], row["node"], TAKEOVER,
            )  # fmt: skip
    return len(taken), len(missing)


def copy_in(conn: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Queue ``rows`` (:func:`pending`'s) in the journal's jobs table, each once, in one SQLite
    transaction; the ids of those whose session is nowhere to be found.  A job taken over
    brings its session's row as PostgreSQL has it, under its own node, for the sender to
    address the NAS with (and its end, on an ACK, goes back to PostgreSQL the same way)."""
    missing = set()
    with conn:
        for row in rows:
            if conn.execute("SELECT 1 FROM pg_coa_jobs WHERE pg_id = ?", (row["id"],)).fetchone():
                continue  # copied before a crash that left PostgreSQL's row unclaimed
            key = (row["client"], row["nas_ip"], row["session_id"])
            found = conn.execute(
                "SELECT id FROM sessions WHERE client = ? AND nas_ip = ? AND session_id = ?", key
            ).fetchone()
            if found is None and row["known"]:
                names = ("client", "nas_ip", "session_id", "node", *_SESSION)
                found = conn.execute(
                    f"INSERT INTO sessions (status, {', '.join(names)})"  # noqa: S608 - constants
                    f" VALUES ('active', {', '.join('?' * len(names))}) RETURNING id",
                    [row[name] for name in names],
                ).fetchone()
            if found is None:
                missing.add(int(row["id"]))
                continue
            cursor = conn.execute(
                "INSERT INTO coa_jobs (session, kind, reason, requested, requested_by, status, vlan_change)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (
                    found[0],
                    row["kind"],
                    row["reason"],
                    row["requested"],
                    row["requested_by"],
                    int(row["vlan_change"]),
                ),
            )
            conn.execute("INSERT INTO pg_coa_jobs (pg_id, job) VALUES (?, ?)", (row["id"], cursor.lastrowid))
    return missing


def report(pg: psycopg.Connection[Any], conn: sqlite3.Connection) -> int:
    """Write the answers the journal has for claimed jobs into PostgreSQL, then note them
    reported in the journal; how many."""
    try:
        rows = conn.execute(
            "SELECT m.pg_id, j.status, j.attempts, j.error_cause, j.detail, j.finished FROM pg_coa_jobs m"
            " JOIN coa_jobs j ON j.id = m.job WHERE m.reported = 0 AND j.status NOT IN ('pending', 'sent')"
        ).fetchall()
    finally:
        conn.rollback()
    if not rows:
        return 0
    with pg.transaction(), pg.cursor() as cursor:
        cursor.executemany(
            "UPDATE coa_jobs SET status = %s, attempts = %s, error_cause = %s, detail = %s, finished = %s"
            " WHERE id = %s",
            [(*row[1:], row[0]) for row in rows],
        )
    with conn:
        conn.executemany("UPDATE pg_coa_jobs SET reported = 1 WHERE pg_id = ?", [(row[0],) for row in rows])
    return len(rows)


def unreported(conn: sqlite3.Connection) -> int:
    """Jobs claimed from PostgreSQL whose answer it has not been told yet."""
    try:
        return int(conn.execute("SELECT COUNT(*) FROM pg_coa_jobs WHERE reported = 0").fetchone()[0])
    finally:
        conn.rollback()


class JobFollower(JournalThread):
    """The thread (nac/pg/journal.py runs it).  ``claimed``, ``reported``, ``refused``,
    ``unreported`` and ``failures`` are what /metrics shows."""

    name: ClassVar[str] = "pg-coa"
    nice: ClassVar[int] = 0  # a Disconnect waits for it: the server's own priority

    def __init__(
        self, link: Link, journal: str, *, node: str, clients: Collection[str] = (),
        poll: float = POLL_SECONDS, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        super().__init__(link, journal, node=node, interval=poll)
        self.clients = frozenset(clients)  # the NASes whose jobs it may take over
        self._clock = clock
        self.claimed = 0  # jobs copied into the journal by this process
        self.reported = 0  # answers written back to PostgreSQL
        self.refused = 0  # jobs whose session the journal does not hold
        self.unreported = 0  # claimed jobs whose answer PostgreSQL lacks, at the last look

    def prepare(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute(_LOCAL)  # the jobs claimed from PostgreSQL

    def work(self, conn: sqlite3.Connection) -> None:
        import psycopg  # noqa: PLC0415 - the server loads it only with a PostgreSQL database

        while not self._stop.is_set():
            pg = self.link.connection()
            if pg is None:
                self._look(conn)
                self._stop.wait(max(self.interval, self.link.retry_in()))
                continue
            try:
                taken, refused = claim(pg, conn, self.node, now=self._clock(), clients=self.clients)
                self.claimed += taken
                self.refused += refused
                if refused:
                    log.warning("%d queued jobs name sessions this server's journal does not hold", refused)
                self.reported += report(pg, conn)
                self._look(conn)
                for _ in pg.notifies(timeout=self.interval, stop_after=1):
                    pass  # a job was queued: claim at once
            except psycopg.Error as exc:
                self.link.lost(exc)
            except sqlite3.Error as exc:  # a locked or full journal: try again
                self.failures += 1
                log.warning("job follower: the journal %s: %s; retrying", self.journal, exc)
                self._stop.wait(self.interval)

    def _look(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.unreported = unreported(conn)


def listen(conn: psycopg.Connection[Any]) -> None:
    """A job follower connection's setup (after the schema check): LISTEN for queued jobs."""
    conn.execute(f"LISTEN {COA_CHANNEL}")
