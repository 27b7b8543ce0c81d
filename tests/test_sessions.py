"""Sessions from accounting, and Disconnect / re-authorize to the NAS (RFC 2866, RFC 5176)."""

from __future__ import annotations

import hmac
import json
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nac.history import tiers
from nac.radius.accounting import SessionEvent
from nac.radius.crypto import request_authenticator_valid
from nac.radius.dynauth import Target, build_request, parse_answer
from nac.radius.packet import Codes
from nac.resources import load_dictionary
from nac.sessions import store as session_store
from nac.store import Store
from tests.fakenas import DasListener, das_answer
from tests.interop import (
    SECRET,
    NacServer,
    NacServerFactory,
    free_udp_ports,
    require_radclient,
    subprocess_env,
)

CODES = Codes.from_dictionary(load_dictionary())


def _attrs(**values: bytes) -> dict[int, bytes]:
    names = {
        "status": "Acct-Status-Type", "session": "Acct-Session-Id", "calling": "Calling-Station-Id",
        "user": "User-Name", "time": "Acct-Session-Time", "in_octets": "Acct-Input-Octets",
        "in_giga": "Acct-Input-Gigawords", "cause": "Acct-Terminate-Cause", "vlan": "Tunnel-Private-Group-Id",
        "port_id": "NAS-Port-Id",
    }  # fmt: skip
    dictionary = load_dictionary()
    return {int(dictionary[names[k]].code): v for k, v in values.items()}


def _u32(value: int) -> bytes:
    return struct.pack("!I", value)


def _event(status: int, session: str = "s1", ts: float = 1000.0, **extra: bytes) -> SessionEvent:
    attrs = _attrs(status=_u32(status), session=session.encode(), calling=b"00-E0-FC-01-02-03", **extra)
    return CODES.accounting.event(attrs, client="sw1", nas_ip="10.0.0.1", now=ts)


def test_accounting_event_reads_status_mac_counters_and_tagged_vlan() -> None:
    event = _event(
        2,
        in_octets=_u32(5),
        in_giga=_u32(2),
        time=_u32(90),
        cause=_u32(1),
        vlan=b"\x00666",
        port_id=b"Gi1/0/3",
    )
    assert event.status == "stop"
    assert event.mac == "00:e0:fc:01:02:03"
    assert event.calling_station_id == "00-E0-FC-01-02-03"
    assert event.input_octets == 2 * 2**32 + 5
    assert event.session_time == 90
    assert event.terminate_cause == "User-Request"
    assert event.vlan == "666"
    assert event.nas_port_id == "Gi1/0/3"


def _cisco_vsa(*pairs: str) -> bytes:
    """One Vendor-Specific (Cisco, 9) holding Cisco-AVPair (1) sub-attributes."""
    subs = b"".join(bytes((1, len(p) + 2)) + p.encode() for p in pairs)
    return struct.pack("!I", 9) + subs


def _with_vsas(status: int, *vsas: bytes, ts: float = 1000.0) -> SessionEvent:
    attrs = _attrs(status=_u32(status), session=b"s1", calling=b"00-E0-FC-01-02-03")
    every = [*attrs.items(), *((26, v) for v in vsas)]
    if vsas:
        attrs[26] = vsas[0]
    return CODES.accounting.event(attrs, client="sw1", nas_ip="10.0.0.1", now=ts, attributes=every)


def test_accounting_keeps_ciscos_audit_session_id_wherever_it_rides(tmp_path: Path) -> None:
    # A Catalyst sends many Cisco-AVPairs, in one Vendor-Specific or several.
    sensor = _cisco_vsa("cdp-tlv=\000\001", "lldp-tlv=x")
    audit = _cisco_vsa("service-type=Framed", "audit-session-id=0A0000110000001A2B3C4D5E")
    assert _with_vsas(1, sensor, audit).audit_session_id == "0A0000110000001A2B3C4D5E"
    assert _with_vsas(1, sensor).audit_session_id is None
    assert _with_vsas(1).audit_session_id is None
    # Another vendor's VSA with the same text is not Cisco's.
    other = struct.pack("!I", 14823) + bytes((1, 42)) + b"audit-session-id=0A0000110000001A2B3C4D5E"
    assert _with_vsas(1, other).audit_session_id is None
    # A truncated sub-attribute ends the walk without an error.
    assert _with_vsas(1, struct.pack("!I", 9) + bytes((1, 60)) + b"audit").audit_session_id is None

    store = Store(tmp_path / "nac.db")
    try:
        tiers.write_batch(store.conn, [], [_with_vsas(1, audit)])
        tiers.write_batch(store.conn, [], [_with_vsas(3, ts=1300.0)])  # an Interim-Update without it keeps it
        [row] = _sessions(store)
        assert row["audit_session_id"] == "0A0000110000001A2B3C4D5E"
    finally:
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "nac.db")
    yield s
    s.close()


def _sessions(store: Store, **kw: object) -> list[dict[str, object]]:
    return session_store.query(store.conn, **kw)  # type: ignore[arg-type]


def test_start_interim_stop_make_one_session(store: Store) -> None:
    tiers.write_batch(store.conn, [], [_event(1, ts=1000.0)])
    [row] = _sessions(store, active=True)
    assert (row["status"], row["started"], row["mac"]) == ("active", 1000.0, "00:e0:fc:01:02:03")
    tiers.write_batch(store.conn, [], [_event(3, ts=1300.0, in_octets=_u32(77), time=_u32(300))])
    [row] = _sessions(store)
    assert (row["status"], row["updated"], row["input_octets"], row["started"]) == (
        "active",
        1300.0,
        77,
        1000.0,
    )
    tiers.write_batch(store.conn, [], [_event(2, ts=1600.0, time=_u32(600), cause=_u32(2))])
    [row] = _sessions(store)
    assert (row["status"], row["stopped"], row["terminate_cause"]) == ("stopped", 1600.0, "Lost-Carrier")
    assert _sessions(store, active=True) == []


def test_interim_without_start_creates_the_session_back_dated(store: Store) -> None:
    tiers.write_batch(store.conn, [], [_event(3, ts=5000.0, time=_u32(600))])
    [row] = _sessions(store, active=True)
    assert row["started"] == 4400.0


def test_lost_stop_becomes_stale(store: Store) -> None:
    tiers.write_batch(store.conn, [], [_event(1, "a", ts=1000.0), _event(1, "b", ts=90000.0)])
    assert session_store.expire_stale(store.conn, now=90100.0, stale_after=86400.0) == 1
    statuses = {row["session_id"]: row["status"] for row in _sessions(store)}
    assert statuses == {"a": "stale", "b": "active"}


def test_accounting_on_clears_only_that_nas(store: Store) -> None:
    other = _event(1, "x", ts=1000.0)._replace(nas_ip="10.0.0.2")
    tiers.write_batch(store.conn, [], [_event(1, "a", ts=1000.0), _event(1, "b", ts=1000.0), other])
    on = CODES.accounting.event(_attrs(status=_u32(7)), client="sw1", nas_ip="10.0.0.1", now=2000.0)
    tiers.write_batch(store.conn, [], [on])
    statuses = {row["session_id"]: (row["status"], row["terminate_cause"]) for row in _sessions(store)}
    assert statuses["a"] == ("stopped", "NAS-Reboot (Accounting-On)")
    assert statuses["b"][0] == "stopped"
    assert statuses["x"] == ("active", None)


def test_disconnect_request_is_signed_as_rfc_5176_says() -> None:
    target = Target(
        nas_ip="10.0.0.1", port=3799, secret=b"s3cret", client="sw1", session_id="s1", calling_station_id="x"
    )
    packet = build_request(40, 7, target, now=1_700_000_000)
    assert packet[0] == 40
    assert packet[1] == 7
    assert request_authenticator_valid(packet, b"s3cret")
    assert packet[20] == 80  # Message-Authenticator first
    zeroed = packet[:4] + bytes(16) + packet[20:22] + bytes(16) + packet[38:]
    assert hmac.compare_digest(hmac.digest(b"s3cret", zeroed, "md5"), packet[22:38])
    assert b"\x06\x06\x00\x00\x00\x11" not in packet  # no Service-Type in a Disconnect (RFC 5176 §3)
    coa = build_request(43, 8, target, now=1_700_000_000)
    assert b"\x06\x06\x00\x00\x00\x11" in coa  # Service-Type = Authorize-Only


def test_answer_is_verified_against_the_request() -> None:
    target = Target(nas_ip="10.0.0.1", port=3799, secret=b"s3cret", client="sw1", session_id="s1")
    request = build_request(40, 9, target, now=0)
    nak = das_answer(request, 42, b"s3cret", error_cause=503)
    answer = parse_answer(nak, request, b"s3cret")
    assert answer is not None
    assert (answer.status, answer.error_cause) == ("nak", 503)
    assert "Session-Context-Not-Found" in answer.detail
    assert parse_answer(nak, request, b"wrong") is None
    assert (
        parse_answer(das_answer(request, 44, b"s3cret"), request, b"s3cret") is None
    )  # CoA-ACK to a Disconnect


def _start_session(server: NacServer, mac: str, session: str) -> None:
    require_radclient()
    attrs = (
        f'Acct-Status-Type = Start, Acct-Session-Id = "{session}", User-Name = "{mac}", '
        f'Calling-Station-Id = "{mac}", NAS-Port-Id = "Gi1/0/9"'
    )
    result = server.radclient(attrs, "acct")
    assert result.code == "Accounting-Response", result


def _cli(server: NacServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nac", *args, "--db", str(server.db)],
        capture_output=True, text=True, timeout=60, check=False, env=subprocess_env(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "error_cause", "exit_code", "status", "text"),
    [
        (41, None, 0, "stopped", "ack"),
        (42, 503, 1, "active", "nak: Error-Cause 503 Session-Context-Not-Found"),
    ],
)
def test_nac_disconnect_reaches_the_nas_and_records_the_answer(
    nac_server_factory: NacServerFactory,
    answer: int,
    error_cause: int | None,
    exit_code: int,
    status: str,
    text: str,
) -> None:
    (coa_port,) = free_udp_ports(1)
    nas = DasListener(coa_port, secret=SECRET.encode(), answer=answer, error_cause=error_cause)
    try:
        server = nac_server_factory(coa_port=coa_port)
        _start_session(server, "00-e0-fc-0a-0b-0c", "sess-1")
        listed = json.loads(_cli(server, "sessions", "--active", "--json").stdout)
        assert [row["session_id"] for row in listed] == ["sess-1"]
        result = _cli(server, "disconnect", "00e0fc0a0b0c")
        assert result.returncode == exit_code, result.stdout + result.stderr
        assert text in result.stdout
        assert len(nas.received) == 1
        request = nas.received[0]
        assert request[0] == 40
        assert b"sess-1" in request  # Acct-Session-Id identifies the session
        [row] = json.loads(_cli(server, "sessions", "--mac", "00:e0:fc:0a:0b:0c", "--json").stdout)
        assert row["status"] == status
        history = json.loads(_cli(server, "history", "--mac", "00:e0:fc:0a:0b:0c", "--json").stdout)
        assert any(r["method"] == "coa" and r["action"] == "disconnect" for r in history)
    finally:
        nas.close()


def test_nas_that_never_answers_is_retried_and_reported(nac_server_factory: NacServerFactory) -> None:
    (coa_port,) = free_udp_ports(1)
    nas = DasListener(coa_port, secret=SECRET.encode(), answer=None)
    try:
        server = nac_server_factory(coa_port=coa_port)
        _start_session(server, "00-e0-fc-0a-0b-0d", "sess-2")
        result = _cli(server, "reauth", "00e0fc0a0b0d", "--wait", "12")
        assert result.returncode == 1
        assert "timeout" in result.stdout
        assert len(nas.received) == 3  # three tries, the same packet each time (RFC 5176 §2.3)
        assert len(set(nas.received)) == 1
        assert nas.received[0][0] == 43
        # The server went on answering while it waited.
        assert server.radclient("Message-Authenticator = 0x00", "status").code == "Access-Accept"
    finally:
        nas.close()


def test_disconnect_without_a_session_says_so(nac_server: NacServer) -> None:
    result = _cli(nac_server, "disconnect", "00:e0:fc:99:99:99")
    assert result.returncode == 1
    assert "no active session" in result.stderr


def test_sessions_table_survives_sigkill(nac_server: NacServer) -> None:
    _start_session(nac_server, "00-e0-fc-0a-0b-0e", "sess-3")
    assert nac_server.stop(9) != 0
    with sqlite3.connect(nac_server.db) as conn:
        assert conn.execute("SELECT status FROM sessions WHERE session_id = 'sess-3'").fetchone() == (
            "active",
        )


def test_enforce_queues_a_disconnect_for_newly_banned_and_reauth_for_new_vlan(store: Store) -> None:
    from nac.policy.decide import Defaults, Policy, Rule
    from nac.resources import load_registry
    from nac.sessions.enforce import enforce

    registry = load_registry()
    huawei = _event(1, "h", ts=1000.0)  # 00-E0-FC-01-02-03, a Huawei MAC
    apple = CODES.accounting.event(
        _attrs(status=_u32(1), session=b"a", calling=b"3c22fb010203"),
        client="sw1",
        nas_ip="10.0.0.1",
        now=1000.0,
    )
    gone = _event(1, "g", ts=1000.0)._replace(mac="00:e0:fc:09:09:09", session_id="g")
    stop = _event(2, "g", ts=1001.0)._replace(mac="00:e0:fc:09:09:09")
    tiers.write_batch(store.conn, [], [huawei, apple, gone, stop])
    before = Policy([], registry=registry, defaults=Defaults())
    after = Policy(
        [
            Rule(id="ban", kind="vendor", value="huawei", action="reject"),
            Rule(id="q", kind="oui", value="3C:22:FB", action="quarantine", vlan="99"),
        ],
        registry=registry,
        defaults=Defaults(),
    )
    queued = enforce(store.conn, before, after, reason="rule change", requested_by="test", now=2000.0)
    kinds = {change.mac: (change.kind, len(ids)) for change, ids in queued}
    assert kinds == {"00:e0:fc:01:02:03": ("disconnect", 1), "3c:22:fb:01:02:03": ("reauth", 1)}
    assert enforce(store.conn, after, after, reason="no change", requested_by="test", now=2001.0) == []


def test_jobs_reach_each_nas_at_a_bounded_rate(store: Store) -> None:
    events = [_event(1, f"s{i}", ts=1000.0)._replace(mac=f"00:e0:fc:00:00:{i:02x}") for i in range(25)]
    tiers.write_batch(store.conn, [], events)
    for i in range(25):
        session_store.request_action(
            store.conn,
            mac=f"00:e0:fc:00:00:{i:02x}",
            kind="disconnect",
            reason="t",
            requested_by="t",
            now=1.0,
        )
    assert len(session_store.take_pending(store.conn, per_client=10)) == 10
    assert len(session_store.take_pending(store.conn, per_client=10)) == 10
    assert len(session_store.take_pending(store.conn, per_client=10)) == 5
    assert session_store.take_pending(store.conn, per_client=10) == []


def _cli_input(db: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nac", *args, "--db", str(db)],
        input=text, capture_output=True, text=True, timeout=60, check=False, env=subprocess_env(),
    )  # fmt: skip


def test_apply_ask_lists_the_devices_a_change_hits_and_acts_only_on_yes(tmp_path: Path) -> None:
    db = tmp_path / "nac.db"
    store = Store(db)
    tiers.write_batch(store.conn, [], [_event(1, "h", ts=1000.0)])  # a Huawei device on sw1, active
    store.close()
    added = _cli_input(
        db, "n\n", "rules", "add", "--vendor", "huawei", "--action", "reject", "--apply", "ask"
    )
    assert added.returncode == 0, added.stderr
    assert "1 devices on the network change decision" in added.stdout
    assert "00:e0:fc:01:02:03 on sw1: accept -> reject (disconnect)" in added.stdout
    assert "left for their next authentication" in added.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM coa_jobs").fetchone() == (0,)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nid = "q"\noui = "00:E0:FC"\naction = "quarantine"\nvlan = "99"\n')
    imported = _cli_input(db, "n\n", "policy", "import", str(policy), "--apply", "ask")
    assert imported.returncode == 0, imported.stderr
    assert "00:e0:fc:01:02:03 on sw1: reject -> quarantine vlan 99 (reauth)" in imported.stdout
