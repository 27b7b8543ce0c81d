"""802.1X users from a directory, in memory: the EAP core pauses a round on a directory
question, the engine answers the request once the answer is given (Engine.resume), and a
retransmission meanwhile neither asks again nor gets another answer.  No LDAP here: the
answers are made up (tests/test_ldap.py and tests/test_eapol_ldap.py ask a real OpenLDAP)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakenas import FakeNas, values
from OpenSSL import SSL

from nac.admission.engine import Engine, Outcome
from nac.eap.config import EapConfig, settings
from nac.eap.eap import EapServer, encode_eap
from nac.eap.groups import Authorizer, add_group
from nac.eap.keys import MppeCodes
from nac.eap.mschapv2 import nt_hash
from nac.eap.profiles import Profile
from nac.eap.tls import UPN_OID, certificate_name
from nac.eap.ttls import encode_avp
from nac.identity.config import LdapConfig
from nac.identity.query import DirectoryAnswer, DirectoryQuery, failed
from nac.policy.decide import Defaults, Policy
from nac.radius.packet import Codes
from nac.registry.oui import Registry
from nac.resources import load_dictionary
from nac.store import Store
from tests import test_eap_radius as eap_radius
from tests.test_eap_coverage import TtlsPeer as TtlsMschapPeer
from tests.test_eap_coverage import mschapv2_avps
from tests.test_eap_radius import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    REPLY_MESSAGE,
    STATE,
    TUNNEL_PRIVATE_GROUP_ID,
    TlsPeer,
    codes,
    eap_of,
    identity,
    pki,
    registry,
    request,
    send,
)

__all__ = ["codes", "pki", "registry"]  # module-scoped fixtures shared with test_eap_radius.py

DN = "uid=carol,ou=people,dc=nac,dc=test"


@pytest.fixture
def engine(tmp_path: Path, pki: Path, registry: Registry, codes: Codes) -> Engine:
    return make_engine(tmp_path, pki, registry, codes)


def make_engine(
    tmp_path: Path,
    pki: Path,
    registry: Registry,
    codes: Codes,
    *,
    tls_identity: str = "cn",
    users: tuple[str, ...] = (),
) -> Engine:
    store = Store(tmp_path / "nac.db")
    dictionary = load_dictionary()
    add_group(store.conn, dictionary, "staff", Profile(vlan="100"))
    add_group(store.conn, dictionary, "devices", Profile(vlan="300"))
    authorizer = Authorizer(store.conn, dictionary)
    lab = pki / "lab"
    config = EapConfig(
        certificate=str(lab / "server.pem"),
        private_key=str(lab / "server.key"),
        ca_certificates=str(lab / "ca.pem"),
        methods=("tls", "ttls"),
    )
    directory = LdapConfig(urls=("ldap://ldap.invalid",), base="dc=nac,dc=test", tls_identity=tls_identity)
    eap_settings = settings(
        config,
        {"alice": nt_hash("correct horse"), **{name: nt_hash("x") for name in users}},
        authorizer,
        directory=directory,
        authorize_directory=authorizer.directory,
    )
    eap = EapServer(eap_settings, mppe=MppeCodes.from_dictionary(load_dictionary()))
    policy = Policy(eap_radius.RULES, registry=registry, defaults=Defaults())
    return Engine(codes=codes, policy=policy, eap=eap)


def ttls_pap(peer: TlsPeer, name: bytes, password: bytes) -> Callable[[int, bytes], bytes]:
    def respond(_eap_type: int, data: bytes) -> bytes:
        out = peer.respond(data)
        if out == b"\x00" and peer.conn.get_state_string() == b"SSL negotiation finished successfully":
            return peer.send_app(encode_avp(0, 1, name) + encode_avp(0, 2, password.ljust(16, b"\0")))
        return out

    return respond


def converse(
    engine: Engine,
    nas: FakeNas,
    respond: Callable[[int, bytes], bytes],
    *,
    mac: str = eap_radius.ALLOWED,
    nak: bytes | None = None,
) -> tuple[Outcome, bytes]:
    """Run the conversation until the engine answers with something other than a challenge
    (or with nothing: a directory question); returns that outcome and the request's datagram."""
    data = request(nas, identity(), mac=mac)
    outcome = send(engine, nas, data)
    rounds = 0
    while outcome.reply and outcome.reply[0] == ACCESS_CHALLENGE:
        rounds += 1
        assert rounds < 60, "conversation does not end"
        message = eap_of(outcome.reply)
        state = values(outcome.reply, STATE)[0]
        if nak is not None and rounds == 1:
            response = encode_eap(2, message[1], 3, nak)
        else:
            response = encode_eap(2, message[1], message[4], respond(message[4], message[5:]))
        data = request(nas, response, state=state, mac=mac)
        outcome = send(engine, nas, data)
    return outcome, data


def ttls_peer(pki: Path) -> TlsPeer:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.load_verify_locations(str(pki / "lab" / "ca.pem"))
    ctx.set_verify(SSL.VERIFY_PEER)
    return TlsPeer(ctx, eap_type=21)


def test_ttls_pap_asks_the_directory_once_and_answers_every_retransmission_alike(
    engine: Engine, pki: Path, codes: Codes
) -> None:
    nas = FakeNas(codes)
    pap = ttls_pap(ttls_peer(pki), b"carol", b"carol's password")
    outcome, data = converse(engine, nas, pap, nak=b"\x15")
    assert (outcome.kind, outcome.reply, outcome.record) == ("lookup", b"", None)
    assert outcome.lookup is not None
    assert outcome.lookup.query == DirectoryQuery(kind="bind", user="carol", password="carol's password")
    assert "carol's password" not in repr(outcome.lookup)
    # The NAS retransmits while the directory is asked: no second question, no answer yet.
    again = send(engine, nas, data)
    assert (again.kind, again.reply, again.lookup) == ("waiting", b"", None)
    answer = DirectoryAnswer(ok=True, dn=DN, groups=("Printers", "Staff"))
    done = engine.resume(outcome.lookup, answer, now=eap_radius.NOW + 1)
    nas.check_reply(data, done.reply)
    assert done.reply[0] == ACCESS_ACCEPT
    assert values(done.reply, TUNNEL_PRIVATE_GROUP_ID) == [b"\x00100"]  # LDAP cn=Staff -> nac group staff
    assert done.record is not None
    assert (done.record.user_name, done.record.vlan, done.record.method) == ("carol", "100", "ttls")
    assert "user carol (ldap), group staff: profile staff (VLAN 100)" in done.record.reason
    # Later retransmissions get the same reply, from the duplicate cache.
    resent = send(engine, nas, data, now=eap_radius.NOW + 2)
    assert (resent.reply, resent.record, resent.kind) == (done.reply, None, "duplicate")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            DirectoryAnswer(ok=False, dn=DN, reason="wrong password for 'carol'"),
            "ttls: wrong password for 'carol'",
        ),
        (failed("timeout", "timed out"), "ttls: directory unavailable (timeout): timed out"),
        (failed("unreachable", "refused"), "ttls: directory unavailable (unreachable): refused"),
    ],
    ids=["wrong-password", "timeout", "unreachable"],
)
def test_a_refusal_or_a_failed_directory_is_an_access_reject(
    engine: Engine, pki: Path, codes: Codes, answer: DirectoryAnswer, reason: str
) -> None:
    nas = FakeNas(codes)
    outcome, _data = converse(engine, nas, ttls_pap(ttls_peer(pki), b"carol", b"x"), nak=b"\x15")
    assert outcome.lookup is not None
    done = engine.resume(outcome.lookup, answer, now=eap_radius.NOW + 1)
    assert done.reply[0] == ACCESS_REJECT  # fail closed
    assert eap_of(done.reply)[0] == 4  # EAP-Failure
    assert values(done.reply, REPLY_MESSAGE) == [b"authentication failed"]  # no detail to the NAS
    assert done.record is not None
    assert done.record.reason == reason
    assert len(engine.eap or []) == 0  # the conversation is over


def test_nac_users_come_before_the_directory(engine: Engine, pki: Path, codes: Codes) -> None:
    nas = FakeNas(codes)
    outcome, _ = converse(engine, nas, ttls_pap(ttls_peer(pki), b"alice", b"correct horse"), nak=b"\x15")
    assert (outcome.kind, outcome.reply[0]) == ("decision", ACCESS_ACCEPT)


def test_another_request_on_a_waiting_conversation_is_dropped(
    engine: Engine, pki: Path, codes: Codes
) -> None:
    nas = FakeNas(codes)
    outcome, _data = converse(engine, nas, ttls_pap(ttls_peer(pki), b"carol", b"x"), nak=b"\x15")
    assert outcome.lookup is not None
    other = request(nas, encode_eap(2, 0, 21, b"\x00"), state=outcome.lookup.state)
    assert send(engine, nas, other).kind == "waiting"
    assert engine.resume(outcome.lookup, failed("timeout", "t"), now=eap_radius.NOW).reply[0] == ACCESS_REJECT


def test_a_conversation_that_expired_meanwhile_is_refused(engine: Engine, pki: Path, codes: Codes) -> None:
    nas = FakeNas(codes)
    outcome, _ = converse(engine, nas, ttls_pap(ttls_peer(pki), b"carol", b"x"), nak=b"\x15")
    assert outcome.lookup is not None
    done = engine.resume(outcome.lookup, DirectoryAnswer(ok=True, dn=DN), now=eap_radius.NOW + 3600)
    assert done.reply[0] == ACCESS_REJECT
    assert done.record is not None
    assert "expired while the directory answered" in done.record.reason


def test_eap_tls_looks_up_the_certificates_cn(engine: Engine, pki: Path, codes: Codes) -> None:
    nas = FakeNas(codes)
    peer = TlsPeer(eap_radius.client_context(pki))
    outcome, _data = converse(engine, nas, lambda _t, d: peer.respond(d))
    assert outcome.lookup is not None
    assert outcome.lookup.query == DirectoryQuery(kind="entry", user="client.nac.lab")
    answer = DirectoryAnswer(ok=True, dn="uid=client.nac.lab,ou=people", groups=("devices",))
    done = engine.resume(outcome.lookup, answer, now=eap_radius.NOW + 1)
    assert done.reply[0] == ACCESS_ACCEPT
    assert values(done.reply, TUNNEL_PRIVATE_GROUP_ID) == [b"\x00300"]
    assert done.record is not None
    assert (done.record.method, done.record.user_name) == ("eap-tls", "client.nac.lab")
    # No entry for the certificate: refused, though the certificate itself was good.
    peer = TlsPeer(eap_radius.client_context(pki))
    outcome, _ = converse(engine, nas, lambda _t, d: peer.respond(d))
    assert outcome.lookup is not None
    missing = DirectoryAnswer(ok=False, reason="no directory entry for 'client.nac.lab'")
    done = engine.resume(outcome.lookup, missing, now=eap_radius.NOW + 1)
    assert done.reply[0] == ACCESS_REJECT
    assert done.record is not None
    assert done.record.reason == "eap-tls: no directory entry for 'client.nac.lab'"


def test_a_banned_manufacturer_is_refused_before_the_directory(
    engine: Engine, pki: Path, codes: Codes
) -> None:
    nas = FakeNas(codes)
    outcome, _ = converse(
        engine, nas, ttls_pap(ttls_peer(pki), b"carol", b"x"), mac=eap_radius.BANNED, nak=b"\x15"
    )
    assert (outcome.kind, outcome.reply[0]) == ("decision", ACCESS_REJECT)
    assert outcome.record is not None
    assert outcome.record.rule == "ban-huawei"


def _certificate(san: list[x509.GeneralName] | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "laptop-42")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_certificate_names_for_the_directory() -> None:
    upn = b"carol@corp.example"
    cert = _certificate(
        [x509.DNSName("laptop-42.corp"), x509.RFC822Name("carol@example.org"),
         x509.OtherName(UPN_OID, b"\x0c" + bytes((len(upn),)) + upn)]
    )  # fmt: skip
    assert certificate_name(cert, "cn") == "laptop-42"
    assert certificate_name(cert, "san_email") == "carol@example.org"
    assert certificate_name(cert, "san_upn") == "carol@corp.example"
    bare = _certificate(None)
    assert (certificate_name(bare, "san_email"), certificate_name(bare, "san_upn")) == (None, None)
    bad_upn = _certificate([x509.OtherName(UPN_OID, b"\x04\x03abc")])  # an OCTET STRING, not UTF8String
    assert certificate_name(bad_upn, "san_upn") is None
    other = _certificate([x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), b"\x0c\x01x")])
    assert certificate_name(other, "san_upn") is None  # an otherName, but not a UPN


def test_eap_tls_without_the_configured_san_is_refused(
    tmp_path: Path, pki: Path, registry: Registry, codes: Codes
) -> None:
    engine = make_engine(tmp_path, pki, registry, codes, tls_identity="san_email")
    peer = TlsPeer(eap_radius.client_context(pki))
    outcome, _ = converse(engine, FakeNas(codes), lambda _t, d: peer.respond(d))
    assert (outcome.kind, outcome.reply[0]) == ("decision", ACCESS_REJECT)  # the directory is not asked
    assert outcome.record is not None
    assert outcome.record.reason == "eap-tls: the certificate has no san email to look up"


def test_eap_tls_holder_in_nac_users_is_not_looked_up(
    tmp_path: Path, pki: Path, registry: Registry, codes: Codes
) -> None:
    engine = make_engine(tmp_path, pki, registry, codes, users=("client.nac.lab",))
    peer = TlsPeer(eap_radius.client_context(pki))
    outcome, _ = converse(engine, FakeNas(codes), lambda _t, d: peer.respond(d))
    assert (outcome.kind, outcome.reply[0]) == ("decision", ACCESS_ACCEPT)


def test_ttls_mschapv2_for_a_user_only_the_directory_knows_says_why(
    engine: Engine, pki: Path, codes: Codes
) -> None:
    peer = TtlsMschapPeer(pki, mschapv2_avps("carol's password", user=b"carol"))
    outcome, _ = converse(engine, FakeNas(codes), peer.respond, nak=b"\x15")
    assert (outcome.kind, outcome.reply[0]) == ("decision", ACCESS_REJECT)
    assert outcome.record is not None
    assert "LDAP gives no NT hash" in outcome.record.reason


def test_an_error_while_resuming_fails_closed(
    engine: Engine, pki: Path, codes: Codes, monkeypatch: pytest.MonkeyPatch
) -> None:
    nas = FakeNas(codes)
    outcome, data = converse(engine, nas, ttls_pap(ttls_peer(pki), b"carol", b"x"), nak=b"\x15")
    assert outcome.lookup is not None
    assert engine.eap is not None

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine.eap, "resume", broken)
    done = engine.resume(outcome.lookup, DirectoryAnswer(ok=True, dn=DN), now=eap_radius.NOW)
    nas.check_reply(data, done.reply)
    assert done.reply[0] == ACCESS_REJECT
    assert eap_of(done.reply)[0] == 4
    assert isinstance(done.error, RuntimeError)
    assert done.record is not None
    assert done.record.rule == "builtin:internal-error"


@pytest.mark.parametrize(
    ("der", "name"),
    [
        (b"\x0c\x81\xc8" + b"u" * 200, "u" * 200),  # long-form length
        (b"\x0c\x05carol", "carol"),
        (b"\x0c\x02\xff\xfe", None),  # not UTF-8
        (b"\x0c\x00", None),
    ],
)
def test_a_upn_is_a_der_utf8string(der: bytes, name: str | None) -> None:
    cert = _certificate([x509.OtherName(UPN_OID, der)])
    assert certificate_name(cert, "san_upn") == name


def test_every_outcome_has_every_field(engine: Engine, codes: Codes) -> None:
    """The MAB path builds its Outcome from a plain tuple: one field short, and reading the
    directory's field (or _replace) would fail on it."""
    nas = FakeNas(codes)
    outcome = send(engine, nas, nas.mab(eap_radius.ALLOWED))
    assert len(outcome) == len(Outcome._fields)
    assert outcome.lookup is None
    assert outcome._replace(kind="decision") == outcome
