"""nac.admission: bytes in, reply and history record out, driven by a FakeNas with no I/O."""

from __future__ import annotations

import gc
import hashlib
import struct
from typing import Any

import pytest
from fakenas import FakeNas, attr, attributes, values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netaddr import IPNetwork
from pyrad import packet as pyrad_packet

from nac.admission.engine import DUPLICATE_TTL, NAS_IP_CACHE_MAX, Engine, Outcome
from nac.equipment.clients import Client
from nac.errors import PacketError
from nac.history.record import HistoryRecord
from nac.policy.decide import Defaults, Policy, Rule
from nac.radius.packet import Codes
from nac.registry.oui import Registry, registry_from_manuf
from nac.resources import load_dictionary, load_registry

ACCESS_ACCEPT, ACCESS_REJECT, ACCOUNTING_RESPONSE = 2, 3, 5
MA, REPLY_MESSAGE, PROXY_STATE = 80, 18, 33
TUNNEL_TYPE, TUNNEL_MEDIUM_TYPE, TUNNEL_PRIVATE_GROUP_ID = 64, 65, 81
AUTH_PORT, ACCT_PORT = 1812, 1813
NOW = 1_800_000_000.0

MANUF = "\n".join(
    [
        "00:10:A4\tXircom\tXircom",
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:1B:21\tIntel\tIntel Corporate",
        "70:B3:D5\tIEEERegistr\tIEEE Registration Authority",
        "70:B3:D5:00:10:00/36\tSOREDItouch\tSOREDI touch systems GmbH",
    ]
)
ALLOWED = "00:10:a4:23:19:c0"  # Xircom: no rule, the default accepts
BANNED = "00:e0:fc:12:34:56"  # Huawei: a vendor rule rejects
QUARANTINED = "00:1b:21:aa:bb:cc"  # Intel: quarantined to VLAN 666
BAN_REASON = "ministry ban 2026-04"

RULES = (
    Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", reason=BAN_REASON),
    Rule(id="quarantine-intel", kind="vendor", value="intel", action="quarantine", vlan="666"),
)


@pytest.fixture(scope="module")
def codes() -> Codes:
    return Codes.from_dictionary(load_dictionary())


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


@pytest.fixture
def engine(codes: Codes, registry: Registry) -> Engine:
    return Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=Defaults()))


@pytest.fixture
def nas(codes: Codes) -> FakeNas:
    return FakeNas(codes)


def client(nas: FakeNas, *, require: bool = True, name: str = "access-sw1") -> Client:
    return Client(
        name=name,
        network=IPNetwork("192.0.2.0/24"),
        secret=nas.secret,
        require_message_authenticator=require,
    )


def handle(
    engine: Engine,
    nas: FakeNas,
    data: bytes,
    *,
    service: str = "auth",
    now: float = NOW,
    require: bool = True,
    src: tuple[str, int] | None = None,
) -> Outcome:
    port = AUTH_PORT if service == "auth" else ACCT_PORT
    return engine.handle(
        data, src=src or nas.src, port=port, service=service, client=client(nas, require=require), now=now
    )


def reason_of(excinfo: pytest.ExceptionInfo[PacketError]) -> str:
    return excinfo.value.reason


# -- decisions -------------------------------------------------------------------------------

SPELLINGS = [
    "00-10-A4-23-19-C0",
    "00:10:a4:23:19:c0",
    "0010a42319c0",
    "0010A42319C0",
    "0010.a423.19c0",
    "0010-a423-19c0",
    "0010a4-2319c0",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_handle_mab_allowed_in_every_spelling(engine: Engine, nas: FakeNas, spelling: str) -> None:
    request = nas.mab(spelling)
    outcome = handle(engine, nas, request)
    assert outcome.kind == "decision"
    assert outcome.error is None
    assert outcome.reply[0] == ACCESS_ACCEPT
    attrs = nas.check_reply(request, outcome.reply)
    assert [k for k, _ in attrs] == [MA]  # no VLAN, no Reply-Message
    assert outcome.record is not None
    assert outcome.record.mac == ALLOWED
    assert outcome.record.action == "accept"
    assert outcome.record.rule == "default"
    assert outcome.record.vendor == "Xircom"


def test_handle_banned_vendor_rejects_with_reason(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(BANNED)
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == ACCESS_REJECT
    attrs = nas.check_reply(request, outcome.reply)
    kinds = [k for k, _ in attrs]
    assert kinds[0] == MA
    assert not {TUNNEL_TYPE, TUNNEL_MEDIUM_TYPE, TUNNEL_PRIVATE_GROUP_ID} & set(kinds)
    messages = values(outcome.reply, REPLY_MESSAGE)
    assert len(messages) == 1
    assert BAN_REASON in messages[0].decode()
    assert outcome.record is not None
    assert (outcome.record.action, outcome.record.rule, outcome.record.reason) == (
        "reject",
        "ban-huawei",
        BAN_REASON,
    )


def test_handle_quarantine_accepts_with_rfc3580_vlan(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(QUARANTINED)
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == ACCESS_ACCEPT
    attrs = nas.check_reply(request, outcome.reply)
    assert attrs[0][0] == MA
    assert values(outcome.reply, TUNNEL_TYPE) == [b"\x00" + (13).to_bytes(3, "big")]
    assert values(outcome.reply, TUNNEL_MEDIUM_TYPE) == [b"\x00" + (6).to_bytes(3, "big")]
    assert values(outcome.reply, TUNNEL_PRIVATE_GROUP_ID) == [b"\x00666"]
    assert outcome.record is not None
    assert (outcome.record.action, outcome.record.vlan) == ("quarantine", "666")


def test_handle_quarantine_with_default_vlan(codes: Codes, registry: Registry, nas: FakeNas) -> None:
    rule = Rule(id="q-intel", kind="vendor", value="intel", action="quarantine")
    policy = Policy([rule], registry=registry, defaults=Defaults(quarantine_vlan="guest"))
    request = nas.mab(QUARANTINED)
    outcome = handle(Engine(codes=codes, policy=policy), nas, request)
    assert outcome.reply[0] == ACCESS_ACCEPT
    assert values(outcome.reply, TUNNEL_PRIVATE_GROUP_ID) == [b"\x00guest"]


def test_handle_multicast_mac_rejected(engine: Engine, nas: FakeNas) -> None:
    outcome = handle(engine, nas, nas.mab("01:00:5e:00:00:01"))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.rule == "builtin:multicast"


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"user": "printer-3", "calling": "printer-3", "password": "printer-3"}, "User-Name not a MAC"),
        ({"user": "printer-3"}, "User-Name not a MAC, Calling-Station-Id is"),
        ({"user": "00:10:a4:23:19", "password": "00:10:a4:23:19"}, "five octets"),
        ({"user": "00:10:a4:23:19:c0 "}, "trailing space"),
        ({"calling": "00:10:a4:23:19:c1"}, "Calling-Station-Id names another device"),
        ({"calling": "somewhere"}, "Calling-Station-Id is not a MAC"),
        ({"password": "00:10:a4:23:19:c1"}, "wrong MAB password"),
        ({"password": "not-the-mac"}, "password not a MAC"),
        ({"chap": True, "chap_secret": "00:10:a4:23:19:c1"}, "wrong CHAP password"),
    ],
)
def test_handle_mab_rejects_bad_requests(
    engine: Engine, nas: FakeNas, kwargs: dict[str, Any], why: str
) -> None:
    request = nas.mab(ALLOWED, **kwargs)
    outcome = handle(engine, nas, request)
    assert outcome.kind == "decision"
    assert outcome.reply[0] == ACCESS_REJECT, why
    nas.check_reply(request, outcome.reply)
    assert len(values(outcome.reply, REPLY_MESSAGE)) == 1
    assert outcome.record is not None
    assert outcome.record.action == "reject"
    assert outcome.record.rule.startswith("builtin:")


def test_handle_mab_password_hidden_with_other_secret_rejects(engine: Engine, nas: FakeNas) -> None:
    # The MA is right (signed with the client's secret) but the password was hidden with
    # another: the NAS's secret is wrong somewhere, so the MAC is not proven.
    request = nas.mab(ALLOWED, secret=b"other-secret", sign_secret=nas.secret)
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.rule == "builtin:mab-password"


@pytest.mark.parametrize("password", ["0010a42319c0", "00-10-A4-23-19-C0", "0010.a423.19c0"])
def test_handle_mab_password_in_another_spelling_accepts(engine: Engine, nas: FakeNas, password: str) -> None:
    outcome = handle(engine, nas, nas.mab("00:10:a4:23:19:c0", password=password))
    assert outcome.reply[0] == ACCESS_ACCEPT


@pytest.mark.parametrize("challenge", [None, b"0123456789abcdef", b"short-challenge"])
def test_handle_chap_mab_accepts(engine: Engine, nas: FakeNas, challenge: bytes | None) -> None:
    request = nas.mab("0010a42319c0", chap=True, chap_challenge=challenge)
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == ACCESS_ACCEPT
    nas.check_reply(request, outcome.reply)
    assert outcome.record is not None
    assert outcome.record.mac == ALLOWED


def test_handle_mab_empty_password_rejects(engine: Engine, nas: FakeNas) -> None:
    # An empty password is still hidden as one block of zeros: it does not match the MAC.
    outcome = handle(engine, nas, nas.mab(ALLOWED, password=b""))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.rule == "builtin:mab-password"


def test_handle_mab_without_password_is_refused_by_default(engine: Engine, nas: FakeNas) -> None:
    outcome = handle(engine, nas, nas.mab(ALLOWED, omit_password=True))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert (outcome.record.rule, outcome.record.mac) == ("builtin:mab-no-password", ALLOWED)
    assert "without User-Password or CHAP-Password" in outcome.record.reason
    assert values(outcome.reply, REPLY_MESSAGE) == [b"authentication failed"]


def _handle_as(engine: Engine, nas: FakeNas, data: bytes, **options: Any) -> Outcome:
    peer = Client(name="access-sw1", network=IPNetwork("192.0.2.0/24"), secret=nas.secret, **options)
    return engine.handle(data, src=nas.src, port=AUTH_PORT, service="auth", client=peer, now=NOW)


@pytest.mark.parametrize(("mac", "code"), [(ALLOWED, ACCESS_ACCEPT), (BANNED, ACCESS_REJECT)])
def test_handle_mab_without_password_decides_on_mac_when_the_client_allows_it(
    engine: Engine, nas: FakeNas, mac: str, code: int
) -> None:
    # Some switches send Call-Check with neither User-Password nor CHAP.
    outcome = _handle_as(engine, nas, nas.mab(mac, omit_password=True), allow_mab_without_password=True)
    assert outcome.reply[0] == code
    assert outcome.record is not None
    assert outcome.record.rule in ("default", "ban-huawei")


@pytest.mark.parametrize(("mac", "code"), [(ALLOWED, ACCESS_ACCEPT), (BANNED, ACCESS_REJECT)])
def test_handle_authorize_only_without_password_decides_on_mac(
    engine: Engine, nas: FakeNas, codes: Codes, mac: str, code: int
) -> None:
    # RFC 5176 §3.1: after a re-authorize CoA the NAS asks with Authorize-Only, State and no
    # password; that must work without allow_mab_without_password.
    request = nas.mab(
        mac,
        omit_password=True,
        extra=[attr(codes.state, b"coa-state")],
        service_type=codes.service_type_authorize_only,
    )
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == code
    assert outcome.record is not None
    assert outcome.record.rule != "builtin:mab-no-password"


def test_handle_eap_is_rejected_as_not_mab(engine: Engine, nas: FakeNas, codes: Codes) -> None:
    request = nas.mab(ALLOWED, extra=[attr(codes.eap_message, b"\x02\x01\x00\x06\x01x")])
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.method == "eap"


# -- BlastRADIUS: Message-Authenticator rules ------------------------------------------------


def test_handle_missing_message_authenticator_is_dropped_when_required(engine: Engine, nas: FakeNas) -> None:
    with pytest.raises(PacketError) as info:
        handle(engine, nas, nas.mab(ALLOWED, message_authenticator=False))
    assert reason_of(info) == "missing-message-authenticator"


def test_handle_missing_message_authenticator_answered_when_relaxed(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(ALLOWED, message_authenticator=False)
    outcome = handle(engine, nas, request, require=False)
    assert outcome.reply[0] == ACCESS_ACCEPT
    nas.check_reply(request, outcome.reply)  # the reply still carries one, first
    assert outcome.record is not None
    assert outcome.record.message_authenticator == 0


def test_handle_proxy_state_without_message_authenticator_is_dropped(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(ALLOWED, message_authenticator=False, proxy_state=[b"proxy-1"])
    with pytest.raises(PacketError) as info:
        handle(engine, nas, request, require=False)
    assert reason_of(info) == "proxy-state-without-message-authenticator"


def test_handle_eap_without_message_authenticator_is_dropped(
    engine: Engine, nas: FakeNas, codes: Codes
) -> None:
    request = nas.mab(
        ALLOWED, message_authenticator=False, extra=[attr(codes.eap_message, b"\x02\x01\x00\x05\x01")]
    )
    with pytest.raises(PacketError):
        handle(engine, nas, request, require=False)


@pytest.mark.parametrize("require", [True, False])
def test_handle_wrong_secret_is_dropped(engine: Engine, nas: FakeNas, require: bool) -> None:
    request = nas.mab(ALLOWED, secret=b"wrong-secret")
    with pytest.raises(PacketError) as info:
        handle(engine, nas, request, require=require)
    assert reason_of(info) == "bad-message-authenticator"


def test_handle_tampered_request_is_dropped(engine: Engine, nas: FakeNas) -> None:
    request = bytearray(nas.mab(ALLOWED))
    request[-1] ^= 0x01  # last octet of Calling-Station-Id
    with pytest.raises(PacketError) as info:
        handle(engine, nas, bytes(request))
    assert reason_of(info) == "bad-message-authenticator"


def test_handle_copies_proxy_state_in_order(engine: Engine, nas: FakeNas) -> None:
    states = [b"proxy-1", b"\x00\x01binary", b"proxy-3"]
    request = nas.mab(BANNED, proxy_state=states)
    outcome = handle(engine, nas, request)
    attrs = nas.check_reply(request, outcome.reply)
    assert attrs[0][0] == MA
    assert [v for k, v in attrs if k == PROXY_STATE] == states


def test_handle_malformed_datagram_is_dropped(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(ALLOWED)
    with pytest.raises(PacketError) as info:
        handle(engine, nas, request[:-1])
    assert reason_of(info) == "bad-length"


# -- duplicates (RFC 5080 §2.2.2) -------------------------------------------------------------


def test_handle_retransmission_gets_identical_reply_without_record(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(BANNED)
    first = handle(engine, nas, request)
    again = handle(engine, nas, request, now=NOW + 1)
    assert first.kind == "decision"
    assert again.kind == "duplicate"
    assert again.reply == first.reply
    assert again.record is None


def test_handle_retransmission_served_from_cache_even_after_rule_change(
    engine: Engine, nas: FakeNas, registry: Registry
) -> None:
    request = nas.mab(BANNED)
    first = handle(engine, nas, request)
    engine.policy = Policy([], registry=registry, defaults=Defaults())
    again = handle(engine, nas, request, now=NOW + 1)
    assert again.kind == "duplicate"
    assert again.reply == first.reply


def test_cached_replies_leave_the_collectors_sight(engine: Engine, nas: FakeNas) -> None:
    """The duplicate cache can hold hundreds of thousands of replies: tracked, every full
    collection of the garbage collector would walk them all (30 ms for 200,000)."""
    for identifier in range(20):
        handle(engine, nas, nas.mab(BANNED, identifier=identifier))
    gc.collect()
    entries = list(engine._cache.items())
    assert len(entries) == 20
    assert not any(gc.is_tracked(key) or gc.is_tracked(entry) for key, entry in entries)


def test_handle_same_id_new_authenticator_is_a_new_request(engine: Engine, nas: FakeNas) -> None:
    first = handle(engine, nas, nas.mab(BANNED, identifier=7))
    second_request = nas.mab(BANNED, identifier=7)
    second = handle(engine, nas, second_request, now=NOW + 1)
    assert second.kind == "decision"
    assert second.record is not None
    assert second.reply != first.reply
    nas.check_reply(second_request, second.reply)


@pytest.mark.parametrize(
    "src",
    [("192.0.2.10", 50001), ("192.0.2.11", 50000)],
    ids=["other source port", "other source address"],
)
def test_handle_same_bytes_from_elsewhere_is_a_new_request(
    engine: Engine, nas: FakeNas, src: tuple[str, int]
) -> None:
    request = nas.mab(BANNED)
    handle(engine, nas, request)
    other = handle(engine, nas, request, src=src)
    assert other.kind == "decision"
    assert other.record is not None


def test_handle_same_bytes_on_other_socket_is_a_new_request(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(BANNED)
    handle(engine, nas, request)
    other = engine.handle(request, src=nas.src, port=11812, service="auth", client=client(nas), now=NOW)
    assert other.kind == "decision"


def test_expire_drops_entries_after_ttl(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(BANNED)
    handle(engine, nas, request, now=NOW)
    handle(engine, nas, nas.mab(ALLOWED), now=NOW + 2)
    assert engine.expire(NOW + DUPLICATE_TTL - 0.5) == 0
    assert handle(engine, nas, request, now=NOW + DUPLICATE_TTL - 0.5).kind == "duplicate"
    assert engine.expire(NOW + DUPLICATE_TTL + 0.5) == 1
    after = handle(engine, nas, request, now=NOW + DUPLICATE_TTL + 0.5)
    assert after.kind == "decision"
    assert after.record is not None
    assert engine.expire(NOW + 100) == 2


def test_handle_expired_entry_is_not_served_before_expire_runs(engine: Engine, nas: FakeNas) -> None:
    request = nas.mab(BANNED)
    handle(engine, nas, request, now=NOW)
    assert handle(engine, nas, request, now=NOW + DUPLICATE_TTL + 1).kind == "decision"


def test_engine_duplicate_ttl_is_bounded(codes: Codes, registry: Registry) -> None:
    policy = Policy([], registry=registry, defaults=Defaults())
    for ttl in (0, -1, 31):
        with pytest.raises(ValueError, match="duplicate_ttl"):
            Engine(codes=codes, policy=policy, duplicate_ttl=ttl)
    assert Engine(codes=codes, policy=policy, duplicate_ttl=30).duplicate_ttl == 30


def test_handle_failed_verification_never_enters_cache(engine: Engine, nas: FakeNas) -> None:
    good = nas.mab(BANNED, identifier=9)
    first = handle(engine, nas, good)
    # A forgery with the same key (source, port, identifier) and a bad Message-Authenticator.
    forged = nas.mab(ALLOWED, identifier=9, secret=b"attacker")
    for _ in range(2):
        with pytest.raises(PacketError):
            handle(engine, nas, forged, now=NOW + 1)
    # The genuine retransmission is still answered from the cache, unchanged.
    again = handle(engine, nas, good, now=NOW + 2)
    assert again.kind == "duplicate"
    assert again.reply == first.reply
    assert engine.expire(NOW + 100) == 1


def test_handle_dropped_request_is_not_cached(engine: Engine, nas: FakeNas) -> None:
    unsigned = nas.mab(ALLOWED, message_authenticator=False)
    with pytest.raises(PacketError):
        handle(engine, nas, unsigned)
    with pytest.raises(PacketError):
        handle(engine, nas, unsigned)
    assert engine.expire(NOW + 100) == 0


# -- Status-Server (RFC 5997) -----------------------------------------------------------------


def test_handle_status_server_on_auth_port(engine: Engine, nas: FakeNas, codes: Codes) -> None:
    request = nas.status_server()
    for _ in range(2):  # never cached: answered every time
        outcome = handle(engine, nas, request)
        assert outcome.kind == "status"
        assert outcome.record is None
        assert outcome.reply[0] == ACCESS_ACCEPT
        attrs = nas.check_reply(request, outcome.reply)
        assert attrs[0][0] == MA
        assert {k for k, _ in attrs} <= {MA, REPLY_MESSAGE}
    assert engine.expire(NOW + 100) == 0


def test_handle_status_server_on_acct_port(engine: Engine, nas: FakeNas) -> None:
    request = nas.status_server()
    for _ in range(2):
        outcome = handle(engine, nas, request, service="acct")
        assert outcome.kind == "status"
        assert outcome.reply[0] == ACCOUNTING_RESPONSE
        nas.check_reply(request, outcome.reply, ma_required=False)
    assert engine.expire(NOW + 100) == 0


@pytest.mark.parametrize("service", ["auth", "acct"])
def test_handle_status_server_copies_every_proxy_state_in_order(
    engine: Engine, nas: FakeNas, service: str
) -> None:
    # RFC 2865 §5.33, as FreeRADIUS answers: a proxy matches the reply by its Proxy-State.
    states = [b"first", b"\x00second", b"third" * 50]
    request = nas.status_server(proxy_state=states)
    outcome = handle(engine, nas, request, service=service)
    attrs = nas.check_reply(request, outcome.reply, ma_required=service == "auth")
    assert [v for k, v in attrs if k == PROXY_STATE] == states


def test_handle_status_server_at_the_size_limit_keeps_proxy_state(engine: Engine, nas: FakeNas) -> None:
    # A 4096-octet Status-Server of Proxy-States: the optional Reply-Message gives way.
    room = 4096 - len(nas.status_server())
    states = [b"p" * 253] * (room // 255) + [b"q" * (room % 255 - 2)]
    request = nas.status_server(proxy_state=states)
    assert len(request) == 4096
    outcome = handle(engine, nas, request)
    attrs = nas.check_reply(request, outcome.reply)
    assert [v for k, v in attrs if k == PROXY_STATE] == states
    assert len(outcome.reply) <= 4096


@pytest.mark.parametrize("service", ["auth", "acct"])
def test_handle_status_server_without_message_authenticator_is_dropped(
    engine: Engine, nas: FakeNas, service: str
) -> None:
    with pytest.raises(PacketError) as info:
        handle(engine, nas, nas.status_server(message_authenticator=False), service=service, require=False)
    assert reason_of(info) == "missing-message-authenticator"


@pytest.mark.parametrize("service", ["auth", "acct"])
def test_handle_status_server_wrong_secret_is_dropped(engine: Engine, nas: FakeNas, service: str) -> None:
    with pytest.raises(PacketError) as info:
        handle(engine, nas, nas.status_server(secret=b"wrong"), service=service)
    assert reason_of(info) == "bad-message-authenticator"


# -- accounting --------------------------------------------------------------------------------


@pytest.mark.parametrize("with_ma", [False, True])
def test_handle_accounting_request_gets_accounting_response(
    engine: Engine, nas: FakeNas, with_ma: bool
) -> None:
    request = nas.accounting_request(message_authenticator=with_ma)
    outcome = handle(engine, nas, request, service="acct")
    assert outcome.kind == "accounting"
    assert outcome.record is None
    assert outcome.reply[0] == ACCOUNTING_RESPONSE
    assert (
        outcome.reply[4:20]
        == hashlib.md5(outcome.reply[:4] + request[4:20] + outcome.reply[20:] + nas.secret).digest()
    )
    nas.check_reply(request, outcome.reply, ma_required=False)


def test_handle_accounting_response_copies_proxy_state(engine: Engine, nas: FakeNas) -> None:
    # RFC 2866 §5.13 table / RFC 2865 §5.33: Proxy-State is copied unmodified into the reply.
    states = [b"proxy-a", b"proxy-b"]
    request = nas.accounting_request(proxy_state=states)
    outcome = handle(engine, nas, request, service="acct")
    assert outcome.reply[0] == ACCOUNTING_RESPONSE
    nas.check_reply(request, outcome.reply, ma_required=False)
    assert values(outcome.reply, PROXY_STATE) == states


def test_handle_accounting_request_bad_message_authenticator_is_dropped(engine: Engine, nas: FakeNas) -> None:
    request = nas.accounting_request(message_authenticator=True, ma_secret=b"wrong")
    with pytest.raises(PacketError) as info:
        handle(engine, nas, request, service="acct")
    assert reason_of(info) == "bad-message-authenticator"


def test_handle_accounting_retransmission_is_duplicate(engine: Engine, nas: FakeNas) -> None:
    request = nas.accounting_request()
    first = handle(engine, nas, request, service="acct")
    again = handle(engine, nas, request, service="acct", now=NOW + 1)
    assert again.kind == "duplicate"
    assert again.reply == first.reply


def test_handle_accounting_request_bad_authenticator_is_dropped(engine: Engine, nas: FakeNas) -> None:
    for request in (
        nas.accounting_request(secret=b"wrong"),
        nas.accounting_request()[:-1] + b"X",
    ):
        with pytest.raises(PacketError) as info:
            handle(engine, nas, request, service="acct")
        assert reason_of(info) == "bad-authenticator"


def test_handle_access_request_on_acct_port_is_dropped(engine: Engine, nas: FakeNas) -> None:
    with pytest.raises(PacketError) as info:
        handle(engine, nas, nas.mab(ALLOWED), service="acct")
    assert reason_of(info) == "unexpected-code"


def test_handle_accounting_request_on_auth_port_is_dropped(engine: Engine, nas: FakeNas) -> None:
    with pytest.raises(PacketError) as info:
        handle(engine, nas, nas.accounting_request(), service="auth")
    assert reason_of(info) == "unexpected-code"


@pytest.mark.parametrize("code", [2, 3, 5, 11, 40, 43, 52, 255])
def test_handle_other_codes_are_dropped(engine: Engine, nas: FakeNas, code: int) -> None:
    request = bytes((code,)) + nas.mab(ALLOWED)[1:]
    with pytest.raises(PacketError):
        handle(engine, nas, request)


# -- fail closed ---------------------------------------------------------------------------------


def test_handle_fails_closed_when_policy_raises(
    engine: Engine, nas: FakeNas, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = RuntimeError("policy exploded")

    def explode(mac: int) -> Any:
        raise boom

    monkeypatch.setattr(engine.policy, "decide", explode)
    request = nas.mab(ALLOWED, proxy_state=[b"ps"])
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] == ACCESS_REJECT
    attrs = nas.check_reply(request, outcome.reply)
    assert attrs[0][0] == MA
    assert [v for k, v in attrs if k == PROXY_STATE] == [b"ps"]
    assert "internal error" in values(outcome.reply, REPLY_MESSAGE)[0].decode()
    assert outcome.error is boom
    assert outcome.record is not None
    assert (outcome.record.action, outcome.record.reason) == ("reject", "internal error")
    assert outcome.record.reply == ACCESS_REJECT


# -- the history record ----------------------------------------------------------------------


def test_handle_record_fields(codes: Codes, registry: Registry) -> None:
    nas = FakeNas(codes, src=("198.51.100.7", 1645), nas_ip="10.9.8.7")
    engine = Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=Defaults()))
    request = nas.mab(
        "70B3.D500.1ABC",
        called="00-11-22-33-44-55:corp",
        nas_port=50101,
        nas_port_id="GigabitEthernet1/0/7",
        nas_port_type=15,
    )
    cl = Client(name="core-sw1", network=IPNetwork("198.51.100.0/24"), secret=nas.secret)
    outcome = engine.handle(request, src=nas.src, port=AUTH_PORT, service="auth", client=cl, now=NOW)
    record = outcome.record
    assert record is not None
    assert record.ts == NOW
    assert record.mac == "70:b3:d5:00:1a:bc"
    assert record.vendor == "SOREDI touch systems GmbH"
    assert (record.prefix, record.prefix_bits) == ("70:B3:D5:00:1", 36)
    assert (record.action, record.vlan, record.rule) == ("accept", None, "default")
    assert record.client == "core-sw1"
    assert record.nas_ip == "10.9.8.7"
    assert record.method == "mab"
    assert record.user_name == "70B3.D500.1ABC"
    assert record.calling_station_id == "70B3.D500.1ABC"
    assert record.called_station_id == "00-11-22-33-44-55:corp"
    assert record.nas_port == 50101
    assert record.nas_port_id == "GigabitEthernet1/0/7"
    assert record.nas_port_type == "Ethernet"
    assert record.src == "198.51.100.7:1645"
    assert record.message_authenticator == 1
    assert record.reply == ACCESS_ACCEPT
    assert record.snapshot == registry.snapshot.id


def test_handle_record_nas_ip_defaults_to_source(codes: Codes, engine: Engine) -> None:
    nas = FakeNas(codes, src=("192.0.2.99", 1812), nas_ip=None)
    outcome = handle(engine, nas, nas.mab(ALLOWED, nas_port_type=19), require=True)
    assert outcome.record is not None
    assert outcome.record.nas_ip == "192.0.2.99"
    assert outcome.record.nas_port_type == "Wireless-802.11"


def test_handle_record_nas_ip_memo_is_bounded_and_exact(codes: Codes, engine: Engine) -> None:
    # NAS-IP-Address is formatted once per address; a spread of spoofed ones only empties the memo.
    addresses = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(NAS_IP_CACHE_MAX + 10)]
    for address in [*addresses, addresses[0]]:
        nas = FakeNas(codes, nas_ip=address)
        outcome = handle(engine, nas, nas.mab(ALLOWED), require=True)
        assert outcome.record is not None
        assert outcome.record.nas_ip == address
    assert len(engine._nas_ips) <= NAS_IP_CACHE_MAX


def test_handle_record_ipv6_source(codes: Codes, engine: Engine) -> None:
    nas = FakeNas(codes, src=("2001:db8::5", 40000), nas_ip=None)
    outcome = handle(engine, nas, nas.mab(ALLOWED))
    assert outcome.record is not None
    assert outcome.record.nas_ip == "2001:db8::5"
    assert outcome.record.src == "[2001:db8::5]:40000"


def test_handle_record_randomized_mac_has_no_vendor(engine: Engine, nas: FakeNas) -> None:
    outcome = handle(engine, nas, nas.mab("02:e0:fc:12:34:56"))
    assert outcome.record is not None
    assert (outcome.record.vendor, outcome.record.prefix, outcome.record.prefix_bits) == (None, None, None)


# -- with the real registry and a peer we did not write -----------------------------------------


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return load_registry()


def test_handle_real_registry_ma_s_vendor_rule(codes: Codes, real_registry: Registry, nas: FakeNas) -> None:
    rule = Rule(id="ban-soredi", kind="vendor", value="SOREDI touch systems", action="reject")
    engine = Engine(codes=codes, policy=Policy([rule], registry=real_registry, defaults=Defaults()))
    outcome = handle(engine, nas, nas.mab("70:B3:D5:00:1F:00"))
    assert outcome.reply[0] == ACCESS_REJECT
    assert outcome.record is not None
    assert outcome.record.vendor == "SOREDI touch systems GmbH"
    # The 36-bit block's neighbour is someone else's.
    assert handle(engine, nas, nas.mab("70:B3:D5:00:2F:00")).reply[0] == ACCESS_ACCEPT


def test_handle_request_built_by_pyrad(engine: Engine, nas: FakeNas) -> None:
    dictionary = load_dictionary()
    req = pyrad_packet.AuthPacket(secret=nas.secret, dict=dictionary, id=77, authenticator=bytes(range(16)))
    req["User-Name"] = "00-E0-FC-12-34-56"
    req["User-Password"] = req.PwCrypt("00-E0-FC-12-34-56")
    req["Calling-Station-Id"] = "00-E0-FC-12-34-56"
    req["Service-Type"] = "Call-Check"
    req["NAS-Port-Type"] = "Ethernet"
    req[33] = [b"pyrad-proxy"]
    req.add_message_authenticator()
    raw = req.RequestPacket()
    outcome = handle(engine, nas, raw)
    received = pyrad_packet.Packet(packet=outcome.reply, dict=dictionary, secret=nas.secret)
    assert req.VerifyReply(received, outcome.reply, enforce_ma=True)
    assert received.code == ACCESS_REJECT
    assert BAN_REASON in received["Reply-Message"][0]
    assert attributes(outcome.reply)[0][0] == MA


def test_handle_largest_request_with_long_reply_is_answered_or_dropped(codes: Codes, engine: Engine) -> None:
    # A 4096-octet request full of Proxy-State whose reply (Proxy-State copied, plus a long
    # Reply-Message naming the bad User-Name) would exceed 4096 octets: the peer's doing, so
    # the engine must answer within the limit or drop it with a PacketError, not raise anything else.
    nas = FakeNas(codes, nas_ip=None)
    lean: dict[str, Any] = {
        "user": "x" * 200,
        "calling": "x",
        "omit_password": True,
        "called": None,
        "nas_port": None,
        "nas_port_id": None,
        "nas_port_type": None,
    }
    room = 4096 - len(nas.mab(ALLOWED, **lean))
    states = [b"p" * 253] * (room // 255)
    states.append(b"q" * (room % 255 - 2))
    request = nas.mab(ALLOWED, proxy_state=states, **lean)
    assert len(request) == 4096
    try:
        outcome = handle(engine, nas, request)
    except PacketError:
        return
    assert outcome.reply[0] == ACCESS_REJECT
    assert len(outcome.reply) <= 4096
    nas.check_reply(request, outcome.reply)


# -- anything at all ---------------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), service=st.sampled_from(["auth", "acct"]))
def test_handle_any_bytes_is_outcome_or_packet_error(
    engine: Engine, nas: FakeNas, data: bytes, service: str
) -> None:
    try:
        outcome = handle(engine, nas, data, service=service, require=False)
    except PacketError:
        return
    assert isinstance(outcome, Outcome)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.binary(min_size=1, max_size=64), calling=st.binary(min_size=1, max_size=64))
def test_handle_any_user_name_is_answered(engine: Engine, nas: FakeNas, user: bytes, calling: bytes) -> None:
    request = nas.mab(ALLOWED, user=user, calling=calling, password=user[:128])
    outcome = handle(engine, nas, request)
    assert outcome.reply[0] in (ACCESS_ACCEPT, ACCESS_REJECT)
    assert outcome.error is None
    nas.check_reply(request, outcome.reply)


def test_fakenas_accounting_request_is_rfc2866(nas: FakeNas) -> None:
    request = nas.accounting_request()
    length = struct.unpack_from("!H", request, 2)[0]
    assert length == len(request)
    assert request[4:20] == hashlib.md5(request[:4] + bytes(16) + request[20:] + nas.secret).digest()


# -- periodic re-checks of quarantined devices (RFC 2865 §5.27, §5.29) -------------------------


@pytest.mark.parametrize(("mac", "expected"), [(QUARANTINED, 3600), (ALLOWED, None), (BANNED, None)])
def test_quarantine_carries_session_timeout_with_radius_request_termination(
    codes: Codes, registry: Registry, nas: FakeNas, mac: str, expected: int | None
) -> None:
    defaults = Defaults(quarantine_session_timeout=3600)
    engine = Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=defaults))
    outcome = handle(engine, nas, nas.mab(mac))
    timeouts = values(outcome.reply, 27)
    if expected is None:
        assert timeouts == []
        assert values(outcome.reply, 29) == []
    else:
        assert timeouts == [struct.pack("!I", expected)]
        assert values(outcome.reply, 29) == [struct.pack("!I", 1)]  # RADIUS-Request


def test_quarantine_session_timeout_is_bounded() -> None:
    from nac.errors import PolicyError

    for bad in (0, 59, 7 * 86400 + 1, True):
        with pytest.raises(PolicyError, match="quarantine_session_timeout"):
            Defaults(quarantine_session_timeout=bad)  # type: ignore[arg-type]


def test_the_history_record_holds_every_field_of_the_request_by_name(
    engine: Engine, nas: FakeNas, codes: Codes
) -> None:
    """The request path builds the record positionally (by keyword it cost a tenth of the
    full-load rate, bench/README.md): this holds each field to what the request carried, by
    name, so a field added or moved in HistoryRecord cannot land in another's place."""
    request = nas.mab(
        "00-1B-21-AA-BB-CC",
        user="001b21aabbcc",
        called="00-11-22-33-44-55:corp",
        nas_port=50107,
        nas_port_id="GigabitEthernet1/0/7",
        nas_port_type=15,
        extra=[attr(codes.nas_identifier, "access-sw1.example")],
    )
    outcome = handle(engine, nas, request, src=("192.0.2.77", 1645))
    assert outcome.record is not None
    expected = HistoryRecord(
        ts=NOW,
        mac=QUARANTINED,
        vendor=outcome.record.vendor,  # the registry's spelling, checked below
        prefix="00:1B:21",
        prefix_bits=24,
        action="quarantine",
        vlan="666",
        rule="quarantine-intel",
        reason=outcome.record.reason,  # the policy's wording, checked below
        client="access-sw1",
        nas_ip="192.0.2.10",  # NAS-IP-Address, not the source address
        method="mab",
        user_name="001b21aabbcc",
        calling_station_id="00-1B-21-AA-BB-CC",
        called_station_id="00-11-22-33-44-55:corp",
        nas_port=50107,
        nas_port_id="GigabitEthernet1/0/7",
        nas_port_type="Ethernet",
        nas_identifier="access-sw1.example",
        src="192.0.2.77:1645",
        message_authenticator=1,
        reply=ACCESS_ACCEPT,
        snapshot=engine.policy.snapshot_id,
    )
    assert outcome.record._asdict() == expected._asdict()
    assert "intel" in (outcome.record.vendor or "").lower()
    assert outcome.record.reason
