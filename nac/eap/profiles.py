"""Authorization profiles: what an Access-Accept tells the NAS about an 802.1X user once the
vendor policy has admitted the device.  A profile is a VLAN (sent as the RFC 3580 tunnel
attributes, in the client's reply shape) and reply attributes named as in our dictionaries/
files (Session-Timeout, Filter-Id, Cisco-AVPair, Aruba-User-Role ...).  Users and groups carry
them (nac/eap/users.py stores them).  Pure: checked and encoded with pyrad's dictionary.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from pyrad.dictionary import Dictionary
from pyrad.tools import EncodeAttr

from nac.errors import PolicyError
from nac.policy.rules import check_vlan
from nac.radius.packet import MAX_ATTR_VALUE, attribute

#: Attributes a profile may not set: nac writes them itself (the VLAN with --vlan, the EAP
#: exchange, the keys and signatures), and a second copy would contradict or break the reply.
RESERVED: Final = frozenset(
    {
        "Tunnel-Type",
        "Tunnel-Medium-Type",
        "Tunnel-Private-Group-Id",
        "EAP-Message",
        "Message-Authenticator",
        "State",
        "Proxy-State",
        "User-Password",
        "CHAP-Password",
        "Reply-Message",
        "MS-MPPE-Send-Key",
        "MS-MPPE-Recv-Key",
    }
)
#: Value types a profile attribute may have: what pyrad encodes from text.
_TYPES: Final = frozenset({"string", "integer", "ipaddr", "ipv6addr", "octets"})
#: Attributes of one profile: a NAS takes a few dozen reply attributes, not hundreds.
MAX_ATTRIBUTES: Final = 32
_GROUP_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Profile(NamedTuple):
    """A VLAN and reply attributes, as (dictionary name, value text) in the order given."""

    vlan: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return self.vlan is None and not self.attributes

    def describe(self) -> str:
        """`VLAN 100, Filter-Id=staff`: what the profile sends, for history and the CLI."""
        parts = [f"VLAN {self.vlan}"] if self.vlan is not None else []
        parts += [f"{name}={value}" for name, value in self.attributes]
        return ", ".join(parts) or "no attributes"

    def to_json(self) -> dict[str, Any]:
        return {"vlan": self.vlan, "attributes": [list(pair) for pair in self.attributes]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Profile:
        return cls(vlan=raw.get("vlan"), attributes=tuple((n, v) for n, v in raw.get("attributes", ())))


def parse_attribute(text: str) -> tuple[str, str]:
    """`NAME=VALUE` as given to --attr (the value may itself hold `=`, as AV-pairs do)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise PolicyError(f"--attr {text!r}: expected NAME=VALUE, e.g. Filter-Id=staff")
    return name.strip(), value


def check_group(name: str) -> str:
    if not _GROUP_NAME.fullmatch(name):
        raise PolicyError(
            f"group names are 1 to 64 letters, digits, . _ - (starting with one of the first two): {name!r}"
        )
    return name


def group_table(profile: Profile) -> dict[str, Any]:
    """A group's ``[user_groups.NAME]`` table: only the settings it has."""
    table: dict[str, Any] = {}
    if profile.vlan is not None:
        table["vlan"] = profile.vlan
    if profile.attributes:
        table["attrs"] = [f"{name}={value}" for name, value in profile.attributes]
    return table


def snapshot(groups: Mapping[str, Profile]) -> dict[str, dict[str, Any]]:
    """The user groups as an audit row's ``before``/``after`` records them, each as its policy
    file table (nac/eap/groupfile.py)."""
    return {name: group_table(profile) for name, profile in sorted(groups.items())}


def check_profile(dictionary: Dictionary, profile: Profile, *, where: str) -> Profile:
    """The profile itself if every part can be sent; PolicyError naming ``where`` (a user or
    group) and the attribute otherwise, so nothing bad reaches the database."""
    if profile.vlan is not None:
        check_vlan(profile.vlan, where=where)
    if len(profile.attributes) > MAX_ATTRIBUTES:
        raise PolicyError(f"{where}: more than {MAX_ATTRIBUTES} attributes")
    encode_attributes(dictionary, profile.attributes, where=where)
    return profile


def encode_attributes(dictionary: Dictionary, pairs: Iterable[tuple[str, str]], *, where: str) -> bytes:
    """The reply attributes for ``pairs``; a vendor's inside Vendor-Specific (RFC 2865 §5.26)."""
    body = b""
    for name, value in pairs:
        body += _encode(dictionary, name, value, where=where)
    return body


def _encode(dictionary: Dictionary, name: str, value: str, *, where: str) -> bytes:
    found = dictionary.attributes.get(name)
    if found is None:
        raise PolicyError(f"{where}: unknown attribute {name!r} (not in nac's RADIUS dictionaries)")
    if name in RESERVED:
        hint = " (use --vlan)" if name.startswith("Tunnel-") else ""
        raise PolicyError(f"{where}: attribute {name} is set by nac itself{hint}")
    if found.type not in _TYPES or found.has_tag or found.encrypt or found.sub_attributes:
        raise PolicyError(f"{where}: attribute {name} ({found.type}) cannot be set in a profile")
    raw = _value(found, value, where=f"{where}: {name}={value!r}")
    if len(raw) > MAX_ATTR_VALUE - (6 if found.vendor else 0):
        raise PolicyError(f"{where}: {name}: the value is longer than one attribute holds")
    if not found.vendor:
        return attribute(int(found.code), raw)
    vendor = int(dictionary.vendors.GetForward(found.vendor))
    return attribute(26, vendor.to_bytes(4, "big") + attribute(int(found.code), raw))


def _value(found: Any, value: str, *, where: str) -> bytes:
    if found.values and value in found.values.forward:  # a named value: Termination-Action=RADIUS-Request
        return bytes(found.values.forward[value])
    try:
        if found.type == "integer":
            if not (value.isascii() and value.isdigit()):
                names = ", ".join(sorted(found.values.forward)) if found.values else ""
                raise ValueError(f"expected digits{f' or one of {names}' if names else ''}")
            return bytes(EncodeAttr("integer", int(value)))
        if found.type == "string" and not value:
            raise ValueError("an empty string (RFC 2865 §5: attributes carry at least one octet)")
        return bytes(EncodeAttr(found.type, value))
    except (ValueError, TypeError, struct.error) as exc:
        raise PolicyError(f"{where} is not a valid {found.type}: {exc}") from None


def merge(profiles: Sequence[Profile]) -> Profile:
    """One profile from several, the first the strongest: its VLAN, and for each attribute
    name its values (a user's own settings before its groups', in the user's group order)."""
    vlan = next((p.vlan for p in profiles if p.vlan is not None), None)
    taken: set[str] = set()
    attributes: list[tuple[str, str]] = []
    for profile in profiles:
        names = {name for name, _ in profile.attributes}
        attributes += [pair for pair in profile.attributes if pair[0] not in taken]
        taken |= names
    return Profile(vlan=vlan, attributes=tuple(attributes))


class Authorization(NamedTuple):
    """Who an authenticated user is, for the reply and for history: the groups, the profile
    that applies (``profile`` names its sources) and its encoded attributes."""

    user: str
    source: str  # where the user was found: "users" (nac's own table) or "ldap"
    groups: tuple[str, ...]
    profile: str | None  # "staff", "alice", "alice+staff"; None: no profile applies
    settings: Profile
    body: bytes  # the encoded attributes (not the VLAN: that follows the client's shape)

    def describe(self) -> str:
        """`user alice, group staff: profile staff (VLAN 100)`, for history's reason; a
        directory user is `user carol (ldap), ...`."""
        who = f"user {self.user}" if self.source == "users" else f"user {self.user} ({self.source})"
        if self.groups:
            who += f", group{'s' if len(self.groups) > 1 else ''} {', '.join(self.groups)}"
        if self.profile is None:
            return f"{who}: no profile"
        return f"{who}: profile {self.profile} ({self.settings.describe()})"
