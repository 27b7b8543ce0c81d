"""A policy's rules and defaults, and the request context a conditional rule looks at: their
fields, checked in the constructors so a bad rule is refused with its id (nac/policy/decide.py decides
with them).  Pure, like nac/policy/decide.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from nac.errors import InvalidMacError, InvalidPrefixError, PolicyError
from nac.isotime import parse_time
from nac.registry.mac import format_mac, parse_mac
from nac.registry.oui import format_prefix, normalize_name, parse_prefix

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
#: Called-Station-Id ``AP-MAC:SSID`` (RFC 3580 §3.20): the MAC in any spelling nac/registry/mac.py reads.
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
    #: The ban list the rule was made from (`nac rules add --list`; ``list`` in files and JSON),
    #: so that its rules are removed and audited together.  Not part of the match.
    banlist: str | None = None

    def __post_init__(self) -> None:
        if not _RULE_ID_RE.fullmatch(self.id):
            raise PolicyError(
                f"rule id {self.id!r}: use 1-64 letters, digits and . _ : - (starting with a letter or digit)"
            )
        if self.banlist is not None and not _RULE_ID_RE.fullmatch(self.banlist):
            raise PolicyError(f"rule {self.id}: list {self.banlist!r} is not a list name")
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
