"""nac._speedups: each C function gives exactly what its Python twin gives, errors included.

The Python twins (``decode_py``, ``HmacMd5.digest_py``, ``hidden_password_is_py``,
``try_parse_mac_py``, ``encode_reply`` with a key that has no C pads) are the reference; the
rest of the suite runs on whichever implementation the install has, which is the C one
wherever setup.py could compile it.  Inputs are generated and mutated by hypothesis.
"""

from __future__ import annotations

import hmac
import re
import struct
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nac.errors import PacketError
from nac.radius import crypto, packet
from nac.radius.crypto import HmacMd5, hide_password
from nac.registry import mac

try:
    from nac import _speedups
except ImportError:  # nac still works on the Python twins, with about 40% fewer requests/s
    pytest.fail("nac._speedups is not built: `pip install -e .` needs gcc and the Python headers")

SOURCE = Path(__file__).resolve().parent.parent / "nac" / "_speedups.c"
AUTH = bytes(range(16))


def test_the_request_path_uses_the_c_twins() -> None:
    assert packet.decode is _speedups.decode
    assert crypto.hidden_password_is is _speedups.hidden_password_is
    assert mac.try_parse_mac is _speedups.try_parse_mac
    assert HmacMd5(b"s").pads == _speedups.hmac_pads(b"s")


def test_the_c_source_does_no_io() -> None:
    # The protocol core does no I/O (STYLE.md); test_core_purity.py reads the Python side.
    includes = set(re.findall(r"#include\s*[<\"]([^>\"]+)[>\"]", SOURCE.read_text()))
    assert includes == {"Python.h", "stdint.h", "string.h"}


def _outcome(decode: object, data: bytes) -> tuple[str, object]:
    try:
        req = decode(data)  # type: ignore[operator]
    except PacketError as exc:
        return "error", (exc.reason, exc.detail, str(exc))
    assert type(req) is packet.Request
    return "request", tuple(req)


@st.composite
def _packets(draw: st.DrawFn) -> bytes:
    """Well-formed requests (a Message-Authenticator, Proxy-States, long values), then maybe
    mutated: an octet changed, cut short, padded, or the Length field rewritten."""
    kinds = st.sampled_from([1, 2, 4, 26, 31, 33, 79, 80, 255]) | st.integers(0, 255)
    attrs = draw(st.lists(st.tuples(kinds, st.binary(max_size=253)), max_size=12))
    ma_seen = False
    body = b""
    for kind, raw in attrs:
        value = raw
        if kind == 80 and not ma_seen and draw(st.booleans()):
            value = raw[:16].ljust(16, b"\0")
            ma_seen = True
        body += bytes((kind, len(value) + 2)) + value
    code = draw(st.sampled_from([1, 4, 12, 40, 43]) | st.integers(0, 255))
    data = bytearray(struct.pack("!BBH", code, draw(st.integers(0, 255)), 20 + len(body)))
    data += draw(st.binary(min_size=16, max_size=16)) + body + draw(st.binary(max_size=8))
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["octet", "cut", "length"]))
        if what == "octet" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif what == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif len(data) >= 4:
            data[2:4] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    return bytes(data)


@given(st.binary(max_size=300) | _packets())
@settings(max_examples=2000)
@example(b"")
@example(bytes(4097))
@example(struct.pack("!BBH", 1, 0, 20 + 2 * 201) + bytes(16) + b"\x01\x02" * 201)  # an attribute bomb
@example(struct.pack("!BBH", 1, 0, 56) + bytes(16) + (b"\x50\x12" + bytes(16)) * 2)  # two M-As
def test_decode_matches_python(data: bytes) -> None:
    assert _outcome(_speedups.decode, data) == _outcome(packet.decode_py, data)


def test_decode_accepts_any_bytes_like_object() -> None:
    data = packet.encode_request(1, 7, AUTH, b"\x01\x05abc", key=HmacMd5(b"s"))
    assert tuple(_speedups.decode(bytearray(data))) == tuple(packet.decode_py(data))
    with pytest.raises(TypeError):
        _speedups.decode("not bytes")  # type: ignore[arg-type]


@given(st.binary(max_size=200), st.lists(st.binary(max_size=150), max_size=6))
@example(b"k" * 64, [b""])
@example(b"k" * 65, [b"x" * 55, b"y" * 64])
def test_hmac_md5_matches_the_standard_library(key: bytes, parts: list[bytes]) -> None:
    expected = hmac.digest(key, b"".join(parts), "md5")
    assert _speedups.hmac_digest(_speedups.hmac_pads(key), *parts) == expected
    assert HmacMd5(key).digest_py(*parts) == expected


@given(_packets(), st.binary(min_size=1, max_size=70), st.data())
@settings(max_examples=500)
def test_message_authenticator_check_matches_python(data: bytes, secret: bytes, draw: st.DataObject) -> None:
    try:
        req = packet.decode_py(data)
    except PacketError:
        return
    if req.ma_offset < 0:
        return
    key, reference = HmacMd5(secret), HmacMd5(secret)
    reference.pads = b""  # the Python path
    if draw.draw(st.booleans()):  # sign it for real, so that both must say True
        body = bytearray(req.data)
        pos = req.ma_offset
        body[pos + 2 : pos + 18] = bytes(16)
        if req.code in packet.ZERO_AUTH_CODES:
            signed = reference.digest(bytes(body[:4]), bytes(16), bytes(body[20:]))
        else:
            signed = reference.digest(bytes(body))
        body[pos + 2 : pos + 18] = signed
        req = packet.decode_py(bytes(body))
    expected = packet.message_authenticator_valid(req, reference)
    assert packet.message_authenticator_valid(req, key) == expected


@given(
    st.sampled_from([packet.ACCESS_ACCEPT, packet.ACCESS_REJECT, packet.ACCESS_CHALLENGE]),
    st.integers(0, 255),
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=600),
    st.binary(min_size=1, max_size=80),
)
def test_signed_replies_match_python(
    code: int, identifier: int, auth: bytes, attrs: bytes, secret: bytes
) -> None:
    req = packet.Request(1, identifier, auth, b"", [], -1, {}, b"")
    key, reference = HmacMd5(secret), HmacMd5(secret)
    reference.pads = b""
    assert packet.encode_reply(code, req, attrs, key=key, secret=secret) == packet.encode_reply(
        code, req, attrs, key=reference, secret=secret
    )


def test_an_oversize_reply_is_refused_as_in_python() -> None:
    req = packet.Request(1, 0, AUTH, b"", [], -1, {}, b"")
    key = HmacMd5(b"s")
    with pytest.raises(ValueError, match="exceeds 4096"):
        packet.encode_reply(2, req, bytes(4096 - 38 + 1), key=key, secret=b"s")
    assert len(packet.encode_reply(2, req, bytes(4096 - 38), key=key, secret=b"s")) == 4096


@st.composite
def _passwords(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, bytes]:
    secret = draw(st.binary(min_size=1, max_size=40))
    auth = draw(st.binary(min_size=16, max_size=16))
    password = draw(st.binary(max_size=128))
    hidden = draw(st.binary(max_size=140)) if draw(st.booleans()) else hide_password(password, secret, auth)
    expected = draw(
        st.sampled_from([password, password + b"\0", password[:-1], password + b"x", b""])
        | st.binary(max_size=130)
    )
    return hidden, secret, auth, expected


@given(_passwords())
@settings(max_examples=1000)
def test_hidden_password_check_matches_python(case: tuple[bytes, bytes, bytes, bytes]) -> None:
    assert _speedups.hidden_password_is(*case) == crypto.hidden_password_is_py(*case)


def test_hidden_password_check_accepts_the_right_password() -> None:
    hidden = hide_password(b"0010a42319c0", b"secret", AUTH)
    assert _speedups.hidden_password_is(hidden, b"secret", AUTH, b"0010a42319c0")
    assert not _speedups.hidden_password_is(hidden, b"secreT", AUTH, b"0010a42319c0")


def _spellings(value: int) -> list[str]:
    raw = value.to_bytes(6, "big").hex()
    return [
        ":".join(raw[i : i + 2] for i in range(0, 12, 2)),
        "-".join(raw[i : i + 2] for i in range(0, 12, 2)).upper(),
        raw,
        ".".join(raw[i : i + 4] for i in range(0, 12, 4)),
        "-".join(raw[i : i + 4] for i in range(0, 12, 4)),
        raw[:6] + "-" + raw[6:],
    ]


@given(
    st.text(alphabet="0123456789abcdefABCDEFgG:-._ \n\u0660\uff10é", max_size=20)
    | st.integers(0, 2**48 - 1).flatmap(lambda v: st.sampled_from(_spellings(v)))
    | st.text(max_size=20)
)
@settings(max_examples=3000)
@example("00:11:22:33:44:5")
@example("00:11:22:33:44:55\n")
@example("00:11-22:33:44:55")
@example("0011.2233-4455")
@example("001122:334455")
@example("00112233445")
@example("222222\x00222222")  # found by fuzz/run.sh mac: a NUL passed for the separator
@example("0011\x002233\x004455")
@example("00\x0011\x0022\x0033\x0044\x0055")
def test_mac_parse_matches_python(text: str) -> None:
    assert _speedups.try_parse_mac(text) == mac.try_parse_mac_py(text)
