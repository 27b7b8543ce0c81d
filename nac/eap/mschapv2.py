"""MS-CHAPv2 (RFC 2759) as PEAP and EAP-TTLS run it inside their tunnels.

The server keeps only the NT hash of each password (MD4 of its UTF-16LE form, RFC 2759 §8.3):
that is all MS-CHAPv2 needs, and TTLS-PAP checks a password by hashing it the same way.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from nac.eap.md4 import md4

CHALLENGE_LEN: Final = 16
NT_RESPONSE_LEN: Final = 24
# RFC 2759 §8.7 GenerateAuthenticatorResponse's two constants.
_MAGIC1: Final = b"Magic server to client signing constant"
_MAGIC2: Final = b"Pad to make it do more than one iteration"


def nt_hash(password: str) -> bytes:
    """NtPasswordHash (RFC 2759 §8.3)."""
    return md4(password.encode("utf-16-le"))


def _user_part(username: bytes) -> bytes:
    """RFC 2759 §8.2: the challenge hash uses the name without a leading "DOMAIN\\"."""
    return username.rsplit(b"\\", 1)[-1]


def challenge_hash(peer_challenge: bytes, auth_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash (RFC 2759 §8.2)."""
    return hashlib.sha1(peer_challenge + auth_challenge + _user_part(username)).digest()[:8]


def _des_key(seven: bytes) -> bytes:
    """56 key bits to a DES key with (ignored) parity bits (RFC 2759 §8.6 DesEncrypt)."""
    n = int.from_bytes(seven, "big")
    return bytes(((n >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des(key7: bytes, block: bytes) -> bytes:
    # Single DES as 3DES with K1 = K2 = K3: OpenSSL 3 keeps plain DES in its legacy provider.
    key = _des_key(key7) * 3
    encryptor = Cipher(TripleDES(key), modes.ECB()).encryptor()  # noqa: S305 (RFC 2759 §8.5)
    return encryptor.update(block) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 §8.5): the hash, padded to 21 octets, as three DES keys."""
    z = password_hash.ljust(21, b"\0")
    return _des(z[0:7], challenge) + _des(z[7:14], challenge) + _des(z[14:21], challenge)


def nt_response(auth_challenge: bytes, peer_challenge: bytes, username: bytes, password_hash: bytes) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1), the 24 octets the peer proves itself with."""
    return challenge_response(challenge_hash(peer_challenge, auth_challenge, username), password_hash)


def verify(
    auth_challenge: bytes, peer_challenge: bytes, username: bytes, password_hash: bytes, response: bytes
) -> bool:
    expected = nt_response(auth_challenge, peer_challenge, username, password_hash)
    return hmac.compare_digest(expected, response)


def authenticator_response(
    password_hash: bytes, response: bytes, peer_challenge: bytes, auth_challenge: bytes, username: bytes
) -> bytes:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): "S=" and 40 upper-case hex digits, which
    proves to the peer that the server knows its password too."""
    digest = hashlib.sha1(md4(password_hash) + response + _MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, auth_challenge, username)
    digest = hashlib.sha1(digest + challenge + _MAGIC2).digest()
    return b"S=" + digest.hex().upper().encode()
