"""The rules, policy defaults, audit chain and IEEE registry in PostgreSQL: what the CLI's
rules, policy, audit and oui commands use of nac/store.py's Store, with the same meaning.

Each change is one transaction that takes the ``rules_version`` row's lock first (as SQLite's
BEGIN IMMEDIATE does: changes from several machines queue, and the audit chain's head is read
then extended by one writer at a time), writes one audit row, bumps ``rules_version`` (a
registry import or rollback: ``registry_version``), and announces the new version on the
``nac_rules`` channel (``nac_registry``); PostgreSQL delivers the NOTIFY at commit, so no
server hears of a change that was rolled back.  The checks, row layouts and audit rows are
nac/policy/stored.py's, nac/policy/audit.py's and nac/registry/store.py's, shared with SQLite;
the registry's SQL is nac/pg/registry.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from nac.errors import DatabaseFileError
from nac.pg import REGISTRY_CHANNEL, RULES_CHANNEL, PgUnreachableError, connect, first_line, redact, schema
from nac.pg import registry as pg_registry
from nac.policy import audit, stored
from nac.policy.decide import Defaults, Rule
from nac.policy.file import rule_table
from nac.registry import store as registry_store
from nac.registry.oui import Snapshot
from nac.store import iso_time, os_user

if TYPE_CHECKING:
    import psycopg

# Fixed column names (nac/policy/stored.py), no input: nothing to inject.
_SELECT_RULES: Final = f"SELECT {', '.join(stored.RULE_FIELDS)} FROM rules ORDER BY seq"  # noqa: S608
_SELECT_RECORDS: Final = f"SELECT {', '.join(stored.RULE_COLUMNS)} FROM rules ORDER BY seq"  # noqa: S608
_INSERT_RULE: Final = (
    f"INSERT INTO rules ({', '.join(stored.RULE_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join(['%s'] * len(stored.RULE_COLUMNS))})"
)
_UPSERT_META: Final = (
    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)


class Published(NamedTuple):
    """The rules in force as one transaction saw them: what a server's journal copies."""

    version: int
    defaults: str | None  # JSON, as stored
    records: list[tuple[Any, ...]]  # whole rules rows, stored.RULE_COLUMNS, in order


def published(conn: psycopg.Connection[Any]) -> Published:
    """The rules version, defaults and rules, read in one snapshot (a change committing
    meanwhile is seen whole or not at all).  ``conn`` is in autocommit mode."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('rules_version', 'defaults')"))
        records = [tuple(row) for row in conn.execute(_SELECT_RECORDS)]
    return Published(int(meta.get("rules_version", 0)), meta.get("defaults"), records)


def open_pg_store(url: str, *, readonly: bool = False) -> PgStore:
    """The database at ``url``, its schema brought up to date; a new one takes the shipped
    policy, as a new SQLite database does (nac/resources.py open_store)."""
    store = PgStore(url, readonly=readonly)
    try:
        if not readonly:
            store.initialize()
    except BaseException:
        store.close()
        raise
    return store


class PgStore:
    """One connection to the shared database (autocommit; each change its own transaction)."""

    def __init__(
        self, url: str, *, readonly: bool = False, conn: psycopg.Connection[Any] | None = None
    ) -> None:
        """Connect, and bring the schema up to date (a reader only checks it).  Over an open
        ``conn`` (autocommit), the caller has seen to the schema."""
        self.path = redact(url)  # what messages and `nac policy export` name
        self.changes: list[str] = []  # what opening it migrated (`nac db upgrade` says)
        if conn is not None:
            self.conn = conn
            return
        self.conn = connect(url)
        try:
            with self._errors():
                if readonly:
                    schema.require(self.conn, self.path)
                else:
                    self.changes = schema.upgrade(self.conn, self.path)
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def initialize(self) -> None:
        """Store the shipped policy if no policy is stored yet."""
        if self.initialized():
            return
        from nac.policy.file import load_policy_file  # noqa: PLC0415 - once per database
        from nac.resources import default_policy_path  # noqa: PLC0415

        path = default_policy_path()
        defaults, rules = load_policy_file(path)
        self.set_policy(defaults, rules, action="policy.init", subject=str(path), initial=True)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The driver's errors (connection lost, permission denied...) as one line naming
        the database."""
        import psycopg  # noqa: PLC0415 - loaded by connect() already

        try:
            yield
        except psycopg.OperationalError as exc:  # the server went away, or refused us
            raise PgUnreachableError(f"{self.path}: {first_line(exc)}") from None
        except psycopg.Error as exc:
            raise DatabaseFileError(f"{self.path}: {first_line(exc)}") from None

    def _meta(self, key: str) -> str | None:
        with self._errors():
            row = self.conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- reading ---------------------------------------------------------------------------

    def initialized(self) -> bool:
        return self._meta("defaults") is not None

    def rules_version(self) -> int:
        return int(self._meta("rules_version") or 0)

    def defaults(self) -> Defaults:
        return stored.defaults_from_json(self._meta("defaults"))

    def rules(self) -> list[Rule]:
        with self._errors():
            return [stored.rule_from_row(r) for r in self.conn.execute(_SELECT_RULES)]

    def rule_rows(self) -> list[dict[str, Any]]:
        with self._errors():
            cursor = self.conn.execute(_SELECT_RECORDS)
            return [stored.decoded_rule_row(dict(zip(stored.RULE_COLUMNS, r, strict=True))) for r in cursor]

    def audit_rows(self) -> list[dict[str, Any]]:
        """The audit trail, oldest first."""
        with self._errors():
            cursor = self.conn.execute(
                'SELECT id, time, "user", action, subject, before, after, prev, hash FROM audit ORDER BY id'
            )
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor]

    def audit_head(self) -> str | None:
        return self._meta("audit_head")

    # -- the IEEE registry (nac/pg/registry.py) --------------------------------------------

    def registry_version(self) -> int:
        return int(self._meta("registry_version") or 0)

    def registry_snapshots(self) -> list[dict[str, Any]]:
        with self._errors():
            return pg_registry.snapshots(self.conn)

    def active_snapshot(self) -> dict[str, Any] | None:
        with self._errors():
            return pg_registry.active(self.conn)

    def registry_entries_for(self, blocks: Iterable[tuple[int, int]]) -> list[tuple[int, int, str, str]]:
        with self._errors():
            return pg_registry.entries_for(self.conn, blocks)

    def kept_snapshots(self) -> set[int]:
        with self._errors():
            return pg_registry.kept_ids(self.conn)

    def active_registry(self) -> tuple[dict[str, Any], list[tuple[int, int, str, str]]] | None:
        """The active snapshot and its entries, read in one transaction; None until the first
        import (the bundled registry is in force)."""
        with self._errors():
            found = pg_registry.published(self.conn)
        return None if found.snapshot is None else (found.snapshot, found.entries)

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
        """Make ``entries`` the active registry, as Store.replace_registry does."""
        with self._change() as cur:
            subject, before, after = pg_registry.replace(
                cur,
                entries,
                snapshot=snapshot,
                replaced=replaced,
                base=base,
                base_entries=base_entries,
                imported=iso_time(now),
                user=os_user(),
            )
            self._finish(cur, "oui.import", subject, before, after, registry=True)

    def rollback_registry(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the newest kept snapshot before the active one, as Store.rollback_registry does."""
        with self._change() as cur:
            found, restored = pg_registry.rollback(cur)
            view = registry_store.audit_view
            self._finish(
                cur, "oui.rollback", view(restored)["snapshot"], view(found), view(restored), registry=True
            )
        return found, restored

    # -- changes ---------------------------------------------------------------------------

    @contextmanager
    def _change(self) -> Iterator[psycopg.Cursor[Any]]:
        """One change: a transaction holding the ``rules_version`` row's lock."""
        with self._errors(), self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT value FROM meta WHERE key = 'rules_version' FOR UPDATE")
            yield cur

    def _finish(
        self,
        cur: psycopg.Cursor[Any],
        action: str,
        subject: str,
        before: object,
        after: object,
        *,
        registry: bool = False,
    ) -> int:
        """Append the audit row, bump ``rules_version`` (``registry``: ``registry_version``) and
        announce it, in the change's transaction; returns the new version."""
        cur.execute("SELECT value FROM meta WHERE key = 'audit_head'")
        head = cur.fetchone()
        cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM audit")
        row_id = cur.fetchone()
        row = audit.chain_row(
            head[0] if head else audit.GENESIS,
            row_id=int(row_id[0]) if row_id else 1,
            time=iso_time(datetime.now(UTC).timestamp()),
            user=os_user(),
            action=action,
            subject=subject,
            before=before,
            after=after,
        )
        cur.execute(
            'INSERT INTO audit (id, time, "user", action, subject, before, after, prev, hash) VALUES'
            " (%(id)s, %(time)s, %(user)s, %(action)s, %(subject)s, %(before)s, %(after)s, %(prev)s,"
            " %(hash)s)",
            row,
        )
        cur.execute(_UPSERT_META, ("audit_head", row["hash"]))
        key, channel = (
            ("registry_version", REGISTRY_CHANNEL) if registry else ("rules_version", RULES_CHANNEL)
        )
        cur.execute(
            "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = %s RETURNING value", (key,)
        )
        bumped = cur.fetchone()
        version = int(bumped[0]) if bumped else 0
        cur.execute("SELECT pg_notify(%s, %s)", (channel, str(version)))
        return version

    def _insert_rules(self, cur: psycopg.Cursor[Any], rules: Iterable[Rule]) -> None:
        cur.execute("SELECT COALESCE(MAX(seq), 0) FROM rules")
        last = cur.fetchone()
        seq = int(last[0]) if last else 0
        created, by = iso_time(datetime.now(UTC).timestamp()), os_user()
        records = [
            stored.rule_record(rule, created=created, created_by=by, seq=seq + n)
            for n, rule in enumerate(rules, start=1)
        ]
        cur.executemany(_INSERT_RULE, records)

    def _ids(self, cur: psycopg.Cursor[Any]) -> list[str]:
        cur.execute("SELECT id FROM rules")
        return [row[0] for row in cur.fetchall()]

    def _snapshot(self) -> dict[str, Any]:
        return stored.policy_snapshot(self.defaults(), self.rules())

    def set_policy(
        self,
        defaults: Defaults,
        rules: Iterable[Rule] | None = None,
        *,
        action: str = "policy.set",
        subject: str = "",
        initial: bool = False,
    ) -> None:
        """Store the defaults (and, when given, replace all rules) in one transaction, audited.
        ``initial``: only if no policy is stored yet (two first users race; one writes it)."""
        rules = list(rules) if rules is not None else None
        with self._change() as cur:
            if initial and self.initialized():
                return
            before = self._snapshot() if self.initialized() else None
            cur.execute(_UPSERT_META, ("defaults", stored.defaults_json(defaults)))
            if rules is not None:
                cur.execute("DELETE FROM rules")
                self._insert_rules(cur, rules)
            self._finish(cur, action, subject, before, self._snapshot())

    def add_rule(self, rule: Rule) -> None:
        with self._change() as cur:
            stored.refuse_taken(self._ids(cur), [rule])
            self._insert_rules(cur, [rule])
            self._finish(cur, "rules.add", rule.id, None, rule_table(rule))

    def remove_rule(self, rule_id: str) -> Rule:
        with self._change() as cur:
            found = stored.rule_to_remove(self.rules(), rule_id)
            cur.execute("DELETE FROM rules WHERE id = %s", (rule_id,))
            self._finish(cur, "rules.remove", rule_id, rule_table(found), None)
        return found

    def add_list_rules(self, rules: Sequence[Rule], *, evidence: dict[str, Any]) -> None:
        """A ban list's rules in one transaction and one audit row naming the list."""
        with self._change() as cur:
            stored.refuse_taken(self._ids(cur), rules)
            self._insert_rules(cur, rules)
            subject, after = stored.list_added(rules, evidence)
            self._finish(cur, "rules.add-list", subject, None, after)

    def remove_list_rules(self, name: str) -> list[Rule]:
        with self._change() as cur:
            found = stored.list_rules_to_remove(self.rules(), name)
            cur.execute("DELETE FROM rules WHERE list = %s", (name,))
            subject, before = stored.list_removed(name, found)
            self._finish(cur, "rules.remove-list", subject, before, None)
        return found
