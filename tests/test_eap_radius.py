"""802.1X through nac.admission in memory: EAP over RADIUS (RFC 3579) with an in-process
EAP-TLS supplicant (pyOpenSSL on memory BIOs), the vendor policy first, and the limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fakenas import FakeNas, attr, values
from netaddr import IPNetwork
from OpenSSL import SSL

from nac.admission.engine import Engine, Outcome
from nac.eap import eap as eap_module
from nac.eap.certs import init as certs_init
from nac.eap.config import EapConfig, settings
from nac.eap.eap import EapServer, encode_eap
from nac.eap.keys import MppeCodes, decrypt_key
from nac.eap.mschapv2 import nt_hash
from nac.eap.ttls import encode_avp
from nac.equipment.clients import Client
from nac.policy.decide import Defaults, Policy, Rule
from nac.radius.crypto import HmacMd5
from nac.radius.packet import ACCESS_REQUEST, Codes, encode_request
from nac.registry.oui import Registry, registry_from_manuf
from nac.resources import load_dictionary

ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE = 2, 3, 11
USER_NAME, REPLY_MESSAGE, STATE, CALLING_STATION_ID, EAP_MESSAGE = 1, 18, 24, 31, 79
VENDOR_SPECIFIC, TUNNEL_PRIVATE_GROUP_ID = 26, 81
NOW = 1_800_000_000.0
ALLOWED = "00-10-A4-23-19-C0"  # Xircom: no rule
BANNED = "00-E0-FC-12-34-56"  # Huawei: rejected
QUARANTINED = "00-1B-21-AA-BB-CC"  # Intel: VLAN 666
MANUF = "\n".join(
    [
        "00:10:A4\tXircom\tXircom",
        "00:E0:FC\tHuawei\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:1B:21\tIntel\tIntel Corporate",
    ]
)
RULES = (
    Rule(id="ban-huawei", kind="oui", value="00:E0:FC", action="reject", reason="banned vendor"),
    Rule(id="quarantine-intel", kind="oui", value="00:1B:21", action="quarantine", vlan="666"),
)
#: Smaller than nac's 1024, so the server reassembles several fragments of each client flight.
PEER_FRAGMENT = 300


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    certs_init(path / "lab")
    certs_init(path / "other")  # a CA that nac does not trust
    return path


@pytest.fixture(scope="module")
def codes() -> Codes:
    return Codes.from_dictionary(load_dictionary())


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test", date="2026-01")


def make_engine(
    codes: Codes, registry: Registry, pki: Path, *, methods: tuple[str, ...] = ("tls", "ttls")
) -> Engine:
    lab = pki / "lab"
    config = EapConfig(
        certificate=str(lab / "server.pem"),
        private_key=str(lab / "server.key"),
        ca_certificates=str(lab / "ca.pem"),
        methods=methods,
    )
    eap = EapServer(
        settings(config, {"alice": nt_hash("correct horse")}),
        mppe=MppeCodes.from_dictionary(load_dictionary()),
    )
    return Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=Defaults()), eap=eap)


@pytest.fixture
def engine(codes: Codes, registry: Registry, pki: Path) -> Engine:
    return make_engine(codes, registry, pki)


@pytest.fixture
def nas(codes: Codes) -> FakeNas:
    return FakeNas(codes)


def client(nas: FakeNas) -> Client:
    return Client(name="ap1", network=IPNetwork("192.0.2.0/24"), secret=nas.secret)


def eap_attrs(message: bytes) -> bytes:
    return b"".join(attr(EAP_MESSAGE, message[i : i + 253]) for i in range(0, len(message) or 1, 253))


def request(
    nas: FakeNas, message: bytes, *, state: bytes | None = None, mac: str | None = ALLOWED, extra: bytes = b""
) -> bytes:
    body = attr(USER_NAME, "client.nac.lab") + extra
    if mac is not None:
        body += attr(CALLING_STATION_ID, mac)
    body += eap_attrs(message)
    if state is not None:
        body += attr(STATE, state)
    return encode_request(
        ACCESS_REQUEST, nas.next_id(), nas.fresh_authenticator(), body, key=HmacMd5(nas.secret)
    )


def send(engine: Engine, nas: FakeNas, data: bytes, now: float = NOW) -> Outcome:
    return engine.handle(data, src=nas.src, port=1812, service="auth", client=client(nas), now=now)


def eap_of(reply: bytes) -> bytes:
    return b"".join(values(reply, EAP_MESSAGE))


def identity(ident: int = 1, name: bytes = b"client.nac.lab") -> bytes:
    return encode_eap(2, ident, 1, name)


class TlsPeer:
    """The supplicant's side of EAP-TLS framing (RFC 5216 §3), over pyOpenSSL memory BIOs."""

    def __init__(self, ctx: SSL.Context, eap_type: int = 13) -> None:
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_connect_state()
        self.eap_type = eap_type
        self.pending = b""
        self.incoming = b""
        self.app_data = b""

    def respond(self, data: bytes) -> bytes:
        flags, body = data[0], data[1:]
        if flags & 0x80:
            body = body[4:]
        if self.pending:
            return self._fragment()
        self.incoming += body
        if flags & 0x40:
            return b"\x00"
        if not flags & 0x20:
            self.conn.bio_write(self.incoming)
        self.incoming = b""
        try:
            self.conn.do_handshake()
            while True:
                self.app_data += self.conn.recv(4096)
        except SSL.WantReadError:
            pass
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                break
        self.pending = out
        return self._fragment() if out else b"\x00"

    def send_app(self, data: bytes) -> bytes:
        self.conn.sendall(data)
        self.pending = self.conn.bio_read(65536)
        return self._fragment()

    def _fragment(self) -> bytes:
        chunk, self.pending = self.pending[:PEER_FRAGMENT], self.pending[PEER_FRAGMENT:]
        return bytes((0x40 if self.pending else 0,)) + chunk


def client_context(pki: Path, *, ca: str = "lab", tls13: bool = False) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION if tls13 else SSL.TLS1_2_VERSION)
    ctx.use_certificate_file(str(pki / ca / "client.pem"))
    ctx.use_privatekey_file(str(pki / ca / "client.key"))
    ctx.load_verify_locations(str(pki / "lab" / "ca.pem"))
    ctx.set_verify(SSL.VERIFY_PEER)
    return ctx


def converse(
    engine: Engine,
    nas: FakeNas,
    respond: Callable[[int, bytes], bytes],
    *,
    mac: str = ALLOWED,
    nak: bytes | None = None,
) -> tuple[Outcome, int]:
    """Identity, then answer each Access-Challenge with ``respond(type, type_data)``."""
    data = request(nas, identity(), mac=mac)
    outcome = send(engine, nas, data)
    rounds = 0
    while outcome.reply[0] == ACCESS_CHALLENGE:
        rounds += 1
        assert rounds < 60, "conversation does not end"
        nas.check_reply(data, outcome.reply)  # signed, Message-Authenticator first
        message = eap_of(outcome.reply)
        assert message[0] == 1, "an Access-Challenge carries an EAP-Request"
        state = values(outcome.reply, STATE)[0]
        if nak is not None and rounds == 1:
            response = encode_eap(2, message[1], 3, nak)
        else:
            response = encode_eap(2, message[1], message[4], respond(message[4], message[5:]))
        data = request(nas, response, state=state, mac=mac)
        outcome = send(engine, nas, data)
    nas.check_reply(data, outcome.reply)
    return outcome, rounds


def mppe_keys(reply: bytes, secret: bytes, authenticator: bytes) -> dict[int, bytes]:
    keys = {}
    for vsa in values(reply, VENDOR_SPECIFIC):
        assert int.from_bytes(vsa[:4], "big") == 311
        keys[vsa[4]] = decrypt_key(vsa[6:], secret=secret, authenticator=authenticator)
    return keys


@pytest.mark.parametrize("tls13", [False, True], ids=["tls1.2", "tls1.3"])
def test_eap_tls_accepts_a_trusted_certificate_with_keys(
    engine: Engine, nas: FakeNas, pki: Path, tls13: bool
) -> None:
    peer = TlsPeer(client_context(pki, tls13=tls13))
    sent: list[bytes] = []
    original = nas.fresh_authenticator

    def remember() -> bytes:
        sent.append(original())
        return sent[-1]

    nas.fresh_authenticator = remember  # type: ignore[method-assign]
    outcome, rounds = converse(engine, nas, lambda _t, data: peer.respond(data))
    assert outcome.reply[0] == ACCESS_ACCEPT, values(outcome.reply, REPLY_MESSAGE)
    assert eap_of(outcome.reply)[0] == 3  # EAP-Success
    assert rounds >= 4  # identity → start, and fragments both ways
    version = peer.conn.get_protocol_version_name()
    assert version == ("TLSv1.3" if tls13 else "TLSv1.2")
    if tls13:
        assert peer.app_data == b"\x00"  # RFC 9190 commitment message
        msk = peer.conn.export_keying_material(b"EXPORTER_EAP_TLS_Key_Material", 128, b"\x0d")[:64]
    else:
        msk = peer.conn.export_keying_material(b"client EAP encryption", 128)[:64]
    keys = mppe_keys(outcome.reply, nas.secret, sent[-1])
    assert keys == {17: msk[:32], 16: msk[32:64]}
    record = outcome.record
    assert record is not None
    assert (record.method, record.user_name, record.action) == ("eap-tls", "client.nac.lab", "accept")
    assert len(engine.eap) == 0  # type: ignore[arg-type]  # the conversation is over


def test_eap_tls_refuses_a_certificate_from_an_untrusted_ca(engine: Engine, nas: FakeNas, pki: Path) -> None:
    peer = TlsPeer(client_context(pki, ca="other"))
    outcome, _ = converse(engine, nas, lambda _t, data: peer.respond(data))
    assert outcome.reply[0] == ACCESS_REJECT
    assert eap_of(outcome.reply)[0] == 4  # EAP-Failure
    assert not values(outcome.reply, VENDOR_SPECIFIC)
    assert outcome.record is not None
    assert "certificate verify failed" in outcome.record.reason
    # TLS's words stay in history; the NAS (and the switch's log) hears only this.
    assert values(outcome.reply, REPLY_MESSAGE) == [b"authentication failed"]


def test_quarantined_vendor_gets_its_vlan_after_authentication(
    engine: Engine, nas: FakeNas, pki: Path
) -> None:
    peer = TlsPeer(client_context(pki))
    outcome, _ = converse(engine, nas, lambda _t, data: peer.respond(data), mac=QUARANTINED)
    assert outcome.reply[0] == ACCESS_ACCEPT
    assert values(outcome.reply, TUNNEL_PRIVATE_GROUP_ID) == [b"\x00666"]
    assert outcome.record is not None
    assert (outcome.record.action, outcome.record.rule) == ("quarantine", "quarantine-intel")


def test_banned_vendor_is_refused_on_the_first_request(engine: Engine, nas: FakeNas) -> None:
    outcome = send(engine, nas, request(nas, identity(7), mac=BANNED))
    assert outcome.reply[0] == ACCESS_REJECT
    assert eap_of(outcome.reply) == bytes((4, 7, 0, 4))  # EAP-Failure answering identifier 7
    assert b"banned vendor" in values(outcome.reply, REPLY_MESSAGE)[0]
    assert outcome.record is not None
    assert (outcome.record.rule, outcome.record.method) == ("ban-huawei", "eap")
    assert len(engine.eap) == 0  # type: ignore[arg-type]  # no conversation, no TLS


def test_request_without_calling_station_id_is_refused(engine: Engine, nas: FakeNas) -> None:
    outcome = send(engine, nas, request(nas, identity(), mac=None))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.rule == "builtin:no-calling-station-id"


def test_eap_start_is_answered_with_an_identity_request(engine: Engine, nas: FakeNas) -> None:
    outcome = send(engine, nas, request(nas, b""))
    assert outcome.reply[0] == ACCESS_CHALLENGE
    assert eap_of(outcome.reply) == encode_eap(1, 0, 1)
    assert outcome.record is None


def test_nak_switches_to_a_method_the_peer_wants(engine: Engine, nas: FakeNas) -> None:
    first = send(engine, nas, request(nas, identity()))
    state = values(first.reply, STATE)[0]
    message = eap_of(first.reply)
    assert message[4] == 13  # EAP-TLS offered first
    outcome = send(engine, nas, request(nas, encode_eap(2, message[1], 3, bytes((25, 21))), state=state))
    assert outcome.reply[0] == ACCESS_CHALLENGE  # PEAP is off; TTLS is next on the peer's list
    assert eap_of(outcome.reply)[4:6] == bytes((21, 0x20))


def test_nak_with_no_common_method_is_refused(engine: Engine, nas: FakeNas) -> None:
    first = send(engine, nas, request(nas, identity()))
    message = eap_of(first.reply)
    state = values(first.reply, STATE)[0]
    outcome = send(engine, nas, request(nas, encode_eap(2, message[1], 3, b"\x04"), state=state))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert "no common EAP method" in outcome.record.reason


def test_unknown_state_is_refused(engine: Engine, nas: FakeNas) -> None:
    outcome = send(engine, nas, request(nas, encode_eap(2, 2, 13, b"\x00"), state=b"x" * 16))
    assert outcome.reply[0] == ACCESS_REJECT
    assert eap_of(outcome.reply)[0] == 4


def test_conversation_expires_after_its_lifetime(engine: Engine, nas: FakeNas) -> None:
    first = send(engine, nas, request(nas, identity()))
    state = values(first.reply, STATE)[0]
    later = NOW + eap_module.CONVERSATION_LIFETIME + 1
    outcome = send(
        engine, nas, request(nas, encode_eap(2, eap_of(first.reply)[1], 13, b"\x00"), state=state), later
    )
    assert outcome.reply[0] == ACCESS_REJECT
    assert len(engine.eap) == 0  # type: ignore[arg-type]


def test_conversation_table_is_bounded(engine: Engine, nas: FakeNas, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "MAX_CONVERSATIONS", 3)
    stations = [f"00-10-A4-00-00-0{n}" for n in range(5)]  # one station would replace its own
    for mac in stations[:3]:
        assert send(engine, nas, request(nas, identity(), mac=mac)).reply[0] == ACCESS_CHALLENGE
    outcome = send(engine, nas, request(nas, identity(), mac=stations[3]))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert "too many EAP conversations" in outcome.record.reason
    # Once the oldest expire, new conversations start again.
    later = NOW + eap_module.CONVERSATION_LIFETIME
    assert send(engine, nas, request(nas, identity(), mac=stations[4]), later).reply[0] == ACCESS_CHALLENGE


def test_rounds_are_bounded(engine: Engine, nas: FakeNas, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eap_module, "MAX_ROUNDS", 2)
    outcome, rounds = converse(engine, nas, lambda _t, _data: b"\x40" + b"\x16" * 100)  # endless fragments
    assert outcome.reply[0] == ACCESS_REJECT
    assert rounds == 3
    assert outcome.record is not None
    assert "more than 2 EAP rounds" in outcome.record.reason


def test_tls_message_size_is_bounded(engine: Engine, nas: FakeNas) -> None:
    outcome, _ = converse(engine, nas, lambda _t, _data: b"\x40" + b"\x16" * 3000)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert "over" in outcome.record.reason


def test_mismatched_eap_identifier_ends_the_conversation(engine: Engine, nas: FakeNas) -> None:
    first = send(engine, nas, request(nas, identity()))
    state = values(first.reply, STATE)[0]
    wrong = (eap_of(first.reply)[1] + 5) & 0xFF
    outcome = send(engine, nas, request(nas, encode_eap(2, wrong, 13, b"\x00"), state=state))
    assert outcome.reply[0] == ACCESS_REJECT


def test_malformed_eap_length_is_refused(engine: Engine, nas: FakeNas) -> None:
    outcome = send(engine, nas, request(nas, b"\x02\x01\x00\x30\x01abc"))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert "malformed EAP" in outcome.record.reason


def ttls_pap(peer: TlsPeer, password: bytes) -> Callable[[int, bytes], bytes]:
    def respond(_eap_type: int, data: bytes) -> bytes:
        out = peer.respond(data)
        if out == b"\x00" and peer.conn.get_state_string() == b"SSL negotiation finished successfully":
            avps = encode_avp(0, 1, b"alice") + encode_avp(0, 2, password.ljust(16, b"\0"))
            return peer.send_app(avps)
        return out

    return respond


@pytest.mark.parametrize(("password", "code"), [(b"correct horse", ACCESS_ACCEPT), (b"wrong", ACCESS_REJECT)])
def test_ttls_pap_checks_the_password(
    engine: Engine, nas: FakeNas, pki: Path, password: bytes, code: int
) -> None:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.load_verify_locations(str(pki / "lab" / "ca.pem"))
    ctx.set_verify(SSL.VERIFY_PEER)
    peer = TlsPeer(ctx, eap_type=21)
    outcome, _ = converse(engine, nas, ttls_pap(peer, password), nak=b"\x15")
    assert outcome.reply[0] == code
    assert outcome.record is not None
    assert outcome.record.method == "ttls"
    if code == ACCESS_REJECT:
        assert "wrong password for 'alice'" in outcome.record.reason
        assert values(outcome.reply, REPLY_MESSAGE) == [b"authentication failed"]  # no user name
    if code == ACCESS_ACCEPT:
        assert outcome.record.user_name == "alice"
        msk = peer.conn.export_keying_material(b"ttls keying material", 64)
        assert len(values(outcome.reply, VENDOR_SPECIFIC)) == 2
        assert msk  # the keys themselves are checked against eapol_test in test_eapol.py


def test_eap_is_refused_when_not_configured(codes: Codes, registry: Registry, nas: FakeNas) -> None:
    engine = Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=Defaults()))
    outcome = send(engine, nas, request(nas, identity()))
    assert outcome.reply[0] == ACCESS_REJECT
