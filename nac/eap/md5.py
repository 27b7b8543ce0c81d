"""EAP-MD5 (RFC 3748 §5.4): the peer answers a random challenge with
MD5(Identifier + password + challenge).

Weak (no server authentication, no keys, offline-guessable), so nac offers it only to NAS
clients that set `eap_md5 = true` (old wired gear and phones that know nothing else), and
only for users enrolled with `nac users add NAME --eap-md5`, the one form that keeps the
password itself, because the method cannot work without it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Final

from nac.eap.method import Done, Failed, Next, Step

TYPE_MD5: Final = 4
CHALLENGE_LEN: Final = 16


class EapMd5:
    name = "eap-md5"
    eap_type = TYPE_MD5

    def __init__(
        self,
        *,
        identity: str,
        password: Callable[[str], str | None],
        identifier: Callable[[], int],
        random: Callable[[int], bytes],
        server_name: str = "nac",
    ) -> None:
        self.identity = identity
        self._password = password
        self._identifier = identifier  # the EAP Identifier the challenge went out with
        self._challenge = random(CHALLENGE_LEN)
        self._server_name = server_name.encode()

    def start(self) -> bytes:
        return bytes((CHALLENGE_LEN,)) + self._challenge + self._server_name

    def process(self, data: bytes) -> Step:
        if not data or data[0] != 16 or len(data) < 17:
            return Failed("eap-md5: malformed response")
        password = self._password(self.identity)
        if password is None:
            return Failed(f"eap-md5: {self.identity!r} is not enrolled for EAP-MD5")
        expected = hashlib.md5(bytes((self._identifier(),)) + password.encode() + self._challenge).digest()
        if not hmac.compare_digest(expected, data[1:17]):
            return Failed(f"eap-md5: wrong password for {self.identity!r}")
        return Done(self.identity, b"")  # EAP-MD5 derives no keys


__all__ = ["EapMd5", "Next"]
