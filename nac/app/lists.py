"""Rules from a ban list (`nac rules add --list NAME`): one vendor rule per family the list
names, each carrying the list's name, stored and audited together (nac/registry/banlists.py
holds the lists; nac/store.py stores the rules)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from nac.errors import PolicyError
from nac.policy.conflicts import find_conflicts
from nac.policy.decide import Rule
from nac.policy.stored import PolicyStore
from nac.registry.banlists import BanList
from nac.registry.families import Family
from nac.registry.ieee import EntryRow, entry_row
from nac.registry.oui import Registry, VendorMatch, normalize_name
from nac.render import Record


@dataclass(frozen=True, kw_only=True)
class ListRule(Record):
    """One rule a list made: the family it enforces and the prefixes that covers now."""

    id: str
    family: str
    prefixes: int


@dataclass(frozen=True, kw_only=True)
class ListRules(Record):
    """`nac rules add --list` (and `nac rules remove --list`): the list, the document version
    the rules came from, and the rules."""

    name: str
    title: str
    date: str
    url: str
    action: str
    rules: list[ListRule]
    out_of_scope: list[str]  # entities the list names that no MAC rule can enforce


@dataclass(frozen=True, kw_only=True)
class Covered(Record):
    """What a list's rule covered when it was made, as its audit row keeps it: the registry
    snapshot, the count and sha256 of the sorted ``PREFIX/BITS`` lines (checkable against
    `nac vendors show` at that snapshot), and the prefixes (``PREFIX/BITS REGISTRY``) by
    organisation, so a later nac or registry can say what the rule gained or lost since."""

    snapshot: str
    count: int
    sha256: str
    prefixes: dict[str, list[str]]

    @classmethod
    def of(cls, entries: Sequence[VendorMatch], *, snapshot: str) -> Covered:
        by_org: dict[str, list[str]] = {}
        for e in entries:
            by_org.setdefault(e.organization, []).append(f"{e.prefix_text}/{e.prefix_bits} {e.registry}")
        return cls(snapshot=snapshot, count=len(entries), sha256=_digest(entries), prefixes=by_org)


def _digest(entries: Iterable[VendorMatch]) -> str:
    lines = sorted(f"{e.prefix_text}/{e.prefix_bits}" for e in entries)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def list_rules(
    banlist: BanList,
    *,
    make_rule: Callable[..., tuple[Rule, int]],
    families: dict[str, Family],
    registry: Registry,
    action: str,
    reason: str = "",
    **options: Any,
) -> list[tuple[Rule, Covered]]:
    """The list's rules (not stored), each with the registry prefixes its family covers.

    ``make_rule`` (the facade's) validates the action, VLAN and scope once, on the first
    family; the other rules are that rule with another family and id."""
    keys = banlist.families
    if not keys:
        raise PolicyError(f"list {banlist.name} names no family with MAC prefixes: nothing to enforce")
    first, _ = make_rule(
        kind="vendor",
        value=keys[0],
        action=action,
        reason=reason or banlist.reason(),
        rule_id=f"{banlist.name}-{keys[0]}",
        **options,
    )
    out = []
    for key in keys:
        rule = replace(first, id=f"{banlist.name}-{key}", value=key, banlist=banlist.name)
        covered = Covered.of(families[key].covered(registry), snapshot=registry.snapshot.id)
        if not covered.count:
            raise PolicyError(
                f"list {banlist.name}: family {key} matches no organisation in the registry "
                f"({registry.snapshot.id}); see `nac vendors show {key}`"
            )
        out.append((rule, covered))
    return out


def add_list(store: PolicyStore, banlist: BanList, made: Sequence[tuple[Rule, Covered]]) -> ListRules:
    """Store the list's rules, refusing a list already in force or a duplicate of a rule."""
    rules = [rule for rule, _ in made]
    present = [r.id for r in store.rules() if r.banlist == banlist.name]
    if present:
        raise PolicyError(
            f"list {banlist.name} has rules already ({', '.join(present)}); "
            f"`nac rules remove --list {banlist.name}` first to make them again"
        )
    defaults = store.defaults()
    for conflict in find_conflicts([*store.rules(), *rules], defaults):
        if conflict.kind == "duplicate" and conflict.rule in rules:
            raise PolicyError(conflict.message(defaults))
    covered = {rule.id: covered.to_json() for rule, covered in made}
    store.add_list_rules(rules, evidence={**banlist.evidence(), "covered": covered})
    return _report(banlist, made, action=rules[0].action)


def removed(banlist: BanList | None, name: str, rules: Sequence[Rule]) -> ListRules:
    """What `nac rules remove --list` removed (the list may since have left the files)."""
    return ListRules(
        name=name,
        title=banlist.title if banlist else "",
        date=banlist.date if banlist else "",
        url=banlist.url if banlist else "",
        action=rules[0].action,
        rules=[ListRule(id=r.id, family=r.value, prefixes=0) for r in rules],
        out_of_scope=[],
    )


def _report(banlist: BanList, made: Sequence[tuple[Rule, Covered]], *, action: str) -> ListRules:
    return ListRules(
        name=banlist.name,
        title=banlist.title,
        date=banlist.date,
        url=banlist.url,
        action=action,
        rules=[ListRule(id=rule.id, family=rule.value, prefixes=covered.count) for rule, covered in made],
        out_of_scope=[e.name for e in banlist.entities if e.out_of_scope is not None],
    )


# -- what a registry import changes for a list's rules ----------------------------------------


@dataclass(frozen=True, kw_only=True)
class ListChange(Record):
    """A list's rule whose family a registry import makes cover other prefixes: the ones it
    gains (a device there is now refused under the list) and the ones it loses."""

    json_keys: ClassVar[Mapping[str, str]] = {"banlist": "list"}

    banlist: str
    rule: str
    family: str
    gained: list[EntryRow]
    lost: list[EntryRow]


def list_changes(
    rules: Sequence[Rule], families: Mapping[str, Family], old: Registry, new: Registry
) -> list[ListChange]:
    """For each rule a ban list made, the prefixes its family covers in ``new`` and not in
    ``old`` (gained), and the reverse (lost); rules whose coverage stays are left out."""
    out = []
    for rule in rules:
        family = families.get(normalize_name(rule.value))
        if rule.banlist is None or rule.kind != "vendor" or family is None:
            continue
        before = {(e.prefix, e.prefix_bits): e for e in family.covered(old)}
        after = {(e.prefix, e.prefix_bits): e for e in family.covered(new)}
        gained = [entry_row(e) for key, e in after.items() if key not in before]
        lost = [entry_row(e) for key, e in before.items() if key not in after]
        if gained or lost:
            out.append(
                ListChange(banlist=rule.banlist, rule=rule.id, family=rule.value, gained=gained, lost=lost)
            )
    return out


def since_added(
    rules: Sequence[Rule],
    audit_rows: Iterable[Mapping[str, Any]],
    families: Mapping[str, Family],
    registry: Registry,
) -> list[ListChange]:
    """For each list rule in force, the prefixes its family covers now and did not when the
    rule was added (its list's latest `rules.add-list` audit row), and the reverse: what a
    new nac (its families and lists ship with it) or a new registry changed.  Rules whose
    audit row recorded no coverage (made by an older nac) are left out."""
    recorded: dict[str, dict[str, Any]] = {}
    for row in audit_rows:
        if row["action"] == "rules.add-list" and row["after"]:
            after = json.loads(row["after"])
            recorded.update(after.get("covered", {}))  # oldest first: the latest wins
    out = []
    for rule in rules:
        family = families.get(normalize_name(rule.value))
        then = recorded.get(rule.id)
        if rule.banlist is None or family is None or not isinstance(then, dict):
            continue
        before = {
            (prefix, int(bits)): EntryRow(
                prefix=prefix, prefix_bits=int(bits), registry=reg, organization=org
            )
            for org, lines in then.get("prefixes", {}).items()
            for line in lines
            for where, _, reg in [line.partition(" ")]
            for prefix, _, bits in [where.partition("/")]
        }
        after = {(e.prefix_text, e.prefix_bits): e for e in family.covered(registry)}
        gained = [entry_row(e) for key, e in after.items() if key not in before]
        lost = [row for key, row in before.items() if key not in after]
        if gained or lost:
            out.append(
                ListChange(banlist=rule.banlist, rule=rule.id, family=rule.value, gained=gained, lost=lost)
            )
    return out


# -- which lists name a family (`nac vendors review`) -----------------------------------------


@dataclass(frozen=True, kw_only=True)
class FamilyList(Record):
    """A ban list naming a family, and the rules of that list for the family in force (none:
    the list is known but not applied), so a decision on the family shows what it changes."""

    json_keys: ClassVar[Mapping[str, str]] = {"banlist": "list"}

    banlist: str
    in_force: bool
    rules: list[str]


def family_lists(banlists: Mapping[str, BanList], rules: Sequence[Rule]) -> dict[str, list[FamilyList]]:
    """By family key: the lists (known, or only in force) that name it, known lists first."""
    in_force: dict[tuple[str, str], list[str]] = {}
    for rule in rules:
        if rule.banlist is not None and rule.kind == "vendor":
            in_force.setdefault((rule.banlist, normalize_name(rule.value)), []).append(rule.id)
    named = {(b.name, key) for b in banlists.values() for key in b.families}
    out: dict[str, list[FamilyList]] = {}
    for name, key in [
        *dict.fromkeys((b.name, k) for b in banlists.values() for k in b.families),
        *(pair for pair in in_force if pair not in named),
    ]:
        ids = in_force.get((name, key), [])
        out.setdefault(key, []).append(FamilyList(banlist=name, in_force=bool(ids), rules=ids))
    return out


# -- `nac stats` by list ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ListTally(Record):
    """Decisions a list's rules made, and the devices refused under the list."""

    json_keys: ClassVar[Mapping[str, str]] = {"banlist": "list"}

    banlist: str
    decisions: int
    rejected: int
    devices_rejected: int
    #: The same by site (the NAS client's group in the policy, else the client's name), most
    #: refused devices first; a device refused at two sites counts at each.
    sites: list[SiteTally]


@dataclass(frozen=True, kw_only=True)
class SiteTally(Record):
    site: str
    decisions: int
    rejected: int
    devices_rejected: int


def site_of(groups: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Client name -> site: the first group of the policy's ``[groups]`` naming the client."""
    out: dict[str, str] = {}
    for group, members in groups.items():
        for client in members:
            out.setdefault(client, group)
    return out


#: Runs SQL written with ``?`` marks over the ``history`` rows and returns them: SQLite's view
#: (nac/helpdesk/queries.py) or PostgreSQL's table (nac/helpdesk/pg.py), the same columns.
HistoryRows = Callable[[str, Sequence[Any]], Iterable[tuple[Any, ...]]]


def list_stats(
    rows: HistoryRows,
    rules: Sequence[Rule],
    *,
    since: float | None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> list[ListTally]:
    """Per list in force, its rules' decisions in history (since ``since``): history rows name
    the rule, the rules name their list.  Lists whose rules decided nothing are listed at 0.
    Each list's ``sites`` group its rows by the NAS client's group in ``groups``."""
    by_rule = {rule.id: rule.banlist for rule in rules if rule.banlist is not None}
    if not by_rule:
        return []
    sites = site_of(groups or {})
    totals = {row[0]: row[1:] for row in _tally(rows, by_rule, {}, since=since, by_site=False)}
    per_site: dict[str, list[SiteTally]] = {}
    for name, site, n, rejected, devices in _tally(rows, by_rule, sites, since=since, by_site=True):
        tally = SiteTally(site=site or "", decisions=n, rejected=int(rejected or 0), devices_rejected=devices)
        per_site.setdefault(name, []).append(tally)
    return [
        ListTally(
            banlist=name,
            decisions=n,
            rejected=int(rejected or 0),
            devices_rejected=devices,
            sites=sorted(per_site.get(name, []), key=lambda t: (-t.devices_rejected, -t.decisions, t.site)),
        )
        for name in dict.fromkeys(by_rule.values())
        for n, rejected, devices in [totals.get(name, (0, 0, 0))]
    ]


def _tally(
    rows: HistoryRows,
    by_rule: Mapping[str, str | None],
    sites: Mapping[str, str],
    *,
    since: float | None,
    by_site: bool,
) -> list[tuple[Any, ...]]:
    """History's rows of ``by_rule``'s rules counted by list (and site): the CASEs carry the
    rule -> list and client -> site maps into SQL, so distinct devices are counted there."""
    cases = " ".join("WHEN ? THEN ?" for _ in by_rule)
    marks = ", ".join("?" for _ in by_rule)
    site_cases = " ".join("WHEN ? THEN ?" for _ in sites)
    site = (f"CASE client {site_cases} ELSE client END" if sites else "client") if by_site else None
    sql = (
        f"SELECT CASE rule {cases} END{', ' + site if site else ''}, COUNT(*),"  # noqa: S608 - only marks
        " SUM(CASE WHEN action = 'reject' THEN 1 ELSE 0 END),"
        " COUNT(DISTINCT CASE WHEN action = 'reject' THEN mac END)"
        f" FROM history WHERE rule IN ({marks}){' AND ts >= ?' if since is not None else ''}"
        f" GROUP BY 1{', 2' if site else ''}"
    )
    params = [
        *(v for pair in by_rule.items() for v in pair),
        *((v for pair in sites.items() for v in pair) if site else ()),
        *by_rule,
        *([since] if since is not None else []),
    ]
    return list(rows(sql, params))
