"""What the library's methods return for the CLI and the web page to render.

Each is a :class:`~nac.render.Record`: typed fields, and ``to_json()`` the exact object
``--json`` prints (a public interface), so a field's place here is its place in that output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from nac.app.lists import FamilyList, ListChange, ListTally
from nac.policy.file import PolicyDiff
from nac.registry.ieee import ChangeRow, EntryRow, RegistryChanges
from nac.registry.vendors import LookAlike, UnmatchedEntry, VendorReview, WatchEntry
from nac.render import Record


@dataclass(frozen=True, kw_only=True)
class RuleRow(Record):
    """A stored rule as `nac rules list` shows it: the rules table's columns in order, then
    the rule that always decides in its place (``shadowed_by``), if any."""

    json_keys: ClassVar[Mapping[str, str]] = {"banlist": "list"}

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
    banlist: str | None  # ``list``: the ban list the rule was made from
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
            banlist=row["list"],
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
    #: The file's 802.1X user groups; None when it has none (an import leaves them alone).
    user_groups: int | None = None


@dataclass(frozen=True, kw_only=True)
class PolicyImport(PolicyDiff):
    """`nac policy import`: what changed, then the file, the rules now in force, the rules
    version a running server polls, and the file's warnings."""

    file: str
    rules: int
    rules_version: int
    warnings: list[str]


# -- nac check ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MatchedRule(Record):
    """A rule whose match covers the MAC: whether it decided, and why (or why it lost)."""

    rule: str
    action: str
    decided: bool
    why: str


@dataclass(frozen=True, kw_only=True)
class DeviceProfile(Record):
    """What DHCP and the switches said of a device, in brief, and whether that maker
    contradicts its OUI's (a spoof suspected)."""

    family: str | None
    vendor: str | None
    source: str
    evidence: str
    last_seen: str | None
    conflict: bool


@dataclass(frozen=True, kw_only=True)
class CheckResult(Record):
    """`nac check MAC`: the registry entry, what the rules in force decide and why, every rule
    that matched, and the device's profile (None: nothing seen)."""

    mac: str
    randomized: bool
    multicast: bool
    prefix: str | None
    prefix_bits: int | None
    vendor: str | None
    registry: str | None
    action: str
    vlan: str | None
    rule: str
    reason: str
    snapshot: str
    matched: list[MatchedRule]
    profile: DeviceProfile | None


# -- nac why -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EarlierDecision(Record):
    """The latest decision that answered otherwise, which bounds the current run."""

    action: str
    time: str | None
    ts: float


@dataclass(frozen=True, kw_only=True)
class Streak(Record):
    """How long the latest answer has held: ``count`` decisions since ``since``."""

    action: str
    count: int
    since: str | None
    since_ts: float
    before: EarlierDecision | None


@dataclass(frozen=True, kw_only=True)
class Refusals(Record):
    """How often the device was refused in the history kept, first and last."""

    count: int
    first: str | None
    last: str | None


@dataclass(frozen=True, kw_only=True)
class CurrentDecision(Record):
    """What the rules in force would answer the device's latest request."""

    action: str
    vlan: str | None
    rule: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class WhyReport(Record):
    """`nac why MAC`: the latest decisions (history rows, newest first), the run and the
    refusals behind them, what the rules would say now, and ``lines``, all of it in words."""

    mac: str
    decisions: list[dict[str, Any]]
    streak: Streak | None
    refused: Refusals | None
    now: CurrentDecision | None
    changed: bool
    lines: list[str]


# -- nac stats ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Tally(Record):
    """Decisions for one action, vendor, client, rule or method, and how many were refusals."""

    name: str
    decisions: int
    rejected: int


@dataclass(frozen=True, kw_only=True)
class RefusedDevice(Record):
    """A device among the most refused: how often, first and last."""

    mac: str
    vendor: str | None
    rejected: int
    first: str | None
    last: str | None


@dataclass(frozen=True, kw_only=True)
class ClientReadiness(Record):
    """A NAS client's Message-Authenticator habit (BlastRADIUS, CVE-2024-3596): ``ready`` when
    every request carried one, ``never_sends`` when none did."""

    client: str
    nas_ips: list[str]
    requests: int
    without_message_authenticator: int
    ready: bool
    never_sends: bool


@dataclass(frozen=True, kw_only=True)
class StatsReport(Record):
    """`nac stats`: decisions counted six ways, the most refused devices, each client's
    Message-Authenticator readiness, and profiled devices by maker."""

    since: str | None
    decisions: int
    by_action: list[Tally]
    by_vendor: list[Tally]
    by_client: list[Tally]
    by_rule: list[Tally]
    by_method: list[Tally]
    top_refused: list[RefusedDevice]
    message_authenticator: list[ClientReadiness]
    not_ready: list[str]
    profiled: dict[str, int]
    #: Decisions and refused devices per ban list in force (nac/app/lists.py).
    by_list: list[ListTally] = field(default_factory=list)
    #: Decisions per server (its node name): with several, each one's share shows it works.
    by_node: list[Tally] = field(default_factory=list)
    #: What this database cannot count, in words (PostgreSQL keeps no profiles).
    unavailable: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class DecisionsPage(Record):
    """What the helpdesk page fetches: the decisions its filters match, newest first (history
    rows), and for one MAC the `why` story."""

    rows: list[dict[str, Any]]
    why: WhyReport | None


@dataclass(frozen=True, kw_only=True)
class RegistryRollback(Record):
    """`nac oui rollback`: the snapshot discarded (``from`` in JSON), the one restored
    (``to``), and the registry version a running server polls."""

    json_keys: ClassVar[Mapping[str, str]] = {"discarded": "from", "restored": "to"}

    discarded: SnapshotStatus
    restored: SnapshotStatus
    registry_version: int


@dataclass(frozen=True, kw_only=True)
class FileRead(Record):
    """A registry file `nac oui import` read: its format, the registries it holds, its
    assignments, and repeated blocks ignored."""

    file: str
    format: str
    registries: list[str]
    assignments: int
    duplicates: int


@dataclass(frozen=True, kw_only=True)
class RegistryImportPlan(Record):
    """What `nac oui import` makes (or would make, or refused to make) the registry: the new
    snapshot, the registries it replaces, the files read, and every entry that changes."""

    snapshot: str
    source: str
    date: str
    sha256: str
    counts: dict[str, int]
    replaced: list[str]
    previous: str
    files: list[FileRead]
    added: list[EntryRow]
    removed: list[EntryRow]
    reassigned: list[ChangeRow]
    renamed: list[ChangeRow]
    by_registry: dict[str, RegistryChanges]
    #: Rules made from a ban list whose coverage changes: which list gains or loses what.
    lists: list[ListChange]
    watch: list[WatchEntry]
    dry_run: bool
    refused: str | None


@dataclass(frozen=True, kw_only=True)
class RegistryImport(RegistryImportPlan):
    """An import done (or a dry run), with the registry version a running server polls."""

    registry_version: int


@dataclass(frozen=True, kw_only=True)
class ListedLookAlike(LookAlike):
    """A look-alike, and the ban lists naming its family: deciding on it changes what they cover."""

    lists: list[FamilyList]


@dataclass(frozen=True, kw_only=True)
class ListedUnmatched(UnmatchedEntry):
    """A family entry matching nothing, and the ban lists naming its family."""

    lists: list[FamilyList]


@dataclass(frozen=True, kw_only=True)
class VendorsReview(Record):
    """`nac vendors review`: the registry's review (look-alikes, entries matching nothing), each
    with the lists that name its family, then the list rules whose families cover other
    prefixes than when the rules were added (``since_added``: a new nac or registry)."""

    uncovered: list[ListedLookAlike]
    unmatched: list[ListedUnmatched]
    snapshot: str
    since_added: list[ListChange]

    @classmethod
    def of(
        cls, review: VendorReview, *, lists: Mapping[str, list[FamilyList]], since_added: list[ListChange]
    ) -> VendorsReview:
        return cls(
            uncovered=[
                ListedLookAlike(**_fields(a), lists=lists.get(a.family, [])) for a in review.uncovered
            ],
            unmatched=[
                ListedUnmatched(**_fields(u), lists=lists.get(u.family, [])) for u in review.unmatched
            ],
            snapshot=review.snapshot,
            since_added=since_added,
        )


def _fields(record: Record) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}
