"""Rules and the decision they give for a MAC: pure, precompiled for one dict lookup per step.

Precedence, in full (the README and policies/README.md say the same):

1. Specificity: exact MAC, then the longest matching prefix (36, 28, 24 bits), then vendor (the
   longest vendor text first: "huawei device" before "huawei"), then the randomized-MAC rule,
   then the policy's default.  The most specific level with a rule that applies decides.
2. Monitor rules never decide: a monitor rule only records what it would do.  Enforcing rules
   at every level are tried first; a monitor rule is reported only when no enforcing rule
   applies anywhere, and even then the device gets the policy's default.
3. At equal specificity, the strictest action wins: reject, then quarantine, then accept,
   whatever the rules' scopes and order.
4. Then a scoped rule before an unscoped one, then the order the rules were added in (two
   quarantine rules with different VLANs).

A rule may also be *conditional*: limited to clients, SSIDs, a port type or a method (scope),
or to a time window (``starts``/``expires``).  A conditional rule that does not apply to a
request is skipped as if absent.  The request's side of that test is a :class:`Context`, built
by the caller (the core never reads the clock).  A policy whose every slot is one enforcing
rule decides with one dict lookup per level and no context at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple, cast

from nac.errors import PolicyError
from nac.policy.rules import (
    ACTIONS,
    NO_CONTEXT,
    REASON_MAX,
    Context,
    Defaults,
    Rule,
    canonical_match,
    check_vlan,
    method_class,
    port_class,
    ssid_of,
)
from nac.registry.families import Family
from nac.registry.mac import LOCAL_BIT, MULTICAST_BIT, parse_mac
from nac.registry.oui import PREFIX_BITS, Registry, VendorMatch, normalize_name, parse_prefix

# The rules' fields live in nac/policy/rules.py; their names stay importable from here.
__all__ = [
    "ACTIONS",
    "ANYWHERE",
    "LEVELS",
    "MULTICAST",
    "NO_CONTEXT",
    "REASON_MAX",
    "STRICTNESS",
    "Context",
    "Decision",
    "Defaults",
    "Monitored",
    "Policy",
    "Rule",
    "RuleVerdict",
    "Scope",
    "canonical_match",
    "check_vlan",
    "method_class",
    "monitors",
    "port_class",
    "precedence",
    "rank",
    "scope_of",
    "ssid_of",
]

class Decision(NamedTuple):
    """What nac answers and why; ``rule`` is the id that lands in history."""

    action: str
    vlan: str | None
    rule: str
    reason: str


MULTICAST: Final = Decision("reject", None, "builtin:multicast", "a multicast MAC is not a station address")

#: At equal specificity the strictest action wins; the lower the number, the stricter.
STRICTNESS: Final = {"reject": 0, "quarantine": 1, "accept": 2}
#: Precedence levels by specificity, for explanations (see :func:`rank`).
LEVELS: Final = ("exact MAC", "36-bit prefix", "28-bit prefix", "24-bit prefix", "vendor", "randomized")
_PREFIX_LEVEL: Final = {36: 1, 28: 2, 24: 3}


class Monitored(Decision):
    """A monitor rule's decision ("monitor: would reject ..."): recorded, never the answer by
    itself while an enforcing rule applies (see the module's precedence)."""

    __slots__ = ()


class Scope(NamedTuple):
    """Where and when a rule applies (None: anywhere, any time); built by :func:`scope_of`."""

    clients: frozenset[str] | None
    ssids: frozenset[str] | None
    port_type: str | None
    method: str | None
    starts: float | None
    expires: float | None

    def skipped(self, ctx: Context) -> str | None:
        """Why the rule does not apply to this request (``None``: it applies)."""
        now = ctx.now
        if self.starts is not None and (now is None or now < self.starts):
            return "its validity window has not started"
        if self.expires is not None and (now is None or now >= self.expires):
            return "it has expired"
        if self.clients is not None and ctx.client not in self.clients:
            return f"it is limited to clients {', '.join(sorted(self.clients))}"
        if self.ssids is not None and ssid_of(ctx.called_station_id) not in self.ssids:
            return f"it is limited to SSIDs {', '.join(sorted(self.ssids))}"
        if self.port_type is not None and port_class(ctx.port_type) != self.port_type:
            return f"it is limited to {self.port_type} ports"
        if self.method is not None and ctx.method != self.method:
            return f"it is limited to {self.method}"
        return None

    def covers(self, other: Scope) -> bool:
        """Whether this scope holds every request ``other`` holds."""
        return (
            (self.clients is None or (other.clients is not None and other.clients <= self.clients))
            and (self.ssids is None or (other.ssids is not None and other.ssids <= self.ssids))
            and self.port_type in (None, other.port_type)
            and self.method in (None, other.method)
            and (self.starts is None or (other.starts is not None and self.starts <= other.starts))
            and (self.expires is None or (other.expires is not None and self.expires >= other.expires))
        )


ANYWHERE: Final = Scope(None, None, None, None, None, None)


def scope_of(rule: Rule, groups: Mapping[str, tuple[str, ...]]) -> Scope:
    """A rule's scope, its client group names expanded to client names."""
    clients: frozenset[str] | None = None
    if rule.clients:
        clients = frozenset(name for text in rule.clients for name in groups.get(text, (text,)))
    starts, expires = rule.window()
    return Scope(
        clients, frozenset(rule.ssids) if rule.ssids else None, rule.port_type, rule.method, starts, expires
    )


def monitors(rule: Rule, defaults: Defaults) -> bool:
    """Whether the rule only records what it would do (its own mode, else the default's)."""
    return rule.mode == "monitor" or (rule.mode is None and defaults.monitor)


class _Entry(NamedTuple):
    """A rule compiled: its decision and where it applies."""

    decision: Decision
    scope: Scope

    def applies(self, ctx: Context) -> bool:
        return self.scope is ANYWHERE or self.scope.skipped(ctx) is None


class _Chain(NamedTuple):
    """The rules for one key of one level, in the order they are tried (enforcing ones first),
    when they are not a single enforcing rule; ``level`` is the index into :data:`LEVELS`."""

    level: int
    entries: tuple[_Entry, ...]


#: One lookup-table slot: a plain enforcing decision (the common case, one dict lookup), or
#: the rules to try in turn.
_Slot = Decision | _Chain
_SlotBuilder = list[tuple[tuple[int, ...], _Entry]]
#: A level of :meth:`Policy.decide`: its slot for a key, or ``None``.
_Level = Callable[[Any], _Slot | None]
#: Stands for a level already tried.
_TRIED: Final[_Level] = {}.get


class RuleVerdict(NamedTuple):
    """One rule that matched a MAC, and what became of it (``nac check``)."""

    rule: Rule
    decided: bool
    why: str


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
        #: Whether any rule is conditional: only then does :meth:`decide` need a context.
        self.contextual = any(rule.conditional for rule in self.rules)
        default = Decision(
            defaults.action,
            defaults.quarantine_vlan if defaults.action == "quarantine" else None,
            "default",
            f"no rule matched; the policy's default is {defaults.action}",
        )
        self.default = Decision(*_monitored(default)) if defaults.monitor else default
        by_mac: dict[int, _SlotBuilder] = {}
        by_prefix: dict[int, dict[int, _SlotBuilder]] = {bits: {} for bits in PREFIX_BITS}
        by_entry: dict[int, _SlotBuilder] = {}
        randomized: _SlotBuilder = []
        #: Vendor rules with the registry entries each covers, for profiled devices.
        self._vendor_rules: list[tuple[tuple[int, ...], _Entry, frozenset[int]]] = []
        self._entries = [self._entry(rule) for rule in self.rules]
        for seq, (rule, entry) in enumerate(zip(self.rules, self._entries, strict=True)):
            order = precedence(rule, monitored=type(entry.decision) is Monitored, seq=seq)
            if rule.kind == "mac":
                by_mac.setdefault(parse_mac(rule.value), []).append((order, entry))
            elif rule.kind == "oui":
                prefix, bits = parse_prefix(rule.value)
                by_prefix[bits].setdefault(prefix, []).append((order, entry))
            elif rule.kind == "vendor":
                positions = frozenset(covered.position for covered in self.covered(rule.value))
                for position in positions:
                    by_entry.setdefault(position, []).append((order, entry))
                self._vendor_rules.append((order, entry, positions))
            else:
                randomized.append((order, entry))
        #: The levels for a profiled device without a registry entry, built on first use.
        self._by_family: dict[str, tuple[_Level, ...]] = {}
        self._positions: dict[str, frozenset[int]] = {}
        self._by_mac = _compile(by_mac, 0)
        by_bits = {bits: _compile(table, _PREFIX_LEVEL[bits]) for bits, table in by_prefix.items()}
        self._by_entry = _compile(by_entry, 4)
        #: The levels' lookups in :meth:`decide`'s order (a dict's ``get`` each); the
        #: randomized rules sit under the local bit, so that every level is one lookup.
        self._levels: tuple[_Level, ...] = (
            self._by_mac.get,
            by_bits[36].get,
            by_bits[28].get,
            by_bits[24].get,
            self._by_entry.get,
            {LOCAL_BIT: _slot(randomized, 5)}.get if randomized else _TRIED,
        )

    def _entry(self, rule: Rule) -> _Entry:
        scope = scope_of(rule, self.defaults.groups)
        return _Entry(self._decision(rule), ANYWHERE if scope == ANYWHERE else scope)

    def _decision(self, rule: Rule) -> Decision:
        vlan = rule.vlan
        if rule.action == "quarantine" and vlan is None:
            vlan = self.defaults.quarantine_vlan
            if vlan is None:
                raise PolicyError(
                    f"rule {rule.id}: quarantine needs a VLAN (--vlan, or a default quarantine_vlan)"
                )
        reason = rule.reason or _default_reason(rule)
        decision = Decision(rule.action, vlan, rule.id, reason)
        return _monitored(decision) if self.monitors(rule) else decision

    def monitors(self, rule: Rule) -> bool:
        """Whether the rule only records what it would do (its own mode, else the default's)."""
        return monitors(rule, self.defaults)

    def covered(self, text: str) -> list[VendorMatch]:
        """Registry entries a vendor rule with this text covers: a known family (``huawei``
        means Huawei's family, see nac/data/families.toml), else organisations with these words."""
        family = self.families.get(normalize_name(text))
        if family is not None:
            return family.covered(self.registry)
        return list(self.registry.matching(text))

    def decide(
        self, mac: int, ctx: Context | None = None, family: str | None = None
    ) -> tuple[Decision, VendorMatch | None]:
        """The decision for a station MAC and the registry entry consulted (if any).

        ``ctx`` matters only when some rule is conditional (:attr:`contextual`); without one,
        a scoped rule does not apply, nor does a rule with a validity window.  ``family`` is
        the device's profiled manufacturer (from DHCP): vendor rules apply to it when the MAC
        carries no registry entry of its own (randomized, or unregistered).
        """
        local = mac & LOCAL_BIT
        match = None if local else self.registry.lookup(mac)
        levels = self._levels if match is not None or family is None else self._family_levels(family)
        watched = None
        while True:
            by_mac, by_36, by_28, by_24, by_vendor, by_randomized = levels
            # The precedence's levels (the module's rule 1), the most specific first; a
            # multicast MAC is refused after the exact-MAC rules.
            slot = (
                by_mac(mac)
                or (MULTICAST if mac & MULTICAST_BIT else None)
                or by_36(mac >> 12)
                or by_28(mac >> 20)
                or by_24(mac >> 24)
                or by_vendor(match.position if match is not None else family)
                or (by_randomized(local) if local else None)
            )
            if type(slot) is Decision:
                return slot, match
            if slot is None:
                break
            # Conditional or monitor rules: the first enforcing one that applies decides;
            # when none does, the levels below this one are tried.
            chain = cast(_Chain, slot)
            decision, watched = _try(chain.entries, ctx or NO_CONTEXT, watched)
            if decision is not None:
                return decision, match
            levels = (_TRIED,) * (chain.level + 1) + levels[chain.level + 1 :]
        if watched is None:
            return self.default, match
        return self._watched(watched), match

    def _family_levels(self, family: str) -> tuple[_Level, ...]:
        """The levels for a profiled device whose MAC has no registry entry: the vendor level
        holds the vendor rules whose registry entries include any of the family's
        (``--vendor huawei`` covers a phone profiled as Huawei), under the family's name."""
        try:
            return self._by_family[family]
        except KeyError:
            pass
        positions = self.positions(family)
        entries = [(order, entry) for order, entry, covered in self._vendor_rules if covered & positions]
        by_vendor = {family: _slot(entries, 4)}.get if entries else _TRIED
        levels = (*self._levels[:4], by_vendor, self._levels[5])
        self._by_family[family] = levels
        return levels

    def positions(self, family: str) -> frozenset[int]:
        """The registry entries of a vendor family (or, for a name that is no family, of the
        organisations with that name)."""
        try:
            return self._positions[family]
        except KeyError:
            found = frozenset(m.position for m in self.covered(family))
            self._positions[family] = found
            return found

    def has_mac_rule(self, mac: int) -> bool:
        """Whether an exact-MAC rule names this device (an operator's exception stands)."""
        return mac in self._by_mac

    def spoofed(self, match: VendorMatch | None, family: str | None) -> bool:
        """Whether a profile contradicts the MAC's registry entry: an OUI of one maker, DHCP
        evidence of another (a forged MAC)."""
        return match is not None and family is not None and match.position not in self.positions(family)

    def _watched(self, watched: Decision) -> Decision:
        """The answer when only a monitor rule applied: the policy's default, which for the
        usual accept default is the monitor rule's own record of what it would do."""
        default = self.default
        if default.action == "accept":
            return Decision(*watched)
        return default._replace(reason=f"{default.reason}; {watched.reason}")

    # -- explanations (off the request path) -------------------------------------------------

    def matches(self, rule: Rule, mac: int, match: VendorMatch | None, family: str | None = None) -> bool:
        """Whether the rule's match (not its scope) covers this MAC (with ``family``, its
        profiled maker, for a MAC without a registry entry)."""
        if rule.kind == "mac":
            return parse_mac(rule.value) == mac
        if rule.kind == "oui":
            prefix, bits = parse_prefix(rule.value)
            return mac >> (48 - bits) == prefix
        if rule.kind == "vendor":
            covered = {m.position for m in self.covered(rule.value)}
            if match is not None:
                return match.position in covered
            return family is not None and not covered.isdisjoint(self.positions(family))
        return bool(mac & LOCAL_BIT)

    def explain(self, mac: int, ctx: Context | None = None, family: str | None = None) -> list[RuleVerdict]:
        """Every rule whose match covers ``mac``, in precedence order, with the one that
        decided and why each other one lost."""
        ctx = ctx or NO_CONTEXT
        decision, match = self.decide(mac, ctx, family)
        found = [
            (rule, entry)
            for rule, entry in zip(self.rules, self._entries, strict=True)
            if self.matches(rule, mac, match, family)
        ]
        by_id = {rule.id: rule for rule, _ in found}
        winner = by_id.get(decision.rule)
        order = {rule.id: i for i, rule in enumerate(self.rules)}
        # Level by level, and within a level in the order the rules are tried.
        found.sort(
            key=lambda item: (
                rank(item[0]),
                precedence(item[0], monitored=self.monitors(item[0]), seq=order[item[0].id]),
            )
        )
        verdicts = []
        for rule, entry in found:
            if rule is winner:
                verdicts.append(RuleVerdict(rule=rule, decided=True, why=decision.reason))
                continue
            skipped = entry.scope.skipped(ctx)
            if skipped is not None:
                why = f"does not apply: {skipped}"
            elif mac & MULTICAST_BIT and rule.kind != "mac":
                why = "a multicast MAC is refused before prefix, vendor and randomized rules"
            elif self.monitors(rule):
                why = "monitor mode: records what it would do, never weakens an enforcing rule"
                if winner is None:
                    why = f"{why}; no enforcing rule applied, so the policy's default decided"
            elif winner is None:
                why = "lost to an earlier rule"
            else:
                why = _lost_to(rule, winner)
            verdicts.append(RuleVerdict(rule=rule, decided=False, why=why))
        return verdicts


def rank(rule: Rule) -> tuple[int, int]:
    """A rule's specificity, lower first: its level (index into :data:`LEVELS`) and, among
    vendor rules, the longer text first."""
    if rule.kind == "mac":
        return (0, 0)
    if rule.kind == "oui":
        return (_PREFIX_LEVEL[parse_prefix(rule.value)[1]], 0)
    if rule.kind == "vendor":
        return (4, -len(normalize_name(rule.value)))
    return (5, 0)


def precedence(rule: Rule, *, monitored: bool, seq: int) -> tuple[int, ...]:
    """Where a rule comes in the order rules are tried (the module's precedence, rules 2-4):
    enforcing before monitor, then the more specific, the stricter, the scoped, and the one
    added first (``seq``, its place in the policy)."""
    return (monitored, *rank(rule), STRICTNESS[rule.action], 0 if rule.conditional else 1, seq)


def _lost_to(rule: Rule, winner: Rule) -> str:
    if rank(winner) < rank(rule):
        level = LEVELS[rank(winner)[0]]
        if rank(winner)[0] == rank(rule)[0]:
            return f"rule {winner.id} names the vendor more precisely"
        return f"rule {winner.id} is more specific ({level} before {LEVELS[rank(rule)[0]]})"
    if STRICTNESS[winner.action] < STRICTNESS[rule.action]:
        return f"at the same specificity, rule {winner.id}'s {winner.action} is stricter"
    if winner.conditional and not rule.conditional:
        return f"at the same specificity and action, the scoped rule {winner.id} comes first"
    return f"at the same specificity and action, rule {winner.id} was added first"


def _try(
    entries: tuple[_Entry, ...], ctx: Context, watched: Decision | None
) -> tuple[Decision | None, Decision | None]:
    """The first enforcing decision among ``entries`` that applies to this request (or
    ``None``), and the first monitor decision seen so far."""
    for entry in entries:
        if entry.applies(ctx):
            decision = entry.decision
            if type(decision) is Decision:
                return decision, watched
            # Enforcing rules come first in a chain: from here on only monitor rules apply.
            return None, watched if watched is not None else decision
    return None, watched


def _slot(entries: _SlotBuilder, level: int) -> _Slot:
    ordered = [entry for _, entry in sorted(entries, key=lambda item: item[0])]
    chain: list[_Entry] = []
    for entry in ordered:
        if type(entry.decision) is Decision and entry.scope is ANYWHERE:
            if not chain:
                return entry.decision  # the common case: one lookup, no tests
            chain.append(entry)
            break  # rules after an unconditional enforcing one can never decide for this key
        chain.append(entry)
    return _Chain(level, tuple(chain))


def _compile(table: Mapping[int, _SlotBuilder], level: int) -> dict[int, _Slot]:
    return {key: _slot(entries, level) for key, entries in table.items()}


def _monitored(decision: Decision) -> Monitored:
    """Monitor mode: admit, and say in history what enforcing would have done."""
    would = decision.action + (f" vlan {decision.vlan}" if decision.vlan else "")
    return Monitored(
        "accept", None, decision.rule, f"monitor: would {would} (rule {decision.rule}): {decision.reason}"
    )


def _default_reason(rule: Rule) -> str:
    verb = {"accept": "allowed", "quarantine": "quarantined", "reject": "banned"}[rule.action]
    if rule.kind == "randomized":
        return f"randomized (locally administered) MACs are {verb}"
    if rule.kind == "vendor":
        return f"vendor {rule.value} is {verb}"
    if rule.kind == "oui":
        return f"prefix {rule.value} is {verb}"
    return f"device {rule.value} is {verb}"
