"""The requests nac bench sends: a fixed mix of MACs and the MAB Access-Request built from each.

Every request is what a Cisco switch sends for MAC Authentication Bypass::

    Message-Authenticator (first; HMAC-MD5, RFC 3579 §3.2)
    User-Name = User-Password (hidden, RFC 2865 §5.2) = Calling-Station-Id = the MAC
    Service-Type = Call-Check, NAS-IP-Address = 127.0.0.1, NAS-Port-Type = Ethernet, NAS-Port

The attribute numbers come from the RADIUS dictionary by name, resolved once per process.
:func:`make_template` precomputes everything that does not depend on the Request
Authenticator, so the send loop (nac/bench/loop.py) only hides the password and signs.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Final

from nac.radius.crypto import HmacMd5

__all__ = [
    "ACCESS_REQUEST",
    "SPELLINGS",
    "ZERO16",
    "Numbers",
    "Template",
    "attribute_numbers",
    "build_request",
    "default_macs",
    "format_mac",
    "make_template",
    "nas_port_for",
]

ACCESS_REQUEST: Final = 1
#: The Message-Authenticator's value while it is computed (RFC 3579 §3.2).
ZERO16: Final = bytes(16)

# --------------------------------------------------------------------------- MAC mix

#: The six ways switches spell a MAC in User-Name / Calling-Station-Id.
SPELLINGS: Final = (
    "ietf",  # 00-10-A4-23-19-C0  (RFC 3580 §3.21, Cisco Calling-Station-Id)
    "colon",  # 00:10:a4:23:19:c0
    "bare",  # 0010a42319c0       (Cisco MAB User-Name)
    "cisco",  # 0010.a423.19c0
    "huawei",  # 0010-a423-19c0
    "hp",  # 0010a4-2319c0       (HP/Aruba ProCurve)
)

# Eleven prefixes (prime, so i % 11 and i % 6 visit every OUI in every spelling).
# The first octet of a locally administered address has bit 0x02 set; the next two octets
# of those vary per MAC, like randomised ("private") Wi-Fi/phone addresses.
_OUIS: Final = (
    (0x00, 0x10, 0xA4),  # Xircom: the quarantine prefix of the reference policy (VLAN 666)
    (0x00, 0xE0, 0xFC),  # Huawei
    (0x3C, 0x22, 0xFB),  # Apple
    (0x28, 0x6E, 0xD4),  # Huawei
    (0x00, 0x00, 0x0C),  # Cisco
    (0x02, None, None),  # locally administered
    (0x00, 0x1B, 0x21),  # Intel
    (0x00, 0x18, 0x82),  # Huawei
    (0xF0, 0x18, 0x98),  # Apple
    (0x7A, None, None),  # locally administered (randomised MAC)
    (0xA4, 0xBB, 0x6D),  # Dell
)


def format_mac(octets: bytes, spelling: str) -> str:
    """Spell six octets the way ``spelling`` (one of :data:`SPELLINGS`) does."""
    if len(octets) != 6:
        raise ValueError("a MAC address is 6 octets")
    h = octets.hex()
    if spelling == "ietf":
        return "-".join(h[i : i + 2] for i in range(0, 12, 2)).upper()
    if spelling == "colon":
        return ":".join(h[i : i + 2] for i in range(0, 12, 2))
    if spelling == "bare":
        return h
    if spelling == "cisco":
        return f"{h[0:4]}.{h[4:8]}.{h[8:12]}"
    if spelling == "huawei":
        return f"{h[0:4]}-{h[4:8]}-{h[8:12]}"
    if spelling == "hp":
        return f"{h[0:6]}-{h[6:12]}"
    raise ValueError(f"unknown MAC spelling {spelling!r}")


def default_macs(n: int) -> list[str]:
    """``n`` distinct-looking MACs: a fixed mix of allowed, quarantined and banned prefixes.

    Deterministic.  Entry ``i`` uses prefix ``i % 11`` and spelling ``i % 6``, so any 66
    consecutive entries hold every prefix in every spelling; the low octets differ per entry.
    """
    macs: list[str] = []
    for i in range(n):
        first, second, third = _OUIS[i % len(_OUIS)]
        x = (i * 0x9E3779B97F4A7C15 + 0x2545F491) & 0xFFFFFFFFFFFF  # spread the bits
        octets = bytearray(x.to_bytes(6, "big"))
        octets[0] = first
        if second is not None and third is not None:
            octets[1] = second
            octets[2] = third
        macs.append(format_mac(bytes(octets), SPELLINGS[i % len(SPELLINGS)]))
    return macs


# --------------------------------------------------------------------------- packets


def _attr(kind: int, value: bytes) -> bytes:
    if not 0 < len(value) <= 253:
        raise ValueError(f"attribute {kind} value must be 1..253 octets, not {len(value)}")
    return bytes((kind, len(value) + 2)) + value


@dataclass(frozen=True, kw_only=True)
class Numbers:
    """What a MAB request carries, by number: attribute types and the two named values."""

    user_name: int
    user_password: int
    calling_station_id: int
    service_type: int
    call_check: int  # Service-Type value
    nas_ip_address: int
    nas_port_type: int
    ethernet: int  # NAS-Port-Type value
    nas_port: int
    message_authenticator: int

    @property
    def ma_header(self) -> bytes:
        """Message-Authenticator's type and length (RFC 3579 §3.2: 16 octets of value)."""
        return bytes((self.message_authenticator, 18))


@functools.cache
def attribute_numbers() -> Numbers:
    """The numbers, by name from the RADIUS dictionary: once per process, before any request."""
    # The dictionary (and pyrad) only when requests are built: importing the module stays cheap.
    from nac.radius.packet import Codes  # noqa: PLC0415
    from nac.resources import load_dictionary  # noqa: PLC0415

    codes = Codes.from_dictionary(load_dictionary())
    port_types = {name: number for number, name in codes.nas_port_type_names.items()}
    return Numbers(
        user_name=codes.user_name,
        user_password=codes.user_password,
        calling_station_id=codes.calling_station_id,
        service_type=codes.service_type,
        call_check=codes.service_type_call_check,
        nas_ip_address=codes.nas_ip_address,
        nas_port_type=codes.nas_port_type,
        ethernet=port_types["Ethernet"],
        nas_port=codes.nas_port,
        message_authenticator=codes.message_authenticator,
    )


# A template: length field, User-Name + User-Password header, password blocks as ints, and
# the attributes after User-Password.
Template = tuple[bytes, bytes, tuple[int, ...], bytes]


def make_template(mac: str, nas_port: int, numbers: Numbers) -> Template:
    """The parts of ``mac``'s request that stay the same from one send to the next."""
    password = mac.encode()
    if not 0 < len(password) <= 128:
        raise ValueError(f"MAC {mac!r}: User-Password must be 1..128 octets")
    padded = password + bytes(-len(password) % 16)
    blocks = tuple(int.from_bytes(padded[i : i + 16], "big") for i in range(0, len(padded), 16))
    head = _attr(numbers.user_name, password) + bytes((numbers.user_password, len(padded) + 2))
    tail = b"".join(
        (
            _attr(numbers.calling_station_id, password),
            _attr(numbers.service_type, numbers.call_check.to_bytes(4, "big")),
            _attr(numbers.nas_ip_address, bytes((127, 0, 0, 1))),
            _attr(numbers.nas_port_type, numbers.ethernet.to_bytes(4, "big")),
            _attr(numbers.nas_port, nas_port.to_bytes(4, "big")),
        )
    )
    length = 20 + 18 + len(head) + len(padded) + len(tail)
    if length > 4096:
        raise ValueError("packet too long")
    return (length.to_bytes(2, "big"), head, blocks, tail)


def nas_port_for(i: int) -> int:
    """The NAS-Port the ``i``-th MAC of a run is seen on."""
    return 50101 + i % 48  # Cisco style ifIndex: GigabitEthernet1/0/1..48


def build_request(mac: str, secret: bytes, identifier: int, authenticator: bytes) -> bytes:
    """One MAB Access-Request exactly as nac bench sends it (for tests and tools)."""
    numbers = attribute_numbers()
    length, head, blocks, tail = make_template(mac, nas_port_for(0), numbers)
    hidden = bytearray()
    last = authenticator
    for block in blocks:
        last = (block ^ int.from_bytes(hashlib.md5(secret + last).digest(), "big")).to_bytes(16, "big")
        hidden += last
    pre = bytes((ACCESS_REQUEST, identifier)) + length + authenticator + numbers.ma_header
    post = head + hidden + tail
    return pre + HmacMd5(secret).digest(pre + ZERO16 + post) + post
