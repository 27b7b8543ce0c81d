"""nac.crypto: known answers from the RFCs, and agreement with independent computations."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet

from nac.radius.crypto import (
    HmacMd5,
    chap_matches,
    hidden_password_is,
    hide_password,
    random_authenticator,
    request_authenticator,
    request_authenticator_valid,
    response_authenticator,
    unhide_password,
)
from nac.resources import load_dictionary

# RFC 2865 §7.1.
RFC_SECRET = b"xyzzy5461"
RFC_AUTH = bytes.fromhex("0f403f9473978057bd83d5cb98f4227a")
RFC_HIDDEN = bytes.fromhex("0dbe708d93d413ce3196e43f782a0aee")
FIXED_AUTH = bytes(range(16))


def independent_hide(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2865 §5.2 written out again, block by block."""
    padded = password + b"\0" * ((16 - len(password) % 16) % 16) if password else bytes(16)
    out = b""
    last = authenticator
    for i in range(0, len(padded), 16):
        b = hashlib.md5(secret + last).digest()
        c = bytes(p ^ k for p, k in zip(padded[i : i + 16], b, strict=True))
        out += c
        last = c
    return out


def test_hide_password_rfc2865_example() -> None:
    assert hide_password(b"arctangent", RFC_SECRET, RFC_AUTH) == RFC_HIDDEN
    assert unhide_password(RFC_HIDDEN, RFC_SECRET, RFC_AUTH) == b"arctangent"


PASSWORDS = [
    b"",
    b"a",
    b"00:10:a4:23:19:c0",  # MAB: 17 octets, two blocks
    b"0010a42319c0",
    b"x" * 15,
    b"x" * 16,
    b"x" * 17,
    b"y" * 127,
    b"z" * 128,
    "pässwörd".encode(),
]


@pytest.mark.parametrize("password", PASSWORDS)
def test_hide_password_matches_independent_computation(password: bytes) -> None:
    hidden = hide_password(password, b"s3cret", FIXED_AUTH)
    assert hidden == independent_hide(password, b"s3cret", FIXED_AUTH)
    assert len(hidden) % 16 == 0
    assert 16 <= len(hidden) <= 128


@pytest.fixture(scope="module")
def pyrad_request() -> pyrad_packet.AuthPacket:
    return pyrad_packet.AuthPacket(secret=b"s3cret", dict=load_dictionary(), authenticator=FIXED_AUTH)


@pytest.mark.parametrize("password", PASSWORDS)
def test_hide_password_agrees_with_pyrad(pyrad_request: pyrad_packet.AuthPacket, password: bytes) -> None:
    hidden = hide_password(password, b"s3cret", FIXED_AUTH)
    assert hidden == pyrad_request.PwCrypt(password)
    assert pyrad_request.PwDecrypt(hidden) == password.decode()
    assert unhide_password(pyrad_request.PwCrypt(password), b"s3cret", FIXED_AUTH) == password


def test_hide_password_refuses_over_128_octets() -> None:
    with pytest.raises(ValueError, match="128"):
        hide_password(b"x" * 129, b"s", FIXED_AUTH)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 31, 144, 160])
def test_unhide_password_refuses_bad_lengths(size: int) -> None:
    assert unhide_password(bytes(size), b"s", FIXED_AUTH) is None


def test_unhide_password_with_wrong_secret_is_garbage() -> None:
    hidden = hide_password(b"00:10:a4:23:19:c0", b"right", FIXED_AUTH)
    assert unhide_password(hidden, b"wrong", FIXED_AUTH) != b"00:10:a4:23:19:c0"


@given(st.binary(max_size=128).map(lambda b: b.rstrip(b"\0")), st.binary(min_size=1, max_size=40))
def test_hide_unhide_round_trip(password: bytes, secret: bytes) -> None:
    assert unhide_password(hide_password(password, secret, FIXED_AUTH), secret, FIXED_AUTH) == password


@given(
    st.binary(max_size=40),
    st.binary(max_size=20),
    st.binary(min_size=1, max_size=40),
    st.binary(min_size=16, max_size=16),
)
def test_hidden_password_is_agrees_with_unhide(
    password: bytes, expected: bytes, secret: bytes, authenticator: bytes
) -> None:
    """The fast one-block comparison answers as unhiding and comparing does, whatever the lengths."""
    hidden = hide_password(password, secret, authenticator)
    fast = hidden_password_is(hidden, secret, authenticator, expected)
    assert not fast or unhide_password(hidden, secret, authenticator) == expected
    if expected and expected[-1] != 0 and len(hidden) - len(expected) < 16:  # standard padding
        assert fast == (unhide_password(hidden, secret, authenticator) == expected)


def test_hidden_password_is_on_a_mab_password() -> None:
    hidden = hide_password(b"0010a42319c0", b"testing123", FIXED_AUTH)
    assert hidden_password_is(hidden, b"testing123", FIXED_AUTH, b"0010a42319c0")
    assert not hidden_password_is(hidden, b"testing123", FIXED_AUTH, b"0010a42319c1")
    assert not hidden_password_is(hidden, b"wrong", FIXED_AUTH, b"0010a42319c0")
    assert not hidden_password_is(hidden, b"testing123", FIXED_AUTH, b"0010a42319c")
    two_blocks = hide_password(b"00-10-A4-23-19-C0", b"testing123", FIXED_AUTH)
    assert hidden_password_is(two_blocks, b"testing123", FIXED_AUTH, b"00-10-A4-23-19-C0")
    assert not hidden_password_is(two_blocks, b"testing123", FIXED_AUTH, b"00-10-A4-23-19-C1")


# RFC 2104 Appendix / RFC 2202 §2 test cases for HMAC-MD5.
HMAC_KNOWN = [
    (b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
    (b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    (b"\xaa" * 16, b"\xdd" * 50, "56be34521d144c88dbb8c733f0e8b3f6"),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
    ),
]


@pytest.mark.parametrize(("key", "data", "digest"), HMAC_KNOWN)
def test_hmac_md5_known_answers(key: bytes, data: bytes, digest: str) -> None:
    assert HmacMd5(key).digest(data).hex() == digest


@pytest.mark.parametrize("key", [b"", b"k", b"testing123", b"x" * 63, b"x" * 64, b"x" * 65, b"y" * 200])
@pytest.mark.parametrize("parts", [(), (b"",), (b"abc",), (b"a", b"bc", b"", b"d" * 100)])
def test_hmac_md5_equals_hmac_digest(key: bytes, parts: tuple[bytes, ...]) -> None:
    expected = hmac.digest(key, b"".join(parts), "md5")
    mac = HmacMd5(key)
    assert mac.digest(*parts) == expected
    assert mac.digest(*parts) == expected  # the precomputed pads are not consumed


@given(st.binary(max_size=100), st.lists(st.binary(max_size=50), max_size=5))
def test_hmac_md5_property(key: bytes, parts: list[bytes]) -> None:
    assert HmacMd5(key).digest(*parts) == hmac.new(key, b"".join(parts), hashlib.md5).digest()


def _chap(ident: int, password: bytes, challenge: bytes) -> bytes:
    return bytes((ident,)) + hashlib.md5(bytes((ident,)) + password + challenge).digest()


CHAP = [
    (_chap(1, b"00:10:a4:23:19:c0", FIXED_AUTH), FIXED_AUTH, b"00:10:a4:23:19:c0", True),
    (_chap(255, b"secret", b"challenge-16-oct"), b"challenge-16-oct", b"secret", True),
    (_chap(1, b"secret", b"short"), b"short", b"secret", True),
    (_chap(1, b"secret", FIXED_AUTH), FIXED_AUTH, b"Secret", False),
    (_chap(1, b"secret", FIXED_AUTH), bytes(16), b"secret", False),
    (b"\x02" + _chap(1, b"secret", FIXED_AUTH)[1:], FIXED_AUTH, b"secret", False),  # other ident
    (_chap(1, b"secret", FIXED_AUTH)[:16], FIXED_AUTH, b"secret", False),  # 16 octets
    (_chap(1, b"secret", FIXED_AUTH) + b"\0", FIXED_AUTH, b"secret", False),  # 18 octets
    (b"", FIXED_AUTH, b"", False),
]


@pytest.mark.parametrize(("chap_password", "challenge", "password", "expected"), CHAP)
def test_chap_matches(chap_password: bytes, challenge: bytes, password: bytes, expected: bool) -> None:
    assert chap_matches(chap_password, challenge, password) is expected


def test_response_authenticator_rfc2865_example() -> None:
    head = bytes.fromhex("02000026")
    attrs = bytes.fromhex("0606000000010f06000000000e06c0a80103")
    assert (
        response_authenticator(head, RFC_AUTH, attrs, RFC_SECRET).hex() == "86fe220e7624ba2a1005f6bf9b55e0b2"
    )


def test_request_authenticator_for_accounting() -> None:
    attrs = bytes.fromhex("2806 00000001") + b"\x2c\x06sess"
    head = struct.pack("!BBH", 4, 1, 20 + len(attrs))
    auth = request_authenticator(head, attrs, b"s3cret")
    assert auth == hashlib.md5(head + bytes(16) + attrs + b"s3cret").digest()
    packet = head + auth + attrs
    assert request_authenticator_valid(packet, b"s3cret")
    assert not request_authenticator_valid(packet, b"other")
    tampered = packet[:-1] + b"t"
    assert not request_authenticator_valid(tampered, b"s3cret")


def test_request_authenticator_agrees_with_pyrad() -> None:
    dictionary = load_dictionary()
    pkt = pyrad_packet.AcctPacket(secret=b"s3cret", dict=dictionary, id=5)
    pkt["Acct-Status-Type"] = "Start"
    pkt["Acct-Session-Id"] = "sess"
    raw = pkt.RequestPacket()
    assert request_authenticator_valid(raw, b"s3cret")
    assert request_authenticator(raw[:4], raw[20:], b"s3cret") == raw[4:20]


def test_random_authenticator_is_16_fresh_octets() -> None:
    values = {random_authenticator() for _ in range(32)}
    assert len(values) == 32
    assert all(len(v) == 16 for v in values)
