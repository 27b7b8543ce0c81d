"""Every server's sessions in PostgreSQL: the session shipper, and the helpdesk's reads.

Accounting updates a server's sessions in its journal (nac/sessions/store.py, inside the group
commit), as on a single server; this thread follows behind and upserts the rows that changed
into PostgreSQL's ``sessions``, keyed by the node and the session's own key (client, NAS
address, Acct-Session-Id).  To know what changed, the journal keeps a change counter beside
its sessions: triggers give a session the next ``rev`` in ``session_changes`` whenever it is
inserted or updated (a separate table, so the sessions table and what `nac sessions` shows of
it stay as they are; made here, with the rows already there, the first time a journal is
shipped).  Each shipment upserts the rows changed after the journal's watermark
(``sessions_shipped.upto``, keyed by the journal's id as history's is) and raises it in the
same transaction: an outage or a crash leaves the watermark at the last shipment, the next
one starts from there, and a row changed again meanwhile carries its latest state.  Upserts
make a repeat harmless, so a session's row in PostgreSQL is always its journal's, at most an
interval behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from nac.pg.journal import JournalShipper, ship_rows, watermark
from nac.pg.link import Link

if TYPE_CHECKING:
    import psycopg

#: Most session rows one shipment takes.
SHIP_MAX: Final = 2_000
#: Seconds between two looks at the journal once everything is shipped.
SHIP_INTERVAL: Final = 0.25
#: PostgreSQL's table of each journal's watermark, and the journal's meta key for its note.
TABLE: Final = "sessions_shipped"
NOTE: Final = "pg_sessions_upto"

#: A session's columns as the journal keeps them (its local id aside), node last.
COLUMNS: Final = (
    "client", "nas_ip", "session_id", "nas_identifier", "mac", "user_name", "nas_port",
    "nas_port_id", "called_station_id", "calling_station_id", "framed_ip", "vlan", "status",
    "started", "updated", "stopped", "session_time", "input_octets", "output_octets",
    "input_packets", "output_packets", "terminate_cause", "audit_session_id",
)  # fmt: skip
_KEY: Final = ("node", "client", "nas_ip", "session_id")
_PG_TYPES: Final = {
    "status": "text NOT NULL",
    "started": "double precision NOT NULL",
    "updated": "double precision NOT NULL",
    "stopped": "double precision",
    **dict.fromkeys(("client", "nas_ip", "session_id"), "text NOT NULL"),
    **dict.fromkeys(
        ("nas_port", "session_time", "input_octets", "output_octets", "input_packets", "output_packets"),
        "bigint",
    ),
}
#: The schema migration that adds sessions (nac/pg/schema.py applies it, with the jobs').
SESSIONS_SCHEMA: Final = (
    "CREATE TABLE sessions (node text NOT NULL, "
    + ", ".join(f"{name} {_PG_TYPES.get(name, 'text')}" for name in COLUMNS)
    + f", PRIMARY KEY ({', '.join(_KEY)}))",
    "CREATE INDEX sessions_mac ON sessions (mac, status)",
    "CREATE INDEX sessions_updated ON sessions (updated)",
    """CREATE TABLE sessions_shipped (
        journal text PRIMARY KEY,
        node text NOT NULL,
        upto bigint NOT NULL,
        shipped_at timestamptz NOT NULL DEFAULT now()
    )""",
)
_UPDATES: Final = ", ".join(f"{name} = EXCLUDED.{name}" for name in COLUMNS if name not in _KEY)
_UPSERT: Final = (
    f"INSERT INTO sessions (node, {', '.join(COLUMNS)}) VALUES (%s{', %s' * len(COLUMNS)})"  # noqa: S608
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {_UPDATES}"
)

# The journal's change counter: each insert or update of a session gives it the next rev.
_TRACK: Final = (
    "CREATE TABLE IF NOT EXISTS session_changes (session INTEGER PRIMARY KEY, rev INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS session_changes_rev ON session_changes (rev)",
    # Sessions already there (a journal made before, or a single server's file): one rev each.
    "INSERT OR IGNORE INTO session_changes (session, rev)"
    " SELECT id, id + (SELECT COALESCE(MAX(rev), 0) FROM session_changes) FROM sessions",
    # Two statements, not INSERT OR REPLACE: an upsert's own conflict clause overrides the
    # trigger's, and the rev must be taken before the session's old one could be removed.
    "CREATE TRIGGER IF NOT EXISTS session_changed_insert AFTER INSERT ON sessions BEGIN"
    " UPDATE session_changes SET rev = (SELECT MAX(rev) + 1 FROM session_changes) WHERE session = NEW.id;"
    " INSERT INTO session_changes (session, rev)"
    " SELECT NEW.id, (SELECT COALESCE(MAX(rev), 0) + 1 FROM session_changes)"
    " WHERE NOT EXISTS (SELECT 1 FROM session_changes WHERE session = NEW.id); END",
    "CREATE TRIGGER IF NOT EXISTS session_changed_update AFTER UPDATE ON sessions BEGIN"
    " UPDATE session_changes SET rev = (SELECT MAX(rev) + 1 FROM session_changes) WHERE session = NEW.id;"
    " INSERT INTO session_changes (session, rev)"
    " SELECT NEW.id, (SELECT COALESCE(MAX(rev), 0) + 1 FROM session_changes)"
    " WHERE NOT EXISTS (SELECT 1 FROM session_changes WHERE session = NEW.id); END",
)
_CHANGED: Final = (
    f"SELECT c.rev, {', '.join(f's.{name}' for name in COLUMNS)}, s.node FROM session_changes c"  # noqa: S608
    " JOIN sessions s ON s.id = c.session WHERE c.rev > ? ORDER BY c.rev LIMIT ?"
)


def track_changes(conn: sqlite3.Connection) -> None:
    """Give the journal its change counter (once: the triggers stay in the file)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'session_changed_update'").fetchone()
    if found is not None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _TRACK:
            conn.execute(statement)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def changed(conn: sqlite3.Connection, above: int, limit: int) -> list[tuple[Any, ...]]:
    """(rev, columns..., node) of the sessions changed after rev ``above``, in rev order."""
    try:
        return conn.execute(_CHANGED, (above, limit)).fetchall()
    finally:
        conn.rollback()


def upload(cursor: psycopg.Cursor[Any], node: str, rows: Sequence[Sequence[Any]]) -> int:
    """Upsert ``rows`` (as :func:`changed` gives them); returns the last rev.  A row without a
    node (written before servers had one) is this ``node``'s; one with another's is a session a
    Disconnect or CoA was taken over for (nac/pg/coa.py), which goes back to its own row."""
    cursor.executemany(_UPSERT, [(row[-1] or node, *row[1:-1]) for row in rows])
    return int(rows[-1][0])


def ship(pg: psycopg.Connection[Any], journal: str, node: str, rows: Sequence[Sequence[Any]]) -> int:
    """``rows`` and the journal's watermark, in one transaction; returns the new watermark."""
    return ship_rows(pg, TABLE, journal, node, lambda cursor: upload(cursor, node, rows))


def shipped_upto(pg: psycopg.Connection[Any], journal: str) -> int:
    return watermark(pg, TABLE, journal)


class SessionShipper(JournalShipper):
    """The thread (nac/pg/journal.py runs it)."""

    name: ClassVar[str] = "pg-sessions"
    table: ClassVar[str] = TABLE
    note_key: ClassVar[str] = NOTE
    most: ClassVar[int] = SHIP_MAX

    def __init__(self, link: Link, journal: str, *, node: str, interval: float = SHIP_INTERVAL) -> None:
        super().__init__(link, journal, node=node, interval=interval)

    def prepare(self, conn: sqlite3.Connection) -> None:
        track_changes(conn)  # the change counter

    def read(self, conn: sqlite3.Connection, above: int, limit: int) -> list[tuple[Any, ...]]:
        return changed(conn, above, limit)

    def upload(self, cursor: psycopg.Cursor[Any], journal: str, rows: Sequence[Sequence[Any]]) -> int:
        return upload(cursor, self.node, rows)

    def left(self, conn: sqlite3.Connection, upto: int) -> int:
        found = conn.execute("SELECT COUNT(*) FROM session_changes WHERE rev > ?", (upto,)).fetchone()
        return int(found[0])


def query(
    pg: psycopg.Connection[Any], *, active: bool = False, mac: str | None = None, client: str | None = None
) -> list[dict[str, Any]]:
    """Every server's sessions, as nac/sessions/store.py's query gives one server's, each with
    its ``node``; newest first."""
    where, params = [], []
    if active:
        where.append("status = 'active'")
    if mac is not None:
        where.append("mac = %s")
        params.append(mac)
    if client is not None:
        where.append("client = %s")
        params.append(client)
    sql = f"SELECT node, {', '.join(COLUMNS)} FROM sessions"  # noqa: S608 - constants
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated DESC, node"
    with pg.cursor() as cursor:
        cursor.execute(sql, params)
        names = [d.name for d in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # the CLI spells these times (render.iso_time takes a Unix time)
        row["started_time"], row["updated_time"] = row["started"], row["updated"]
    return rows
