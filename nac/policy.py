"""Rules and the decision they give for a MAC: pure, precompiled for one dict lookup per step.

Precedence (shared/CONTRACT.md, "Rules"): exact MAC, then the longest matching prefix (36, 28,
24 bits), then vendor, then the randomized-MAC rule, then the policy's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from nac.errors import InvalidMacError, InvalidPrefixError, PolicyError
from nac.families import Family
from nac.mac import LOCAL_BIT, MULTICAST_BIT, format_mac, parse_mac
from nac.oui import PREFIX_BITS, Registry, VendorMatch, format_prefix, normalize_name, parse_prefix

ACTIONS: Final = ("accept", "quarantine", "reject")
KINDS: Final = ("mac", "oui", "vendor", "randomized")
#: IEEE 802.1Q VLAN ids 1..4094 (0 and 4095 are reserved); names are what RFC 3580 §3.31 allows.
VLAN_MIN: Final = 1
VLAN_MAX: Final = 4094
VLAN_NAME_MAX: Final = 32  # Cisco and Aruba cap VLAN names at 32 characters
_VLAN_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_RULE_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
REASON_MAX: Final = 200  # leaves room in Reply-Message's 253 octets for the rule id


class Decision(NamedTuple):
    """What nac answers and why; ``rule`` is the id that lands in history."""

    action: str
    vlan: str | None
    rule: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Rule:
    id: str
    kind: str  # one of KINDS
    value: str  # canonical MAC, prefix text, vendor text, or "" for randomized
    action: str
    vlan: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not _RULE_ID_RE.fullmatch(self.id):
            raise PolicyError(
                f"rule id {self.id!r}: use 1-64 letters, digits and . _ : - (starting with a letter or digit)"
            )
        if self.kind not in KINDS:
            raise PolicyError(f"rule {self.id}: unknown match kind {self.kind!r}")
        if self.action not in ACTIONS:
            raise PolicyError(
                f"rule {self.id}: action must be one of {', '.join(ACTIONS)}, not {self.action!r}"
            )
        if self.vlan is not None:
            check_vlan(self.vlan, where=f"rule {self.id}")
            if self.action == "reject":
                # RFC 3580 §3.31: VLAN attributes belong in an Access-Accept only.
                raise PolicyError(f"rule {self.id}: a reject rule cannot carry a VLAN")
        if len(self.reason) > REASON_MAX:
            raise PolicyError(f"rule {self.id}: reason is longer than {REASON_MAX} characters")

    def describe(self) -> str:
        if self.kind == "randomized":
            return "randomized (locally administered) MACs"
        return f"{self.kind} {self.value}"


def check_vlan(vlan: str, *, where: str) -> None:
    """A VLAN is an id 1..4094 or a name (Tunnel-Private-Group-Id carries either)."""
    if vlan.isascii() and vlan.isdigit():  # str.isdigit alone accepts '²' and '１０'
        if not VLAN_MIN <= int(vlan) <= VLAN_MAX:
            raise PolicyError(f"{where}: VLAN id {vlan} is outside {VLAN_MIN}-{VLAN_MAX}")
    elif not (_VLAN_NAME_RE.fullmatch(vlan) and len(vlan) <= VLAN_NAME_MAX):
        raise PolicyError(
            f"{where}: VLAN {vlan!r} is neither an id 1-4094 nor a name of letters, digits, . _ -"
        )


def canonical_match(kind: str, value: str) -> str:
    """Validate a rule's match value and return the spelling stored and shown."""
    if kind == "mac":
        try:
            return format_mac(parse_mac(value.strip()))
        except InvalidMacError as exc:
            raise PolicyError(str(exc)) from None
    if kind == "oui":
        try:
            return format_prefix(*parse_prefix(value))
        except InvalidPrefixError as exc:
            raise PolicyError(str(exc)) from None
    if kind == "vendor":
        if not normalize_name(value):
            raise PolicyError(f"vendor {value!r} has no letters or digits to match on")
        return value.strip()
    if kind == "randomized":
        return ""
    raise PolicyError(f"unknown match kind {kind!r}")


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """The policy's answer when no rule matches, and the VLAN quarantine uses by default."""

    action: str = "accept"
    quarantine_vlan: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise PolicyError(f"default action must be one of {', '.join(ACTIONS)}")
        if self.quarantine_vlan is not None:
            check_vlan(self.quarantine_vlan, where="default quarantine_vlan")
        if self.action == "quarantine" and self.quarantine_vlan is None:
            raise PolicyError("default action quarantine needs a quarantine_vlan")


MULTICAST: Final = Decision("reject", None, "builtin:multicast", "a multicast MAC is not a station address")


class Policy:
    """Rules compiled against one registry; immutable, swapped whole when rules change."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        registry: Registry,
        defaults: Defaults,
        families: Mapping[str, Family] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.registry = registry
        self.defaults = defaults
        self.families: Mapping[str, Family] = families or {}
        self.snapshot_id = registry.snapshot.id  # written into every history row
        self._by_mac: dict[int, Decision] = {}
        self._by_prefix: dict[int, dict[int, Decision]] = {bits: {} for bits in PREFIX_BITS}
        self._by_entry: dict[int, Decision] = {}
        self._randomized: Decision | None = None
        self.default = Decision(
            defaults.action,
            defaults.quarantine_vlan if defaults.action == "quarantine" else None,
            "default",
            f"no rule matched; the policy's default is {defaults.action}",
        )
        vendor_rules: list[tuple[int, Rule, Decision]] = []
        for rule in self.rules:
            decision = self._decision(rule)
            if rule.kind == "mac":
                self._by_mac.setdefault(parse_mac(rule.value), decision)
            elif rule.kind == "oui":
                prefix, bits = parse_prefix(rule.value)
                self._by_prefix[bits].setdefault(prefix, decision)
            elif rule.kind == "vendor":
                vendor_rules.append((len(normalize_name(rule.value)), rule, decision))
            elif self._randomized is None:
                self._randomized = decision
        # The most specific vendor text wins ("huawei device" over "huawei"); ties: first rule.
        for _, rule, decision in sorted(vendor_rules, key=lambda item: -item[0]):
            for entry in self.covered(rule.value):
                self._by_entry.setdefault(entry.position, decision)

    def _decision(self, rule: Rule) -> Decision:
        vlan = rule.vlan
        if rule.action == "quarantine" and vlan is None:
            vlan = self.defaults.quarantine_vlan
            if vlan is None:
                raise PolicyError(
                    f"rule {rule.id}: quarantine needs --vlan (no default quarantine VLAN is set)"
                )
        reason = rule.reason or _default_reason(rule)
        return Decision(rule.action, vlan, rule.id, reason)

    def covered(self, text: str) -> list[VendorMatch]:
        """Registry entries a vendor rule with this text covers: a known family (``huawei``
        means Huawei's family, see nac/data/families.toml), else organisations with these words."""
        family = self.families.get(normalize_name(text))
        if family is not None:
            return family.covered(self.registry)
        return list(self.registry.matching(text))

    def decide(self, mac: int) -> tuple[Decision, VendorMatch | None]:
        """The decision for a station MAC and the registry entry consulted (if any)."""
        decision = self._by_mac.get(mac)
        randomized = bool(mac & LOCAL_BIT)
        match = None if randomized else self.registry.lookup(mac)
        if decision is not None:
            return decision, match
        if mac & MULTICAST_BIT:
            return MULTICAST, match
        by_prefix = self._by_prefix
        decision = (
            by_prefix[36].get(mac >> 12) or by_prefix[28].get(mac >> 20) or by_prefix[24].get(mac >> 24)
        )
        if decision is not None:
            return decision, match
        if match is not None:
            decision = self._by_entry.get(match.position)
            if decision is not None:
                return decision, match
        if randomized and self._randomized is not None:
            return self._randomized, None
        return self.default, match


def _default_reason(rule: Rule) -> str:
    verb = {"accept": "allowed", "quarantine": "quarantined", "reject": "banned"}[rule.action]
    if rule.kind == "randomized":
        return f"randomized (locally administered) MACs are {verb}"
    if rule.kind == "vendor":
        return f"vendor {rule.value} is {verb}"
    if rule.kind == "oui":
        return f"prefix {rule.value} is {verb}"
    return f"device {rule.value} is {verb}"
