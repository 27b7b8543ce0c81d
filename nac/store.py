"""The embedded store: one SQLite file (WAL) shared by the server and the CLI.

Rules and the policy defaults live here, so the CLI and every server process agree; a change
bumps ``rules_version`` in the same transaction, which running servers poll.  The audit trail
and the IEEE registry in force live here too.  History shares the file and the connection;
nac/history/ owns it.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from nac import dbfile
from nac.eap import users as eap_users
from nac.errors import DatabaseFileError, NacError
from nac.history import macindex, tiers
from nac.policy import audit, stored
from nac.policy.decide import Defaults, Rule
from nac.policy.file import rule_table
from nac.registry import store as registry_store
from nac.registry.oui import Snapshot
from nac.sessions import store as session_store

if TYPE_CHECKING:
    import sqlite_utils

    from nac.eap.profiles import Profile

#: What every database operation raises (the disk is full, the file is locked or damaged...).
StoreError = sqlite3.Error
DEFAULT_DB: Final = "nac.db"
SCHEMA_VERSION: Final = 1



def default_db_path() -> str:
    return os.environ.get("NAC_DB") or DEFAULT_DB


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """One connection to the database; not shared between threads."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating it 0600 if need be) the database at ``path``; DatabaseFileError says
        in one line why it cannot be (nac/dbfile.py)."""
        self.path = str(path)
        conn: sqlite3.Connection | None = None
        try:
            dbfile.create_private(self.path)
            conn = sqlite3.connect(self.path, timeout=dbfile.BUSY_TIMEOUT_MS / 1000)
            self.conn = conn
            dbfile.check_nac(conn, self.path, schema_version=SCHEMA_VERSION)
            dbfile.use_wal(conn)
            self._ensure_schema()
            tiers.attach_recent(conn, self.path)
        except (OSError, sqlite3.Error, NacError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, NacError):
                raise
            raise dbfile.open_error(self.path, exc) from None

    @classmethod
    def readonly(cls, path: str | Path) -> Store:
        """An existing database opened with sqlite's ``mode=ro``: every write fails, so a reader
        (`nac web`, `nac history`, ...) cannot change it, and works where it may not write.
        Usable from several threads (callers serialise).  A database an older nac made is
        brought up to date first when this process may write it."""
        store = cls.__new__(cls)
        store.path = str(path)
        try:
            store.conn = _open_readonly(store.path)
            if _outdated(store.conn) or tiers.outdated(store.conn):
                store.conn.close()
                if not dbfile.writable(store.path):
                    raise DatabaseFileError(
                        f"{store.path}: an older nac made it, and it cannot be read until it is"
                        " upgraded: run `nac serve` (or a command that changes it) once as a user"
                        " that may write it"
                    )
                cls(store.path).close()
                store.conn = _open_readonly(store.path)
            tiers.attach_recent(store.conn, store.path, readonly=True)
        except (OSError, sqlite3.Error) as exc:
            raise dbfile.open_error(store.path, exc) from None
        return store

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for queries that return dicts.

        Imported on first use: it pulls in numpy when installed, a fifth of a second that
        `nac check` and the server's start-up need not pay.
        """
        import sqlite_utils  # noqa: PLC0415

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- schema ----------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        conn = self.conn
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute(
                """CREATE TABLE IF NOT EXISTS rules (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    value TEXT NOT NULL,
                    action TEXT NOT NULL,
                    vlan TEXT,
                    reason TEXT NOT NULL DEFAULT '',
                    created TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    seq INTEGER NOT NULL
                )"""
            )
            # Scope, mode and validity; added in place to databases made before.
            have = {row[1] for row in conn.execute("PRAGMA table_info(rules)")}
            for column in _RULE_EXTRA_COLUMNS:
                if column not in have:
                    conn.execute(f"ALTER TABLE rules ADD COLUMN {column} TEXT")
            # Every policy change, hash-chained (nac/policy/audit.py); `nac audit verify` walks it.
            conn.execute(
                """CREATE TABLE IF NOT EXISTS audit (
                    id INTEGER PRIMARY KEY,
                    time TEXT NOT NULL,
                    user TEXT NOT NULL,
                    action TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    before TEXT,
                    after TEXT,
                    prev TEXT NOT NULL,
                    hash TEXT NOT NULL
                )"""
            )
            tiers.ensure_schema(conn)
            session_store.ensure_schema(conn)
            registry_store.ensure_schema(conn)
            eap_users.ensure_schema(conn)  # 802.1X users, their groups and profiles
            # The active IEEE registry once an operator has imported one (`nac oui import`);
            # until then the bundled snapshot is active and these tables are empty.
            conn.execute(
                """CREATE TABLE IF NOT EXISTS registry_snapshots (
                    id INTEGER PRIMARY KEY,
                    source TEXT NOT NULL,
                    date TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    counts TEXT NOT NULL,
                    replaced TEXT NOT NULL,
                    imported TEXT,
                    imported_by TEXT,
                    active INTEGER NOT NULL DEFAULT 0
                )"""
            )
            conn.execute(
                """CREATE TABLE IF NOT EXISTS registry_entries (
                    prefix INTEGER NOT NULL,
                    bits INTEGER NOT NULL,
                    organization TEXT NOT NULL,
                    registry TEXT NOT NULL,
                    PRIMARY KEY (bits, prefix)
                )"""
            )
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('rules_version', '0')")
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('registry_version', '0')")

    def initialized(self) -> bool:
        """Whether policy defaults have been stored (a fresh database has none)."""
        return self._meta("defaults") is not None

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- policy: defaults and rules --------------------------------------------------------

    def rules_version(self) -> int:
        return int(self._meta("rules_version") or 0)

    def defaults(self) -> Defaults:
        return stored.defaults_from_json(self._meta("defaults"))

    def rules(self) -> list[Rule]:
        rows = self.conn.execute(_SELECT_RULES).fetchall()
        return [stored.rule_from_row(r) for r in rows]

    def rule_rows(self) -> list[dict[str, Any]]:
        # Plain sqlite3, not self.db: `nac rules list` need not load sqlite-utils (and numpy).
        cursor = self.conn.execute("SELECT * FROM rules ORDER BY seq")
        names = [d[0] for d in cursor.description]
        return [stored.decoded_rule_row(dict(zip(names, row, strict=True))) for row in cursor]

    def set_policy(
        self,
        defaults: Defaults,
        rules: Iterable[Rule] | None = None,
        *,
        action: str = "policy.set",
        subject: str = "",
        user_groups: Mapping[str, Profile] | None = None,
    ) -> None:
        """Store the defaults (and, when given, replace all rules, and the 802.1X user groups
        with ``user_groups``) in one transaction, audited."""
        conn = self.conn
        rules = list(rules) if rules is not None else None
        with conn:
            conn.execute("BEGIN IMMEDIATE")  # the audit chain's head is read, then extended
            before = self._policy_snapshot() if self.initialized() else None
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('defaults', ?)",
                (stored.defaults_json(defaults),),
            )
            if rules is not None:
                conn.execute("DELETE FROM rules")
                for rule in rules:
                    self._insert_rule(conn, rule)
            after = self._policy_snapshot()
            if user_groups is not None:  # a policy file's user groups, audited with its rules
                from nac.eap.groups import replace_groups  # noqa: PLC0415 - pyrad only for them

                old, new = replace_groups(conn, user_groups, origin=subject)
                before, after = {**(before or {}), "user_groups": old}, {**after, "user_groups": new}
            self._audit(conn, action, subject, before, after)
            self._bump(conn)

    def add_rule(self, rule: Rule) -> None:
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            stored.refuse_taken((r[0] for r in conn.execute("SELECT id FROM rules")), [rule])
            self._insert_rule(conn, rule)
            self._audit(conn, "rules.add", rule.id, None, rule_table(rule))
            self._bump(conn)

    def remove_rule(self, rule_id: str) -> Rule:
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            found = stored.rule_to_remove(self.rules(), rule_id)
            conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
            self._audit(conn, "rules.remove", rule_id, rule_table(found), None)
            self._bump(conn)
        return found

    def add_list_rules(self, rules: Sequence[Rule], *, evidence: dict[str, Any]) -> None:
        """Store a ban list's rules in one transaction and one audit row that names the list
        and its document (``evidence``), so an auditor sees which version a rule came from."""
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            stored.refuse_taken((row[0] for row in conn.execute("SELECT id FROM rules")), rules)
            for rule in rules:
                self._insert_rule(conn, rule)
            subject, after = stored.list_added(rules, evidence)
            self._audit(conn, "rules.add-list", subject, None, after)
            self._bump(conn)

    def remove_list_rules(self, name: str) -> list[Rule]:
        """Remove every rule of the ban list ``name`` in one transaction and one audit row."""
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            found = stored.list_rules_to_remove(self.rules(), name)
            conn.execute("DELETE FROM rules WHERE list = ?", (name,))
            subject, before = stored.list_removed(name, found)
            self._audit(conn, "rules.remove-list", subject, before, None)
            self._bump(conn)
        return found

    def _policy_snapshot(self) -> dict[str, Any]:
        return stored.policy_snapshot(self.defaults(), self.rules())

    def _insert_rule(self, conn: sqlite3.Connection, rule: Rule) -> None:
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM rules").fetchone()[0]
        record = stored.rule_record(
            rule, created=iso_time(datetime.now(UTC).timestamp()), created_by=os_user(), seq=seq
        )
        conn.execute(_INSERT_RULE, record)

    def mirror_policy(self, defaults: str | None, records: Sequence[Sequence[object]], *, source: str) -> int:
        """Make the defaults (their JSON) and the rules (whole rows, :data:`stored.RULE_COLUMNS`)
        a copy of another store's, in one transaction that bumps ``rules_version``, so the
        running server swaps them in; no audit row (the change was audited where it was made).
        ``source`` (which version of which store) is kept in ``meta.mirrored``.  Returns the new
        local rules version."""
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if defaults is None:
                conn.execute("DELETE FROM meta WHERE key = 'defaults'")
            else:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('defaults', ?)", (defaults,))
            conn.execute("DELETE FROM rules")
            conn.executemany(_INSERT_RULE, records)
            version = self._bump(conn)
            mirrored = f"{version} {source}"
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('mirrored', ?)", (mirrored,))
        return version

    def mirrored(self, key: str = "mirrored") -> tuple[int, str] | None:
        """The local rules version a :meth:`mirror_policy` made and its ``source`` (with ``key``
        ``registry_mirrored``: the registry version a :meth:`mirror_registry` made); None before."""
        raw = self._meta(key)
        if raw is None:
            return None
        version, _, source = raw.partition(" ")
        return int(version), source

    # -- the audit trail -------------------------------------------------------------------

    def _audit(
        self, conn: sqlite3.Connection, action: str, subject: str, before: object, after: object
    ) -> None:
        """Append one row to the hash chain, inside the caller's transaction."""
        row = audit.chain_row(
            self._meta("audit_head") or audit.GENESIS,
            row_id=conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM audit").fetchone()[0],
            time=iso_time(datetime.now(UTC).timestamp()),
            user=os_user(),
            action=action,
            subject=subject,
            before=before,
            after=after,
        )
        conn.execute(
            "INSERT INTO audit (id, time, user, action, subject, before, after, prev, hash)"
            " VALUES (:id, :time, :user, :action, :subject, :before, :after, :prev, :hash)",
            row,
        )
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_head', ?)", (row["hash"],))

    def audit_rows(self) -> list[dict[str, Any]]:
        """The audit trail, oldest first."""
        cursor = self.conn.execute(
            "SELECT id, time, user, action, subject, before, after, prev, hash FROM audit ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def audit_head(self) -> str | None:
        return self._meta("audit_head")

    def _bump(self, conn: sqlite3.Connection, key: str = "rules_version") -> int:
        """Add one to the version ``key`` (``rules_version``, ``registry_version``); the new one."""
        bump = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ? RETURNING value"
        return int(conn.execute(bump, (key,)).fetchall()[0][0])

    # -- the IEEE registry ------------------------------------------------------------------

    def registry_version(self) -> int:
        """Bumped by every registry import; a running server polls it to swap its registry."""
        return int(self._meta("registry_version") or 0)

    def registry_snapshots(self) -> list[dict[str, Any]]:
        """Every recorded snapshot, newest first (``counts`` and ``replaced`` decoded)."""
        rows = self.conn.execute(
            "SELECT id, source, date, sha256, counts, replaced, imported, imported_by, active"
            " FROM registry_snapshots ORDER BY id DESC"
        ).fetchall()
        return [registry_store.snapshot_row(row) for row in rows]

    def active_snapshot(self) -> dict[str, Any] | None:
        """The imported snapshot in force, or None while the bundled one is."""
        row = self.conn.execute(
            "SELECT id, source, date, sha256, counts, replaced, imported, imported_by, active"
            " FROM registry_snapshots WHERE active = 1 ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else registry_store.snapshot_row(row)

    def registry_entries_for(self, blocks: Iterable[tuple[int, int]]) -> list[tuple[int, int, str, str]]:
        """The active registry's entries for these exact (prefix, bits) blocks."""
        out = []
        for prefix, bits in blocks:
            out += self.conn.execute(
                "SELECT prefix, bits, organization, registry FROM registry_entries"
                " WHERE prefix = ? AND bits = ?",
                (prefix, bits),
            ).fetchall()
        return out

    def active_registry(self) -> tuple[dict[str, Any], list[tuple[int, int, str, str]]] | None:
        """The active snapshot and its entries, read in one transaction (an import running in
        another process is seen whole or not at all); ``None`` until the first import."""
        conn = self.conn
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            row = conn.execute(
                "SELECT id, source, date, sha256, counts, replaced, imported, imported_by, active"
                " FROM registry_snapshots WHERE active = 1 ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            entries = conn.execute(
                "SELECT prefix, bits, organization, registry FROM registry_entries ORDER BY rowid"
            ).fetchall()
        finally:
            if own:
                conn.rollback()
        return registry_store.snapshot_row(row), entries

    def replace_registry(
        self,
        entries: Iterable[tuple[int, int, str, str]],
        *,
        snapshot: Snapshot,
        replaced: Sequence[str],
        base: Snapshot,
        now: float,
        base_entries: Iterable[tuple[int, int, str, str]] = (),
    ) -> None:
        """Make ``entries`` the active registry and record its snapshot, in one transaction,
        audited; the registry replaced is kept for `nac oui rollback` (nac/registry/store.py).

        ``base`` is the registry the import started from; on the first import it is the
        bundled snapshot, recorded here (with ``base_entries``, its entries) so `nac oui
        status` shows where the data came from and a rollback can return to it.
        """
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            active = self.active_snapshot()
            if active is None:
                cursor = conn.execute(
                    "INSERT INTO registry_snapshots (source, date, sha256, counts, replaced, active)"
                    " VALUES (?, ?, ?, ?, '[]', 0)",
                    (base.source, base.date, base.sha256, json.dumps(base.counts)),
                )
                registry_store.keep_entries(conn, int(cursor.lastrowid or 0), base_entries)
            elif active["sha256"] != base.sha256:
                raise NacError("the registry changed while this import was prepared; run the import again")
            else:
                registry_store.keep_active(conn, active["id"])
            registry_store.prune(conn)
            after = {**registry_store.audit_view(snapshot), "replaced": list(replaced)}
            self._audit(conn, "oui.import", snapshot.id, registry_store.audit_view(active or base), after)
            conn.execute("UPDATE registry_snapshots SET active = 0 WHERE active = 1")
            conn.execute(
                "INSERT INTO registry_snapshots"
                " (source, date, sha256, counts, replaced, imported, imported_by, active)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    snapshot.source,
                    snapshot.date,
                    snapshot.sha256,
                    json.dumps(snapshot.counts),
                    json.dumps(list(replaced)),
                    iso_time(now),
                    os_user(),
                ),
            )
            conn.execute("DELETE FROM registry_entries")
            conn.executemany(
                "INSERT INTO registry_entries (prefix, bits, organization, registry) VALUES (?, ?, ?, ?)",
                entries,
            )
            self._bump(conn, "registry_version")

    def kept_snapshots(self) -> set[int]:
        """The snapshots whose entries are kept, which `nac oui rollback` can restore."""
        return registry_store.kept_ids(self.conn)

    def mirror_registry(
        self, row: Mapping[str, Any] | None, entries: Iterable[tuple[int, int, str, str]], *, source: str
    ) -> int:
        """Make the registry in force a copy of another store's (``row``, its active snapshot;
        None: the bundled one) as :meth:`mirror_policy` does the rules: one transaction that bumps
        ``registry_version``, no audit row, ``source`` kept in ``meta.registry_mirrored``."""
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            registry_store.mirror(conn, row, entries)
            version = self._bump(conn, "registry_version")
            note = f"{version} {source}"
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('registry_mirrored', ?)", (note,))
        return version

    def rollback_registry(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the newest kept snapshot before the active one, audited; the active one's
        entries are discarded, so rolling back again goes one further.  Returns (from, to)."""
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            active = self.active_snapshot()
            if active is None:
                raise NacError("nothing to roll back: no registry was imported; the bundled one is in force")
            target = registry_store.rollback_target(conn, active["id"])
            view = registry_store.audit_view
            if target is None:
                raise NacError(
                    f"nothing to roll back to: no snapshot older than {view(active)['snapshot']} is kept"
                    f" (the last {registry_store.KEPT_SNAPSHOTS} that imports replaced are)"
                )
            restored = next(row for row in self.registry_snapshots() if row["id"] == target)
            registry_store.restore(conn, target)
            conn.execute("UPDATE registry_snapshots SET active = 0 WHERE active = 1")
            conn.execute("UPDATE registry_snapshots SET active = 1 WHERE id = ?", (target,))
            self._audit(conn, "oui.rollback", view(restored)["snapshot"], view(active), view(restored))
            self._bump(conn, "registry_version")
        return active, restored


def _open_readonly(path: str) -> sqlite3.Connection:
    """The main file of the database at ``path``, read-only, checked to be nac's."""
    conn = sqlite3.connect(
        dbfile.readonly_uri(path), uri=True, timeout=dbfile.BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    try:
        if not dbfile.check_nac(conn, path, schema_version=SCHEMA_VERSION):
            raise DatabaseFileError(f"{path}: an empty database: nothing has been stored in it yet")
    except BaseException:
        conn.close()
        raise
    return conn


def _table_layout(conn: sqlite3.Connection) -> frozenset[tuple[str, str]]:
    """(table, column) of every table in ``conn``'s main database."""
    tables = [row[0] for row in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
    columns = "SELECT name FROM pragma_table_info(?, 'main')"  # not the TEMP view ``history``
    return frozenset((table, row[0]) for table in tables for row in conn.execute(columns, (table,)))


@cache
def _current_layout() -> frozenset[tuple[str, str]]:
    store = Store(":memory:")
    try:
        return _table_layout(store.conn)
    finally:
        store.close()


def _outdated(conn: sqlite3.Connection) -> bool:
    """Whether an older nac made the database and no writer has brought it up to date since."""
    return not _current_layout() <= _table_layout(conn)


_RULE_EXTRA_COLUMNS: Final = ("clients", "ssids", "port_type", "method", "mode", "starts", "expires", "list")
# Fixed column names (nac/policy/stored.py), no input: nothing to inject.
_SELECT_RULES: Final = f"SELECT {', '.join(stored.RULE_FIELDS)} FROM rules ORDER BY seq"  # noqa: S608
_INSERT_RULE: Final = (
    f"INSERT INTO rules ({', '.join(stored.RULE_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' * len(stored.RULE_COLUMNS))})"
)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}"


def upgrade(path: str) -> list[str]:
    """Bring the database at ``path`` up to this nac's layout, as any writing command does on
    its way; returns what changed (nothing: it was up to date).  DatabaseFileError for a file
    that is not nac's, or one a newer nac made."""
    try:
        conn = _open_readonly(path)
    except (OSError, sqlite3.Error) as exc:
        raise dbfile.open_error(path, exc) from None
    try:
        had = _table_layout(conn)
        missing = sorted(_current_layout() - had)
        old_format = tiers.outdated(conn)
        unindexed = 0
        if ("history", "id") in had and not macindex.present(conn):
            unindexed = int(conn.execute("SELECT COUNT(*) FROM main.history").fetchone()[0])
    finally:
        conn.close()
    Store(path).close()
    tables = {table for table, _ in had}
    new_tables = sorted({table for table, _ in missing if table not in tables})
    changes = [f"added table {table}" for table in new_tables]
    changes += [f"added {table}.{column}" for table, column in missing if table in tables]
    if unindexed:
        changes.append(f"MAC index built for {unindexed} decisions")
    if old_format:
        changes.append(f"history batches in format {tiers.FORMAT_VERSION}")
    return changes
