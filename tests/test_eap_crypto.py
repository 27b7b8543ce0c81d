"""MD4, MS-CHAPv2 and MPPE key hiding against the RFCs' own test vectors."""

from __future__ import annotations

import hashlib

import pytest

from nac.eap import mschapv2
from nac.eap.keys import MppeCodes, decrypt_key, encrypt_key, mppe_attributes
from nac.eap.md4 import md4
from nac.resources import load_dictionary


@pytest.mark.parametrize(
    ("message", "digest"),
    [  # RFC 1320 §A.5, the whole test suite
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "043f8582f241db351ce627e153e7f0e4",
        ),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ],
)
def test_md4_matches_rfc1320_suite(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


@pytest.mark.parametrize("size", [55, 56, 63, 64, 65, 119, 120, 1000])
def test_md4_padding_boundaries_match_a_reference(size: int) -> None:
    pytest.importorskip("Crypto.Hash.MD4", reason="pycryptodome is the reference where installed")
    from Crypto.Hash import MD4

    data = bytes(range(256)) * 4
    assert md4(data[:size]) == MD4.new(data[:size]).digest()  # noqa: S303 (the reference)


# RFC 2759 §9.2: the worked example.
USER = b"User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")


def test_mschapv2_nt_hash_matches_rfc2759() -> None:
    assert mschapv2.nt_hash(PASSWORD).hex().upper() == "44EBBA8D5312B8D611474411F56989AE"


def test_mschapv2_challenge_hash_matches_rfc2759() -> None:
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER).hex().upper() == "D02E4386BCE91226"


def test_mschapv2_nt_response_matches_rfc2759() -> None:
    password_hash = mschapv2.nt_hash(PASSWORD)
    assert mschapv2.nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, password_hash) == NT_RESPONSE
    assert mschapv2.verify(AUTH_CHALLENGE, PEER_CHALLENGE, USER, password_hash, NT_RESPONSE)
    assert not mschapv2.verify(AUTH_CHALLENGE, PEER_CHALLENGE, USER, mschapv2.nt_hash("x"), NT_RESPONSE)


def test_mschapv2_authenticator_response_matches_rfc2759() -> None:
    password_hash = mschapv2.nt_hash(PASSWORD)
    proof = mschapv2.authenticator_response(password_hash, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    assert proof == b"S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_mschapv2_domain_is_dropped_from_the_challenge_hash() -> None:
    plain = mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, b"CORP\\User") == plain


SECRET = b"testing123"
REQUEST_AUTH = bytes(range(16))


def test_mppe_key_encryption_follows_rfc2548_by_hand() -> None:
    key = bytes(range(32))
    salt = b"\x80\x01"
    value = encrypt_key(key, salt=salt, secret=SECRET, authenticator=REQUEST_AUTH)
    assert value[:2] == salt
    assert len(value) == 2 + 48  # 1 + 32 octets padded to 48
    plain = bytes((32,)) + key + bytes(15)
    b1 = hashlib.md5(SECRET + REQUEST_AUTH + salt).digest()
    c1 = bytes(p ^ b for p, b in zip(plain[:16], b1, strict=True))
    assert value[2:18] == c1
    b2 = hashlib.md5(SECRET + c1).digest()
    assert value[18:34] == bytes(p ^ b for p, b in zip(plain[16:32], b2, strict=True))
    assert decrypt_key(value, secret=SECRET, authenticator=REQUEST_AUTH) == key


def test_mppe_salt_needs_its_high_bit() -> None:
    with pytest.raises(ValueError, match="high bit"):
        encrypt_key(bytes(32), salt=b"\x00\x01", secret=SECRET, authenticator=REQUEST_AUTH)


def test_mppe_attributes_carry_recv_then_send_halves_of_the_msk() -> None:
    codes = MppeCodes.from_dictionary(load_dictionary())
    msk = bytes(range(64))
    raw = mppe_attributes(codes, msk, salts=b"\x01\x02\x01\x02", secret=SECRET, authenticator=REQUEST_AUTH)
    found = {}
    salts = []
    pos = 0
    while pos < len(raw):
        assert raw[pos] == 26  # Vendor-Specific
        length = raw[pos + 1]
        assert int.from_bytes(raw[pos + 2 : pos + 6], "big") == 311
        kind, value = raw[pos + 6], raw[pos + 8 : pos + length]
        assert raw[pos + 7] == length - 6
        salts.append(value[:2])
        found[kind] = decrypt_key(value, secret=SECRET, authenticator=REQUEST_AUTH)
        pos += length
    assert found == {17: msk[:32], 16: msk[32:]}  # MS-MPPE-Recv-Key, MS-MPPE-Send-Key
    assert salts[0] != salts[1], "RFC 2548: each salt in a packet is unique"
    assert all(s[0] & 0x80 for s in salts)
