"""Rules that can never decide: exact duplicates (refused) and shadowed rules (warned about).

Pure: works on rules and the policy's defaults, with no registry.  Two rules conflict only
when they have the same match (kind and value, vendor text compared as normalised); a rule
that a more specific one overrides for some prefixes is precedence at work, not a conflict.

- An *exact duplicate* has the same match, the same scope (clients, SSIDs, port type, method,
  validity window) and the same effective mode as an existing rule: whichever action it has,
  one of the two would be dead, so it is refused, naming the existing rule.
- A rule is *shadowed* when another rule with the same match applies to every request it
  applies to and always comes first (nac/policy/decide.py's precedence): an enforcing rule shadows a
  monitor rule, a stricter action a more lenient one.  Shadowed rules are listed and warned
  about, not refused: a monitor rule left behind after the enforcing rule is added is the usual
  case, and harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from nac.policy.decide import Defaults, Rule, canonical_match, monitors, precedence, scope_of
from nac.registry.oui import normalize_name


class Conflict(NamedTuple):
    kind: str  # "duplicate" or "shadowed"
    rule: Rule  # the rule refused, or the one that never decides
    by: Rule  # the rule it duplicates, or the one that always comes first

    def message(self, defaults: Defaults) -> str:
        if self.kind == "duplicate":
            return (
                f"rule {self.rule.id} duplicates rule {self.by.id}: both match {self.by.describe()}"
                f" with the same scope and mode; change or remove {self.by.id}"
                f" (nac rules remove {self.by.id}) instead of adding a second rule"
            )
        return (
            f"rule {self.rule.id} ({_label(self.rule, self.by, defaults)}) is shadowed by rule"
            f" {self.by.id} ({_label(self.by, self.rule, defaults)}):"
            f" wherever {self.rule.id} applies, {self.by.id} decides"
        )


def find_conflicts(rules: Sequence[Rule], defaults: Defaults) -> list[Conflict]:
    """Every duplicate and shadowed rule among ``rules`` (in the order they were given)."""
    groups: dict[tuple[str, str], list[tuple[int, Rule]]] = {}
    for seq, rule in enumerate(rules):
        value = (
            normalize_name(rule.value) if rule.kind == "vendor" else canonical_match(rule.kind, rule.value)
        )
        groups.setdefault((rule.kind, value), []).append((seq, rule))
    found: list[Conflict] = []
    for members in groups.values():
        for i, (seq_a, a) in enumerate(members):
            for seq_b, b in members[i + 1 :]:
                same_scope = scope_of(a, defaults.groups) == scope_of(b, defaults.groups)
                if same_scope and monitors(a, defaults) == monitors(b, defaults):
                    found.append(Conflict(kind="duplicate", rule=b, by=a))
                elif _covers(a, b, defaults) and _key(a, seq_a, defaults) < _key(b, seq_b, defaults):
                    found.append(Conflict(kind="shadowed", rule=b, by=a))
                elif _covers(b, a, defaults) and _key(b, seq_b, defaults) < _key(a, seq_a, defaults):
                    found.append(Conflict(kind="shadowed", rule=a, by=b))
    return found


def shadowed_by(rules: Sequence[Rule], defaults: Defaults) -> dict[str, str]:
    """Rule id -> the id of a rule that shadows (or duplicates) it, for listings."""
    marks: dict[str, str] = {}
    for conflict in find_conflicts(rules, defaults):
        marks.setdefault(conflict.rule.id, conflict.by.id)
    return marks


def _key(rule: Rule, seq: int, defaults: Defaults) -> tuple[int, ...]:
    """The order nac/policy/decide.py tries rules with the same match in."""
    return precedence(rule, monitored=monitors(rule, defaults), seq=seq)


def _covers(a: Rule, b: Rule, defaults: Defaults) -> bool:
    """Whether ``a`` applies to every request that ``b`` applies to."""
    return scope_of(a, defaults.groups).covers(scope_of(b, defaults.groups))


def _label(rule: Rule, other: Rule, defaults: Defaults) -> str:
    """What sets the rule apart from the other, in a few words."""
    parts = [rule.action]
    if monitors(rule, defaults) != monitors(other, defaults):
        parts.append("monitor" if monitors(rule, defaults) else "enforce")
    if rule.conditional and not other.conditional:
        parts.append("scoped")
    return ", ".join(parts)
