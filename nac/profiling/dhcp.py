"""DHCPv4 client messages, read for what they say about the device: pure, bounded, strict.

nac never answers DHCP: it reads the copies of client messages that relays send it besides
the real server (``ip helper-address``).  Only the fields that identify a device are kept:
the client hardware address, host name (option 12), vendor class (60), parameter request
list (55, the fingerprint), user class (77) and client FQDN (81).

Anything that is not a well-formed Ethernet DHCP request raises :class:`PacketError` with a
stable reason, counted and dropped by the listener as malformed RADIUS packets are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from nac.errors import PacketError

#: RFC 2131 §2: op, htype, hlen, hops, xid, secs, flags, 4 addresses, chaddr (16), sname (64),
#: file (128); then the magic cookie (RFC 2132 §2) and the options.
HEADER_SIZE: Final = 236
COOKIE: Final = bytes((99, 130, 83, 99))
OPTIONS_START: Final = HEADER_SIZE + len(COOKIE)
#: A client message over Ethernet fits 1,500 octets (RFC 2131 §2: 576 unless option 57 says
#: more); relays add option 82.  Larger datagrams are not DHCP from a NAS's network.
MAX_SIZE: Final = 1500
#: A text option concatenated from split parts (RFC 3396) is cut here: no identifying string
#: is longer, and the evidence is stored and shown.
MAX_TEXT: Final = 255
BOOTREQUEST: Final = 1
HTYPE_ETHERNET: Final = 1
#: RFC 2132 §9.6 message types sent by clients (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM).
CLIENT_MESSAGES: Final = {1: "discover", 3: "request", 4: "decline", 7: "release", 8: "inform"}

PAD: Final = 0
END: Final = 255
HOST_NAME: Final = 12
REQUESTED_IP: Final = 50
OVERLOAD: Final = 52
MESSAGE_TYPE: Final = 53
PARAMETER_LIST: Final = 55
VENDOR_CLASS: Final = 60
USER_CLASS: Final = 77
CLIENT_FQDN: Final = 81

#: Every reason :func:`parse` drops a datagram for (the listener's counter labels).
REASONS: Final = (
    "too-short",
    "too-large",
    "not-a-request",
    "not-ethernet",
    "not-dhcp",
    "option-overrun",
    "no-end",
    "no-message-type",
    "bad-message-type",
    "not-from-client",
    "bad-mac",
)


@dataclass(frozen=True, kw_only=True)
class DhcpInfo:
    """What one client message says about its sender."""

    mac: int
    message: str  # one of CLIENT_MESSAGES' values
    relay: str | None = None  # giaddr: the relay that forwarded it (None: same segment)
    hostname: str | None = None
    vendor_class: str | None = None
    #: The parameter request list as decimal codes, comma-separated (fingerbank's spelling).
    fingerprint: str | None = None
    user_class: str | None = None
    fqdn: str | None = None
    requested_ip: str | None = None

    def fields(self) -> dict[str, str]:
        """The identifying fields that are present, by name (what signatures match on)."""
        values = {
            "hostname": self.hostname,
            "vendor_class": self.vendor_class,
            "fingerprint": self.fingerprint,
            "user_class": self.user_class,
            "fqdn": self.fqdn,
        }
        return {name: value for name, value in values.items() if value}


def parse(data: bytes) -> DhcpInfo:
    """The identifying fields of a client's DHCP message, or :class:`PacketError`."""
    if len(data) < OPTIONS_START + 1:
        raise PacketError("too-short", f"{len(data)} octets, a DHCP message has at least {OPTIONS_START + 1}")
    if len(data) > MAX_SIZE:
        raise PacketError("too-large", f"{len(data)} octets")
    if data[0] != BOOTREQUEST:
        raise PacketError("not-a-request", f"op {data[0]} (servers' replies are not read)")
    if data[1] != HTYPE_ETHERNET or data[2] != 6:
        raise PacketError("not-ethernet", f"htype {data[1]}, hlen {data[2]}")
    if data[HEADER_SIZE:OPTIONS_START] != COOKIE:
        raise PacketError("not-dhcp", "no DHCP magic cookie (plain BOOTP)")
    options = _options(data, OPTIONS_START, len(data), must_end=True)
    overload = options.get(OVERLOAD, b"\x00")[:1]
    if overload in (b"\x01", b"\x03"):  # RFC 2132 §9.3: options continue in 'file', then 'sname'
        _merge(options, _options(data, 108, 236, must_end=False))
    if overload in (b"\x02", b"\x03"):
        _merge(options, _options(data, 44, 108, must_end=False))
    kind = options.get(MESSAGE_TYPE)
    if kind is None:
        raise PacketError("no-message-type", "option 53 is missing")
    if len(kind) != 1 or not 1 <= kind[0] <= 18:
        raise PacketError("bad-message-type", f"option 53 is {kind.hex()}")
    message = CLIENT_MESSAGES.get(kind[0])
    if message is None:
        raise PacketError("not-from-client", f"message type {kind[0]} is a server's")
    mac = int.from_bytes(data[28:34], "big")
    if mac == 0 or mac >> 40 & 0x01:  # all zeros, or a multicast address as a client's
        raise PacketError("bad-mac", f"client hardware address {data[28:34].hex(':')}")
    giaddr = data[24:28]
    requested = options.get(REQUESTED_IP)
    return DhcpInfo(
        mac=mac,
        message=message,
        relay=_ipv4(giaddr) if any(giaddr) else None,
        hostname=text_field(options.get(HOST_NAME)),
        vendor_class=text_field(options.get(VENDOR_CLASS)),
        fingerprint=",".join(str(code) for code in options[PARAMETER_LIST])
        if options.get(PARAMETER_LIST)
        else None,
        user_class=_user_class(options.get(USER_CLASS)),
        fqdn=_fqdn(options.get(CLIENT_FQDN)),
        requested_ip=_ipv4(requested) if requested is not None and len(requested) == 4 else None,
    )


def _options(data: bytes, start: int, end: int, *, must_end: bool) -> dict[int, bytes]:
    """Options between ``start`` and ``end``; a code that repeats is one long option split
    in parts (RFC 3396), joined in order."""
    found: dict[int, bytes] = {}
    pos = start
    while pos < end:
        code = data[pos]
        if code == PAD:
            pos += 1
            continue
        if code == END:
            return found
        if pos + 2 > end or pos + 2 + data[pos + 1] > end:
            raise PacketError("option-overrun", f"option {code} at offset {pos} runs past the end")
        length = data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        found[code] = found[code] + value if code in found else value
        pos += 2 + length
    if must_end:
        raise PacketError("no-end", "the options have no end option")
    return found


def _merge(into: dict[int, bytes], more: dict[int, bytes]) -> None:
    for code, value in more.items():
        into[code] = into[code] + value if code in into else value


def text_field(value: bytes | None) -> str | None:
    """A text option as shown and matched: NULs some clients append removed, control
    characters replaced (it ends up in logs and on a web page), at most MAX_TEXT."""
    if not value:
        return None
    text = value.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)[:MAX_TEXT]
    return text or None


def _user_class(value: bytes | None) -> str | None:
    """Option 77: RFC 3004 instances (a length, then the data) joined with commas; many
    clients (Windows among them) send one plain string instead, which is kept as it is."""
    if not value:
        return None
    parts, pos = [], 0
    while pos < len(value):
        length = value[pos]
        if length == 0 or pos + 1 + length > len(value):
            return text_field(value)
        parts.append(value[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return text_field(b",".join(parts))


def _fqdn(value: bytes | None) -> str | None:
    """Option 81 (RFC 4702): flags, two obsolete octets, then the name, in DNS wire format
    when the E flag (0x04) is set, else ASCII."""
    if value is None or len(value) < 4:
        return None
    name = value[3:]
    if not value[0] & 0x04:
        return text_field(name)
    labels, pos = [], 0
    while pos < len(name) and name[pos]:
        length = name[pos]
        if length > 63 or pos + 1 + length > len(name):
            return None  # compression or a truncated label: not a name we can show
        labels.append(name[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return text_field(b".".join(labels))


def _ipv4(raw: bytes) -> str:
    return ".".join(str(octet) for octet in raw)
