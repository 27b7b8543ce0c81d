"""EAP conversations bounded per station and per wired NAS port (nac/eap/limits.py), so one
supplicant cannot lock every 802.1X user out by filling the conversation table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fakenas import FakeNas, attr, integer, values

from nac.admission.engine import Engine, Outcome
from nac.eap import eap as eap_module
from nac.eap import limits
from nac.eap.certs import init as certs_init
from nac.eap.eap import encode_eap
from nac.eap.limits import ConversationIndex, port_key
from nac.radius.packet import Codes
from nac.registry.mac import parse_mac
from nac.registry.oui import Registry, registry_from_manuf
from nac.serve.observe import LatencyHistogram, Metrics
from tests.test_eap_radius import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    ALLOWED,
    MANUF,
    NOW,
    STATE,
    TlsPeer,
    client_context,
    converse,
    eap_of,
    identity,
    make_engine,
    request,
    send,
)

NAS_IP_ADDRESS, NAS_PORT, NAS_PORT_ID, NAS_PORT_TYPE = 4, 5, 87, 61
ETHERNET, WIRELESS = 15, 19
FLOODER = "00-10-A4-00-00-01"  # Xircom, like ALLOWED: the policy lets both in


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    certs_init(path / "lab")
    return path


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test", date="2026-01")


@pytest.fixture
def engine(codes: Codes, registry: Registry, pki: Path) -> Engine:
    return make_engine(codes, registry, pki)


@pytest.fixture
def nas(codes: Codes) -> FakeNas:
    return FakeNas(codes)


def index(engine: Engine) -> ConversationIndex:
    assert engine.eap is not None
    return engine.eap.limits


def mac_number(n: int) -> str:
    """The n-th Xircom station (no rule matches, so the policy lets it authenticate)."""
    return "00-10-A4-" + "-".join(f"{b:02X}" for b in (0x100000 + n).to_bytes(3, "big"))


def port_attrs(port: int, *, port_type: int = ETHERNET) -> bytes:
    return (
        attr(NAS_IP_ADDRESS, bytes((192, 0, 2, 10)))
        + integer(NAS_PORT, 50100 + port)
        + attr(NAS_PORT_ID, f"GigabitEthernet1/0/{port}")
        + integer(NAS_PORT_TYPE, port_type)
    )


def on_port(
    nas: FakeNas,
    message: bytes,
    *,
    mac: str,
    port: int,
    port_type: int = ETHERNET,
    state: bytes | None = None,
) -> bytes:
    """An Access-Request as a switch sends it for ``mac`` on ``port``: NAS port attributes,
    Calling-Station-Id, EAP-Message and (after the first round) State."""
    return request(nas, message, mac=mac, state=state, extra=port_attrs(port, port_type=port_type))


def finish(
    engine: Engine,
    nas: FakeNas,
    outcome: Outcome,
    respond: Callable[[int, bytes], bytes],
    *,
    mac: str,
    extra: bytes = b"",
) -> Outcome:
    """Carry a conversation on from its first Access-Challenge to Accept or Reject."""
    rounds = 0
    while outcome.reply[0] == ACCESS_CHALLENGE:
        rounds += 1
        assert rounds < 60, "conversation does not end"
        message = eap_of(outcome.reply)
        state = values(outcome.reply, STATE)[0]
        response = encode_eap(2, message[1], message[4], respond(message[4], message[5:]))
        outcome = send(engine, nas, request(nas, response, state=state, mac=mac, extra=extra))
    return outcome


# -- through the engine ------------------------------------------------------------------------


def test_one_station_flooding_identities_locks_no_one_else_out(
    engine: Engine, nas: FakeNas, pki: Path
) -> None:
    """The finding: 4096 EAP-Identity responses from one MAC in a burst used to fill the table
    (FreeRADIUS's 4096) and refuse every other supplicant for the conversations' lifetime."""
    for n in range(4096):
        outcome = send(engine, nas, request(nas, identity(n % 256), mac=FLOODER), NOW + n * 0.00005)
        assert outcome.reply[0] == ACCESS_CHALLENGE  # each restart replaces, none is refused
    assert len(engine.eap) == limits.MAX_PER_STATION  # type: ignore[arg-type]
    counts, notices = index(engine).drain()
    assert counts == {limits.REPLACED: 4096 - limits.MAX_PER_STATION}
    assert len(notices) == 1  # 0.2 s of flood: one line, the rest are counted in the next one
    assert notices[0].severity == "info"
    assert "00:10:a4:00:00:01 started over" in notices[0].text
    # Another user, at once: a whole EAP-TLS conversation, accepted.
    peer = TlsPeer(client_context(pki))
    outcome, _ = converse(engine, nas, lambda _t, data: peer.respond(data), mac=ALLOWED)
    assert outcome.reply[0] == ACCESS_ACCEPT, values(outcome.reply, 18)
    assert outcome.record is not None
    assert (outcome.record.mac, outcome.record.method) == ("00:10:a4:23:19:c0", "eap-tls")


def test_a_station_s_newest_conversation_completes_after_it_replaced_older_ones(
    engine: Engine, nas: FakeNas, pki: Path
) -> None:
    firsts = [send(engine, nas, request(nas, identity(i), mac=ALLOWED)) for i in range(5)]
    states = [values(o.reply, STATE)[0] for o in firsts]
    assert len(set(states)) == 5
    assert index(engine).on_station(parse_mac(ALLOWED)) == limits.MAX_PER_STATION
    # The oldest are gone: their next round finds no conversation.
    stale = send(engine, nas, request(nas, encode_eap(2, 2, 13, b"\x00"), state=states[0], mac=ALLOWED))
    assert stale.reply[0] == ACCESS_REJECT
    assert stale.record is not None
    assert "unknown or expired EAP conversation" in stale.record.reason
    # The newest carries on to the end, with the keys.
    peer = TlsPeer(client_context(pki))
    outcome = finish(engine, nas, firsts[-1], lambda _t, data: peer.respond(data), mac=ALLOWED)
    assert outcome.reply[0] == ACCESS_ACCEPT, values(outcome.reply, 18)
    assert outcome.record is not None
    assert (outcome.record.action, outcome.record.method) == ("accept", "eap-tls")
    assert index(engine).on_station(parse_mac(ALLOWED)) == limits.MAX_PER_STATION - 1


def test_a_wired_port_holds_a_few_conversations_and_refuses_more(
    engine: Engine, nas: FakeNas, pki: Path
) -> None:
    cap = limits.MAX_PER_PORT
    for n in range(cap):
        assert (
            send(engine, nas, on_port(nas, identity(), mac=mac_number(n), port=1)).reply[0]
            == ACCESS_CHALLENGE
        )
    refused = send(engine, nas, on_port(nas, identity(9), mac=mac_number(cap), port=1))
    assert refused.reply[0] == ACCESS_REJECT
    assert eap_of(refused.reply) == bytes((4, 9, 0, 4))  # EAP-Failure answering the Identity
    assert refused.record is not None
    assert refused.record.reason == "too many EAP conversations on this NAS port"
    assert refused.record.mac == "00:10:a4:10:00:08"
    counts, notices = index(engine).drain()
    assert counts == {limits.REFUSED_PORT: 1}
    assert notices[0].severity == "warning"
    assert "port GigabitEthernet1/0/1 (50101)" in notices[0].text
    assert f"already has {cap} in progress" in notices[0].text
    # The switch's other ports are not affected: a user there authenticates in full.
    peer = TlsPeer(client_context(pki))
    first = send(engine, nas, on_port(nas, identity(), mac=ALLOWED, port=2))
    assert first.reply[0] == ACCESS_CHALLENGE
    outcome = finish(
        engine, nas, first, lambda _t, data: peer.respond(data), mac=ALLOWED, extra=port_attrs(2)
    )
    assert outcome.reply[0] == ACCESS_ACCEPT
    # A station already on the full port that starts over replaces its own conversation.
    again = send(engine, nas, on_port(nas, identity(), mac=mac_number(0), port=1))
    assert again.reply[0] == ACCESS_CHALLENGE
    assert index(engine).on_port(_port_name(1)) == cap
    # When a conversation there ends (here: expires), a newcomer gets in.
    later = NOW + eap_module.CONVERSATION_LIFETIME + 1
    assert (
        send(engine, nas, on_port(nas, identity(), mac=mac_number(cap), port=1), later).reply[0]
        == ACCESS_CHALLENGE
    )


def test_wireless_stations_share_a_nas_port_without_the_port_bound(engine: Engine, nas: FakeNas) -> None:
    """A controller sends one NAS-Port for all its stations: each station is its own port."""
    for n in range(limits.MAX_PER_PORT * 3):
        data = on_port(nas, identity(), mac=mac_number(n), port=1, port_type=WIRELESS)
        assert send(engine, nas, data).reply[0] == ACCESS_CHALLENGE
    assert len(engine.eap) == limits.MAX_PER_PORT * 3  # type: ignore[arg-type]


def test_the_table_cap_refuses_newcomers_but_not_a_station_starting_over(
    engine: Engine, nas: FakeNas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eap_module, "MAX_CONVERSATIONS", 3)
    for n in range(3):
        assert send(engine, nas, request(nas, identity(), mac=mac_number(n))).reply[0] == ACCESS_CHALLENGE
    refused = send(engine, nas, request(nas, identity(), mac=mac_number(3)))
    assert refused.reply[0] == ACCESS_REJECT
    assert refused.record is not None
    assert refused.record.reason == "too many EAP conversations in progress"
    # A station that holds one starts over: its old conversation makes room for the new.
    assert send(engine, nas, request(nas, identity(), mac=mac_number(0))).reply[0] == ACCESS_CHALLENGE
    assert len(engine.eap) == 3  # type: ignore[arg-type]
    counts, _ = index(engine).drain()
    assert counts == {limits.REFUSED_TABLE: 1, limits.REPLACED: 1}


def test_ended_conversations_leave_the_index(engine: Engine, nas: FakeNas) -> None:
    first = send(engine, nas, on_port(nas, identity(), mac=ALLOWED, port=3))
    state = values(first.reply, STATE)[0]
    assert index(engine).on_port(_port_name(3)) == 1
    # A Nak naming no method we have ends the conversation: nothing is left behind.
    nak = encode_eap(2, eap_of(first.reply)[1], 3, b"\x04")
    ended = send(engine, nas, request(nas, nak, state=state, mac=ALLOWED, extra=port_attrs(3)))
    assert ended.reply[0] == ACCESS_REJECT
    assert len(engine.eap) == 0  # type: ignore[arg-type]
    assert index(engine).on_port(_port_name(3)) == 0
    assert index(engine).on_station(parse_mac(ALLOWED)) == 0


def _port_name(port: int) -> str:
    name = port_key(
        nas="ap1 (192.0.2.10)",
        nas_identifier=None,
        nas_ip=bytes((192, 0, 2, 10)),
        nas_port=(50100 + port).to_bytes(4, "big"),
        nas_port_id=f"GigabitEthernet1/0/{port}".encode(),
        port_type=ETHERNET.to_bytes(4, "big"),
    )
    assert name is not None
    return name


# -- the index on its own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port_type", "nas_port", "nas_port_id", "expected"),
    [
        (ETHERNET, 50101, b"Gi1/0/1", "sw1 (192.0.2.10) 10.0.0.1 port Gi1/0/1 (50101)"),
        (ETHERNET, 50101, None, "sw1 (192.0.2.10) 10.0.0.1 port 50101"),
        (ETHERNET, None, b"ge-0/0/1.0", "sw1 (192.0.2.10) 10.0.0.1 port ge-0/0/1.0"),
        (ETHERNET, None, b"bad\x1b[2J", "sw1 (192.0.2.10) 10.0.0.1 port bad\\x1b[2J"),
        (ETHERNET, None, None, None),  # no port named: only the station and the table bound it
        (WIRELESS, 1, b"capwap", None),  # an 802.11 association is its own port
        (None, 50101, b"Gi1/0/1", None),  # port type unknown: never guess a physical port
    ],
)
def test_port_key(
    port_type: int | None, nas_port: int | None, nas_port_id: bytes | None, expected: str | None
) -> None:
    key = port_key(
        nas="sw1 (192.0.2.10)",
        nas_identifier=None,
        nas_ip=bytes((10, 0, 0, 1)),
        nas_port=nas_port.to_bytes(4, "big") if nas_port is not None else None,
        nas_port_id=nas_port_id,
        port_type=port_type.to_bytes(4, "big") if port_type is not None else None,
    )
    assert key == expected


def test_port_key_prefers_nas_identifier_to_tell_nases_apart() -> None:
    ethernet = ETHERNET.to_bytes(4, "big")
    one = port_key(
        nas="p", nas_identifier=b"sw1", nas_ip=None, nas_port=None, nas_port_id=b"1", port_type=ethernet
    )
    two = port_key(
        nas="p", nas_identifier=b"sw2", nas_ip=None, nas_port=None, nas_port_id=b"1", port_type=ethernet
    )
    assert (one, two) == ("p sw1 port 1", "p sw2 port 1")


def test_index_replaces_a_station_s_oldest_and_counts_it() -> None:
    idx = ConversationIndex()
    for i in range(limits.MAX_PER_STATION):
        assert idx.admit(mac=1, port=None, total=i, cap=100, now=0.0) == (None, None)
        idx.add(bytes((i,)), mac=1, port=None)
    admission = idx.admit(mac=1, port=None, total=2, cap=100, now=0.0)
    assert admission == (b"\x00", None)
    assert idx.counters == {limits.REPLACED: 1}
    # Another station is not touched.
    assert idx.admit(mac=2, port=None, total=2, cap=100, now=0.0) == (None, None)


def test_index_refuses_a_full_port_unless_the_station_frees_a_place_on_it() -> None:
    idx = ConversationIndex()
    for i in range(limits.MAX_PER_PORT):
        idx.add(bytes((i,)), mac=100 + i, port="p")
    assert idx.admit(mac=1, port="p", total=8, cap=100, now=0.0).refused is not None
    assert idx.admit(mac=100, port="p", total=8, cap=100, now=0.0) == (b"\x00", None)
    # A station at its limit elsewhere still cannot take a place on the full port.
    idx.add(b"x", mac=1, port="q")
    idx.add(b"y", mac=1, port="q")
    assert idx.admit(mac=1, port="p", total=10, cap=100, now=0.0).refused is not None
    # Removing one of the port's conversations makes room.
    idx.remove(b"\x03", mac=103, port="p")
    assert idx.admit(mac=1, port="p", total=9, cap=100, now=0.0) == (b"x", None)
    assert idx.on_station(103) == 0  # emptied entries go, so the index stays as small as the table


def test_index_notices_are_rate_limited_and_count_what_they_fold() -> None:
    idx = ConversationIndex()
    for i in range(5):
        assert idx.admit(mac=1, port=None, total=100, cap=100, now=i * 1.0).refused is not None
    counts, notices = idx.drain()
    assert counts == {limits.REFUSED_TABLE: 5}
    assert len(notices) == 1
    assert not idx.pending
    assert idx.admit(mac=1, port=None, total=100, cap=100, now=limits.NOTICE_INTERVAL).refused is not None
    _, notices = idx.drain()
    assert len(notices) == 1
    assert notices[0].text.endswith("(4 more since the last line)")


def test_metrics_show_what_the_limits_did() -> None:
    """The server adds the drained counts to its counters; /metrics shows them by outcome."""
    counters = Counter({limits.REPLACED: 5, limits.REFUSED_PORT: 2, "received": 9})
    family = next(
        f for f in Metrics(counters, LatencyHistogram()).collect() if f.name.startswith("nac_eap_c")
    )
    assert family.name == "nac_eap_conversations_limited"
    shown = {(s.labels["outcome"], s.labels["bound"]): s.value for s in family.samples}
    assert shown == {("replaced", "station"): 5, ("refused", "port"): 2}
