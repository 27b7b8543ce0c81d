"""EAP methods driven in-process, one step at a time, where the RADIUS-level tests only reach
them through a running server and a real supplicant (which coverage does not follow)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from fakenas import FakeNas, values
from OpenSSL import SSL

from nac.admission.engine import Engine
from nac.eap import eap as eap_module
from nac.eap import mschapv2
from nac.eap import tls as tls_module
from nac.eap.certs import init as certs_init
from nac.eap.config import EapConfig, contexts, settings
from nac.eap.eap import EapError, EapPacket, EapReply, EapServer, EapSettings, decode_eap, encode_eap
from nac.eap.keys import MppeCodes
from nac.eap.md5 import CHALLENGE_LEN, TYPE_MD5, EapMd5
from nac.eap.method import Done, Failed, Next
from nac.eap.peap import TYPE_EXTENSIONS, TYPE_IDENTITY, TYPE_MSCHAPV2
from nac.eap.tls import FLAG_L, FLAG_M, FRAGMENT_SIZE, MAX_TLS_MESSAGE
from nac.eap.ttls import (
    MICROSOFT,
    MS_CHAP2_SUCCESS,
    MS_CHAP_CHALLENGE,
    USER_NAME,
    AvpError,
    Ttls,
    decode_avps,
    encode_avp,
)
from nac.radius.packet import Codes
from nac.registry.oui import Registry, registry_from_manuf
from nac.resources import load_dictionary
from tests.test_eap_radius import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    MANUF,
    NOW,
    REPLY_MESSAGE,
    TlsPeer,
    converse,
    make_engine,
    mppe_keys,
)

CHALLENGE = bytes(range(CHALLENGE_LEN))
PASSWORDS = {"bob": "s3cret"}


def _md5(identity: str = "bob", identifier: int = 7) -> EapMd5:
    return EapMd5(
        identity=identity,
        password=PASSWORDS.get,
        identifier=lambda: identifier,
        random=lambda n: CHALLENGE[:n],
        server_name="nac-test",
    )


def _answer(password: str, identifier: int = 7) -> bytes:
    return bytes((16,)) + hashlib.md5(bytes((identifier,)) + password.encode() + CHALLENGE).digest()


def test_md5_challenge_is_length_value_then_server_name() -> None:
    method = _md5()
    assert (method.name, method.eap_type) == ("eap-md5", TYPE_MD5)
    assert method.start() == bytes((CHALLENGE_LEN,)) + CHALLENGE + b"nac-test"


def test_md5_right_password_authenticates_without_keys() -> None:
    step = _md5().process(_answer("s3cret"))
    assert step == Done("bob", b"")


def test_md5_answer_is_bound_to_the_identifier_the_challenge_went_out_with() -> None:
    # The same password hashed under another EAP Identifier is a replay, not an answer.
    step = _md5(identifier=7).process(_answer("s3cret", identifier=8))
    assert isinstance(step, Failed)
    assert step.reason == "eap-md5: wrong password for 'bob'"


def test_md5_wrong_password_is_refused_by_name() -> None:
    step = _md5().process(_answer("guess"))
    assert step == Failed("eap-md5: wrong password for 'bob'")


def test_md5_user_not_enrolled_for_md5_is_refused_before_any_hashing() -> None:
    step = _md5(identity="carol").process(_answer("s3cret"))
    assert step == Failed("eap-md5: 'carol' is not enrolled for EAP-MD5")


@pytest.mark.parametrize(
    "data",
    [b"", bytes((15,)) + bytes(15), bytes((16,)) + bytes(15), bytes((17,)) + bytes(17)],
    ids=["empty", "short-value-size", "truncated-value", "wrong-value-size"],
)
def test_md5_malformed_response_is_refused(data: bytes) -> None:
    assert _md5().process(data) == Failed("eap-md5: malformed response")


# -- PEAPv0 with EAP-MSCHAPv2 inside, through the admission engine ----------------------------

PEER_CHALLENGE = bytes(range(100, 116))


class PeapPeer:
    """The supplicant's side of PEAPv0 phase 2 ([MS-PEAP]): inner EAP without its header,
    except the Extensions packet that carries the Result TLV."""

    def __init__(self, pki: Path, *, password: str, user: bytes = b"alice") -> None:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
        ctx.load_verify_locations(str(pki / "lab" / "ca.pem"))
        ctx.set_verify(SSL.VERIFY_PEER)
        self.tls = TlsPeer(ctx, eap_type=25)
        self.password_hash = mschapv2.nt_hash(password)
        self.user = user
        self.inner: list[bytes] = []  # what the server sent inside the tunnel
        #: How the peer answers each inner request; tests replace one to misbehave.
        self.answer: dict[int, Callable[[bytes], bytes]] = {
            TYPE_IDENTITY: lambda _req: bytes((TYPE_IDENTITY,)) + user,
            TYPE_MSCHAPV2: self._mschapv2,
            TYPE_EXTENSIONS: self._result,
        }
        self.server_proof = b""

    def respond(self, _eap_type: int, data: bytes) -> bytes:
        out = self.tls.respond(data)
        if not self.tls.app_data:
            return out
        request, self.tls.app_data = self.tls.app_data, b""
        self.inner.append(request)
        kind = request[4] if request[0] == 1 and len(request) > 4 else request[0]  # full or bare
        return self.tls.send_app(self.answer[kind](request))

    def _mschapv2(self, request: bytes) -> bytes:
        op, ms_id = request[1], request[2]
        if op == 3:  # Success: the server proved it knows the password hash too
            self.server_proof = request[5:]
            return bytes((TYPE_MSCHAPV2, 3))
        challenge = request[6:22]
        nt = mschapv2.nt_response(challenge, PEER_CHALLENGE, self.user, self.password_hash)
        value = PEER_CHALLENGE + bytes(8) + nt + b"\x00"
        body = bytes((len(value),)) + value + self.user
        return bytes((TYPE_MSCHAPV2, 2, ms_id)) + (4 + len(body)).to_bytes(2, "big") + body

    @staticmethod
    def _result(request: bytes, status: int = 1) -> bytes:
        tlv = bytes((0x80, 0x03, 0x00, 0x02, 0x00, status))
        return bytes((2, request[1])) + (5 + len(tlv)).to_bytes(2, "big") + bytes((TYPE_EXTENSIONS,)) + tlv


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    certs_init(path / "lab")
    return path


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test", date="2026-01")


@pytest.fixture
def peap_engine(codes: Codes, registry: Registry, pki: Path) -> Engine:
    return make_engine(codes, registry, pki, methods=("peap",))


@pytest.fixture
def nas(codes: Codes) -> FakeNas:
    return FakeNas(codes)


def test_peap_mschapv2_authenticates_both_ways_and_hands_out_the_tunnel_keys(
    peap_engine: Engine, nas: FakeNas, pki: Path
) -> None:
    peer = PeapPeer(pki, password="correct horse")
    sent: list[bytes] = []
    original = nas.fresh_authenticator

    def remember() -> bytes:
        sent.append(original())
        return sent[-1]

    nas.fresh_authenticator = remember  # type: ignore[method-assign]
    outcome, _ = converse(peap_engine, nas, peer.respond)
    assert outcome.reply[0] == ACCESS_ACCEPT, values(outcome.reply, REPLY_MESSAGE)
    assert outcome.record is not None
    assert (outcome.record.method, outcome.record.user_name) == ("peap", "alice")
    # Inner identity, MSCHAPv2 challenge, MSCHAPv2 success, then the Result TLV in a full packet.
    assert [m[0] for m in peer.inner[:3]] == [TYPE_IDENTITY, TYPE_MSCHAPV2, TYPE_MSCHAPV2]
    assert peer.inner[3][4] == TYPE_EXTENSIONS
    challenge = peer.inner[1][6:22]
    nt = mschapv2.nt_response(challenge, PEER_CHALLENGE, b"alice", peer.password_hash)
    proof = mschapv2.authenticator_response(peer.password_hash, nt, PEER_CHALLENGE, challenge, b"alice")
    assert peer.server_proof == proof + b" M=Authentication succeeded"
    msk = peer.tls.conn.export_keying_material(b"client EAP encryption", 64)
    assert mppe_keys(outcome.reply, nas.secret, sent[-1]) == {17: msk[:32], 16: msk[32:64]}


@pytest.mark.parametrize(
    ("password", "user", "reason"),
    [
        ("wrong", b"alice", "peap: wrong password for 'alice'"),
        ("correct horse", b"mallory", "peap: unknown user 'mallory'"),
    ],
)
def test_peap_refuses_a_wrong_password_or_an_unknown_user(
    peap_engine: Engine, nas: FakeNas, pki: Path, password: str, user: bytes, reason: str
) -> None:
    outcome, _ = converse(peap_engine, nas, PeapPeer(pki, password=password, user=user).respond)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.reason.endswith(reason)


def _misbehave(peer: PeapPeer, kind: int, answer: Callable[[bytes], bytes]) -> None:
    peer.answer[kind] = answer


@pytest.mark.parametrize(
    ("kind", "answer", "reason"),
    [
        (TYPE_MSCHAPV2, lambda _r: bytes((3, 26)), "peap: the peer refused EAP-MSCHAPv2 inside the tunnel"),
        (TYPE_MSCHAPV2, lambda _r: bytes((26, 2, 1, 0)), "peap: malformed MSCHAPv2 response"),
        (TYPE_IDENTITY, lambda _r: b"\x02alice", "peap: no inner identity"),
        (
            TYPE_EXTENSIONS,
            lambda r: PeapPeer._result(r, status=2),
            "peap: the peer reported failure in its Result TLV",
        ),
        (TYPE_EXTENSIONS, lambda r: bytes((2, r[1], 0, 5, 33)), "peap: no Result TLV in the peer's answer"),
    ],
    ids=["inner-nak", "short-mschapv2", "no-identity", "result-failure", "no-result-tlv"],
)
def test_peap_refuses_a_peer_that_breaks_phase_two(
    peap_engine: Engine, nas: FakeNas, pki: Path, kind: int, answer: Callable[[bytes], bytes], reason: str
) -> None:
    peer = PeapPeer(pki, password="correct horse")
    _misbehave(peer, kind, answer)
    outcome, _ = converse(peap_engine, nas, peer.respond)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.reason.endswith(reason)


def test_peap_refuses_a_mschapv2_response_to_another_challenge(
    peap_engine: Engine, nas: FakeNas, pki: Path
) -> None:
    peer = PeapPeer(pki, password="correct horse")
    honest = peer.answer[TYPE_MSCHAPV2]

    def other_ms_id(request: bytes) -> bytes:
        answer = honest(request)
        return answer[:2] + bytes(((answer[2] + 1) & 0xFF,)) + answer[3:]

    peer.answer[TYPE_MSCHAPV2] = other_ms_id
    outcome, _ = converse(peap_engine, nas, peer.respond)
    assert outcome.record is not None
    assert outcome.record.reason.endswith("peap: MSCHAPv2 response to another challenge")


# -- EAP-TTLS: the AVPs in the tunnel, and MSCHAPv2 bound to it (RFC 5281 §11.2.4) -------------


def test_avps_are_read_by_vendor_and_code_padded_to_four_octets_first_value_kept() -> None:
    data = (
        encode_avp(0, 1, b"alice")  # 13 octets, padded to 16
        + encode_avp(MICROSOFT, 11, b"c" * 16)
        + encode_avp(0, 1, b"mallory")
    )
    assert decode_avps(data) == {USER_NAME: b"alice", MS_CHAP_CHALLENGE: b"c" * 16}
    assert decode_avps(b"") == {}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (encode_avp(0, 1, b"alice")[:6], "AVP header cut short"),
        (b"\x00\x00\x00\x01\x40\x00\x00\x07", "AVP 1 has length 7"),  # shorter than its header
        (b"\x00\x00\x00\x01\x40\x00\x00\x20abc", "AVP 1 has length 32"),  # past the end
        (b"\x00\x00\x00\x0b\xc0\x00\x00\x0a\x00\x00", "AVP 11 has length 10"),  # vendor header is 12
    ],
)
def test_malformed_avps_are_refused(data: bytes, error: str) -> None:
    with pytest.raises(AvpError, match=error):
        decode_avps(data)


class TtlsPeer:
    """The supplicant's side of EAP-TTLS phase 2: one flight of AVPs once the handshake is done."""

    def __init__(self, pki: Path, credentials: Callable[[TtlsPeer], bytes]) -> None:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
        ctx.load_verify_locations(str(pki / "lab" / "ca.pem"))
        ctx.set_verify(SSL.VERIFY_PEER)
        self.tls = TlsPeer(ctx, eap_type=21)
        self.credentials = credentials
        self.sent = False
        self.after_success = b""  # what the peer sends once the server proved itself
        self.success: dict[tuple[int, int], bytes] = {}

    def respond(self, _eap_type: int, data: bytes) -> bytes:
        out = self.tls.respond(data)
        if self.tls.app_data:
            self.success, self.tls.app_data = decode_avps(self.tls.app_data), b""
            return self.tls.send_app(self.after_success) if self.after_success else b"\x00"
        if out == b"\x00" and not self.sent and self.tls.conn.get_state_string().endswith(b"successfully"):
            self.sent = True
            avps = self.credentials(self)
            if self.tls.pending:  # the test wrote TLS records of its own
                return self.tls._fragment()
            return self.tls.send_app(avps) if avps else b"\x00"
        return out

    def bound_challenge(self) -> bytes:
        return self.tls.conn.export_keying_material(b"ttls challenge", 17)


def mschapv2_avps(
    password: str, *, user: bytes = b"alice", challenge: bytes | None = None, ident: int | None = None
) -> Callable[[TtlsPeer], bytes]:
    def credentials(peer: TtlsPeer) -> bytes:
        bound = peer.bound_challenge()
        chal = bound[:16] if challenge is None else challenge
        nt = mschapv2.nt_response(chal, PEER_CHALLENGE, user, mschapv2.nt_hash(password))
        response = bytes((bound[16] if ident is None else ident, 0)) + PEER_CHALLENGE + bytes(8) + nt
        return (
            encode_avp(0, 1, user) + encode_avp(MICROSOFT, 11, chal) + encode_avp(MICROSOFT, 25, response)
        )

    return credentials


@pytest.fixture
def ttls_engine(codes: Codes, registry: Registry, pki: Path) -> Engine:
    return make_engine(codes, registry, pki, methods=("ttls",))


def test_ttls_mschapv2_authenticates_both_ways_with_a_tunnel_bound_challenge(
    ttls_engine: Engine, nas: FakeNas, pki: Path
) -> None:
    peer = TtlsPeer(pki, mschapv2_avps("correct horse"))
    outcome, _ = converse(ttls_engine, nas, peer.respond)
    assert outcome.reply[0] == ACCESS_ACCEPT, values(outcome.reply, REPLY_MESSAGE)
    assert outcome.record is not None
    assert (outcome.record.method, outcome.record.user_name) == ("ttls", "alice")
    bound = peer.bound_challenge()
    password_hash = mschapv2.nt_hash("correct horse")
    nt = mschapv2.nt_response(bound[:16], PEER_CHALLENGE, b"alice", password_hash)
    proof = mschapv2.authenticator_response(password_hash, nt, PEER_CHALLENGE, bound[:16], b"alice")
    assert peer.success == {MS_CHAP2_SUCCESS: bound[16:17] + proof}


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        (mschapv2_avps("wrong"), "ttls: wrong password for 'alice'"),
        (mschapv2_avps("correct horse", user=b"mallory"), "ttls: unknown user 'mallory'"),
        (mschapv2_avps("correct horse", challenge=bytes(16)), "ttls: MSCHAPv2 challenge not derived"),
        (lambda p: mschapv2_avps("correct horse", ident=p.bound_challenge()[16] ^ 1)(p), "Ident not derived"),
        (lambda _p: encode_avp(0, 1, b"mallory") + encode_avp(0, 2, b"x"), "ttls: unknown user 'mallory'"),
        (lambda _p: encode_avp(0, 79, b"\x02\x00\x00\x05\x01"), "EAP inside the tunnel is not supported"),
        (lambda _p: encode_avp(0, 2, b"correct horse"), "ttls: no User-Name in the tunnel"),
        (lambda _p: encode_avp(0, 1, b"alice"), "ttls: neither PAP nor MSCHAPv2 credentials"),
        (lambda _p: encode_avp(0, 1, b"alice")[:6], "ttls: AVP header cut short"),
        (lambda _p: b"", "ttls: the peer sent no credentials"),
    ],
    ids=[
        "wrong-password", "unknown-user", "foreign-challenge", "foreign-ident", "pap-unknown-user",
        "inner-eap", "no-user-name", "no-credentials", "malformed-avp", "empty",
    ],
)
def test_ttls_refuses_credentials_it_cannot_verify(
    ttls_engine: Engine, nas: FakeNas, pki: Path, credentials: Callable[[TtlsPeer], bytes], reason: str
) -> None:
    outcome, _ = converse(ttls_engine, nas, TtlsPeer(pki, credentials).respond)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert reason in outcome.record.reason


def test_ttls_refuses_data_after_mschapv2_success(ttls_engine: Engine, nas: FakeNas, pki: Path) -> None:
    # RFC 5281 §11.2.4: the peer acknowledges the server's proof with an empty response.
    peer = TtlsPeer(pki, mschapv2_avps("correct horse"))
    peer.after_success = encode_avp(0, 1, b"alice")
    outcome, _ = converse(ttls_engine, nas, peer.respond)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.reason.endswith("ttls: data after MS-CHAP2-Success")


# -- The conversation itself (EapServer.step): what a confused or hostile peer gets ------------

MAC_A, MAC_B = 0x0010A42319C0, 0x0010A42319C1


@pytest.fixture
def server(pki: Path) -> EapServer:
    lab = pki / "lab"
    config = EapConfig(
        certificate=str(lab / "server.pem"), private_key=str(lab / "server.key"), methods=("ttls",)
    )
    md5 = {"bob": "s3cret"}
    return EapServer(
        replace(settings(config, {}), md5_passwords=md5.get),
        mppe=MppeCodes.from_dictionary(load_dictionary()),
        random=lambda n: bytes(range(n)),
    )


def _begin(server: EapServer, *, allow_md5: bool = False) -> EapReply:
    reply = server.step(encode_eap(2, 1, 1, b"bob"), state=None, mac=MAC_A, now=NOW, allow_md5=allow_md5)
    assert (reply.kind, reply.message[4]) == ("challenge", 21)  # TTLS, the only method configured
    return reply


def _next(server: EapServer, reply: EapReply, eap_type: int, data: bytes, *, mac: int = MAC_A) -> EapReply:
    return server.step(encode_eap(2, reply.message[1], eap_type, data), state=reply.state, mac=mac, now=NOW)


def test_md5_is_offered_only_when_the_peer_asks_and_the_client_allows_it(server: EapServer) -> None:
    refused = _next(server, _begin(server), 3, bytes((TYPE_MD5,)))
    assert (refused.kind, refused.reason) == ("failure", "no common EAP method (the peer wants 4)")
    challenge = _next(server, _begin(server, allow_md5=True), 3, bytes((TYPE_MD5,)))
    assert (challenge.kind, challenge.method, challenge.message[4]) == ("challenge", "eap-md5", TYPE_MD5)
    value = challenge.message[6:22]
    answer = hashlib.md5(challenge.message[1:2] + b"s3cret" + value).digest()
    done = _next(server, challenge, TYPE_MD5, bytes((16,)) + answer)
    assert (done.kind, done.identity, done.msk) == ("success", "bob", b"")
    assert done.message == encode_eap(3, challenge.message[1])
    assert len(server) == 0


def test_nak_is_only_an_answer_to_the_first_request(server: EapServer) -> None:
    challenge = _next(server, _begin(server, allow_md5=True), 3, bytes((TYPE_MD5,)))
    again = _next(server, challenge, 3, bytes((21,)))
    assert (again.kind, again.reason) == ("failure", "EAP Nak after the method began")


def test_a_response_of_another_type_than_the_method_ends_the_conversation(server: EapServer) -> None:
    reply = _next(server, _begin(server), 25, b"\x00")
    assert (reply.kind, reply.reason) == ("failure", "EAP type 25 is not ttls")
    assert len(server) == 0


def test_the_device_may_not_change_mid_conversation(server: EapServer) -> None:
    reply = _next(server, _begin(server), 21, b"\x00", mac=MAC_B)
    assert (reply.kind, reply.reason) == ("failure", "Calling-Station-Id changed mid-conversation")


def test_a_continued_conversation_needs_an_eap_response(server: EapServer) -> None:
    begun = _begin(server)
    reply = server.step(b"", state=begun.state, mac=MAC_A, now=NOW)
    assert (reply.kind, reply.reason) == ("failure", "expected an EAP-Response")
    begun = _begin(server)
    reply = server.step(encode_eap(3, begun.message[1]), state=begun.state, mac=MAC_A, now=NOW)
    assert reply.reason == "expected an EAP-Response"  # an EAP-Success from the peer


def test_a_conversation_is_bounded_in_octets(server: EapServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "MAX_CONVERSATION_OCTETS", 64)
    reply = _next(server, _begin(server), 21, b"\x00" + bytes(64))
    assert (reply.kind, reply.reason) == ("failure", "EAP conversation too large")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (encode_eap(1, 1, 1), "the first EAP packet is not an Identity response"),  # a Request
        (encode_eap(2, 1, 3, b"\x15"), "the first EAP packet is not an Identity response"),
        (encode_eap(4, 1), "the first EAP packet is not an Identity response"),
        (b"\x05\x01\x00\x05\x01", "malformed EAP: EAP code 5 with length 5"),
        (b"\x02\x01\x00\x04", "malformed EAP: EAP code 2 with length 4"),
        (b"\x02\x01\x00", "malformed EAP: EAP packet of 3 octets"),
    ],
    ids=["request", "nak-first", "failure", "unknown-code", "response-without-type", "short"],
)
def test_a_conversation_starts_only_with_an_identity_response(
    server: EapServer, message: bytes, reason: str
) -> None:
    reply = server.step(message, state=None, mac=MAC_A, now=NOW)
    assert (reply.kind, reply.reason) == ("failure", reason)
    assert len(server) == 0


def test_no_method_enabled_refuses_after_the_identity() -> None:
    server = EapServer(EapSettings(methods=()), mppe=MppeCodes.from_dictionary(load_dictionary()))
    reply = server.step(encode_eap(2, 1, 1, b"bob"), state=None, mac=MAC_A, now=NOW)
    assert (reply.kind, reply.identity, reply.reason) == ("failure", "bob", "no EAP method is enabled")


def test_decode_eap_reads_success_and_failure_without_a_type() -> None:
    assert decode_eap(encode_eap(3, 9)) == EapPacket(3, 9, None, b"")
    assert decode_eap(encode_eap(2, 9, 1, b"bob")) == EapPacket(2, 9, 1, b"bob")
    with pytest.raises(EapError, match="EAP Length 4 but 5 octets"):
        decode_eap(encode_eap(3, 9) + b"\x00")


# -- The TLS framing every TLS-based method shares (RFC 5216 §3.1-3.2) -------------------------


@pytest.fixture
def ttls(pki: Path) -> Ttls:
    lab = pki / "lab"
    config = EapConfig(
        certificate=str(lab / "server.pem"), private_key=str(lab / "server.key"), methods=("ttls",)
    )
    return Ttls(contexts(config)[1], users={})


def test_tls_message_length_must_be_whole_and_within_the_limit(ttls: Ttls) -> None:
    assert ttls.process(b"") == Failed("ttls: empty response")
    assert ttls.process(bytes((FLAG_L, 0, 0))) == Failed("ttls: TLS Message Length cut short")
    too_long = bytes((FLAG_L,)) + (MAX_TLS_MESSAGE + 1).to_bytes(4, "big")
    assert ttls.process(too_long) == Failed(f"ttls: TLS message over {MAX_TLS_MESSAGE} octets")


def test_fragments_may_not_add_up_past_the_limit(ttls: Ttls) -> None:
    # No Length announced: the limit holds on what actually arrives.
    chunk = bytes((FLAG_M,)) + bytes(FRAGMENT_SIZE)
    steps = [ttls.process(chunk) for _ in range(MAX_TLS_MESSAGE // FRAGMENT_SIZE)]
    assert set(steps) == {Next(b"\x00")}  # each fragment acknowledged
    assert ttls.process(chunk) == Failed(f"ttls: TLS message over {MAX_TLS_MESSAGE} octets")


def test_our_fragments_are_acknowledged_with_empty_responses_only(
    ttls: Ttls, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_module, "FRAGMENT_SIZE", 200)  # our flight is ~700 octets: fragment it
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.load_verify_locations(str(pki / "lab" / "ca.pem"))
    peer = TlsPeer(ctx, eap_type=21)
    step = ttls.process(peer.respond(ttls.start()))
    while step == Next(b"\x00"):  # we acknowledge each fragment of the peer's ClientHello
        step = ttls.process(peer.respond(step.data))
    assert isinstance(step, Next)
    assert step.data[0] & (FLAG_L | FLAG_M) == FLAG_L | FLAG_M  # our first flight, fragmented
    assert ttls.process(b"\x00hello") == Failed("ttls: data instead of a fragment acknowledgement")


@pytest.mark.parametrize(
    ("after_handshake", "reason"),
    [
        (lambda conn: (conn.shutdown(), conn.bio_read(65536))[1], "ttls: TLS: the peer closed the tunnel"),
        (lambda _conn: b"\x17\x03\x03\x00\x20" + bytes(32), "ttls: TLS: "),  # a record that fails to decrypt
    ],
    ids=["close-notify", "forged-record"],
)
def test_tunnel_errors_after_the_handshake_end_the_conversation(
    ttls_engine: Engine,
    nas: FakeNas,
    pki: Path,
    after_handshake: Callable[[SSL.Connection], bytes],
    reason: str,
) -> None:
    def credentials(peer: TtlsPeer) -> bytes:
        peer.tls.pending = after_handshake(peer.tls.conn)
        return b""

    peer = TtlsPeer(pki, credentials)
    outcome, _ = converse(ttls_engine, nas, peer.respond)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert reason in outcome.record.reason
