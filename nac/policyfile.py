"""Policy files (TOML): defaults and rules, validated with file, line and rule in every error."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from nac.errors import PolicyError
from nac.policy import Defaults, Rule, canonical_match
from nac.tomlfile import Locator

_MATCH_KEYS: Final = ("mac", "oui", "vendor", "randomized")
_RULE_KEYS: Final = {"id", "action", "vlan", "reason", *_MATCH_KEYS}
_DEFAULT_KEYS: Final = {"action", "quarantine_vlan"}


def load_policy_file(path: str | Path) -> tuple[Defaults, list[Rule]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_policy(text, origin=str(path))


def parse_policy(text: str, *, origin: str) -> tuple[Defaults, list[Rule]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    loc = Locator(origin, text)
    unknown = set(data) - {"defaults", "rule"}
    if unknown:
        raise PolicyError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise PolicyError(f"{loc.where('defaults')}: must be a table")
    for key in sorted(set(raw_defaults) - _DEFAULT_KEYS):
        raise PolicyError(f"{loc.where('defaults', key)}: unknown setting")
    try:
        defaults = Defaults(**raw_defaults)
    except (PolicyError, TypeError) as exc:
        raise PolicyError(f"{loc.where('defaults')}: {exc}") from None
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise PolicyError(f"{origin}: rules are [[rule]] tables")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        rule = _rule(raw, i, loc)
        if rule.id in seen:
            raise PolicyError(f"{loc.where('rule', 'id', i)}: rule id {rule.id!r} is used twice")
        seen.add(rule.id)
        rules.append(rule)
    return defaults, rules


def _rule(raw: Mapping[str, Any], i: int, loc: Locator) -> Rule:
    for key in sorted(set(raw) - _RULE_KEYS):
        raise PolicyError(f"{loc.where('rule', key, i)}: unknown setting")
    matches = [key for key in _MATCH_KEYS if key in raw]
    if len(matches) != 1:
        raise PolicyError(f"{loc.where('rule', None, i)}: give exactly one of {', '.join(_MATCH_KEYS)}")
    kind = matches[0]
    value = raw[kind]
    if kind == "randomized":
        if value is not True:
            raise PolicyError(f"{loc.where('rule', kind, i)}: randomized = true")
        value = ""
    elif not isinstance(value, str):
        raise PolicyError(f"{loc.where('rule', kind, i)}: must be a string")
    for key in ("id", "action", "vlan", "reason"):
        if key in raw and not isinstance(raw[key], str):
            raise PolicyError(f"{loc.where('rule', key, i)}: must be a string")
    if "id" not in raw or "action" not in raw:
        raise PolicyError(f"{loc.where('rule', None, i)}: id and action are required")
    try:
        return Rule(
            id=raw["id"],
            kind=kind,
            value=canonical_match(kind, value),
            action=raw["action"],
            vlan=raw.get("vlan"),
            reason=raw.get("reason", ""),
        )
    except PolicyError as exc:
        raise PolicyError(f"{loc.where('rule', kind, i)}: {exc}") from None
