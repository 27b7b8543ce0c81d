"""How each kind of equipment takes a decision's VLAN in an Access-Accept: the RFC 3580 tunnel
attributes tagged or not, a role or ACL name beside (or instead of) them, and whether a VLAN
may be a name at all.  Pure: the engine builds a body once per decision and client reply
shape, and caches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from nac.errors import ConfigError
from nac.policy.decide import REASON_MAX, Decision, Policy
from nac.radius.packet import ROLE_ATTRIBUTES

if TYPE_CHECKING:
    from nac.equipment.clients import Client
    from nac.radius.packet import Codes

#: How the VLAN rides: RFC 3580 §3.31 with tag 0 on all three attributes; the same with no tag
#: octet on Tunnel-Private-Group-Id (optional on that string, RFC 2868 §3.6, and how FreeRADIUS
#: sends it when no tag is given: some older gear wants it so); or no tunnel attributes.
VLAN_FORMS: Final = ("rfc3580", "rfc3580-untagged", "none")
#: Where the VLAN's text goes as a role or ACL name, by dictionary name (or nowhere).
ROLES: Final = ("none", *ROLE_ATTRIBUTES)
#: What a role attribute's value starts with: Cisco's named downloadable ACL AV-pair.
_ROLE_PREFIX: Final = {"Cisco-AVPair": b"ACS:CiscoSecure-Defined-ACL="}
#: The refusal of a decision whose VLAN is a name that the client's equipment cannot take.
VLAN_NAME_REFUSED: Final = "builtin:vlan-name-unsupported"


class ReplyShape(NamedTuple):
    """How one kind of equipment takes a VLAN (Client.body_shape spells it into the engine's
    body cache key)."""

    vlan: str = "rfc3580"  # one of VLAN_FORMS
    #: Whether Tunnel-Private-Group-Id may carry a VLAN name (hostapd reads it with atoi()).
    vlan_names: bool = True
    role: str = "none"  # one of ROLES

    @property
    def ids_only(self) -> bool:
        """Whether a VLAN name must be refused: the tunnel attributes carry ids only."""
        return self.vlan != "none" and not self.vlan_names

    def describe(self) -> str:
        """What a VLAN becomes in this shape's Access-Accept, for `nac clients`."""
        parts = []
        if self.vlan != "none":
            tag = "tag 0" if self.vlan == "rfc3580" else "Tunnel-Private-Group-Id untagged"
            parts.append(f"RFC 3580 VLAN ({tag}{'' if self.vlan_names else ', VLAN ids only'})")
        if self.role != "none":
            parts.append(f"{self.role} = the VLAN's name")
        return " + ".join(parts)


def check_reply(shape: ReplyShape, *, where: str) -> ReplyShape:
    """Validate a shape; the ConfigError names ``where`` (a profile, or a client's setting)."""
    if shape.vlan not in VLAN_FORMS:
        raise ConfigError(f"{where}: vlan must be one of {', '.join(VLAN_FORMS)}")
    if not isinstance(shape.vlan_names, bool):
        raise ConfigError(f"{where}: vlan_names must be true or false")
    if shape.role not in ROLES:
        raise ConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
    if shape.vlan == "none" and shape.role == "none":
        # Fail closed: a quarantine would reach this equipment as a plain Access-Accept.
        raise ConfigError(f'{where}: vlan "none" needs a role, or a quarantine would be a plain accept')
    return shape


def vlan_body(codes: Codes, shape: ReplyShape, vlan: str) -> bytes:
    """The attributes that carry ``vlan`` to equipment of ``shape``."""
    body = b""
    if shape.vlan != "none":
        body = codes.vlan_attributes(vlan, tagged=shape.vlan == "rfc3580")
    if shape.role != "none":
        body += codes.role_attribute(shape.role, _ROLE_PREFIX.get(shape.role, b"") + vlan.encode())
    return body


def is_vlan_id(vlan: str) -> bool:
    """An id 1-4094 (nac.policy.check_vlan has let only ids and names through)."""
    return vlan.isascii() and vlan.isdigit()


def refuse_vlan_name(decision: Decision, *, client: str, profile: str) -> Decision:
    """The decision itself, or a reject when its VLAN is a name and the client's equipment
    takes ids only: sent anyway, hostapd reads VLAN 0 and, with dynamic_vlan optional, lets
    the device in untouched.  Failing closed keeps a quarantine from becoming an accept."""
    vlan = decision.vlan
    if vlan is None or is_vlan_id(vlan):
        return decision
    reason = (
        f"{decision.action} VLAN {vlan!r} (rule {decision.rule}) is a name and client {client}"
        f" (profile {profile}) takes VLAN ids only (reply_vlan_names = false)"
    )
    return Decision("reject", None, VLAN_NAME_REFUSED, reason[:REASON_MAX])


#: The reply settings a [[client]] may override, with their key in a profile's `reply` table.
OVERRIDES: Final = {"reply_vlan": "vlan", "reply_vlan_names": "vlan_names", "reply_role": "role"}


def parse_reply(raw: object, *, where: str) -> ReplyShape:
    """A profile's `reply` table (absent: RFC 3580 tagged, names allowed, no role)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: reply is a table")
    unknown = sorted(set(raw) - set(OVERRIDES.values()))
    if unknown:
        raise ConfigError(f"{where} reply: unknown setting(s) {', '.join(unknown)}")
    return check_reply(ReplyShape(**raw), where=f"{where} reply")


def client_reply(shape: ReplyShape, overrides: Mapping[str, Any], *, where: str) -> ReplyShape:
    """A profile's reply shape with a client's ``reply_*`` overrides, checked."""
    changes = {OVERRIDES[key]: value for key, value in overrides.items() if key in OVERRIDES}
    return check_reply(shape._replace(**changes), where=where)


def vlan_name_conflicts(policy: Policy, clients: Iterable[Client]) -> str | None:
    """What `nac serve` warns of at start and when rules change: VLAN names the policy may
    send to clients whose equipment takes VLAN ids only (those decisions become rejects)."""
    strict = [f"{client.name} (profile {client.profile})" for client in clients if client.vlan_ids_only]
    if not strict:
        return None
    default = policy.defaults.quarantine_vlan
    named: dict[str, list[str]] = {}
    for rule in policy.rules:
        vlan = rule.vlan if rule.vlan is not None else default if rule.action == "quarantine" else None
        if vlan is not None and not is_vlan_id(vlan):
            named.setdefault(vlan, []).append(f"rule {rule.id}")
    if default is not None and not is_vlan_id(default):
        named.setdefault(default, []).append("the default quarantine_vlan")
    if not named:
        return None
    vlans = "; ".join(f"{vlan!r} ({', '.join(sources)})" for vlan, sources in sorted(named.items()))
    return (
        f"VLAN names {vlans} cannot be sent to {', '.join(strict)}, whose equipment takes VLAN ids"
        f" only (reply_vlan_names = false): their devices that match are rejected ({VLAN_NAME_REFUSED})"
    )
