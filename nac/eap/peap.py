"""PEAPv0 with EAP-MSCHAPv2 inside (draft-josefsson-pppext-eap-tls-eap-05, [MS-PEAP]).

Phase 2 runs in the TLS tunnel.  PEAPv0 sends inner EAP packets without their 4-octet header,
except the Extensions packet (type 33) that carries the Result TLV ([MS-PEAP] §2.2.5; hostapd's
and wpa_supplicant's eap_peap.c do the same).  No crypto binding: the MSK is the TLS key
export with "client EAP encryption", as hostapd derives it for PEAPv0 without binding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from OpenSSL import SSL

from nac.eap import mschapv2
from nac.eap.method import Done, Failed, Step
from nac.eap.tls import Random, TlsMethod

TYPE_IDENTITY: Final = 1
TYPE_NAK: Final = 3
TYPE_MSCHAPV2: Final = 26
TYPE_EXTENSIONS: Final = 33
CODE_REQUEST: Final = 1
CODE_RESPONSE: Final = 2
# EAP-MSCHAPv2 OpCodes (draft-kamath-pppext-eap-mschapv2-02 §2).
OP_CHALLENGE: Final = 1
OP_RESPONSE: Final = 2
OP_SUCCESS: Final = 3
OP_FAILURE: Final = 4
# Result TLV ([MS-PEAP] §2.2.8.1): mandatory bit + type 3, length 2, status.
RESULT_TLV: Final = 0x8003
RESULT_SUCCESS: Final = 1
RESULT_FAILURE: Final = 2
#: Peer-Challenge (16) + Reserved (8) + NT-Response (24) + Flags (1).
_RESPONSE_VALUE_LEN: Final = 49


def mschapv2_challenge(ms_id: int, challenge: bytes, server_name: bytes) -> bytes:
    """Type-Data of an EAP-MSCHAPv2 Challenge, after the type octet."""
    body = bytes((16,)) + challenge + server_name
    return bytes((OP_CHALLENGE, ms_id)) + (4 + len(body)).to_bytes(2, "big") + body


def mschapv2_success(ms_id: int, message: bytes) -> bytes:
    return bytes((OP_SUCCESS, ms_id)) + (4 + len(message)).to_bytes(2, "big") + message


class Peap(TlsMethod):
    name = "peap"
    eap_type = 25
    version = 0

    def __init__(
        self, context: SSL.Context, *, users: Mapping[str, bytes], random: Random, server_name: str
    ) -> None:
        super().__init__(context)
        self._users = users
        self._random = random
        self._server_name = server_name.encode()
        self._phase = "handshake"
        self._inner_id = 0
        self._identity = ""
        self._challenge = b""
        self._ms_id = 0

    def established(self, flight: bytes) -> Step:
        self._phase = "acknowledge"
        return self.send(flight)

    def tunnel_data(self, message: bytes) -> Step:
        if self._phase == "acknowledge":
            if message:
                return Failed("peap: data before the inner identity request")
            return self._inner(bytes((TYPE_IDENTITY,)), "identity")
        inner = self.tunnel.receive(message)
        if not inner:
            return Failed("peap: empty inner response")
        if self._phase == "identity":
            if inner[0] != TYPE_IDENTITY:
                return Failed("peap: no inner identity")
            self._identity = inner[1:].decode(errors="replace")
            self._challenge = self._random(mschapv2.CHALLENGE_LEN)
            self._ms_id = self._inner_id + 1
            request = mschapv2_challenge(self._ms_id, self._challenge, self._server_name)
            return self._inner(bytes((TYPE_MSCHAPV2,)) + request, "mschapv2")
        if self._phase == "mschapv2":
            return self._mschapv2_response(inner)
        if self._phase == "mschapv2-success":
            if inner[:2] != bytes((TYPE_MSCHAPV2, OP_SUCCESS)):
                return Failed("peap: the peer did not accept the server's MSCHAPv2 proof")
            tlv = RESULT_TLV.to_bytes(2, "big") + (2).to_bytes(2, "big") + RESULT_SUCCESS.to_bytes(2, "big")
            self._inner_id = (self._inner_id + 1) & 0xFF
            packet = bytes((CODE_REQUEST, self._inner_id)) + (5 + len(tlv)).to_bytes(2, "big")
            return self._send_inner(packet + bytes((TYPE_EXTENSIONS,)) + tlv, "result")
        if self._phase == "result":
            return self._result(inner)
        return Failed(f"peap: unexpected data in phase {self._phase}")

    def _inner(self, type_data: bytes, phase: str) -> Step:
        """An inner EAP-Request, header stripped (PEAPv0)."""
        self._inner_id = (self._inner_id + 1) & 0xFF
        return self._send_inner(type_data, phase)

    def _send_inner(self, plain: bytes, phase: str) -> Step:
        self._phase = phase
        return self.send(self.tunnel.send(plain))

    def _mschapv2_response(self, inner: bytes) -> Step:
        if inner[0] == TYPE_NAK:
            return Failed("peap: the peer refused EAP-MSCHAPv2 inside the tunnel")
        if len(inner) < 5 + _RESPONSE_VALUE_LEN or inner[0] != TYPE_MSCHAPV2 or inner[1] != OP_RESPONSE:
            return Failed("peap: malformed MSCHAPv2 response")
        if inner[2] != self._ms_id or inner[5] != _RESPONSE_VALUE_LEN:
            return Failed("peap: MSCHAPv2 response to another challenge")
        value = inner[6 : 6 + _RESPONSE_VALUE_LEN]
        name = inner[6 + _RESPONSE_VALUE_LEN :]
        peer_challenge, nt_response = value[:16], value[24:48]
        username = name.decode(errors="replace")
        password_hash = self._users.get(username)
        if password_hash is None:
            return Failed(f"peap: unknown user {username!r}")
        if not mschapv2.verify(self._challenge, peer_challenge, name, password_hash, nt_response):
            return Failed(f"peap: wrong password for {username!r}")
        self._identity = username
        proof = mschapv2.authenticator_response(
            password_hash, nt_response, peer_challenge, self._challenge, name
        )
        request = mschapv2_success(self._ms_id, proof + b" M=Authentication succeeded")
        return self._inner(bytes((TYPE_MSCHAPV2,)) + request, "mschapv2-success")

    def _result(self, inner: bytes) -> Step:
        # A full EAP packet: Response, id, length, type 33, Result TLV.
        if len(inner) < 11 or inner[0] != CODE_RESPONSE or inner[4] != TYPE_EXTENSIONS:
            return Failed("peap: no Result TLV in the peer's answer")
        tlv_type = int.from_bytes(inner[5:7], "big") & 0x3FFF
        status = int.from_bytes(inner[9:11], "big")
        if tlv_type != RESULT_TLV & 0x3FFF or status != RESULT_SUCCESS:
            return Failed("peap: the peer reported failure in its Result TLV")
        return Done(self._identity, self.tunnel.export(b"client EAP encryption", 64))
