"""How rules, defaults and policy changes are stored: the columns and the checks that every
store shares, the embedded SQLite one (nac/store.py) and PostgreSQL (nac/pg/store.py), so
the two keep one meaning.  Pure: the stores run the SQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Final, Protocol

from nac.errors import NacError, PolicyError
from nac.policy.decide import Defaults, Rule
from nac.policy.file import defaults_table, rule_table
from nac.registry.store import RegistryStore

#: The rules table's columns, in the order :func:`rule_record` gives their values.
RULE_COLUMNS: Final = (
    *("id", "kind", "value", "action", "vlan", "reason", "created", "created_by", "seq"),
    *("clients", "ssids", "port_type", "method", "mode", "starts", "expires", "list"),
)
#: The columns a :class:`Rule` is made from, in the order :func:`rule_from_row` reads them.
RULE_FIELDS: Final = (
    *("id", "kind", "value", "action", "vlan", "reason", "clients", "ssids", "port_type", "method"),
    *("mode", "starts", "expires", "list"),
)


def rule_record(rule: Rule, *, created: str, created_by: str, seq: int) -> tuple[object, ...]:
    """One row of the rules table for ``rule`` (scope lists as JSON text, NULL when empty)."""
    return (
        *(rule.id, rule.kind, rule.value, rule.action, rule.vlan, rule.reason, created, created_by, seq),
        json.dumps(list(rule.clients)) if rule.clients else None,
        json.dumps(list(rule.ssids)) if rule.ssids else None,
        *(rule.port_type, rule.method, rule.mode, rule.starts, rule.expires, rule.banlist),
    )


def rule_from_row(r: Sequence[Any]) -> Rule:
    """The rule of a row read as :data:`RULE_FIELDS`."""
    return Rule(
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
        banlist=r[13],
    )


def decoded_rule_row(row: dict[str, Any]) -> dict[str, Any]:
    """A whole rules row as `nac rules list` shows it: the scope lists decoded."""
    for key in ("clients", "ssids"):
        row[key] = json.loads(row[key]) if row.get(key) else []
    return row


def defaults_json(defaults: Defaults) -> str:
    return json.dumps(asdict(defaults))


def defaults_from_json(text: str | None) -> Defaults:
    return Defaults() if text is None else Defaults(**json.loads(text))


def policy_snapshot(defaults: Defaults, rules: Iterable[Rule]) -> dict[str, Any]:
    """The whole policy as an audit row's ``before``/``after`` records it."""
    return {"defaults": defaults_table(defaults), "rules": [rule_table(r) for r in rules]}


# -- the checks and audit subjects of each change --------------------------------------------


def refuse_taken(existing: Iterable[str], rules: Iterable[Rule]) -> None:
    """A rule's id must be new: PolicyError naming the first one taken."""
    taken = set(existing) & {r.id for r in rules}
    if taken:
        raise PolicyError(f"a rule with id {min(taken)!r} exists already")


def rule_to_remove(rules: Iterable[Rule], rule_id: str) -> Rule:
    found = [r for r in rules if r.id == rule_id]
    if not found:
        raise NacError(f"no rule with id {rule_id!r}")
    return found[0]


def list_rules_to_remove(rules: Iterable[Rule], name: str) -> list[Rule]:
    found = [r for r in rules if r.banlist == name]
    if not found:
        raise NacError(f"no rules of list {name!r}; `nac rules list` shows each rule's list")
    return found


def list_added(rules: Sequence[Rule], evidence: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The audit subject and ``after`` of a ban list's rules added: the list, its document
    (``evidence``) and the rules, so an auditor sees which version a rule came from."""
    subject = f"list {evidence['list']} dated {evidence['date']}"
    return subject, {**evidence, "rules": [rule_table(r) for r in rules]}


def list_removed(name: str, rules: Sequence[Rule]) -> tuple[str, dict[str, Any]]:
    """The audit subject and ``before`` of a ban list's rules removed."""
    return f"list {name}", {"list": name, "rules": [rule_table(r) for r in rules]}


class PolicyStore(RegistryStore, Protocol):
    """What the rules, policy, audit and registry commands need of a store: nac/store.py's Store
    (SQLite) and nac/pg/store.py's PgStore (PostgreSQL) both offer it."""

    path: str

    def close(self) -> None: ...
    def initialized(self) -> bool: ...
    def rules_version(self) -> int: ...
    def defaults(self) -> Defaults: ...
    def rules(self) -> list[Rule]: ...
    def rule_rows(self) -> list[dict[str, Any]]: ...
    def audit_rows(self) -> list[dict[str, Any]]: ...
    def audit_head(self) -> str | None: ...
    def set_policy(
        self,
        defaults: Defaults,
        rules: Iterable[Rule] | None = None,
        *,
        action: str = ...,
        subject: str = ...,
    ) -> None: ...
    def add_rule(self, rule: Rule) -> None: ...
    def remove_rule(self, rule_id: str) -> Rule: ...
    def add_list_rules(self, rules: Sequence[Rule], *, evidence: dict[str, Any]) -> None: ...
    def remove_list_rules(self, name: str) -> list[Rule]: ...
