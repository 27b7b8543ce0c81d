"""Rules from a ban list (`nac rules add --list NAME`): one vendor rule per family the list
names, each carrying the list's name, stored and audited together (nac/registry/banlists.py
holds the lists; nac/store.py stores the rules)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from nac.errors import PolicyError
from nac.history import reader as history_reader
from nac.policy.conflicts import find_conflicts
from nac.policy.decide import Rule
from nac.registry.banlists import BanList
from nac.registry.families import Family
from nac.registry.ieee import EntryRow, entry_row
from nac.registry.oui import Registry, normalize_name
from nac.render import Record
from nac.store import Store


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


def list_rules(
    banlist: BanList,
    *,
    make_rule: Callable[..., tuple[Rule, int]],
    families: dict[str, Family],
    registry: Registry,
    action: str,
    reason: str = "",
    **options: Any,
) -> list[tuple[Rule, int]]:
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
        covered = len(families[key].covered(registry))
        if not covered:
            raise PolicyError(
                f"list {banlist.name}: family {key} matches no organisation in the registry "
                f"({registry.snapshot.id}); see `nac vendors show {key}`"
            )
        out.append((rule, covered))
    return out


def add_list(store: Store, banlist: BanList, made: Sequence[tuple[Rule, int]]) -> ListRules:
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
    store.add_list_rules(rules, evidence=banlist.evidence())
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


def _report(banlist: BanList, made: Sequence[tuple[Rule, int]], *, action: str) -> ListRules:
    return ListRules(
        name=banlist.name,
        title=banlist.title,
        date=banlist.date,
        url=banlist.url,
        action=action,
        rules=[ListRule(id=rule.id, family=rule.value, prefixes=covered) for rule, covered in made],
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


# -- `nac stats` by list ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ListTally(Record):
    """Decisions a list's rules made, and the devices refused under the list."""

    json_keys: ClassVar[Mapping[str, str]] = {"banlist": "list"}

    banlist: str
    decisions: int
    rejected: int
    devices_rejected: int


def list_stats(conn: sqlite3.Connection, rules: Sequence[Rule], *, since: float | None) -> list[ListTally]:
    """Per list in force, its rules' decisions in history (since ``since``): history rows name
    the rule, the rules name their list.  Lists whose rules decided nothing are listed at 0."""
    by_rule = {rule.id: rule.banlist for rule in rules if rule.banlist is not None}
    if not by_rule:
        return []
    cases = " ".join("WHEN ? THEN ?" for _ in by_rule)
    marks = ", ".join("?" for _ in by_rule)
    sql = (
        f"SELECT CASE rule {cases} END, COUNT(*), SUM(action = 'reject'),"  # noqa: S608 - only marks
        " COUNT(DISTINCT CASE WHEN action = 'reject' THEN mac END)"
        f" FROM history WHERE rule IN ({marks}){' AND ts >= ?' if since is not None else ''} GROUP BY 1"
    )
    params = [
        *(v for pair in by_rule.items() for v in pair),
        *by_rule,
        *([since] if since is not None else []),
    ]
    found = {row[0]: row[1:] for row in history_reader.execute(conn, sql, params)}
    return [
        ListTally(banlist=name, decisions=n, rejected=int(rejected or 0), devices_rejected=devices)
        for name in dict.fromkeys(by_rule.values())
        for n, rejected, devices in [found.get(name, (0, 0, 0))]
    ]
