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

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple, cast

from nac.errors import InvalidMacError, InvalidPrefixError, PolicyError
from nac.families import Family
from nac.isotime import parse_time
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
#: Re-authentication more often than a minute loads the NAS and nac for nothing; a week is
#: the longest a quarantine should go unchecked.
SESSION_TIMEOUT_MIN: Final = 60
SESSION_TIMEOUT_MAX: Final = 7 * 86400
REASON_MAX: Final = 200  # leaves room in Reply-Message's 253 octets for the rule id
MODES: Final = ("monitor", "enforce")
PORT_TYPES: Final = ("wired", "wireless")
METHODS: Final = ("mab", "dot1x")
#: NAS-Port-Type names (RFC 2865 §5.41, RFC 3580 §3.20) that mean a wired port; every
#: ``Wireless-*`` name (19 Wireless-802.11, 18 Wireless-Other, 22-24, 27-29, 36) means wireless.
WIRED_PORT_TYPES: Final = frozenset({"Ethernet", "Token-Ring", "FDDI"})
#: Called-Station-Id ``AP-MAC:SSID`` (RFC 3580 §3.20): the MAC in any spelling nac/mac.py reads.
_CALLED_STATION_RE: Final = re.compile(
    r"(?:[0-9A-Fa-f]{2}(?:[-:.]?[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{4}[.-][0-9A-Fa-f]{4}[.-][0-9A-Fa-f]{4}|"
    r"[0-9A-Fa-f]{6}-[0-9A-Fa-f]{6}):(.*)",
    re.DOTALL,
)


class Context(NamedTuple):
    """What a conditional rule may look at besides the MAC: built per request by the caller.

    ``port_type`` is the NAS-Port-Type name as the dictionary spells it (``Ethernet``,
    ``Wireless-802.11``), the same text history stores; ``method`` is ``mab`` or ``dot1x``;
    ``now`` is the request's receive time (seconds since the epoch).
    """

    client: str | None = None
    called_station_id: str | None = None
    port_type: str | None = None
    method: str | None = None
    now: float | None = None


NO_CONTEXT: Final = Context()


def ssid_of(called_station_id: str | None) -> str | None:
    """The SSID in a Called-Station-Id of the form ``AP-MAC:SSID``, else ``None``."""
    if not called_station_id:
        return None
    match = _CALLED_STATION_RE.fullmatch(called_station_id)
    return match[1] if match else None


def port_class(port_type: str | None) -> str | None:
    """``wired``, ``wireless`` or ``None`` (unknown or absent) for a NAS-Port-Type name."""
    if port_type is None:
        return None
    if port_type.startswith("Wireless-"):
        return "wireless"
    return "wired" if port_type in WIRED_PORT_TYPES else None


def method_class(method: str | None) -> str | None:
    """History's method (``mab``, ``eap``, ``eap-tls``, ``peap``...) as a scope's ``mab``/``dot1x``."""
    if method is None:
        return None
    return "mab" if method == "mab" else "dot1x"


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
    # Scope: each key given narrows the rule (AND); the values within one key are OR'ed.
    clients: tuple[str, ...] = ()  # NAS client names, or group names from the policy's [groups]
    ssids: tuple[str, ...] = ()
    port_type: str | None = None  # one of PORT_TYPES
    method: str | None = None  # one of METHODS
    mode: str | None = None  # one of MODES; None follows the policy's default (Defaults.monitor)
    starts: str | None = None  # ISO 8601 (canonical: format_time); the rule applies from then
    expires: str | None = None  # and stops applying then, by itself

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
        for name, value, allowed in (
            ("port_type", self.port_type, PORT_TYPES),
            ("method", self.method, METHODS),
            ("mode", self.mode, MODES),
        ):
            if value is not None and value not in allowed:
                raise PolicyError(
                    f"rule {self.id}: {name} must be one of {', '.join(allowed)}, not {value!r}"
                )
        for name, values in (("clients", self.clients), ("ssids", self.ssids)):
            if not isinstance(values, tuple) or not all(isinstance(v, str) and v for v in values):
                raise PolicyError(f"rule {self.id}: {name} must be a list of non-empty names")
        starts, expires = self.window()
        if starts is not None and expires is not None and expires <= starts:
            raise PolicyError(f"rule {self.id}: expires ({self.expires}) is not after starts ({self.starts})")

    def window(self) -> tuple[float | None, float | None]:
        """``starts`` and ``expires`` as epoch seconds (``None`` where open)."""
        where = f"rule {self.id}"
        return (
            parse_time(self.starts, where=f"{where} starts") if self.starts is not None else None,
            parse_time(self.expires, where=f"{where} expires") if self.expires is not None else None,
        )

    @property
    def scoped(self) -> bool:
        return bool(self.clients or self.ssids or self.port_type or self.method)

    @property
    def conditional(self) -> bool:
        """Whether the rule applies to some requests only (scope or a validity window)."""
        return self.scoped or self.starts is not None or self.expires is not None

    def describe(self) -> str:
        text = f"{self.kind} {self.value}"
        if self.kind == "randomized":
            text = "randomized (locally administered) MACs"
        limits = [
            *([f"clients {','.join(self.clients)}"] if self.clients else []),
            *([f"ssids {','.join(self.ssids)}"] if self.ssids else []),
            *([f"{self.port_type} ports"] if self.port_type else []),
            *([self.method] if self.method else []),
            *([f"from {self.starts}"] if self.starts else []),
            *([f"until {self.expires}"] if self.expires else []),
            *([f"{self.mode} mode"] if self.mode else []),
        ]
        return f"{text} ({'; '.join(limits)})" if limits else text


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
    #: Every rule without a ``mode`` of its own (and the default) only logs what it would do,
    #: and the device is admitted: for a first roll-out.
    monitor: bool = False
    #: Named sets of client names (a site, a building) that a rule's ``clients`` may name.
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Seconds a quarantined device may stay before its NAS must authenticate it again
    #: (Session-Timeout with Termination-Action = RADIUS-Request, RFC 2865 §5.27/5.29), so an
    #: isolated device is re-checked even by gear that takes no CoA.  None: not sent.
    quarantine_session_timeout: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, bool):
            raise PolicyError("default monitor must be true or false")
        if not isinstance(self.groups, Mapping):
            raise PolicyError("groups must be a table of name = [client names]")
        groups: dict[str, tuple[str, ...]] = {}
        for name, members in self.groups.items():
            if not _RULE_ID_RE.fullmatch(name):
                raise PolicyError(f"group {name!r}: use letters, digits and . _ : -")
            if not isinstance(members, list | tuple) or not all(isinstance(m, str) and m for m in members):
                raise PolicyError(f"group {name}: must be a list of client names")
            groups[name] = tuple(members)
        object.__setattr__(self, "groups", groups)  # JSON and TOML give lists; keep tuples
        if self.action not in ACTIONS:
            raise PolicyError(f"default action must be one of {', '.join(ACTIONS)}")
        if self.quarantine_vlan is not None:
            check_vlan(self.quarantine_vlan, where="default quarantine_vlan")
        if self.action == "quarantine" and self.quarantine_vlan is None:
            raise PolicyError("default action quarantine needs a quarantine_vlan")
        timeout = self.quarantine_session_timeout
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int)
            or not SESSION_TIMEOUT_MIN <= timeout <= SESSION_TIMEOUT_MAX
        ):
            raise PolicyError(
                "quarantine_session_timeout must be whole seconds "
                f"from {SESSION_TIMEOUT_MIN} to {SESSION_TIMEOUT_MAX}"
            )


MULTICAST: Final = Decision("reject", None, "builtin:multicast", "a multicast MAC is not a station address")

#: At equal specificity the strictest action wins; the lower the number, the stricter.
STRICTNESS: Final = {"reject": 0, "quarantine": 1, "accept": 2}
#: Precedence levels by specificity, for explanations (see :func:`rank`).
LEVELS: Final = ("exact MAC", "36-bit prefix", "28-bit prefix", "24-bit prefix", "vendor", "randomized")


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


#: One lookup-table slot: a plain enforcing decision (the common case, one dict lookup), or
#: the rules for that key in the order they are tried (enforcing ones first).
_Slot = Decision | tuple[_Entry, ...]
_SlotBuilder = list[tuple[tuple[int, ...], _Entry]]


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
            order = (
                type(entry.decision) is Monitored,
                *rank(rule),
                STRICTNESS[rule.action],
                0 if rule.conditional else 1,
                seq,
            )
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
        self._by_family: dict[str, _Slot | None] = {}  # built on first use, per profiled family
        self._positions: dict[str, frozenset[int]] = {}
        self._by_mac = _compile(by_mac)
        self._by_prefix = {bits: _compile(table) for bits, table in by_prefix.items()}
        self._by_entry = _compile(by_entry)
        self._randomized: _Slot | None = _slot(randomized) if randomized else None
        tables = [self._by_mac, self._by_entry, *self._by_prefix.values()]
        #: Every slot one enforcing rule: :meth:`decide` then needs no context and no walk.
        self._simple = self._randomized is None or type(self._randomized) is Decision
        self._simple = self._simple and all(type(s) is Decision for t in tables for s in t.values())

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
        if family is not None or not self._simple:
            return self._decide_in(mac, ctx or NO_CONTEXT, family)
        decision = self._by_mac.get(mac)
        randomized = bool(mac & LOCAL_BIT)
        match = None if randomized else self.registry.lookup(mac)
        if decision is not None:
            return decision, match  # type: ignore[return-value]  # plain slots only here
        if mac & MULTICAST_BIT:
            return MULTICAST, match
        by_prefix = self._by_prefix
        decision = (
            by_prefix[36].get(mac >> 12) or by_prefix[28].get(mac >> 20) or by_prefix[24].get(mac >> 24)
        )
        if decision is not None:
            return decision, match  # type: ignore[return-value]
        if match is not None:
            decision = self._by_entry.get(match.position)
            if decision is not None:
                return decision, match  # type: ignore[return-value]
        if randomized and self._randomized is not None:
            return self._randomized, None  # type: ignore[return-value]
        return self.default, match

    def _decide_in(
        self, mac: int, ctx: Context, family: str | None = None
    ) -> tuple[Decision, VendorMatch | None]:
        """:meth:`decide` when some slot holds conditional or monitor rules, or the device
        is profiled: the first enforcing rule that applies, level by level; a monitor rule
        only when none does."""
        randomized = bool(mac & LOCAL_BIT)
        match = None if randomized else self.registry.lookup(mac)
        decision, watched = _try(self._by_mac.get(mac), ctx, None)
        if decision is not None:
            return decision, match
        if mac & MULTICAST_BIT:
            return MULTICAST, match
        by_prefix = self._by_prefix
        for slot in (
            by_prefix[36].get(mac >> 12),
            by_prefix[28].get(mac >> 20),
            by_prefix[24].get(mac >> 24),
            self._by_entry.get(match.position) if match is not None else self._family_slot(family),
            self._randomized if randomized else None,
        ):
            decision, watched = _try(slot, ctx, watched)
            if decision is not None:
                return decision, match
        if watched is None:
            return self.default, match
        return self._watched(watched), match

    def _family_slot(self, family: str | None) -> _Slot | None:
        """The vendor rules that cover a profiled manufacturer: those whose registry entries
        include any of the family's (``--vendor huawei`` covers a phone profiled as Huawei)."""
        if family is None:
            return None
        try:
            return self._by_family[family]
        except KeyError:
            pass
        positions = self.positions(family)
        entries = [(order, entry) for order, entry, covered in self._vendor_rules if covered & positions]
        slot = _slot(entries) if entries else None
        self._by_family[family] = slot
        return slot

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
        found.sort(
            key=lambda item: (
                *rank(item[0]),
                self.monitors(item[0]),
                STRICTNESS[item[0].action],
                not item[0].conditional,
                order[item[0].id],
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
        return ({36: 1, 28: 2, 24: 3}[parse_prefix(rule.value)[1]], 0)
    if rule.kind == "vendor":
        return (4, -len(normalize_name(rule.value)))
    return (5, 0)


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
    slot: _Slot | None, ctx: Context, watched: Decision | None
) -> tuple[Decision | None, Decision | None]:
    """One slot's enforcing decision for this request (or ``None``), and the first monitor
    decision seen so far."""
    if slot is None:
        return None, watched
    if type(slot) is Decision:
        return slot, watched
    for entry in cast(tuple[_Entry, ...], slot):
        if entry.applies(ctx):
            decision = entry.decision
            if type(decision) is Decision:
                return decision, watched
            # Enforcing rules come first in a slot: from here on only monitor rules apply.
            return None, watched if watched is not None else decision
    return None, watched


def _slot(entries: _SlotBuilder) -> _Slot:
    ordered = [entry for _, entry in sorted(entries, key=lambda item: item[0])]
    chain: list[_Entry] = []
    for entry in ordered:
        if type(entry.decision) is Decision and entry.scope is ANYWHERE:
            if not chain:
                return entry.decision  # the common case: one lookup, no tests
            chain.append(entry)
            break  # rules after an unconditional enforcing one can never decide for this key
        chain.append(entry)
    return tuple(chain)


def _compile(table: Mapping[int, _SlotBuilder]) -> dict[int, _Slot]:
    return {key: _slot(entries) for key, entries in table.items()}




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
