"""The registry snapshots an import replaced, kept for `nac oui rollback`.

The active snapshot's entries live in ``registry_entries``; the entries of the last
:data:`KEPT_SNAPSHOTS` snapshots it replaced live in ``registry_kept``, keyed by their row in
``registry_snapshots``.  Rolling back restores the newest kept snapshot and discards the one
rolled back from, so a second rollback goes one further back (an undo stack, not a toggle):
re-import the files to get a rolled-back snapshot again.  These functions run inside the
transaction :class:`nac.store.Store` opens.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from nac.registry.oui import Snapshot

#: Replaced snapshots whose entries are kept.  Each is ~58,000 rows (about 3 MB), and rollback
#: is for undoing a recent mistake; older data is the IEEE's files, which can be imported again.
KEPT_SNAPSHOTS: Final = 3

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS registry_kept (
        snapshot INTEGER NOT NULL,
        prefix INTEGER NOT NULL,
        bits INTEGER NOT NULL,
        organization TEXT NOT NULL,
        registry TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS registry_kept_snapshot ON registry_kept (snapshot)",
)


def ensure_schema(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def keep_entries(
    conn: sqlite3.Connection, snapshot: int, entries: Iterable[tuple[int, int, str, str]]
) -> None:
    """Keep ``entries`` (the bundled registry's, on the first import) as snapshot ``snapshot``."""
    conn.executemany(
        "INSERT INTO registry_kept (snapshot, prefix, bits, organization, registry) VALUES (?, ?, ?, ?, ?)",
        ((snapshot, *entry) for entry in entries),
    )


def keep_active(conn: sqlite3.Connection, snapshot: int) -> None:
    """Keep the active entries (about to be replaced) as snapshot ``snapshot``, in their order."""
    conn.execute(
        "INSERT INTO registry_kept (snapshot, prefix, bits, organization, registry)"
        " SELECT ?, prefix, bits, organization, registry FROM registry_entries ORDER BY rowid",
        (snapshot,),
    )


def prune(conn: sqlite3.Connection) -> None:
    """Drop the entries of all but the newest :data:`KEPT_SNAPSHOTS` kept snapshots."""
    conn.execute(
        "DELETE FROM registry_kept WHERE snapshot NOT IN"
        " (SELECT DISTINCT snapshot FROM registry_kept ORDER BY snapshot DESC LIMIT ?)",
        (KEPT_SNAPSHOTS,),
    )


def kept_ids(conn: sqlite3.Connection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT DISTINCT snapshot FROM registry_kept")}


def rollback_target(conn: sqlite3.Connection, active: int) -> int | None:
    """The snapshot a rollback from ``active`` restores: the newest kept one before it."""
    row = conn.execute("SELECT MAX(snapshot) FROM registry_kept WHERE snapshot < ?", (active,)).fetchone()
    return None if row[0] is None else int(row[0])


def restore(conn: sqlite3.Connection, snapshot: int) -> None:
    """Make kept snapshot ``snapshot``'s entries the active ones; the entries in force go."""
    conn.execute("DELETE FROM registry_entries")
    conn.execute(
        "INSERT INTO registry_entries (prefix, bits, organization, registry)"
        " SELECT prefix, bits, organization, registry FROM registry_kept WHERE snapshot = ? ORDER BY rowid",
        (snapshot,),
    )
    conn.execute("DELETE FROM registry_kept WHERE snapshot = ?", (snapshot,))


def mirror(
    conn: sqlite3.Connection, snapshot: Mapping[str, Any] | None, entries: Iterable[tuple[int, int, str, str]]
) -> None:
    """Make ``snapshot`` (a row as :func:`snapshot_row` gives it; None: the bundled registry)
    with ``entries`` the registry in force, as a copy of another store's: the snapshots and kept
    entries recorded here go, since rolling back is done where the registry was imported."""
    conn.execute("DELETE FROM registry_kept")
    conn.execute("DELETE FROM registry_snapshots")
    conn.execute("DELETE FROM registry_entries")
    if snapshot is None:
        return
    conn.execute(
        "INSERT INTO registry_snapshots"
        " (id, source, date, sha256, counts, replaced, imported, imported_by, active)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
        (
            *(snapshot["id"], snapshot["source"], snapshot["date"], snapshot["sha256"]),
            *(json.dumps(snapshot["counts"]), json.dumps(snapshot["replaced"])),
            *(snapshot["imported"], snapshot["imported_by"]),
        ),
    )
    conn.executemany(
        "INSERT INTO registry_entries (prefix, bits, organization, registry) VALUES (?, ?, ?, ?)", entries
    )


def snapshot_row(row: Sequence[Any]) -> dict[str, Any]:
    """A ``registry_snapshots`` row (id, source, date, sha256, counts, replaced, imported,
    imported_by, active) as a dict, ``counts`` and ``replaced`` decoded."""
    keys = ("id", "source", "date", "sha256", "counts", "replaced", "imported", "imported_by", "active")
    out = dict(zip(keys, row, strict=True))
    out["counts"] = json.loads(out["counts"])
    out["replaced"] = json.loads(out["replaced"])
    out["active"] = bool(out["active"])
    return out


def audit_view(row: dict[str, Any] | Snapshot) -> dict[str, Any]:
    """A snapshot as the audit trail records it (before and after an import or a rollback)."""
    if isinstance(row, Snapshot):
        source, date, sha256, counts = row.source, row.date, row.sha256, row.counts
    else:
        source, date, sha256 = row["source"], row["date"], row["sha256"]
        counts = row["counts"] if isinstance(row["counts"], dict) else json.loads(row["counts"])
    snapshot = Snapshot(source=source, date=date, sha256=sha256, counts=counts)
    return {"snapshot": snapshot.id, "source": source, "date": date, "counts": counts}


class RegistryStore(Protocol):
    """What the registry commands (nac/app/registry.py) and a registry reload need of a store:
    nac/store.py's Store (SQLite) and nac/pg/store.py's PgStore (PostgreSQL) both offer it."""

    def registry_version(self) -> int: ...
    def registry_snapshots(self) -> list[dict[str, Any]]: ...
    def kept_snapshots(self) -> set[int]: ...
    def active_registry(self) -> tuple[dict[str, Any], list[tuple[int, int, str, str]]] | None: ...
    def active_snapshot(self) -> dict[str, Any] | None: ...
    def registry_entries_for(self, blocks: Iterable[tuple[int, int]]) -> list[tuple[int, int, str, str]]: ...
    def replace_registry(
        self,
        entries: Iterable[tuple[int, int, str, str]],
        *,
        snapshot: Snapshot,
        replaced: Sequence[str],
        base: Snapshot,
        now: float,
        base_entries: Iterable[tuple[int, int, str, str]] = (),
    ) -> None: ...
    def rollback_registry(self) -> tuple[dict[str, Any], dict[str, Any]]: ...
