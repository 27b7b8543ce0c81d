"""MD4 (RFC 1320), for the NT password hash that MS-CHAPv2 is built on (RFC 2759 §8.3).

Why our own: OpenSSL 3 moved MD4 to its "legacy" provider, so ``hashlib.new("md4")`` fails on
current distributions, and the packages that carry MD4 (pycryptodome) bring a whole crypto
library for one 60-line function.  MD4 here only ever hashes a password (at `nac users add`, or
a TTLS-PAP login) or a 16-octet hash (once per MS-CHAPv2 success): speed does not matter, and
the RFC's test suite (tests/test_eap_mschapv2.py) pins it down.
"""

from __future__ import annotations

import struct
from typing import Final

_MASK: Final = 0xFFFFFFFF
_INIT: Final = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
# RFC 1320 §3.4: the order words are visited and the shifts of each round.
_R2_ORDER: Final = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_R3_ORDER: Final = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_SHIFTS: Final = ((3, 7, 11, 19), (3, 5, 9, 13), (3, 9, 11, 15))


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def md4(data: bytes) -> bytes:
    """The 16-octet MD4 digest of ``data``."""
    length_bits = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    # RFC 1320 §3.1-3.2: a 1 bit, zeros to 56 mod 64 octets, then the length little-endian.
    data = data + b"\x80" + bytes((55 - len(data)) % 64) + struct.pack("<Q", length_bits)
    a, b, c, d = _INIT
    for offset in range(0, len(data), 64):
        x = struct.unpack_from("<16I", data, offset)
        aa, bb, cc, dd = a, b, c, d
        s = _SHIFTS[0]
        for i in range(16):  # round 1: F(b, c, d) = (b & c) | (~b & d)
            k = i
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl((a + f + x[k]) & _MASK, s[i % 4]), b, c
        s = _SHIFTS[1]
        for i in range(16):  # round 2: G = majority, plus sqrt(2)
            k = _R2_ORDER[i]
            g = (b & c) | (b & d) | (c & d)
            a, b, c, d = d, _rotl((a + g + x[k] + 0x5A827999) & _MASK, s[i % 4]), b, c
        s = _SHIFTS[2]
        for i in range(16):  # round 3: H = parity, plus sqrt(3)
            k = _R3_ORDER[i]
            h = b ^ c ^ d
            a, b, c, d = d, _rotl((a + h + x[k] + 0x6ED9EBA1) & _MASK, s[i % 4]), b, c
        a = (a + aa) & _MASK
        b = (b + bb) & _MASK
        c = (c + cc) & _MASK
        d = (d + dd) & _MASK
    return struct.pack("<4I", a, b, c, d)
