"""The IEEE registry in force on a shared PostgreSQL: the snapshots `nac oui import` records,
the active one's entries, and the entries of those kept for `nac oui rollback`, with the
meaning nac/store.py and nac/registry/store.py give them on SQLite.

These functions run inside the change nac/pg/store.py's PgStore opens (which audits it, bumps
``registry_version`` and announces it on :data:`nac.pg.REGISTRY_CHANNEL`), except
:func:`published`, which the rules follower (nac/pg/follow.py) reads to copy the registry in
force into each server's journal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from nac.errors import NacError
from nac.registry import store as registry_store
from nac.registry.oui import Snapshot

if TYPE_CHECKING:
    import psycopg

#: Entries keep their order (``pos``), as SQLite's rowid keeps it, so a registry copied from
#: here is the one imported, entry for entry.
REGISTRY_SCHEMA: Final = (
    """CREATE TABLE registry_snapshots (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source text NOT NULL,
        date text NOT NULL,
        sha256 text NOT NULL,
        counts text NOT NULL,
        replaced text NOT NULL,
        imported text,
        imported_by text,
        active boolean NOT NULL DEFAULT false
    )""",
    """CREATE TABLE registry_entries (
        pos integer PRIMARY KEY,
        prefix bigint NOT NULL,
        bits integer NOT NULL,
        organization text NOT NULL,
        registry text NOT NULL,
        UNIQUE (bits, prefix)
    )""",
    """CREATE TABLE registry_kept (
        snapshot bigint NOT NULL,
        pos integer NOT NULL,
        prefix bigint NOT NULL,
        bits integer NOT NULL,
        organization text NOT NULL,
        registry text NOT NULL,
        PRIMARY KEY (snapshot, pos)
    )""",
    "INSERT INTO meta (key, value) VALUES ('registry_version', '0')",
)
_SNAPSHOT: Final = (
    "SELECT id, source, date, sha256, counts, replaced, imported, imported_by, active FROM registry_snapshots"
)
_ENTRY: Final = "prefix, bits, organization, registry"

Entry = tuple[int, int, str, str]


class PublishedRegistry(NamedTuple):
    """The registry in force as one transaction saw it: what a server's journal copies."""

    version: int
    snapshot: dict[str, Any] | None  # None: nothing imported, the bundled registry is in force
    entries: list[Entry]


def version(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'registry_version'").fetchone()
    return 0 if row is None else int(row[0])


def snapshots(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    """Every recorded snapshot, newest first."""
    return [registry_store.snapshot_row(row) for row in conn.execute(f"{_SNAPSHOT} ORDER BY id DESC")]


def active(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> dict[str, Any] | None:
    row = conn.execute(f"{_SNAPSHOT} WHERE active ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else registry_store.snapshot_row(row)


def entries(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> list[Entry]:
    rows = conn.execute(f"SELECT {_ENTRY} FROM registry_entries ORDER BY pos")  # noqa: S608 - constants
    return [(int(p), int(b), str(o), str(r)) for p, b, o, r in rows]


def entries_for(conn: psycopg.Connection[Any], blocks: Iterable[tuple[int, int]]) -> list[Entry]:
    """The active registry's entries for these exact (prefix, bits) blocks: one indexed read
    each (a command about one device needs nothing else)."""
    out: list[Entry] = []
    for prefix, bits in blocks:
        rows = conn.execute(
            f"SELECT {_ENTRY} FROM registry_entries WHERE bits = %s AND prefix = %s",  # noqa: S608 - constants
            (bits, prefix),
        )
        out += [(int(p), int(b), str(o), str(r)) for p, b, o, r in rows]
    return out


def kept_ids(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> set[int]:
    return {int(row[0]) for row in conn.execute("SELECT DISTINCT snapshot FROM registry_kept")}


def published(conn: psycopg.Connection[Any]) -> PublishedRegistry:
    """The registry version, the active snapshot and its entries, read in one snapshot (an
    import committing meanwhile is seen whole or not at all).  ``conn`` is in autocommit mode."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        found = active(conn)
        return PublishedRegistry(version(conn), found, entries(conn) if found is not None else [])


def _copy(
    cur: psycopg.Cursor[Any], table: str, rows: Iterable[Sequence[object]], snapshot: int | None
) -> None:
    """COPY ``rows`` (registry entries) into ``table`` in order: 58,000 of them take a
    fraction of a second, where single INSERTs take several."""
    first = "snapshot, " if snapshot is not None else ""
    with cur.copy(f"COPY {table} ({first}pos, {_ENTRY}) FROM STDIN") as copy:
        for pos, row in enumerate(rows):
            copy.write_row((snapshot, pos, *row) if snapshot is not None else (pos, *row))


def _insert_snapshot(cur: psycopg.Cursor[Any], values: Sequence[object], *, active: bool) -> int:
    cur.execute(
        "INSERT INTO registry_snapshots (source, date, sha256, counts, replaced, imported, imported_by,"
        " active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (*values, active),
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def replace(
    cur: psycopg.Cursor[Any],
    new_entries: Iterable[Entry],
    *,
    snapshot: Snapshot,
    replaced: Sequence[str],
    base: Snapshot,
    base_entries: Iterable[Entry],
    imported: str,
    user: str,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Make ``new_entries`` the active registry, keeping the one replaced (on the first import
    ``base``, the bundled registry, with ``base_entries``); the audit row's subject, before and
    after.  NacError if another import changed the registry since ``base`` was read."""
    found = active(cur)
    if found is None:
        base_values = (base.source, base.date, base.sha256, json.dumps(base.counts), "[]", None, None)
        _copy(cur, "registry_kept", base_entries, _insert_snapshot(cur, base_values, active=False))
    elif found["sha256"] != base.sha256:
        raise NacError("the registry changed while this import was prepared; run the import again")
    else:
        cur.execute(
            f"INSERT INTO registry_kept (snapshot, pos, {_ENTRY})"  # noqa: S608 - constants
            f" SELECT %s, pos, {_ENTRY} FROM registry_entries ORDER BY pos",
            (found["id"],),
        )
    cur.execute(
        "DELETE FROM registry_kept WHERE snapshot NOT IN"
        " (SELECT DISTINCT snapshot FROM registry_kept ORDER BY snapshot DESC LIMIT %s)",
        (registry_store.KEPT_SNAPSHOTS,),
    )
    cur.execute("UPDATE registry_snapshots SET active = false WHERE active")
    values = (snapshot.source, snapshot.date, snapshot.sha256, json.dumps(snapshot.counts))
    _insert_snapshot(cur, (*values, json.dumps(list(replaced)), imported, user), active=True)
    cur.execute("DELETE FROM registry_entries")
    _copy(cur, "registry_entries", new_entries, None)
    after = {**registry_store.audit_view(snapshot), "replaced": list(replaced)}
    return snapshot.id, registry_store.audit_view(found or base), after


def rollback(cur: psycopg.Cursor[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore the newest kept snapshot before the active one and discard the active one's
    entries; returns (from, to).  NacError when there is nothing to go back to."""
    found = active(cur)
    if found is None:
        raise NacError("nothing to roll back: no registry was imported; the bundled one is in force")
    cur.execute("SELECT MAX(snapshot) FROM registry_kept WHERE snapshot < %s", (found["id"],))
    target = cur.fetchone()
    if target is None or target[0] is None:
        raise NacError(
            f"nothing to roll back to: no snapshot older than {registry_store.audit_view(found)['snapshot']}"
            f" is kept (the last {registry_store.KEPT_SNAPSHOTS} that imports replaced are)"
        )
    restored = next(row for row in snapshots(cur) if row["id"] == target[0])
    cur.execute("DELETE FROM registry_entries")
    cur.execute(
        f"INSERT INTO registry_entries (pos, {_ENTRY}) SELECT pos, {_ENTRY} FROM registry_kept"  # noqa: S608
        " WHERE snapshot = %s",
        (restored["id"],),
    )
    cur.execute("DELETE FROM registry_kept WHERE snapshot = %s", (restored["id"],))
    cur.execute("UPDATE registry_snapshots SET active = (id = %s)", (restored["id"],))
    return found, restored
