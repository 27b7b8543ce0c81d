"""RADIUS cryptography: authenticators, Message-Authenticator and User-Password hiding.

Pure functions over bytes; no I/O.  Everything here is keyed by a NAS client's shared secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Final

AUTHENTICATOR_LEN: Final = 16
ZERO_AUTHENTICATOR: Final = bytes(AUTHENTICATOR_LEN)
_HMAC_BLOCK: Final = 64
_IPAD: Final = bytes(b ^ 0x36 for b in range(256))
_OPAD: Final = bytes(b ^ 0x5C for b in range(256))

try:  # the C twins of the functions marked below (setup.py builds them when it can)
    from nac import _speedups
except ImportError:  # pragma: no cover - an install without a C compiler
    _speedups = None  # type: ignore[assignment]


class HmacMd5:
    """HMAC-MD5 with the key pads hashed once (RFC 2104 §4, "precomputing").

    ``hmac.digest(key, msg, "md5")`` re-derives both pads on every call; a RADIUS server
    signs and verifies every packet with the same secret, so the two pad states are hashed
    once per client and copied per packet.
    """

    __slots__ = ("_inner", "_outer", "pads")

    def __init__(self, key: bytes) -> None:
        #: The two pad states for nac._speedups (b"" without it).
        self.pads = _speedups.hmac_pads(key) if _speedups is not None else b""
        if len(key) > _HMAC_BLOCK:
            key = hashlib.md5(key).digest()
        key = key.ljust(_HMAC_BLOCK, b"\0")
        self._inner = hashlib.md5(key.translate(_IPAD))
        self._outer = hashlib.md5(key.translate(_OPAD))

    def digest(self, *parts: bytes) -> bytes:
        if self.pads:
            return _speedups.hmac_digest(self.pads, *parts)
        return self.digest_py(*parts)

    def digest_py(self, *parts: bytes) -> bytes:
        """:meth:`digest` in Python (the reference for the C twin)."""
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def response_authenticator(
    header: bytes, request_authenticator: bytes, attributes: bytes, secret: bytes
) -> bytes:
    """MD5(Code + Identifier + Length + RequestAuth + Attributes + Secret), RFC 2865 §3.

    ``header`` is the first four octets of the reply (code, identifier, length).
    """
    return hashlib.md5(header + request_authenticator + attributes + secret).digest()


def request_authenticator_valid(data: bytes, secret: bytes) -> bool:
    """Check an Accounting-, CoA- or Disconnect-Request authenticator (RFC 2866 §3, RFC 5176 §2.3).

    The authenticator is MD5 over the packet with 16 zero octets in its place, plus the secret.
    ``data`` must be exactly the packet (trimmed to its Length field).
    """
    expected = hashlib.md5(data[:4] + ZERO_AUTHENTICATOR + data[20:] + secret).digest()
    return hmac.compare_digest(expected, data[4:20])


def request_authenticator(header: bytes, attributes: bytes, secret: bytes) -> bytes:
    """The authenticator a client puts in an Accounting-, CoA- or Disconnect-Request."""
    return hashlib.md5(header + ZERO_AUTHENTICATOR + attributes + secret).digest()


def random_authenticator() -> bytes:
    """A fresh, unpredictable Request Authenticator (RFC 2865 §3: "SHOULD be unpredictable")."""
    return os.urandom(AUTHENTICATOR_LEN)


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Encrypt User-Password as RFC 2865 §5.2 describes (client side, and for tests)."""
    if len(password) > 128:
        raise ValueError("User-Password is at most 128 octets (RFC 2865 §5.2)")
    # An empty password is still one 16-octet block.
    padded = password + bytes(-len(password) % 16 if password else 16)
    out = bytearray()
    last = authenticator
    for i in range(0, len(padded), 16):
        last = _xor16(padded[i : i + 16], hashlib.md5(secret + last).digest())
        out += last
    return bytes(out)


def unhide_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes | None:
    """Decrypt User-Password (RFC 2865 §5.2); ``None`` if its length is not 16..128 by 16."""
    if not hidden or len(hidden) % 16 or len(hidden) > 128:
        return None
    out = bytearray()
    last = authenticator
    for i in range(0, len(hidden), 16):
        block = hidden[i : i + 16]
        out += _xor16(block, hashlib.md5(secret + last).digest())
        last = block
    return bytes(out).rstrip(b"\0")


def hidden_password_is_py(hidden: bytes, secret: bytes, authenticator: bytes, expected: bytes) -> bool:
    """Whether User-Password ``hidden`` hides exactly ``expected``: each block's XOR compared
    as integers, without building the plaintext.  MAB's common case (the password is the
    User-Name) at about half of unhide_password's cost.  :func:`hidden_password_is` is its C
    twin when nac._speedups is built."""
    size = len(hidden)
    if not size or size % 16 or size > 128 or not expected or expected[-1] == 0 or len(expected) > size:
        return False  # (unhide_password strips trailing NULs: such a password never matches)
    if size - len(expected) >= 16:  # padding is short of one block: not the same password
        return False
    padded = int.from_bytes(expected, "big") << (8 * (size - len(expected)))
    hidden_int = int.from_bytes(hidden, "big")
    pads = 0
    last = authenticator
    for i in range(0, size, 16):
        pads = (pads << 128) | int.from_bytes(hashlib.md5(secret + last).digest(), "big")
        last = hidden[i : i + 16]
    return hidden_int ^ pads == padded


hidden_password_is: Final[Callable[[bytes, bytes, bytes, bytes], bool]] = (
    _speedups.hidden_password_is if _speedups is not None else hidden_password_is_py
)


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


def chap_matches(chap_password: bytes, challenge: bytes, password: bytes) -> bool:
    """CHAP-Password = CHAP Ident + MD5(Ident + password + challenge) (RFC 2865 §5.3, RFC 1994)."""
    if len(chap_password) != 17:
        return False
    expected = hashlib.md5(chap_password[:1] + password + challenge).digest()
    return hmac.compare_digest(expected, chap_password[1:])
