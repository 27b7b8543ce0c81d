"""nac.packet: decoding requests and encoding replies, as rows of (hex bytes, expected)."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet

from nac.errors import PacketError
from nac.radius.crypto import HmacMd5
from nac.radius.packet import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    ACCOUNTING_RESPONSE,
    MAX_PACKET,
    Codes,
    Request,
    attribute,
    decode,
    encode_reply,
    encode_request,
    message_authenticator_valid,
    split_attribute,
)
from nac.resources import load_dictionary

SECRET = b"xyzzy5461"
AUTH = bytes.fromhex("0f403f9473978057bd83d5cb98f4227a")


def h(text: str) -> bytes:
    """Hex with spaces and line breaks for readability."""
    return bytes.fromhex("".join(text.split()))


def header(code: int, identifier: int, length: int, auth: bytes = AUTH) -> str:
    return struct.pack("!BBH", code, identifier, length).hex() + auth.hex()


# RFC 2865 §7.1: Access-Request for "nemo" / "arctangent" from NAS 192.168.1.16 port 3.
RFC2865_REQUEST = """
01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a
01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f
78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03
"""
MA_ZERO = "50 12" + " 00" * 16

VALID = [
    (
        "rfc2865-7.1",
        RFC2865_REQUEST,
        (
            1,
            0,
            [
                (1, b"nemo"),
                (2, h("0dbe708d93d413ce3196e43f782a0aee")),
                (4, h("c0a80110")),
                (5, h("00000003")),
            ],
            -1,
        ),
    ),
    ("header only", header(1, 7, 20), (1, 7, [], -1)),
    ("padding after Length is ignored", header(1, 7, 20) + "00 00 00 00", (1, 7, [], -1)),
    (
        "garbage padding is ignored",
        header(1, 8, 23) + "01 03 41" + "ff 00 ff",
        (1, 8, [(1, b"A")], -1),
    ),
    ("empty attribute value", header(4, 9, 22) + "21 02", (4, 9, [(33, b"")], -1)),
    (
        "Message-Authenticator first",
        header(1, 1, 44) + MA_ZERO + "01 06 6e 65 6d 6f",
        (1, 1, [(80, bytes(16)), (1, b"nemo")], 20),
    ),
    (
        "Message-Authenticator last",
        header(12, 2, 44) + "01 06 6e 65 6d 6f" + MA_ZERO,
        (12, 2, [(1, b"nemo"), (80, bytes(16))], 26),
    ),
    (
        "two Proxy-States in order",
        header(1, 3, 26) + "21 03 61 21 03 62",
        (1, 3, [(33, b"a"), (33, b"b")], -1),
    ),
]


@pytest.mark.parametrize(("data", "expected"), [row[1:] for row in VALID], ids=[row[0] for row in VALID])
def test_decode_valid(data: str, expected: tuple[int, int, list[tuple[int, bytes]], int]) -> None:
    raw = h(data)
    req = decode(raw)
    code, identifier, attrs, ma_offset = expected
    assert (req.code, req.identifier, req.attributes, req.ma_offset) == (code, identifier, attrs, ma_offset)
    length = struct.unpack_from("!H", raw, 2)[0]
    assert req.data == raw[:length]
    assert req.authenticator == raw[4:20]


def test_decode_accepts_the_largest_packet() -> None:
    # 15 attributes of 255 octets and one of 251: exactly 4096 octets with the header.
    body = attribute(79, bytes(253)) * 15 + attribute(79, bytes(249))
    raw = h(header(1, 1, 20 + len(body))) + body
    assert len(raw) == MAX_PACKET
    req = decode(raw)
    assert len(req.attributes) == 16
    assert req.data == raw


MALFORMED = [
    ("empty", "", "too-short"),
    ("19 octets", header(1, 0, 20)[:38], "too-short"),
    ("Length 19", header(1, 0, 19), "bad-length"),
    ("Length 0", header(1, 0, 0), "bad-length"),
    ("Length over the datagram", header(1, 0, 21), "bad-length"),
    ("Length 4096 in a 20-octet datagram", header(1, 0, 4096), "bad-length"),
    ("Length over the datagram by one", header(1, 0, 27) + "01 06 6e 65 6d 6f", "bad-length"),
    ("attribute length 0", header(1, 0, 22) + "01 00", "bad-attribute"),
    ("attribute length 1", header(1, 0, 22) + "01 01", "bad-attribute"),
    ("attribute length 1 after another", header(1, 0, 28) + "01 06 6e 65 6d 6f 01 01", "bad-attribute"),
    ("attribute header cut short", header(1, 0, 21) + "01", "bad-attribute"),
    ("attribute running past the end", header(1, 0, 24) + "01 05 41 42", "bad-attribute"),
    ("attribute running past Length into padding", header(1, 0, 24) + "01 06 6e 65 6d 6f", "bad-attribute"),
    ("two Message-Authenticators", header(1, 0, 56) + MA_ZERO + MA_ZERO, "bad-attribute"),
    ("Message-Authenticator of 15 octets", header(1, 0, 37) + "50 11" + " 00" * 15, "bad-attribute"),
    ("Message-Authenticator of 17 octets", header(1, 0, 39) + "50 13" + " 00" * 17, "bad-attribute"),
    ("Message-Authenticator empty", header(1, 0, 22) + "50 02", "bad-attribute"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_decode_malformed(data: str, reason: str) -> None:
    with pytest.raises(PacketError) as info:
        decode(h(data))
    assert info.value.reason == reason


@pytest.mark.parametrize("size", [MAX_PACKET + 1, MAX_PACKET + 100, 65535])
def test_decode_refuses_datagram_over_4096(size: int) -> None:
    raw = h(header(1, 0, 20)) + bytes(size - 20)
    with pytest.raises(PacketError) as info:
        decode(raw)
    assert info.value.reason == "too-long"


@pytest.mark.parametrize("cut", range(1, 20))
def test_decode_every_truncated_header_is_too_short(cut: int) -> None:
    with pytest.raises(PacketError) as info:
        decode(h(RFC2865_REQUEST)[:cut])
    assert info.value.reason == "too-short"


@pytest.mark.parametrize("cut", range(20, 56))
def test_decode_every_truncated_packet_is_refused(cut: int) -> None:
    # One octet short, two octets short, ...: the Length field then lies.
    with pytest.raises(PacketError) as info:
        decode(h(RFC2865_REQUEST)[:cut])
    assert info.value.reason == "bad-length"


@given(st.binary(max_size=300))
def test_decode_any_bytes_is_request_or_packet_error(data: bytes) -> None:
    reason = None
    try:
        req = decode(data)
    except PacketError as exc:
        reason = exc.reason
    else:
        assert isinstance(req, Request)
        assert sum(len(v) + 2 for _, v in req.attributes) == len(req.data) - 20
    assert reason in {None, "too-short", "too-long", "bad-length", "bad-attribute"}


@st.composite
def _framed(draw: st.DrawFn) -> bytes:
    """A header with a truthful Length over arbitrary attribute bytes, plus padding."""
    body = draw(st.binary(max_size=200))
    pad = draw(st.binary(max_size=10))
    code = draw(st.integers(0, 255))
    return struct.pack("!BBH", code, 0, 20 + len(body)) + bytes(16) + body + pad


@given(_framed())
def test_decode_framed_bytes_is_request_or_bad_attribute(data: bytes) -> None:
    reason = None
    try:
        decode(data)
    except PacketError as exc:
        reason = exc.reason
    assert reason in {None, "bad-attribute"}


@given(
    st.lists(st.tuples(st.integers(1, 255).filter(lambda k: k != 80), st.binary(max_size=253)), max_size=10)
)
@settings(max_examples=50)
def test_decode_round_trips_attributes(attrs: list[tuple[int, bytes]]) -> None:
    body = b"".join(attribute(k, v) for k, v in attrs)
    req = decode(h(header(1, 5, 20 + len(body))) + body)
    assert req.attributes == attrs


# -- encoding replies --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def codes() -> Codes:
    return Codes.from_dictionary(load_dictionary())


def _request(*attrs: bytes, code: int = ACCESS_REQUEST, ma: bool = True) -> Request:
    key = HmacMd5(SECRET) if ma else None
    return decode(encode_request(code, 42, AUTH, b"".join(attrs), key=key))


def _split(packet: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 20
    while pos < len(packet):
        out.append((packet[pos], packet[pos + 2 : pos + packet[pos + 1]]))
        pos += packet[pos + 1]
    return out


@pytest.mark.parametrize("code", [ACCESS_ACCEPT, ACCESS_REJECT])
def test_encode_reply_signs_message_authenticator_first(codes: Codes, code: int) -> None:
    req = _request(attribute(1, b"00:10:a4:23:19:c0"))
    body = codes.reply_message_attributes("hello")
    reply = encode_reply(code, req, body, key=HmacMd5(SECRET), secret=SECRET)
    assert reply[0] == code
    assert reply[1] == 42
    assert struct.unpack_from("!H", reply, 2)[0] == len(reply)
    attrs = _split(reply)
    assert attrs[0][0] == 80
    assert reply[20:22] == b"\x50\x12"
    assert attrs[1:] == [(18, b"hello")]
    # RFC 3579 §3.2: HMAC-MD5 over the reply with the *request's* authenticator, MA zeroed.
    signed = reply[:4] + AUTH + reply[20:22] + bytes(16) + reply[38:]
    assert attrs[0][1] == hmac.new(SECRET, signed, hashlib.md5).digest()
    # RFC 2865 §3: Response Authenticator over the finished packet.
    assert reply[4:20] == hashlib.md5(reply[:4] + AUTH + reply[20:] + SECRET).digest()


def test_encode_reply_copies_proxy_state_in_order(codes: Codes) -> None:
    states = [b"first", b"\x00second", b"third" * 10]
    proxy = b"".join(attribute(33, s) for s in states)
    req = _request(attribute(1, b"x"), proxy)
    reply = encode_reply(ACCESS_REJECT, req, b"", key=HmacMd5(SECRET), secret=SECRET, proxy_state=proxy)
    attrs = _split(reply)
    assert attrs[0][0] == 80
    assert [v for k, v in attrs if k == 33] == states


def test_encode_reply_verified_by_pyrad(codes: Codes) -> None:
    dictionary = load_dictionary()
    req = _request(attribute(1, b"nemo"), attribute(33, b"ps1"))
    body = codes.vlan_attributes("100")
    reply = encode_reply(
        ACCESS_ACCEPT, req, body, key=HmacMd5(SECRET), secret=SECRET, proxy_state=attribute(33, b"ps1")
    )
    sent = pyrad_packet.AuthPacket(secret=SECRET, dict=dictionary, id=42, authenticator=AUTH)
    sent[33] = [b"ps1"]
    received = pyrad_packet.Packet(packet=reply, dict=dictionary, secret=SECRET)
    assert sent.VerifyReply(received, reply, enforce_ma=True)
    assert received["Tunnel-Type"] == ["VLAN"]
    assert received["Tunnel-Medium-Type"] == ["IEEE-802"]
    assert received["Tunnel-Private-Group-Id"] == ["100"]


def test_encode_reply_accounting_response_without_message_authenticator() -> None:
    req = _request(attribute(44, b"sess"), code=ACCOUNTING_REQUEST, ma=False)
    reply = encode_reply(
        ACCOUNTING_RESPONSE, req, b"", key=HmacMd5(SECRET), secret=SECRET, message_authenticator=False
    )
    assert reply[0] == ACCOUNTING_RESPONSE
    assert len(reply) == 20
    assert reply[4:20] == hashlib.md5(reply[:4] + AUTH + SECRET).digest()


def test_encode_reply_rfc2865_example_response_authenticator() -> None:
    # RFC 2865 §7.1: the Access-Accept for "nemo" (Service-Type, Login-Service, Login-IP-Host).
    req = decode(h(RFC2865_REQUEST))
    body = h("06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03")
    reply = encode_reply(
        ACCESS_ACCEPT, req, body, key=HmacMd5(SECRET), secret=SECRET, message_authenticator=False
    )
    assert reply == h("02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2") + body


# -- encoding requests (the client side: FakeNas, nac bench) -----------------------------------


def test_encode_request_with_message_authenticator() -> None:
    body = attribute(1, b"00:10:a4:23:19:c0")
    raw = encode_request(ACCESS_REQUEST, 9, AUTH, body, key=HmacMd5(SECRET))
    assert struct.unpack_from("!BBH", raw) == (ACCESS_REQUEST, 9, len(raw))
    assert raw[4:20] == AUTH
    assert raw[20:22] == b"\x50\x12"
    signed = raw[:22] + bytes(16) + raw[38:]
    assert raw[22:38] == hmac.new(SECRET, signed, hashlib.md5).digest()
    req = decode(raw)
    assert req.ma_offset == 20
    assert message_authenticator_valid(req, HmacMd5(SECRET))
    assert not message_authenticator_valid(req, HmacMd5(b"wrong"))


def test_encode_request_without_message_authenticator() -> None:
    body = attribute(1, b"nemo")
    raw = encode_request(ACCESS_REQUEST, 9, AUTH, body, key=None)
    assert raw == struct.pack("!BBH", 1, 9, 26) + AUTH + body
    assert decode(raw).ma_offset == -1


def test_message_authenticator_valid_detects_tampering() -> None:
    raw = bytearray(encode_request(ACCESS_REQUEST, 9, AUTH, attribute(1, b"nemo"), key=HmacMd5(SECRET)))
    raw[-1] ^= 1
    assert not message_authenticator_valid(decode(bytes(raw)), HmacMd5(SECRET))
    raw = bytearray(encode_request(ACCESS_REQUEST, 9, AUTH, attribute(1, b"nemo"), key=HmacMd5(SECRET)))
    raw[5] ^= 1  # the Request Authenticator is covered too
    assert not message_authenticator_valid(decode(bytes(raw)), HmacMd5(SECRET))


def test_message_authenticator_valid_for_accounting_uses_zero_authenticator() -> None:
    body = bytes((80, 18)) + bytes(16) + attribute(44, b"sess")
    head = struct.pack("!BBH", ACCOUNTING_REQUEST, 3, 20 + len(body))
    ma = hmac.new(SECRET, head + bytes(16) + body, hashlib.md5).digest()
    body = body[:2] + ma + body[18:]
    auth = hashlib.md5(head + bytes(16) + body + SECRET).digest()
    req = decode(head + auth + body)
    assert message_authenticator_valid(req, HmacMd5(SECRET))
    assert not message_authenticator_valid(req, HmacMd5(b"other"))


@pytest.mark.parametrize(
    ("size", "pieces"),
    [(0, [0]), (1, [1]), (253, [253]), (254, [253, 1]), (506, [253, 253]), (600, [253, 253, 94])],
)
def test_split_attribute(size: int, pieces: list[int]) -> None:
    value = bytes(i % 251 for i in range(size))
    raw = split_attribute(79, value)
    attrs = _split(h(header(1, 0, 20 + len(raw))) + raw)
    assert [len(v) for _, v in attrs] == pieces
    assert all(k == 79 for k, _ in attrs)
    assert b"".join(v for _, v in attrs) == value


def test_attribute_refuses_over_253_octets() -> None:
    assert attribute(18, bytes(253)) == b"\x12\xff" + bytes(253)
    with pytest.raises(ValueError, match="253"):
        attribute(18, bytes(254))


def test_codes_vlan_attributes_rfc3580(codes: Codes) -> None:
    # Tunnel-Type = VLAN (13), Tunnel-Medium-Type = IEEE-802 (6), Tunnel-Private-Group-Id, tag 0.
    assert codes.vlan_attributes("100") == h("40 06 00 00 00 0d  41 06 00 00 00 06  51 06 00 31 30 30")
    assert codes.vlan_attributes("guest") == h("40 06 00 00 00 0d  41 06 00 00 00 06  51 08 00") + b"guest"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok", b"ok"),
        ("x" * 253, b"x" * 253),
        ("x" * 300, b"x" * 253),
        ("é" * 200, "é".encode() * 126),  # cut on a character boundary, not mid-sequence
    ],
)
def test_codes_reply_message_fits_one_attribute(codes: Codes, text: str, expected: bytes) -> None:
    raw = codes.reply_message_attributes(text)
    assert raw == bytes((18, len(expected) + 2)) + expected


def test_codes_from_dictionary_names(codes: Codes) -> None:
    assert (codes.user_name, codes.user_password, codes.chap_password, codes.proxy_state) == (1, 2, 3, 33)
    assert (codes.tunnel_type, codes.tunnel_medium_type, codes.tunnel_private_group_id) == (64, 65, 81)
    assert (codes.message_authenticator, codes.eap_message) == (80, 79)
    assert (codes.tunnel_type_vlan, codes.tunnel_medium_ieee_802, codes.service_type_call_check) == (
        13,
        6,
        10,
    )
    assert codes.nas_port_type_names[15] == "Ethernet"
    assert codes.nas_port_type_names[19] == "Wireless-802.11"
