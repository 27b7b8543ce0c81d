"""Policy files (TOML): defaults, groups and rules, validated with file, line and rule in every
error; and the same policy written back out (`nac policy export`), which reads back the same.

The format is documented in policies/README.md.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from nac.errors import PolicyError
from nac.isotime import canonical_time
from nac.policy.decide import Defaults, Rule, canonical_match
from nac.render import Record
from nac.tomlfile import Locator

_MATCH_KEYS: Final = ("mac", "oui", "vendor", "randomized")
_TEXT_KEYS: Final = ("id", "action", "vlan", "reason", "port_type", "method", "mode", "list")
_LIST_KEYS: Final = ("clients", "ssids")
_TIME_KEYS: Final = ("starts", "expires")
_RULE_KEYS: Final = {*_TEXT_KEYS, *_LIST_KEYS, *_TIME_KEYS, *_MATCH_KEYS}
_DEFAULT_KEYS: Final = {"action", "quarantine_vlan", "monitor", "quarantine_session_timeout"}
#: The order keys are written in (`nac policy export`), match first after the id.
_RULE_ORDER: Final = (
    "id",
    *_MATCH_KEYS,
    "action",
    "vlan",
    "reason",
    *_LIST_KEYS,
    "port_type",
    "method",
    "mode",
    *_TIME_KEYS,
    "list",
)


def load_policy_file(path: str | Path) -> tuple[Defaults, list[Rule]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_policy(text, origin=str(path))


def parse_policy(text: str, *, origin: str) -> tuple[Defaults, list[Rule]]:
    """The file's defaults and rules; a :class:`PolicyError` lists every error in it, one a
    line, each with the file, line and rule, so one run of `nac policy check` finds them all."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # nothing past a syntax error can be read
        raise PolicyError(f"{origin}: {exc}") from None
    loc = Locator(origin, text)
    errors: list[str] = []
    unknown = set(data) - {"defaults", "groups", "rule", "user_groups"}  # user groups: nac/eap/groupfile.py
    if unknown:
        errors.append(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        errors.append(f"{loc.where('defaults')}: must be a table")
        raw_defaults = {}
    errors += [
        f"{loc.where('defaults', key)}: unknown setting" for key in sorted(set(raw_defaults) - _DEFAULT_KEYS)
    ]
    raw_groups = data.get("groups", {})
    if not isinstance(raw_groups, dict):
        errors.append(f"{loc.where('groups')}: must be a table of name = [client names]")
        raw_groups = {}
    groups: dict[str, Any] = {}
    for name, members in raw_groups.items():
        if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
            errors.append(f"{loc.where('groups', name)}: must be a list of client names")
        else:
            groups[name] = members
    defaults = Defaults()
    try:
        known = {key: value for key, value in raw_defaults.items() if key in _DEFAULT_KEYS}
        defaults = Defaults(**known, groups=groups)
    except (PolicyError, TypeError) as exc:
        errors.append(f"{loc.where('defaults')}: {exc}")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        errors.append(f"{origin}: rules are [[rule]] tables")
        raw_rules = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            errors.append(f"{origin}: rules are [[rule]] tables")
            continue
        rule = _rule(raw, i, loc, errors)
        if isinstance(raw.get("id"), str):
            if raw["id"] in seen:
                errors.append(f"{loc.where('rule', 'id', i)}: rule id {raw['id']!r} is used twice")
            seen.add(raw["id"])
        if rule is not None:
            rules.append(rule)
    if errors:
        raise PolicyError("\n".join(errors))
    return defaults, rules


def _rule(raw: Mapping[str, Any], i: int, loc: Locator, errors: list[str]) -> Rule | None:
    """The ``i``-th ``[[rule]]``, or None with every problem it has added to ``errors``."""
    rule_id = raw.get("id")
    named = f"rule {rule_id}: " if isinstance(rule_id, str) else ""
    found: list[str] = []

    def bad(key: str | None, message: str) -> None:
        found.append(f"{loc.where('rule', key, i)}: {'' if message.startswith(named) else named}{message}")

    for key in sorted(set(raw) - _RULE_KEYS):
        bad(key, "unknown setting")
    matches = [key for key in _MATCH_KEYS if key in raw]
    if len(matches) != 1:
        bad(None, f"give exactly one of {', '.join(_MATCH_KEYS)}")
    kind = matches[0] if matches else ""
    value = raw.get(kind, "")
    if kind == "randomized":
        if value is not True:
            bad(kind, "randomized = true")
        value = ""
    elif kind and not isinstance(value, str):
        bad(kind, "must be a string")
    for key in _TEXT_KEYS:
        if key in raw and not isinstance(raw[key], str):
            bad(key, "must be a string")
    for key in _LIST_KEYS:
        if key in raw and (
            not isinstance(raw[key], list) or not all(isinstance(v, str) and v for v in raw[key])
        ):
            bad(key, "must be a list of names")
    if "id" not in raw or "action" not in raw:
        bad(None, "id and action are required")
    times: dict[str, str] = {}
    for key in _TIME_KEYS:
        if key in raw:
            try:
                when = raw[key]
                if isinstance(when, date):  # a TOML date or date-time, unquoted
                    when = when.isoformat()
                times[key] = canonical_time(when, where=f"rule {rule_id} {key}")
            except PolicyError as exc:
                found.append(f"{loc.where('rule', key, i)}: {exc}")
    canonical = ""
    if len(matches) == 1 and isinstance(value, str):
        try:
            canonical = canonical_match(kind, value)
        except PolicyError as exc:
            bad(kind, str(exc))
    if not found:
        try:
            return Rule(
                id=raw["id"],
                kind=kind,
                value=canonical,
                action=raw["action"],
                vlan=raw.get("vlan"),
                reason=raw.get("reason", ""),
                clients=tuple(raw.get("clients", ())),
                ssids=tuple(raw.get("ssids", ())),
                port_type=raw.get("port_type"),
                method=raw.get("method"),
                mode=raw.get("mode"),
                starts=times.get("starts"),
                expires=times.get("expires"),
                banlist=raw.get("list"),
            )
        except PolicyError as exc:
            found.append(f"{loc.where('rule', _culprit(str(exc), raw), i)}: {exc}")
    errors += found
    return None


def _culprit(message: str, raw: Mapping[str, Any]) -> str | None:
    """The setting an error from :class:`Rule` is about, so the message names its line."""
    keys = (
        *("vlan", "action", "port_type", "method", "mode", "reason", "expires", "clients", "ssids"),
        *("list", "id"),
    )
    for key in keys:
        if key in raw and key.replace("_", " ") in message.replace("_", " ").lower():
            return key
    return None


# -- writing ---------------------------------------------------------------------------------


def rule_table(rule: Rule) -> dict[str, Any]:
    """A rule as its ``[[rule]]`` table: only the keys it sets, in a fixed order."""
    table: dict[str, Any] = {"id": rule.id}
    table[rule.kind] = True if rule.kind == "randomized" else rule.value
    table["action"] = rule.action
    for key in ("vlan", "reason", "clients", "ssids", "port_type", "method", "mode", "starts", "expires"):
        value = getattr(rule, key)
        if value:
            table[key] = list(value) if isinstance(value, tuple) else value
    if rule.banlist is not None:  # the list it came from (`nac rules add --list`)
        table["list"] = rule.banlist
    return table


def defaults_table(defaults: Defaults) -> dict[str, Any]:
    table: dict[str, Any] = {"action": defaults.action}
    if defaults.quarantine_vlan is not None:
        table["quarantine_vlan"] = defaults.quarantine_vlan
    if defaults.monitor:
        table["monitor"] = True
    if defaults.quarantine_session_timeout is not None:
        table["quarantine_session_timeout"] = defaults.quarantine_session_timeout
    if defaults.groups:
        table["groups"] = {name: list(members) for name, members in defaults.groups.items()}
    return table


def dump_policy(defaults: Defaults, rules: Iterable[Rule], *, header: str = "") -> str:
    """The policy as a TOML policy file that :func:`parse_policy` reads back to the same."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    if out:
        out.append("")
    out.append("[defaults]")
    table = defaults_table(defaults)
    groups = table.pop("groups", {})
    out += [f"{key} = {_value(value)}" for key, value in table.items()]
    if groups:
        out += ["", "[groups]"]
        out += [f"{_key(name)} = {_value(members)}" for name, members in groups.items()]
    for rule in rules:
        out += ["", "[[rule]]"]
        out += [f"{key} = {_value(value)}" for key, value in rule_table(rule).items()]
    return "\n".join(out) + "\n"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, datetime):
        return value.isoformat()
    # A JSON string is a TOML basic string (both escape with \\, \" and \uXXXX).
    return json.dumps(str(value), ensure_ascii=False)


def _key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() and name.isascii() else _value(name)


# -- comparing -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SettingChange(Record):
    """One setting's value before and after (None: not set)."""

    before: Any
    after: Any


@dataclass(frozen=True, kw_only=True)
class RuleChange(Record):
    """A rule kept by id whose settings differ: the differing ones, in policy-file order."""

    id: str
    fields: dict[str, SettingChange]


@dataclass(frozen=True, kw_only=True)
class GroupChange(Record):
    """A user group kept by name whose settings (vlan, attrs) differ: the differing ones."""

    name: str
    fields: dict[str, SettingChange]


@dataclass(frozen=True, kw_only=True)
class UserGroupsDiff(Record):
    """User groups (as ``[user_groups.NAME]`` tables with their name) added, removed, changed."""

    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[GroupChange]
    unchanged: int


@dataclass(frozen=True, kw_only=True)
class PolicyDiff(Record):
    """`nac policy diff`: rules (as policy-file tables) added and removed, rules changed,
    defaults changed, and how many rules stay as they are."""

    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[RuleChange]
    defaults: dict[str, SettingChange]
    unchanged: int
    #: The user groups' changes; None when the file has none (it leaves them alone).
    user_groups: UserGroupsDiff | None = None


def diff_policies(
    old_defaults: Defaults, old_rules: Iterable[Rule], new_defaults: Defaults, new_rules: Iterable[Rule]
) -> PolicyDiff:
    """What replacing the old policy with the new one changes, rule by rule (keyed by id)."""
    old = {rule.id: rule_table(rule) for rule in old_rules}
    new = {rule.id: rule_table(rule) for rule in new_rules}
    changed = []
    for rule_id in old.keys() & new.keys():
        before, after = old[rule_id], new[rule_id]
        if before != after:
            keys = sorted((before.keys() | after.keys()) - {"id"}, key=_RULE_ORDER.index)
            fields = {
                k: SettingChange(before=before.get(k), after=after.get(k))
                for k in keys
                if before.get(k) != after.get(k)
            }
            changed.append(RuleChange(id=rule_id, fields=fields))
    old_table, new_table = defaults_table(old_defaults), defaults_table(new_defaults)
    return PolicyDiff(
        added=[new[i] for i in new if i not in old],
        removed=[old[i] for i in old if i not in new],
        changed=sorted(changed, key=lambda c: c.id),
        defaults={
            k: SettingChange(before=old_table.get(k), after=new_table.get(k))
            for k in sorted(old_table.keys() | new_table.keys())
            if old_table.get(k) != new_table.get(k)
        },
        unchanged=sum(1 for i in old.keys() & new.keys() if old[i] == new[i]),
    )


def rule_line(text: str, origin: str, rule_id: str | None) -> str:
    """``file, line N: [[rule]] #k`` for the rule with this id (its ``id =`` line)."""
    loc = Locator(origin, text)
    if rule_id is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return origin
        for i, raw in enumerate(data.get("rule", [])):
            if isinstance(raw, dict) and raw.get("id") == rule_id:
                return loc.where("rule", "id", i)
    return origin
