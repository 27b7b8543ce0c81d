"""What the library's methods return for the CLI and the web page to render.

Each is a :class:`~nac.render.Record`: typed fields, and ``to_json()`` the exact object
``--json`` prints (a public interface), so a field's place here is its place in that output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nac.render import Record


@dataclass(frozen=True, kw_only=True)
class RuleRow(Record):
    """A stored rule as `nac rules list` shows it: the rules table's columns in order, then
    the rule that always decides in its place (``shadowed_by``), if any."""

    id: str
    kind: str
    value: str
    action: str
    vlan: str | None
    reason: str
    created: str | None
    created_by: str
    seq: int
    clients: list[str]
    ssids: list[str]
    port_type: str | None
    method: str | None
    mode: str | None
    starts: str | None
    expires: str | None
    shadowed_by: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any], *, shadowed_by: str | None) -> RuleRow:
        """From a row of :meth:`nac.store.Store.rule_rows` (scope lists decoded)."""
        return cls(
            id=row["id"],
            kind=row["kind"],
            value=row["value"],
            action=row["action"],
            vlan=row["vlan"],
            reason=row["reason"],
            created=row["created"],
            created_by=row["created_by"],
            seq=row["seq"],
            clients=row["clients"],
            ssids=row["ssids"],
            port_type=row["port_type"],
            method=row["method"],
            mode=row["mode"],
            starts=row["starts"],
            expires=row["expires"],
            shadowed_by=shadowed_by,
        )


@dataclass(frozen=True, kw_only=True)
class AuditRow(Record):
    """One policy change from the hash-chained audit trail; ``before`` and ``after`` are the
    policy as JSON text (None where there was none)."""

    id: int
    time: str | None
    user: str
    action: str
    subject: str
    before: str | None
    after: str | None
    prev: str | None
    hash: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditRow:
        """From a row of :meth:`nac.store.Store.audit_rows`."""
        return cls(
            id=row["id"],
            time=row["time"],
            user=row["user"],
            action=row["action"],
            subject=row["subject"],
            before=row["before"],
            after=row["after"],
            prev=row["prev"],
            hash=row["hash"],
        )


@dataclass(frozen=True, kw_only=True)
class SnapshotStatus(Record):
    """A registry snapshot in `nac oui status`: where it came from, what it holds, when it
    was imported (None: shipped with nac)."""

    snapshot: str
    source: str
    date: str
    sha256: str
    counts: dict[str, int]
    total: int
    replaced: list[str]
    imported: str | None
    imported_by: str | None
    bundled: bool


@dataclass(frozen=True, kw_only=True)
class OlderSnapshot(SnapshotStatus):
    """A snapshot no longer in force, and whether `nac oui rollback` can restore it."""

    kept: bool


@dataclass(frozen=True, kw_only=True)
class RegistryStatus(Record):
    """`nac oui status`: the snapshot in force, the older ones, and the registry version a
    running server polls."""

    active: SnapshotStatus
    older: list[OlderSnapshot]
    registry_version: int


@dataclass(frozen=True, kw_only=True)
class PolicyCheck(Record):
    """`nac policy check`: a policy file that loads, what it holds, and its warnings."""

    file: str
    rules: int
    groups: int
    default: str
    monitor: bool
    warnings: list[str]
