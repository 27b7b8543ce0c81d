"""RADIUS packet codec for the request path: decode and verify requests, encode replies.

pyrad supplies the dictionary (names, numbers, types, named values); the per-packet work is
done here on bytes because pyrad's Packet decodes twice and costs ~190 µs of Python per
request.  Attribute numbers are looked up by name once, when :class:`Codec` is built.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from pyrad.dictionary import Dictionary

from nac.errors import PacketError
from nac.radius.accounting import AccountingCodes
from nac.radius.crypto import HmacMd5

try:  # the C twins of decode, message_authenticator_valid and encode_reply (see setup.py)
    from nac import _speedups
except ImportError:  # pragma: no cover - an install without a C compiler
    _speedups = None  # type: ignore[assignment]

# RFC 2865 §3: "The minimum length is 20 and maximum length is 4096."
MIN_PACKET: Final = 20
MAX_PACKET: Final = 4096
MAX_ATTR_VALUE: Final = 253  # one octet of length, two of header (RFC 2865 §5)
#: FreeRADIUS `max_attributes = 200`: no NAS sends more; an "attribute bomb" of 2,000 empty
#: attributes in 4,096 octets is refused before anything looks at them.
MAX_ATTRIBUTES: Final = 200

ACCESS_REQUEST: Final = 1
ACCESS_ACCEPT: Final = 2
ACCESS_REJECT: Final = 3
ACCOUNTING_REQUEST: Final = 4
ACCOUNTING_RESPONSE: Final = 5
ACCESS_CHALLENGE: Final = 11
STATUS_SERVER: Final = 12
DISCONNECT_REQUEST: Final = 40
DISCONNECT_ACK: Final = 41
DISCONNECT_NAK: Final = 42
COA_REQUEST: Final = 43
COA_ACK: Final = 44
COA_NAK: Final = 45

CODE_NAMES: Final = {
    1: "Access-Request",
    2: "Access-Accept",
    3: "Access-Reject",
    4: "Accounting-Request",
    5: "Accounting-Response",
    11: "Access-Challenge",
    12: "Status-Server",
    40: "Disconnect-Request",
    41: "Disconnect-ACK",
    42: "Disconnect-NAK",
    43: "CoA-Request",
    44: "CoA-ACK",
    45: "CoA-NAK",
    52: "Protocol-Error",
}
#: Requests whose authenticator is MD5 over the packet with 16 zero octets in its place, and
#: whose Message-Authenticator is computed the same way (RFC 2866 §3, RFC 5176 §2.3 and §3.3).
ZERO_AUTH_CODES: Final = frozenset({ACCOUNTING_REQUEST, DISCONNECT_REQUEST, COA_REQUEST})

_HEADER: Final = struct.Struct("!BBH")
_ZERO16: Final = bytes(16)
#: The attributes a reply may carry a role or ACL name in (nac/equipment/reply.py ROLES).
ROLE_ATTRIBUTES: Final = ("Aruba-User-Role", "Filter-Id", "Cisco-AVPair")
# Checked against the dictionary when Codes is built.
_MA_TYPE: Final = 80
_PROXY_STATE: Final = 33


_new_tuple: Final = tuple.__new__


class Request(NamedTuple):
    """A structurally valid packet: header fields and attributes in wire order."""

    code: int
    identifier: int
    authenticator: bytes
    data: bytes  # the packet, trimmed to its Length field
    attributes: list[tuple[int, bytes]]
    ma_offset: int  # where Message-Authenticator starts, -1 if absent
    first: dict[int, bytes]  # each attribute type's first value (the single-valued ones)
    proxy_state: bytes  # every Proxy-State attribute, whole and in order, to copy into the reply


def decode_py(data: bytes) -> Request:
    """Check lengths and split attributes; raise :class:`PacketError` for malformed input.
    :func:`decode` is its C twin when nac._speedups is built (same checks, same errors).

    Octets past the Length field are padding and ignored (RFC 2865 §3).  Any attribute whose
    length is under 2 or runs past the end, and a second Message-Authenticator (RFC 3579 §3.2),
    make the packet malformed.
    """
    size = len(data)
    if size < MIN_PACKET:
        raise PacketError("too-short", f"{size} octets, the minimum is {MIN_PACKET}")
    if size > MAX_PACKET:
        raise PacketError("too-long", f"{size} octets, the maximum is {MAX_PACKET}")
    code, identifier, length = _HEADER.unpack_from(data)
    if length < MIN_PACKET or length > size:
        raise PacketError("bad-length", f"Length field {length}, datagram {size} octets")
    if length < size:
        data = data[:length]
    attributes: list[tuple[int, bytes]] = []
    append = attributes.append
    first: dict[int, bytes] = {}
    proxy_state = b""
    ma_offset = -1
    pos = MIN_PACKET
    while pos < length:
        if pos + 2 > length:
            raise PacketError("bad-attribute", f"attribute header cut short at octet {pos}")
        kind = data[pos]
        end = pos + data[pos + 1]
        if end < pos + 2 or end > length:
            raise PacketError("bad-attribute", f"attribute {kind} at octet {pos} has length {data[pos + 1]}")
        if kind == _MA_TYPE:
            if ma_offset >= 0:
                raise PacketError("bad-attribute", "more than one Message-Authenticator")
            if end - pos != 18:
                raise PacketError("bad-attribute", "Message-Authenticator is not 16 octets")
            ma_offset = pos
        elif kind == _PROXY_STATE:
            proxy_state += data[pos:end]
        value = data[pos + 2 : end]
        append((kind, value))
        if kind not in first:
            first[kind] = value
        pos = end
    if len(attributes) > MAX_ATTRIBUTES:
        raise PacketError(
            "too-many-attributes", f"{len(attributes)} attributes, the limit is {MAX_ATTRIBUTES}"
        )
    # tuple.__new__: a NamedTuple's own __new__ is a Python function, twice the cost.
    fields = (code, identifier, data[4:20], data, attributes, ma_offset, first, proxy_state)
    return _new_tuple(Request, fields)


#: Whether the C twins do the request path's byte work (setup.py builds them when it can).
SPEEDUPS: Final = _speedups is not None
decode: Callable[[bytes], Request] = decode_py
if _speedups is not None:
    _speedups.setup(Request, PacketError)
    decode = _speedups.decode


def message_authenticator_valid(req: Request, key: HmacMd5) -> bool:
    """HMAC-MD5 over the packet with the attribute's value zeroed (RFC 3579 §3.2)."""
    if key.pads:
        return _speedups.message_authenticator_valid(key.pads, req.data, req.ma_offset)
    data = req.data
    pos = req.ma_offset
    if req.code in ZERO_AUTH_CODES:
        expected = key.digest(data[:4], _ZERO16, data[20 : pos + 2], _ZERO16, data[pos + 18 :])
    else:
        expected = key.digest(data[: pos + 2], _ZERO16, data[pos + 18 :])
    return hmac.compare_digest(expected, data[pos + 2 : pos + 18])


def attribute(kind: int, value: bytes) -> bytes:
    """One attribute; a value over 253 octets is a bug in the caller, not the peer's fault."""
    if len(value) > MAX_ATTR_VALUE:
        raise ValueError(f"attribute {kind} value of {len(value)} octets exceeds {MAX_ATTR_VALUE}")
    return bytes((kind, len(value) + 2)) + value


def split_attribute(kind: int, value: bytes) -> bytes:
    """A long value as consecutive attributes of at most 253 octets (EAP-Message, RFC 3579 §3.1)."""
    return b"".join(
        attribute(kind, value[i : i + MAX_ATTR_VALUE]) for i in range(0, len(value) or 1, MAX_ATTR_VALUE)
    )


@dataclass(frozen=True, kw_only=True)
class Codes:
    """Attribute numbers and named values the request path uses, resolved from the dictionary."""

    user_name: int
    user_password: int
    chap_password: int
    nas_ip_address: int
    nas_port: int
    service_type: int
    reply_message: int
    state: int
    proxy_state: int
    called_station_id: int
    calling_station_id: int
    nas_identifier: int
    chap_challenge: int
    nas_port_type: int
    tunnel_type: int
    tunnel_medium_type: int
    tunnel_private_group_id: int
    eap_message: int
    message_authenticator: int
    nas_port_id: int
    nas_ipv6_address: int
    acct_status_type: int
    acct_session_id: int
    session_timeout: int
    termination_action: int
    service_type_call_check: int
    service_type_authorize_only: int  # RFC 5176 §3.1: the NAS re-authorizes after a CoA
    termination_radius_request: int
    tunnel_type_vlan: int
    tunnel_medium_ieee_802: int
    vendor_specific: int
    #: Aruba-Essid-Name (vendor id, type): the SSID ArubaOS controllers send while their
    #: Called-Station-Id, by default, names no SSID.
    aruba_essid_name: tuple[int, int]
    #: Role and ACL attributes a reply may carry (nac/equipment/reply.py), by dictionary name:
    #: (vendor id, type); vendor 0 is a standard attribute.
    role_attributes: dict[str, tuple[int, int]]
    nas_port_type_names: dict[int, str]
    accounting: AccountingCodes

    @classmethod
    def from_dictionary(cls, dictionary: Dictionary) -> Codes:
        def code(name: str) -> int:
            try:
                return int(dictionary[name].code)
            except KeyError:
                raise KeyError(f"attribute {name} is missing from the RADIUS dictionary") from None

        def value(attr: str, name: str) -> int:
            return int.from_bytes(dictionary[attr].values.forward[name], "big")

        def vendor_code(name: str) -> tuple[int, int]:
            found = dictionary.attributes[name]
            vendor = int(dictionary.vendors.GetForward(found.vendor)) if found.vendor else 0
            return vendor, code(name)

        port_types = dictionary["NAS-Port-Type"].values.forward
        codes = cls(
            user_name=code("User-Name"),
            user_password=code("User-Password"),
            chap_password=code("CHAP-Password"),
            nas_ip_address=code("NAS-IP-Address"),
            nas_port=code("NAS-Port"),
            service_type=code("Service-Type"),
            reply_message=code("Reply-Message"),
            state=code("State"),
            proxy_state=code("Proxy-State"),
            called_station_id=code("Called-Station-Id"),
            calling_station_id=code("Calling-Station-Id"),
            nas_identifier=code("NAS-Identifier"),
            chap_challenge=code("CHAP-Challenge"),
            nas_port_type=code("NAS-Port-Type"),
            tunnel_type=code("Tunnel-Type"),
            tunnel_medium_type=code("Tunnel-Medium-Type"),
            tunnel_private_group_id=code("Tunnel-Private-Group-Id"),
            eap_message=code("EAP-Message"),
            message_authenticator=code("Message-Authenticator"),
            nas_port_id=code("NAS-Port-Id"),
            nas_ipv6_address=code("NAS-IPv6-Address"),
            acct_status_type=code("Acct-Status-Type"),
            acct_session_id=code("Acct-Session-Id"),
            session_timeout=code("Session-Timeout"),
            termination_action=code("Termination-Action"),
            service_type_call_check=value("Service-Type", "Call-Check"),
            service_type_authorize_only=value("Service-Type", "Authorize-Only"),
            termination_radius_request=value("Termination-Action", "RADIUS-Request"),
            tunnel_type_vlan=value("Tunnel-Type", "VLAN"),
            tunnel_medium_ieee_802=value("Tunnel-Medium-Type", "IEEE-802"),
            vendor_specific=code("Vendor-Specific"),
            aruba_essid_name=vendor_code("Aruba-Essid-Name"),
            role_attributes={name: vendor_code(name) for name in ROLE_ATTRIBUTES},
            nas_port_type_names={int.from_bytes(v, "big"): k for k, v in port_types.items()},
            accounting=AccountingCodes.from_dictionary(dictionary),
        )
        if (codes.message_authenticator, codes.proxy_state) != (_MA_TYPE, _PROXY_STATE):
            raise ValueError(
                "the dictionary numbers Message-Authenticator or Proxy-State unlike RFC 2865/3579"
            )
        return codes

    def vlan_attributes(self, vlan: str, *, tagged: bool = True) -> bytes:
        """RFC 3580 §3.31 VLAN assignment, all three attributes with tag 0 (RFC 2868 §3.1).
        Untagged, Tunnel-Private-Group-Id has no tag octet: RFC 2868 §3.6 makes it optional on
        that string (a first octet above 0x1F is text); §3.1/§3.2 make it mandatory (0x00 when
        unused) on Tunnel-Type and Tunnel-Medium-Type."""
        tag = b"\x00"
        return (
            attribute(self.tunnel_type, tag + self.tunnel_type_vlan.to_bytes(3, "big"))
            + attribute(self.tunnel_medium_type, tag + self.tunnel_medium_ieee_802.to_bytes(3, "big"))
            + attribute(self.tunnel_private_group_id, (tag if tagged else b"") + vlan.encode())
        )

    def role_attribute(self, name: str, value: bytes) -> bytes:
        """A role or ACL name in the attribute the dictionary calls ``name``: on its own, or
        inside Vendor-Specific for a vendor's attribute (RFC 2865 §5.26)."""
        vendor, kind = self.role_attributes[name]
        if not vendor:
            return attribute(kind, value)
        return attribute(self.vendor_specific, vendor.to_bytes(4, "big") + attribute(kind, value))

    def session_timeout_attributes(self, seconds: int) -> bytes:
        """Session-Timeout with Termination-Action = RADIUS-Request (RFC 2865 §5.27, §5.29):
        when it runs out the NAS authenticates the device again instead of dropping it."""
        return attribute(self.session_timeout, seconds.to_bytes(4, "big")) + attribute(
            self.termination_action, self.termination_radius_request.to_bytes(4, "big")
        )

    def reply_message_attributes(self, text: str) -> bytes:
        """Reply-Message, cut to one attribute's 253 octets on a character boundary."""
        raw = text.encode()
        if len(raw) > MAX_ATTR_VALUE:
            raw = raw[:MAX_ATTR_VALUE].decode(errors="ignore").encode()
        return attribute(self.reply_message, raw)


_MA_PLACEHOLDER: Final = bytes((_MA_TYPE, 18)) + _ZERO16


def encode_reply(
    code: int,
    req: Request,
    body: bytes,
    *,
    key: HmacMd5,
    secret: bytes,
    proxy_state: bytes = b"",
    message_authenticator: bool = True,
) -> bytes:
    """A signed reply: Message-Authenticator first (BlastRADIUS, CVE-2024-3596), then ``body``,
    then the request's Proxy-State attributes unchanged and in order (RFC 2865 §5.33).

    The Message-Authenticator is computed with the request's authenticator in the header, then
    the Response Authenticator over the finished packet (RFC 3579 §3.2, RFC 2865 §3).
    """
    attrs = body + proxy_state
    if not message_authenticator:
        # Accounting-Response (RFC 2866 §4.2): the Response Authenticator alone signs it.
        header = _HEADER.pack(code, req.identifier, MIN_PACKET + len(attrs))
        return header + hashlib.md5(header + req.authenticator + attrs + secret).digest() + attrs
    if key.pads:
        return _speedups.sign_reply(key.pads, secret, code, req.identifier, req.authenticator, attrs)
    length = MIN_PACKET + 18 + len(attrs)
    if length > MAX_PACKET:
        raise ValueError(f"reply of {length} octets exceeds {MAX_PACKET}")
    header = _HEADER.pack(code, req.identifier, length)
    ma = key.digest(header, req.authenticator, _MA_PLACEHOLDER, attrs)
    attrs = bytes((_MA_TYPE, 18)) + ma + attrs
    auth = hashlib.md5(header + req.authenticator + attrs + secret).digest()
    return header + auth + attrs


def encode_request(
    code: int, identifier: int, authenticator: bytes, attrs: bytes, *, key: HmacMd5 | None
) -> bytes:
    """An Access-Request or Status-Server (client side: tests, `nac bench`), with
    Message-Authenticator first when ``key`` is given."""
    if key is None:
        return _HEADER.pack(code, identifier, MIN_PACKET + len(attrs)) + authenticator + attrs
    header = _HEADER.pack(code, identifier, MIN_PACKET + 18 + len(attrs))
    ma = key.digest(header, authenticator, _MA_PLACEHOLDER, attrs)
    return header + authenticator + bytes((_MA_TYPE, 18)) + ma + attrs


# -- Dynamic Authorization (RFC 5176) ----------------------------------------------------

#: The identifying attributes a request carries unless the NAS's profile says otherwise (RFC 5176
#: §3 suggests them): nac/equipment/coa.py names every one a profile may choose;
#: nac/radius/dynauth.py sends them.
DEFAULT_SESSION: Final = (
    "NAS-IP-Address",
    "NAS-Identifier",
    "User-Name",
    "Calling-Station-Id",
    "Acct-Session-Id",
)
#: Cisco's re-authorization command (Cisco IOS-XE "RADIUS Change of Authorization").
REAUTHENTICATE: Final = "reauthenticate"
