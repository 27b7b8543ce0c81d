"""The embedded store: one SQLite file (WAL) shared by the server and the CLI.

Rules and the policy defaults live here, so the CLI and every server process agree; a change
bumps ``rules_version`` in the same transaction, which running servers poll.  History rows are
written in batches (group commit): one transaction for everything one read of the sockets
decided, committed before any of those replies is sent.
"""

from __future__ import annotations

import getpass
import json
import logging
import marshal
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from nac import audit, dbfile, registry_store, session_store
from nac.errors import DatabaseFileError, NacError, PolicyError
from nac.oui import Snapshot
from nac.policy import Defaults, Rule
from nac.policyfile import defaults_table, rule_table
from nac.records import COLUMNS, HistoryRecord
from nac.sessions import SessionEvent

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_DB: Final = "nac.db"
SCHEMA_VERSION: Final = 1
#: How long a writer waits for another (the CLI while the server commits) before failing.
BUSY_TIMEOUT_MS: Final = 5000

_HISTORY_TYPES: Final = {
    "ts": "REAL NOT NULL",
    "prefix_bits": "INTEGER",
    "nas_port": "INTEGER",
    "message_authenticator": "INTEGER NOT NULL",
    "reply": "INTEGER NOT NULL",
    "action": "TEXT NOT NULL",
    "rule": "TEXT NOT NULL",
    "reason": "TEXT NOT NULL",
    "client": "TEXT NOT NULL",
    "nas_ip": "TEXT NOT NULL",
    "method": "TEXT NOT NULL",
    "src": "TEXT NOT NULL",
    "snapshot": "TEXT NOT NULL",
    "latency_us": "INTEGER",
}
HISTORY_COLUMNS: Final = (*COLUMNS, "latency_us")
# History is kept in two tiers, like a log-structured store.
#
# * The recent tier, a database file of its own beside the main one (``nac.db-recent``): a log
#   of the server's group commits.  Each commit appends ONE row to ``recent.history_batches``:
#   the ids it took (``id``, the first, to ``last``), its time span, and the decisions
#   themselves as one marshal blob (a list of plain tuples, HISTORY_COLUMNS in order).  A row
#   of a few KiB per commit instead of a row of 24 columns per decision: 2.1-2.6 µs per
#   decision instead of 9.7-10.2 at 128 a commit, and nothing per decision to delete later
#   (bench/history_bench.py measures both layouts).
#   Each commit takes the ids after the newest batch's (or after ``recent.history_seq``, the
#   floor that collection and prune raise before they delete the newest batch) in the
#   statement that appends it, under the write lock: server workers sharing the file never
#   collide, and a commit writes the table's last page alone (plus the blob's overflow).
# * ``main.history``: indexed by MAC and time for the helpdesk.  The indexer (nac/indexer.py)
#   unpacks batches into it, when the server has a core to spare, and raises a watermark (meta
#   ``history_indexed_upto``) in the same transaction; the server deletes indexed batches from
#   the recent tier a few at a time in its group commits, and in its tick (collect_recent).
#   The indexer never writes the recent file:
#   a thread at idle priority holding the server's write lock would stall its commits.
#
# Readers see both through a TEMP VIEW named ``history`` (it shadows main.history): main's rows
# and the unindexed recent ones, which sync_recent() unpacks into a TEMP table of the reading
# connection (only the batches it has not seen yet).  Every reader entry point (the helpdesk,
# `nac history`, `nac why`, `nac stats`, `nac web`) syncs first; SQL written against
# ``history`` on a connection from connect() must call sync_recent() before it reads.
# A row keeps its id when it moves, and the view shows recent rows above the watermark only,
# so a reader sees every decision exactly once.
# A separate file, not a second table: SQLite has one write lock per file, and the indexer's
# long transactions must never hold up the server's commits.
RECENT_SUFFIX: Final = "-recent"
_INDEXED_UPTO: Final = "SELECT CAST(value AS INTEGER) FROM main.meta WHERE key = 'history_indexed_upto'"
# Every stored column of a history row with its type (`id` and the generated `time` aside).
_COLUMN_DEFS: Final = ", ".join(f"{name} {_HISTORY_TYPES.get(name, 'TEXT')}" for name in HISTORY_COLUMNS)
_ID_AND_COLUMNS: Final = ", ".join(("id", *HISTORY_COLUMNS))
_ID_AND_PARAMS: Final = ", ".join("?" * (1 + len(HISTORY_COLUMNS)))
#: marshal's format version for the batches (every later Python reads it).
MARSHAL_VERSION: Final = 4
#: At low load every decision is a commit of its own, which writes the table's last page to the
#: WAL: 1 KiB pages make that WAL (and the checkpoints' copying) a quarter of 4 KiB pages'.
#: A large batch's blob fills overflow pages of either size.
RECENT_PAGE_SIZE: Final = 1024
#: Page cache per connection for the recent tier (negative: KiB).  Appends touch the last pages
#: and readers scan it once: a small cache does, and every server thread has a connection.
RECENT_CACHE_KIB: Final = -512
#: The WAL files are reused from the start after each checkpoint; past this size a rewound one
#: is also truncated, so a burst's WAL does not keep its disk (or WAL-index memory) for ever.
#: Above the event loop's hard mark for the recent tier (indexer.WAL_HARD): in steady running
#: no group commit truncates (30-55 ms on ext4 mounted with discard).
WAL_SIZE_LIMIT: Final = 128 * 1024 * 1024
_RECENT_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS recent.history_batches (id INTEGER PRIMARY KEY, last INTEGER NOT NULL,"
    " ts_first REAL NOT NULL, ts_last REAL NOT NULL, rows BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS recent.history_seq"
    " (one INTEGER PRIMARY KEY CHECK (one = 1), last INTEGER NOT NULL)",
)
_TOP: Final = (
    "MAX(COALESCE((SELECT last FROM recent.history_batches ORDER BY id DESC LIMIT 1), 0),"
    " COALESCE((SELECT last FROM recent.history_seq), 0))"
)
_APPEND: Final = (
    "INSERT INTO recent.history_batches (id, last, ts_first, ts_last, rows)"  # noqa: S608 - constants
    f" SELECT top + 1, top + ?, ?, ?, ? FROM (SELECT {_TOP} AS top) RETURNING id"
)
#: Collection and prune keep the id floor before they delete batches (perhaps the newest).
_KEEP_FLOOR: Final = f"UPDATE recent.history_seq SET last = {_TOP}"  # noqa: S608 - constants
# The newest batch stays: the next commit's ids follow it.
_COLLECT_IN_COMMIT: Final = (
    "DELETE FROM recent.history_batches WHERE id IN (SELECT id FROM recent.history_batches"
    " WHERE id <= ?1 AND last <= ?1 AND id < (SELECT MAX(id) FROM recent.history_batches)"
    " ORDER BY id LIMIT ?2)"
)
#: Batches holding ids above ?1: the rowid range from the batch that holds ?1 (the ids are
#: ascending with ``last``; a filter on ``last`` alone would scan the table from its start).
_AFTER: Final = "id >= COALESCE((SELECT MAX(id) FROM recent.history_batches WHERE id <= ?1), 0) AND last > ?1"
_COLLECT: Final = (
    "DELETE FROM recent.history_batches WHERE id IN (SELECT id FROM recent.history_batches"  # noqa: S608
    f" WHERE id <= COALESCE(({_INDEXED_UPTO}), 0) AND last <= COALESCE(({_INDEXED_UPTO}), 0)"
    " ORDER BY id LIMIT ?)"
)
_INSERT_MAIN: Final = f"INSERT OR IGNORE INTO main.history ({_ID_AND_COLUMNS}) VALUES ({_ID_AND_PARAMS})"  # noqa: S608
_INSERT_SEEN: Final = (
    f"INSERT OR IGNORE INTO temp.recent_history ({_ID_AND_COLUMNS}) VALUES ({_ID_AND_PARAMS})"  # noqa: S608
)
_HISTORY_VIEW: Final = (
    "CREATE TEMP VIEW IF NOT EXISTS history AS SELECT * FROM main.history UNION ALL"  # noqa: S608
    f" SELECT * FROM temp.recent_history WHERE id > COALESCE(({_INDEXED_UPTO}), 0)"
)

log = logging.getLogger("nac.store")


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
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
            self.conn = conn
            dbfile.check_nac(conn, self.path, schema_version=SCHEMA_VERSION)
            _use_wal(conn)
            self._ensure_schema()
            attach_recent(conn, self.path)
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
            if _outdated(store.conn):
                store.conn.close()
                if not dbfile.writable(store.path):
                    raise DatabaseFileError(
                        f"{store.path}: an older nac made it, and it cannot be read until it is"
                        " upgraded: run `nac serve` (or a command that changes it) once as a user"
                        " that may write it"
                    )
                cls(store.path).close()
                store.conn = _open_readonly(store.path)
            attach_recent(store.conn, store.path, readonly=True)
            sync_recent(store.conn)
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
            # Every policy change, hash-chained (nac/audit.py); `nac audit verify` walks it.
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
            conn.execute(_history_table("main.history"))
            conn.execute("CREATE INDEX IF NOT EXISTS history_ts ON history (ts)")
            # (mac, ts, action), not (mac, ts): `nac why` finds how long a device has had the same
            # answer from the index alone; with (mac, ts) it read every row of a device refused
            # for months (~130,000 rows: 1 s at 10M rows; 70 ms now; bench/helpdesk_bench.py).
            # Same index count; an existing database is migrated once here.
            conn.execute("DROP INDEX IF EXISTS history_mac")
            conn.execute("CREATE INDEX IF NOT EXISTS history_mac_action ON history (mac, ts, action)")
            # (action, ts) cost a third of the history commit on the request path (one more
            # B-tree page written per row); `--action` filters read the ts index instead.
            conn.execute("DROP INDEX IF EXISTS history_action")
            session_store.ensure_schema(conn)
            registry_store.ensure_schema(conn)
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
        raw = self._meta("defaults")
        if raw is None:
            return Defaults()
        return Defaults(**json.loads(raw))

    def rules(self) -> list[Rule]:
        rows = self.conn.execute(
            "SELECT id, kind, value, action, vlan, reason, clients, ssids, port_type, method, mode,"
            " starts, expires FROM rules ORDER BY seq"
        ).fetchall()
        return [
            Rule(
                id=r[0],
                kind=r[1],
                value=r[2],
                action=r[3],
                vlan=r[4],
                reason=r[5] or "",
                clients=tuple(json.loads(r[6])) if r[6] else (),
                ssids=tuple(json.loads(r[7])) if r[7] else (),
                port_type=r[8],
                method=r[9],
                mode=r[10],
                starts=r[11],
                expires=r[12],
            )
            for r in rows
        ]

    def rule_rows(self) -> list[dict[str, Any]]:
        # Plain sqlite3, not self.db: `nac rules list` need not load sqlite-utils (and numpy).
        cursor = self.conn.execute("SELECT * FROM rules ORDER BY seq")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
        for row in rows:
            for key in ("clients", "ssids"):
                row[key] = json.loads(row[key]) if row.get(key) else []
        return rows

    def set_policy(
        self,
        defaults: Defaults,
        rules: Iterable[Rule] | None = None,
        *,
        action: str = "policy.set",
        subject: str = "",
    ) -> None:
        """Store the defaults (and, when given, replace all rules) in one transaction, audited."""
        conn = self.conn
        rules = list(rules) if rules is not None else None
        with conn:
            conn.execute("BEGIN IMMEDIATE")  # the audit chain's head is read, then extended
            before = self._policy_snapshot() if self.initialized() else None
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('defaults', ?)",
                (json.dumps(asdict(defaults)),),
            )
            if rules is not None:
                conn.execute("DELETE FROM rules")
                for rule in rules:
                    self._insert_rule(conn, rule)
            self._audit(conn, action, subject, before, self._policy_snapshot())
            self._bump(conn)

    def add_rule(self, rule: Rule) -> None:
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT 1 FROM rules WHERE id = ?", (rule.id,)).fetchone():
                raise PolicyError(f"a rule with id {rule.id!r} exists already")
            self._insert_rule(conn, rule)
            self._audit(conn, "rules.add", rule.id, None, rule_table(rule))
            self._bump(conn)

    def remove_rule(self, rule_id: str) -> Rule:
        conn = self.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            found = [r for r in self.rules() if r.id == rule_id]
            if not found:
                raise NacError(f"no rule with id {rule_id!r}")
            conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
            self._audit(conn, "rules.remove", rule_id, rule_table(found[0]), None)
            self._bump(conn)
        return found[0]

    def _policy_snapshot(self) -> dict[str, Any]:
        return {"defaults": defaults_table(self.defaults()), "rules": [rule_table(r) for r in self.rules()]}

    def _insert_rule(self, conn: sqlite3.Connection, rule: Rule) -> None:
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM rules").fetchone()[0]
        conn.execute(
            "INSERT INTO rules (id, kind, value, action, vlan, reason, created, created_by, seq,"
            " clients, ssids, port_type, method, mode, starts, expires)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rule.id,
                rule.kind,
                rule.value,
                rule.action,
                rule.vlan,
                rule.reason,
                iso_time(datetime.now(UTC).timestamp()),
                os_user(),
                seq,
                json.dumps(list(rule.clients)) if rule.clients else None,
                json.dumps(list(rule.ssids)) if rule.ssids else None,
                rule.port_type,
                rule.method,
                rule.mode,
                rule.starts,
                rule.expires,
            ),
        )

    # -- the audit trail -------------------------------------------------------------------

    def _audit(
        self, conn: sqlite3.Connection, action: str, subject: str, before: object, after: object
    ) -> None:
        """Append one row to the hash chain, inside the caller's transaction."""
        prev = self._meta("audit_head") or audit.GENESIS
        row_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM audit").fetchone()[0]
        row = {
            "id": row_id,
            "time": iso_time(datetime.now(UTC).timestamp()),
            "user": os_user(),
            "action": action,
            "subject": subject,
            "before": audit.snapshot_json(before),
            "after": audit.snapshot_json(after),
        }
        digest = audit.row_hash(prev, row)
        conn.execute(
            "INSERT INTO audit (id, time, user, action, subject, before, after, prev, hash)"
            " VALUES (:id, :time, :user, :action, :subject, :before, :after, :prev, :hash)",
            {**row, "prev": prev, "hash": digest},
        )
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_head', ?)", (digest,))

    def audit_rows(self) -> list[dict[str, Any]]:
        """The audit trail, oldest first."""
        cursor = self.conn.execute(
            "SELECT id, time, user, action, subject, before, after, prev, hash FROM audit ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def audit_head(self) -> str | None:
        return self._meta("audit_head")

    def replay_rows(self, since: float) -> list[tuple[Any, ...]]:
        """History since ``since`` as `nac rules simulate` replays it (nac/simulate.ReplayRow),
        oldest first; rows without a MAC (not MAB, garbage) are left out."""
        sync_recent(self.conn)
        return self.conn.execute(
            "SELECT ts, mac, client, called_station_id, nas_port_type, method FROM history"
            " WHERE ts >= ? AND mac IS NOT NULL ORDER BY ts, id",
            (since,),
        ).fetchall()

    def _bump(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'rules_version'"
        )

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
        return [_snapshot_row(row) for row in rows]

    def active_snapshot(self) -> dict[str, Any] | None:
        """The imported snapshot in force, or None while the bundled one is."""
        row = self.conn.execute(
            "SELECT id, source, date, sha256, counts, replaced, imported, imported_by, active"
            " FROM registry_snapshots WHERE active = 1 ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _snapshot_row(row)

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
        return _snapshot_row(row), entries

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
        audited; the registry replaced is kept for `nac oui rollback` (nac/registry_store.py).

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
            conn.execute(
                "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                " WHERE key = 'registry_version'"
            )

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
            conn.execute(
                "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                " WHERE key = 'registry_version'"
            )
        return active, restored

    # -- history ---------------------------------------------------------------------------

    def write_history(self, rows: Sequence[Sequence[object]]) -> None:
        """Append one batch of ``HistoryRecord + (latency_us,)`` rows and commit (group commit)."""
        self.write_batch(rows, ())

    def write_batch(
        self,
        rows: Sequence[Sequence[object]],
        events: Sequence[SessionEvent],
        *,
        collect: tuple[int, int] | None = None,
    ) -> int:
        """History rows and accounting events of one server batch, in one transaction: the
        group commit that comes before any of the batch's replies is sent.

        ``collect`` = (indexed_upto, limit): first delete up to ``limit`` recent batches that the
        indexer has copied (through ``indexed_upto``), in the same commit: collection a few
        rows at a time costs no commit of its own and never stalls the event loop the way a
        bulk delete does.  Returns how many it deleted; a failed deletion is skipped."""
        conn = self.conn
        collected = 0
        if collect is not None:
            try:
                collected = conn.execute(_COLLECT_IN_COMMIT, collect).rowcount
            except sqlite3.Error as exc:  # before the append: whatever it undid, nothing is lost
                log.debug("collecting indexed history in the group commit: %s", exc)
        try:
            if rows:
                append_history(conn, rows)
            if events:
                session_store.apply_events(conn, events)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return collected

    def history(
        self,
        *,
        mac: str | None = None,
        action: str | None = None,
        since: float | None = None,
        limit: int | None = 50,
    ) -> list[dict[str, Any]]:
        sync_recent(self.conn)
        where: list[str] = []
        params: list[object] = []
        if mac is not None:
            where.append("mac = ?")
            params.append(mac)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        sql = "SELECT * FROM history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [dict(row) for row in self.db.query(sql, params)]

    def history_count(self) -> int:
        return history_count(self.conn)


def recent_path(path: str | Path) -> str:
    """The recent tier's file for the database at ``path`` (an in-memory one for ``:memory:``)."""
    path = os.fspath(path)
    return ":memory:" if path == ":memory:" else path + RECENT_SUFFIX


def _history_table(qualified: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {qualified} (
        id INTEGER PRIMARY KEY,
        {_COLUMN_DEFS},
        time TEXT GENERATED ALWAYS AS (strftime('%Y-%m-%dT%H:%M:%fZ', ts, 'unixepoch')) VIRTUAL
    )"""


def attach_recent(conn: sqlite3.Connection, path: str | Path, *, readonly: bool = False) -> bool:
    """Attach the recent tier of the database at ``path`` to ``conn`` as ``recent`` and make the
    TEMP VIEW ``history`` over both tiers; False if there is none to attach (a read-only open
    of a database no server has written since it had tiers: then ``history`` is main's table).

    A writable open creates the tier (or converts one of the older row-per-decision layout)
    and raises its id sequence above main.history's ids.
    """
    if readonly:
        target = Path(recent_path(path))
        if not target.is_file():
            return False
        conn.execute("ATTACH ? AS recent", (dbfile.readonly_uri(str(target)),))
        conn.execute(f"PRAGMA recent.cache_size={RECENT_CACHE_KIB}")
        names = {row[0] for row in conn.execute("SELECT name FROM recent.sqlite_master WHERE type = 'table'")}
        if "history_batches" not in names:  # an older server's layout: the next start converts it
            conn.execute("DETACH recent")
            return False
    else:
        dbfile.create_private(recent_path(path))  # its -wal and -shm take its mode
        conn.execute("ATTACH ? AS recent", (recent_path(path),))
        conn.execute(f"PRAGMA recent.page_size={RECENT_PAGE_SIZE}")  # a new file's (WAL fixes it)
        conn.execute("PRAGMA recent.journal_mode=WAL")
        conn.execute("PRAGMA recent.synchronous=NORMAL")
        conn.execute(f"PRAGMA recent.journal_size_limit={WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA recent.cache_size={RECENT_CACHE_KIB}")
        with conn:
            for ddl in _RECENT_TABLES:
                conn.execute(ddl)
            _convert_row_tier(conn)
            # Above every id ever indexed too: main's newest rows may have been pruned.
            top = max(conn.execute("SELECT MAX(id) FROM main.history").fetchone()[0] or 0, indexed_upto(conn))
            seq = conn.execute("SELECT last FROM recent.history_seq").fetchone()
            if seq is None:
                conn.execute("INSERT INTO recent.history_seq (one, last) VALUES (1, ?)", (top,))
            elif seq[0] < top:
                conn.execute("UPDATE recent.history_seq SET last = ?", (top,))
    conn.execute(_history_table("temp.recent_history"))
    conn.execute("CREATE INDEX IF NOT EXISTS temp.recent_history_ts ON recent_history (ts)")
    conn.execute(_HISTORY_VIEW)
    return True


def _convert_row_tier(conn: sqlite3.Connection) -> None:
    """A recent tier from before the batches (a row per decision in ``recent.history``): index
    its rows into main and drop the table, in the caller's transaction."""
    old = "SELECT 1 FROM recent.sqlite_master WHERE type = 'table' AND name = 'history'"
    if conn.execute(old).fetchone() is None:
        return
    upto = indexed_upto(conn)
    moved = conn.execute(
        f"INSERT OR IGNORE INTO main.history ({_ID_AND_COLUMNS})"  # noqa: S608 - constants
        f" SELECT {_ID_AND_COLUMNS} FROM recent.history WHERE id > ?",
        (upto,),
    ).rowcount
    high = conn.execute("SELECT MAX(id) FROM recent.history").fetchone()[0]
    if high is not None and high > upto:
        _set_indexed_upto(conn, int(high))
    conn.execute("DROP TABLE recent.history")
    log.info("history: the recent tier now holds batches; its %d unindexed rows are indexed", moved)


def connect(path: str | Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to the database at ``path`` (WAL, the recent tier attached,
    the ``history`` view over both tiers as of now): for threads and scripts that use SQL
    directly.  A connection kept open must call sync_recent() before it reads ``history``
    again, or it misses the decisions committed since."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    _use_wal(conn)
    attach_recent(conn, path)
    sync_recent(conn)
    return conn


def _open_readonly(path: str) -> sqlite3.Connection:
    """The main file of the database at ``path``, read-only, checked to be nac's."""
    conn = sqlite3.connect(
        dbfile.readonly_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
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


def _use_wal(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process (the OS has the pages); FULL would also
    # survive a power cut at the cost of an fsync per commit.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")


def has_recent(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "recent" for row in conn.execute("PRAGMA database_list"))


def indexed_upto(conn: sqlite3.Connection) -> int:
    """The highest id moved into main.history: recent rows up to it are copies, awaiting
    collection (the view leaves them out)."""
    row = conn.execute(_INDEXED_UPTO).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def _set_indexed_upto(conn: sqlite3.Connection, high: int) -> None:
    conn.execute(
        "INSERT INTO main.meta (key, value) VALUES ('history_indexed_upto', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(high),),
    )


def append_history(conn: sqlite3.Connection, rows: Sequence[Sequence[object]]) -> None:
    """Append ``rows`` (``HistoryRecord + (latency_us,)``, oldest first) to the recent tier as
    one batch, in the caller's transaction: the caller commits."""
    count = len(rows)
    try:
        blob = marshal.dumps(rows, MARSHAL_VERSION)  # type: ignore[arg-type]  # checked by marshal
    except ValueError:  # NamedTuples (marshal takes the built-in types only)
        blob = marshal.dumps([tuple(row) for row in rows], MARSHAL_VERSION)
    conn.execute(_APPEND, (count, rows[0][0], rows[-1][0], blob)).fetchall()


def _unpack(first: int, blob: bytes, above: int) -> list[tuple[object, ...]]:
    """The rows of the batch whose first id is ``first``, with their ids; those above ``above`` only."""
    # Our own server wrote it into our own database: no more trusted than the rules beside it.
    rows: list[tuple[object, ...]] = marshal.loads(blob)  # noqa: S302
    skip = max(0, above + 1 - first)
    return [(first + i, *row) for i, row in enumerate(rows) if i >= skip]


def sync_recent(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s view of the recent tier up to date: unpack the batches committed since
    its last call into its TEMP table, and drop the rows indexed or pruned since.  Returns how
    many rows it added.  Three indexed lookups when nothing changed."""
    if not has_recent(conn):
        return 0
    with conn:
        upto = indexed_upto(conn)
        conn.execute("DELETE FROM temp.recent_history WHERE id <= ?", (upto,))
        low, high = conn.execute("SELECT MIN(id), MAX(id) FROM temp.recent_history").fetchone()
        if low is not None:  # batches pruned before they were indexed: gone here too
            at = low
            kept = conn.execute(
                f"SELECT id, last FROM recent.history_batches WHERE {_AFTER} AND id <= ?2 ORDER BY id",  # noqa: S608
                (low - 1, high),
            ).fetchall()
            for first, last in kept:
                if first > at:
                    conn.execute("DELETE FROM temp.recent_history WHERE id BETWEEN ? AND ?", (at, first - 1))
                at = max(at, last + 1)
            if at <= high:
                conn.execute("DELETE FROM temp.recent_history WHERE id BETWEEN ? AND ?", (at, high))
        above = max(upto, high or 0)
        added = 0
        for first, blob in conn.execute(
            f"SELECT id, rows FROM recent.history_batches WHERE {_AFTER} ORDER BY id",  # noqa: S608
            (above,),
        ).fetchall():
            rows = _unpack(first, blob, above)
            conn.executemany(_INSERT_SEEN, rows)
            added += len(rows)
    return added


def history_count(conn: sqlite3.Connection) -> int:
    """Rows in both tiers (counted tier by tier: COUNT(*) over the view is several times slower)."""
    total = int(conn.execute("SELECT COUNT(*) FROM main.history").fetchone()[0])
    if has_recent(conn):
        upto = indexed_upto(conn)
        total += int(
            conn.execute(
                "SELECT COALESCE(SUM(last - MAX(id, ?2 + 1) + 1), 0)"  # noqa: S608 - constants
                f" FROM recent.history_batches WHERE {_AFTER}",
                (upto, upto),
            ).fetchone()[0]
        )
    return total


def recent_backlog(conn: sqlite3.Connection) -> int:
    """Rows waiting for the indexer (from the id range: exact unless a prune removed some)."""
    top = conn.execute(f"SELECT {_TOP}").fetchone()[0]
    return max(0, int(top) - indexed_upto(conn))


def move_recent(conn: sqlite3.Connection, batch: int) -> int:
    """Unpack the oldest unindexed batches of the recent tier (whole ones, until ``batch`` rows
    or more) into main.history and raise the watermark in the same transaction; returns how
    many rows it took.  The batches stay in the recent tier, hidden by the view, until
    collect_recent() deletes them.

    The batches are read (a short read transaction on the recent tier) before main's write
    transaction begins: the long part, the random MAC-index inserts, holds main's write lock
    but no snapshot of the recent tier.  The indexer runs at idle priority and can be stopped
    anywhere for as long as a burst lasts; a snapshot held that long would keep every
    checkpoint from rewinding the recent tier's WAL, which the server appends to at full speed.
    One executemany per batch: the GIL is released around every row's insert, and never held
    for long by a thread at idle priority, which the event loop would then wait for."""
    upto = indexed_upto(conn)
    taken: list[tuple[int, int, bytes]] = []
    count = 0
    try:
        cursor = conn.execute(
            f"SELECT id, last, rows FROM recent.history_batches WHERE {_AFTER} ORDER BY id",  # noqa: S608
            (upto,),
        )
        while count < batch:
            got = cursor.fetchone()
            if got is None:
                break
            taken.append(got)
            count += got[1] - max(got[0], upto + 1) + 1
        cursor.close()
        conn.commit()
        if not taken:
            return 0
        for first, _, blob in taken:
            conn.executemany(_INSERT_MAIN, _unpack(first, blob, upto))
        _set_indexed_upto(conn, taken[-1][1])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return count


def prune_recent(conn: sqlite3.Connection, cutoff: float, limit: int) -> tuple[int, int]:
    """Delete up to ``limit`` unindexed batches of the recent tier whose decisions are all older
    than ``cutoff``; returns (decisions, batches) deleted.  The indexer skips what is gone."""
    with conn:
        upto = indexed_upto(conn)
        conn.execute(_KEEP_FLOOR)
        gone = conn.execute(
            "DELETE FROM recent.history_batches WHERE id IN (SELECT id FROM recent.history_batches"  # noqa: S608
            f" WHERE {_AFTER} AND ts_last < ?2 ORDER BY id LIMIT ?3) RETURNING id, last",
            (upto, cutoff, limit),
        ).fetchall()
    return sum(last - max(first, upto + 1) + 1 for first, last in gone), len(gone)


def collect_recent(conn: sqlite3.Connection, limit: int) -> int:
    """Delete up to ``limit`` batches of the recent tier that are already in main.history;
    returns how many.  A short transaction on the recent tier (a few pages per batch)."""
    oldest = conn.execute("SELECT MIN(id) FROM recent.history_batches").fetchone()[0]
    if oldest is None or oldest > indexed_upto(conn):
        return 0  # nothing indexed is left: no write (the tick comes four times a second)
    try:
        conn.execute(_KEEP_FLOOR)
        deleted = conn.execute(_COLLECT, (limit,)).rowcount
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return int(deleted)


_RULE_EXTRA_COLUMNS: Final = ("clients", "ssids", "port_type", "method", "mode", "starts", "expires")


def record_row(record: HistoryRecord, latency_us: int) -> tuple[object, ...]:
    return (*record, latency_us)


def _snapshot_row(row: Sequence[Any]) -> dict[str, Any]:
    keys = ("id", "source", "date", "sha256", "counts", "replaced", "imported", "imported_by", "active")
    out = dict(zip(keys, row, strict=True))
    out["counts"] = json.loads(out["counts"])
    out["replaced"] = json.loads(out["replaced"])
    out["active"] = bool(out["active"])
    return out


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}"
