"""EAP-TTLSv0 (RFC 5281) with PAP or MS-CHAPv2 as the inner authentication.

The peer sends Diameter AVPs inside the tunnel (RFC 5281 §10).  For MS-CHAPv2 the challenge
is not sent by the server: both sides derive it from the tunnel, "ttls challenge" (§11.2.4),
so a replayed response from another tunnel cannot pass.

With a directory configured, a PAP user who is not in nac's own table is checked by binding
as the user's directory entry (the conversation waits for it: a :class:`Lookup`).  MS-CHAPv2
needs the NT hash, which LDAP does not give, so it stays on nac's own users.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Final

from OpenSSL import SSL

from nac.eap import mschapv2
from nac.eap.method import Done, Failed, Lookup, Step
from nac.eap.tls import TlsMethod
from nac.identity.query import DirectoryAnswer, DirectoryQuery

AVP_FLAG_VENDOR: Final = 0x80
AVP_FLAG_MANDATORY: Final = 0x40
MICROSOFT: Final = 311
# RADIUS attribute numbers as AVP codes (RFC 5281 §10.1): vendor 0 is RADIUS itself.
USER_NAME: Final = (0, 1)
USER_PASSWORD: Final = (0, 2)
EAP_MESSAGE: Final = (0, 79)
MS_CHAP_CHALLENGE: Final = (MICROSOFT, 11)
MS_CHAP2_RESPONSE: Final = (MICROSOFT, 25)
MS_CHAP2_SUCCESS: Final = (MICROSOFT, 26)
_MS_CHAP2_RESPONSE_LEN: Final = 50  # Ident, Flags, Peer-Challenge, Reserved, NT-Response


class AvpError(Exception):
    pass


def decode_avps(data: bytes) -> dict[tuple[int, int], bytes]:
    """AVPs by (vendor, code), first value of each (RFC 5281 §10.1), each padded to 4 octets."""
    avps: dict[tuple[int, int], bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise AvpError("AVP header cut short")
        code = int.from_bytes(data[pos : pos + 4], "big")
        flags = data[pos + 4]
        length = int.from_bytes(data[pos + 5 : pos + 8], "big")
        header = 12 if flags & AVP_FLAG_VENDOR else 8
        if length < header or pos + length > len(data):
            raise AvpError(f"AVP {code} has length {length}")
        vendor = int.from_bytes(data[pos + 8 : pos + 12], "big") if flags & AVP_FLAG_VENDOR else 0
        avps.setdefault((vendor, code), data[pos + header : pos + length])
        pos += length + (-length % 4)
    return avps


def encode_avp(vendor: int, code: int, value: bytes) -> bytes:
    flags = AVP_FLAG_MANDATORY | (AVP_FLAG_VENDOR if vendor else 0)
    header = 12 if vendor else 8
    length = header + len(value)
    out = code.to_bytes(4, "big") + bytes((flags,)) + length.to_bytes(3, "big")
    if vendor:
        out += vendor.to_bytes(4, "big")
    return out + value + bytes(-length % 4)


class Ttls(TlsMethod):
    name = "ttls"
    eap_type = 21
    version = 0

    def __init__(self, context: SSL.Context, *, users: Mapping[str, bytes], directory: bool = False) -> None:
        super().__init__(context)
        self._users = users
        self._directory = directory
        self._phase = "handshake"
        self._identity = ""

    def established(self, flight: bytes) -> Step:
        self._phase = "credentials"
        return self.send(flight)

    def tunnel_data(self, message: bytes) -> Step:
        if self._phase == "proved":
            # The peer acknowledged MS-CHAP2-Success with an empty response (RFC 5281 §11.2.4).
            if message:
                return Failed("ttls: data after MS-CHAP2-Success")
            return self._done()
        if not message:
            return Failed("ttls: the peer sent no credentials")
        try:
            avps = decode_avps(self.tunnel.receive(message))
        except AvpError as exc:
            return Failed(f"ttls: {exc}")
        name = avps.get(USER_NAME)
        if name is None:
            if EAP_MESSAGE in avps:
                return Failed("ttls: EAP inside the tunnel is not supported; use PAP or MSCHAPv2")
            return Failed("ttls: no User-Name in the tunnel")
        username = name.decode(errors="replace")
        password_hash = self._users.get(username)
        if USER_PASSWORD in avps:
            password = avps[USER_PASSWORD].rstrip(b"\0").decode(errors="replace")  # RFC 5281 §11.2.5
            if password_hash is None:
                if self._directory:  # nac's own users first, then the directory
                    self._identity = username
                    query = DirectoryQuery(kind="bind", user=username, password=password)
                    return Lookup(query, self._bound)
                return Failed(f"ttls: unknown user {username!r}")
            if not hmac.compare_digest(mschapv2.nt_hash(password), password_hash):
                return Failed(f"ttls: wrong password for {username!r}")
            self._identity = username
            return self._done()
        if MS_CHAP2_RESPONSE in avps and MS_CHAP_CHALLENGE in avps:
            return self._mschapv2(name, avps, password_hash)
        return Failed("ttls: neither PAP nor MSCHAPv2 credentials in the tunnel")

    def _mschapv2(self, name: bytes, avps: dict[tuple[int, int], bytes], password_hash: bytes | None) -> Step:
        username = name.decode(errors="replace")
        expected = self.tunnel.export(b"ttls challenge", 17)  # RFC 5281 §11.2.4: 16 + Ident
        challenge = avps[MS_CHAP_CHALLENGE]
        response = avps[MS_CHAP2_RESPONSE]
        if len(response) != _MS_CHAP2_RESPONSE_LEN or not hmac.compare_digest(challenge, expected[:16]):
            return Failed("ttls: MSCHAPv2 challenge not derived from this tunnel")
        if response[0] != expected[16]:
            return Failed("ttls: MSCHAPv2 Ident not derived from this tunnel")
        if password_hash is None:
            if self._directory:
                why = "MSCHAPv2 needs nac's own users: LDAP gives no NT hash"
                return Failed(f"ttls: unknown user {username!r} ({why})")
            return Failed(f"ttls: unknown user {username!r}")
        peer_challenge, nt_response = response[2:18], response[26:50]
        if not mschapv2.verify(challenge, peer_challenge, name, password_hash, nt_response):
            return Failed(f"ttls: wrong password for {username!r}")
        self._identity = username
        proof = mschapv2.authenticator_response(password_hash, nt_response, peer_challenge, challenge, name)
        self._phase = "proved"
        return self.send(self.tunnel.send(encode_avp(MICROSOFT, MS_CHAP2_SUCCESS[1], response[:1] + proof)))

    def _bound(self, answer: DirectoryAnswer) -> Done | Failed:
        if not answer.ok:
            return Failed(f"ttls: {answer.reason}")
        return Done(self._identity, self._msk(), answer)

    def _done(self) -> Step:
        # RFC 5281 §8: MSK = PRF(master secret, "ttls keying material", randoms), 64 octets.
        return Done(self._identity, self._msk())

    def _msk(self) -> bytes:
        return self.tunnel.export(b"ttls keying material", 64)
