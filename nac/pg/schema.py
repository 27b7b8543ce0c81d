"""The PostgreSQL schema: numbered migrations, applied in order and recorded in
``schema_version`` (one row per migration), by `nac db upgrade` or on first use.

A database a newer nac migrated is refused whole, as an SQLite file of a newer nac is
(nac/dbfile.py): an older nac cannot know what its tables now mean.  Migrations run under an
advisory lock, so two servers starting at once on a new database apply each one once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from nac import __version__
from nac.errors import DatabaseFileError
from nac.pg.coa import COA_SCHEMA
from nac.pg.registry import REGISTRY_SCHEMA
from nac.pg.sessions import SESSIONS_SCHEMA
from nac.pg.ship import HISTORY_SCHEMA

if TYPE_CHECKING:
    import psycopg

#: Migrations in order: (version, what it adds, statements).  Append; never edit one shipped.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "rules, policy defaults and the audit chain",
        (
            "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
            # Text columns as in SQLite (nac/store.py): the audit hash covers these values as
            # written, and a rule row is copied to each server's journal as it is.
            """CREATE TABLE rules (
                id text PRIMARY KEY,
                kind text NOT NULL,
                value text NOT NULL,
                action text NOT NULL,
                vlan text,
                reason text NOT NULL DEFAULT '',
                created text NOT NULL,
                created_by text NOT NULL,
                seq bigint NOT NULL,
                clients text,
                ssids text,
                port_type text,
                method text,
                mode text,
                starts text,
                expires text,
                list text
            )""",
            """CREATE TABLE audit (
                id bigint PRIMARY KEY,
                time text NOT NULL,
                "user" text NOT NULL,
                action text NOT NULL,
                subject text NOT NULL,
                before text,
                after text,
                prev text NOT NULL,
                hash text NOT NULL
            )""",
            "INSERT INTO meta (key, value) VALUES ('rules_version', '0')",
        ),
    ),
    (2, "every server's history, and how far each journal is shipped", HISTORY_SCHEMA),
    (3, "every server's sessions, and Disconnect / CoA jobs for any server", (*SESSIONS_SCHEMA, *COA_SCHEMA)),
    (4, "the IEEE registry in force, and the snapshots kept for rollback", REGISTRY_SCHEMA),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
#: pg_advisory_xact_lock's key for migrations ("nac" in ASCII): one migrator at a time.
_LOCK: Final = 0x6E6163


def current(conn: psycopg.Connection[Any]) -> int | None:
    """The schema version of the database (None: nac never made its tables there)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return None
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return None if found is None or found[0] is None else int(found[0])


def refuse_newer(version: int | None, where: str) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise DatabaseFileError(
            f"{where}: made by a newer nac (schema version {version}; this nac knows {SCHEMA_VERSION}"
            " and older): upgrade nac, or point --db at another database"
        )


def require(conn: psycopg.Connection[Any], where: str) -> None:
    """Refuse a database without this nac's schema (a reader creates nothing)."""
    version = current(conn)
    refuse_newer(version, where)
    if version is None or version < SCHEMA_VERSION:
        have = "no nac tables" if version is None else f"schema version {version}"
        raise DatabaseFileError(
            f"{where}: {have}, this nac needs {SCHEMA_VERSION}: run `nac db upgrade --db URL` (or any"
            " command that changes the rules) once"
        )


def upgrade(conn: psycopg.Connection[Any], where: str) -> list[str]:
    """Apply the migrations the database lacks, in one transaction; what changed (nothing:
    it was up to date).  ``conn`` is in autocommit mode (nac/pg/__init__.py connect)."""
    version = current(conn)
    refuse_newer(version, where)
    if version == SCHEMA_VERSION:
        return []
    changes = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
            " applied timestamptz NOT NULL DEFAULT now(), nac text NOT NULL)"
        )
        version = current(conn)  # another process may have migrated while we waited
        refuse_newer(version, where)
        for number, what, statements in MIGRATIONS:
            if version is not None and number <= version:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, nac) VALUES (%s, %s)", (number, __version__))
            changes.append(f"schema version {number}: {what}")
    return changes
