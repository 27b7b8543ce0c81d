"""Keys for Wi-Fi: MS-MPPE-Recv-Key and MS-MPPE-Send-Key from an EAP method's MSK.

RFC 3579 §3.5 / RFC 5216 §2.3: the access point takes the first 32 octets of the MSK from
MS-MPPE-Recv-Key and the next 32 from MS-MPPE-Send-Key (hostapd's `ieee802_1x_get_keys`);
RFC 2548 §2.4.2-3 hides each behind a salt and an MD5 chain over the shared secret.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from pyrad.dictionary import Dictionary

MSK_LEN: Final = 64
_BLOCK: Final = 16


@dataclass(frozen=True, kw_only=True)
class MppeCodes:
    """Vendor-Specific, the Microsoft vendor id and the two key attributes, from the dictionary."""

    vendor_specific: int
    microsoft: int
    send_key: int
    recv_key: int

    @classmethod
    def from_dictionary(cls, dictionary: Dictionary) -> MppeCodes:
        return cls(
            vendor_specific=int(dictionary["Vendor-Specific"].code),
            microsoft=int(dictionary.vendors.GetForward("Microsoft")),
            send_key=int(dictionary["MS-MPPE-Send-Key"].code),
            recv_key=int(dictionary["MS-MPPE-Recv-Key"].code),
        )


def encrypt_key(key: bytes, *, salt: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Salt + the encrypted String of RFC 2548 §2.4.2: P = key length, key, zero padding to a
    multiple of 16; b(1) = MD5(secret + request authenticator + salt), c(i) = p(i) XOR b(i),
    b(i) = MD5(secret + c(i-1))."""
    if len(salt) != 2 or not salt[0] & 0x80:
        raise ValueError("the salt is two octets with the high bit set (RFC 2548 §2.4.2)")
    plain = bytes((len(key),)) + key
    plain += bytes(-len(plain) % _BLOCK)
    out = bytearray(salt)
    chain = authenticator + salt
    for i in range(0, len(plain), _BLOCK):
        pad = hashlib.md5(secret + chain).digest()
        block = bytes(p ^ b for p, b in zip(plain[i : i + _BLOCK], pad, strict=True))
        out += block
        chain = block
    return bytes(out)


def decrypt_key(value: bytes, *, secret: bytes, authenticator: bytes) -> bytes:
    """The inverse of :func:`encrypt_key` (tests, and what an access point does)."""
    salt, cipher = value[:2], value[2:]
    plain = bytearray()
    chain = authenticator + salt
    for i in range(0, len(cipher), _BLOCK):
        pad = hashlib.md5(secret + chain).digest()
        block = cipher[i : i + _BLOCK]
        plain += bytes(c ^ b for c, b in zip(block, pad, strict=True))
        chain = block
    return bytes(plain[1 : 1 + plain[0]])


def mppe_attributes(
    codes: MppeCodes, msk: bytes, *, salts: bytes, secret: bytes, authenticator: bytes
) -> bytes:
    """The two Vendor-Specific attributes for an Access-Accept; ``salts`` is four random octets
    (the high bit of each salt is forced on, and the two salts made distinct, per RFC 2548)."""
    if len(msk) < MSK_LEN:
        raise ValueError(f"an MSK has at least {MSK_LEN} octets (RFC 3748 §7.10)")
    recv_salt = bytes((salts[0] | 0x80, salts[1]))
    send_salt = bytes((salts[2] | 0x80, salts[3]))
    if send_salt == recv_salt:
        send_salt = bytes((send_salt[0], send_salt[1] ^ 1))
    out = b""
    for kind, key, salt in ((codes.recv_key, msk[:32], recv_salt), (codes.send_key, msk[32:64], send_salt)):
        value = encrypt_key(key, salt=salt, secret=secret, authenticator=authenticator)
        sub = bytes((kind, len(value) + 2)) + value
        vsa = codes.microsoft.to_bytes(4, "big") + sub
        out += bytes((codes.vendor_specific, len(vsa) + 2)) + vsa
    return out
