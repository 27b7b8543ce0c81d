"""Dynamic authorization as each equipment profile spells it (RFC 5176): every shipped profile's
Disconnect-Request and re-authorize CoA-Request, decoded as the NAS would; when a port is
bounced instead; the per-client overrides; and a cisco-profile client through a running server,
answered by a fake NAS on its coa_port."""

from __future__ import annotations

import hashlib
import hmac
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from nac.config import load_config
from nac.equipment import coa
from nac.equipment.profiles import load_profiles, parse_profiles
from nac.errors import ConfigError
from nac.history import tiers
from nac.radius.dynauth import Target, build_request
from nac.radius.packet import Codes
from nac.resources import load_dictionary
from nac.sessions import store as session_store
from nac.store import Store
from tests.fakenas import DasListener, FakeNas, attr, attributes
from tests.interop import SECRET, NacServerFactory, free_udp_ports, subprocess_env

NOW: Final = 1_800_000_000
KEY: Final = b"coa-s3cret"
MAC: Final = "00-10-A4-23-19-C0"
AUDIT: Final = "0A0000110000001A2B3C4D5E"
# Attribute numbers, written out here so the test does not read them from the code it checks.
USER_NAME, NAS_IP, NAS_PORT, SERVICE_TYPE, VSA = 1, 4, 5, 6, 26
CALLED, CALLING, NAS_ID, SESSION_ID, EVENT_TIMESTAMP, MESSAGE_AUTH, NAS_IPV6 = 30, 31, 32, 44, 55, 80, 95
AUTHORIZE_ONLY: Final = 17
DEFAULT: Final = (NAS_IP, NAS_ID, USER_NAME, CALLING, SESSION_ID)
#: What each shipped profile must send to find the session, in order (RFC 5176 §3, vendor docs).
SESSION: Final = {
    "generic": DEFAULT,
    "cisco": (CALLING, SESSION_ID),  # Cisco: the attributes its CoA table lists, all must match
    "aruba-cx": DEFAULT,  # AOS-CX: NAS identification and User-Name mandatory
    "arubaos-switch": DEFAULT,
    "aruba-controller": DEFAULT,
    "juniper": DEFAULT,
    "huawei": DEFAULT,
    "h3c": DEFAULT,
    "extreme": DEFAULT,
    "ruckus": (NAS_IP, CALLING),  # FastIron: found by these two; more may be NAKed
    "meraki": DEFAULT,
    "fortinet": DEFAULT,
    "ubiquiti": DEFAULT,
    "hostapd": (NAS_IP, NAS_ID, CALLING, SESSION_ID),  # User-Name would match EAP identities only
}
#: The attributes hostapd's DAS accepts in a Disconnect-Request (src/radius/radius_das.c);
#: any other is answered NAK 401 Unsupported-Attribute.
HOSTAPD_ALLOWED: Final = {1, 4, 31, 32, 44, 50, 55, 80, 89, 95}


def _target(nas_ip: str = "192.0.2.10") -> Target:
    """A session for which accounting told us every identifying attribute nac keeps."""
    return Target(
        nas_ip=nas_ip,
        port=3799,
        secret=KEY,
        client="sw1",
        session_id="5F3A0C1D2E4B6A70",
        calling_station_id=MAC,
        user_name="0010a42319c0",
        nas_identifier="sw1.example",
        called_station_id="00-1B-2C-3D-4E-5F",
        nas_port=50109,
        audit_session_id=AUDIT,
    )


def _job(**changes: Any) -> dict[str, Any]:
    """A queued re-authorization as session_store.take_pending returns it: a wired MAB device."""
    job = {
        "mac": "00:10:a4:23:19:c0", "user_name": "0010a42319c0", "called_station_id": "00-1B-2C-3D-4E-5F",
        "nas_port": 50109, "nas_port_id": "GigabitEthernet1/0/9", "port_sessions": 1, "vlan_change": 1,
    }  # fmt: skip
    job.update(changes)
    return job


def _request(
    profile: str, kind: str, *, job: dict[str, Any] | None = None, nas_ip: str = "192.0.2.10"
) -> bytes:
    spelling = load_profiles()[profile]
    sent = coa.plan(
        kind, reauth=spelling.reauth, bounce=spelling.bounce, disconnect=spelling.disconnect,
        job=job or _job(vlan_change=0),
    )  # fmt: skip
    return build_request(
        sent.code, 42, _target(nas_ip), now=NOW, command=sent.command, session=spelling.session
    )


def _verified(packet: bytes, secret: bytes = KEY) -> list[tuple[int, bytes]]:
    """The attributes, after the checks a NAS makes before it looks at them."""
    assert struct.unpack_from("!H", packet, 2)[0] == len(packet)
    # RFC 5176 §2.3: Request Authenticator = MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret).
    expected = hashlib.md5(packet[:4] + bytes(16) + packet[20:] + secret).digest()
    assert hmac.compare_digest(expected, packet[4:20]), "request authenticator"
    attrs = attributes(packet)
    assert [k for k, _ in attrs].count(MESSAGE_AUTH) == 1
    # RFC 5176 §3.3 (RFC 3579 §3.2): HMAC-MD5 over the packet with a zero authenticator and a
    # zero Message-Authenticator value.
    pos = 20
    while packet[pos] != MESSAGE_AUTH:
        pos += packet[pos + 1]
    zeroed = packet[:4] + bytes(16) + packet[20 : pos + 2] + bytes(16) + packet[pos + 18 :]
    assert hmac.compare_digest(hmac.new(secret, zeroed, hashlib.md5).digest(), packet[pos + 2 : pos + 18])
    return attrs


def _avpairs(attrs: list[tuple[int, bytes]]) -> list[str]:
    out = []
    for kind, value in attrs:
        if kind == VSA:
            vendor, sub, size = struct.unpack_from("!IBB", value)
            assert (vendor, sub, size) == (9, 1, len(value) - 4)  # Cisco, Cisco-AVPair
            out.append(value[6:].decode())
    return out


def _identifying(attrs: list[tuple[int, bytes]]) -> tuple[int, ...]:
    return tuple(k for k, _ in attrs if k not in (MESSAGE_AUTH, EVENT_TIMESTAMP, SERVICE_TYPE, VSA))


@pytest.mark.parametrize("profile", sorted(SESSION))
def test_every_profile_disconnect_is_rfc_5176_with_its_session_attributes(profile: str) -> None:
    assert set(SESSION) == set(load_profiles()), "a shipped profile without an expectation here"
    packet = _request(profile, "disconnect")
    assert (packet[0], packet[1]) == (40, 42)
    attrs = _verified(packet)
    assert _identifying(attrs) == SESSION[profile]
    values = dict(attrs)
    assert SERVICE_TYPE not in values  # RFC 5176 §3.2: never in a Disconnect-Request
    # Cisco finds the session by its Audit-Session-Id first; no other profile sends a VSA.
    assert _avpairs(attrs) == ([f"audit-session-id={AUDIT}"] if profile == "cisco" else [])
    assert values[EVENT_TIMESTAMP] == struct.pack("!I", NOW)
    if CALLING in values:
        assert values[CALLING] == MAC.encode()
    if SESSION_ID in values:
        assert values[SESSION_ID] == b"5F3A0C1D2E4B6A70"
    if NAS_IP in values:
        assert values[NAS_IP] == socket.inet_aton("192.0.2.10")
    if profile == "hostapd":
        assert {k for k, _ in attrs} <= HOSTAPD_ALLOWED


@pytest.mark.parametrize("profile", sorted(SESSION))
def test_every_profile_reauthorize_is_spelled_as_its_nas_expects(profile: str) -> None:
    packet = _request(profile, "reauth")
    # hostapd NAKs every CoA-Request (405) unless built for Hotspot 2.0: it gets a Disconnect.
    assert (packet[0], packet[1]) == ((40 if profile == "hostapd" else 43), 42)
    attrs = _verified(packet)
    assert _identifying(attrs) == SESSION[profile]
    values = dict(attrs)
    assert values[EVENT_TIMESTAMP] == struct.pack("!I", NOW)
    if profile == "cisco":
        assert _avpairs(attrs) == [f"audit-session-id={AUDIT}", "subscriber:command=reauthenticate"]
        assert SERVICE_TYPE not in values
    elif profile == "hostapd":
        assert SERVICE_TYPE not in values  # RFC 5176 §3.2: never in a Disconnect-Request
        assert {k for k, _ in attrs} <= HOSTAPD_ALLOWED
    else:
        assert values[SERVICE_TYPE] == struct.pack("!I", AUTHORIZE_ONLY)  # RFC 5176 §3.1
        assert _avpairs(attrs) == []


def test_generic_bytes_are_what_nac_always_sent() -> None:
    """The generic profile's spelling is the one nac had before profiles, byte for byte."""
    target = _target()
    for code in (40, 43):
        assert _request("generic", "disconnect" if code == 40 else "reauth") == build_request(
            code, 42, target, now=NOW
        )


def test_an_ipv6_nas_is_named_by_nas_ipv6_address() -> None:
    attrs = _verified(_request("generic", "disconnect", nas_ip="2001:db8::10"))
    assert dict(attrs)[NAS_IPV6] == socket.inet_pton(socket.AF_INET6, "2001:db8::10")
    assert NAS_IP not in dict(attrs)


def test_attributes_accounting_did_not_give_are_left_out() -> None:
    bare = Target(nas_ip="192.0.2.10", port=3799, secret=KEY, client="sw1", calling_station_id=MAC)
    everything = tuple(coa.SESSION_ATTRIBUTES)
    attrs = _verified(build_request(40, 1, bare, now=NOW, session=everything))
    assert _identifying(attrs) == (NAS_IP, CALLING)
    full = _verified(build_request(40, 1, _target(), now=NOW, session=everything))
    assert _identifying(full) == (NAS_IP, NAS_ID, USER_NAME, CALLING, CALLED, NAS_PORT, SESSION_ID)
    assert dict(full)[NAS_PORT] == struct.pack("!I", 50109)


@pytest.mark.parametrize(
    ("why", "changes", "command"),
    [
        ("a VLAN change of a wired MAB device alone on its port", {}, "bounce-host-port"),
        ("no VLAN change", {"vlan_change": 0}, "reauthenticate"),
        ("wireless (MAC:SSID)", {"called_station_id": "00-1B-2C-3D-4E-5F:corp"}, "reauthenticate"),
        ("802.1X (User-Name is a person)", {"user_name": "alice"}, "reauthenticate"),
        ("a phone and a PC on the port", {"port_sessions": 2}, "reauthenticate"),
        ("the port is unknown", {"nas_port": None, "nas_port_id": None}, "reauthenticate"),
        ("no User-Name in accounting", {"user_name": None}, "reauthenticate"),
        ("no Called-Station-Id", {"called_station_id": None}, "bounce-host-port"),
    ],
)  # fmt: skip
def test_cisco_bounces_the_port_only_for_a_lone_wired_mab_device_changing_vlan(
    why: str, changes: dict[str, Any], command: str
) -> None:
    attrs = _verified(_request("cisco", "reauth", job=_job(**changes)))
    commands = [a for a in _avpairs(attrs) if a.startswith("subscriber:")]
    assert commands == [f"subscriber:command={command}"], why
    assert SERVICE_TYPE not in dict(attrs)


def test_a_profile_without_bounce_reauthorizes_on_a_vlan_change() -> None:
    attrs = _verified(_request("generic", "reauth", job=_job()))
    assert dict(attrs)[SERVICE_TYPE] == struct.pack("!I", AUTHORIZE_ONLY)
    assert _avpairs(attrs) == []


def test_cisco_port_shutdown_is_a_coa_with_disable_host_port() -> None:
    sent = coa.plan("disconnect", reauth="cisco", bounce="none", disconnect="cisco-port-shutdown", job=_job())
    packet = build_request(
        sent.code, 3, _target(), now=NOW, command=sent.command, session=("Calling-Station-Id",)
    )
    assert packet[0] == 43
    attrs = _verified(packet)
    assert _avpairs(attrs) == ["subscriber:command=disable-host-port"]
    assert SERVICE_TYPE not in dict(attrs)


def _config(tmp_path: Path, client: str, equipment: str | None = None) -> Path:
    server = ""
    if equipment is not None:
        (tmp_path / "equipment.toml").write_text(equipment)
        server = f'[server]\nequipment = "{tmp_path / "equipment.toml"}"\n'
    path = tmp_path / "nac.toml"
    path.write_text(f'{server}[[client]]\nname = "sw"\naddress = "192.0.2.1"\nsecret = "s"\n{client}')
    return path


def test_clients_take_the_profile_spelling_and_override_it(tmp_path: Path) -> None:
    (cisco,) = load_config(_config(tmp_path, 'profile = "cisco"\n')).clients
    assert (cisco.reauth, cisco.bounce, cisco.disconnect) == ("cisco", "cisco", "rfc5176")
    assert cisco.coa_session == ("Calling-Station-Id", "Acct-Session-Id", "Cisco-Audit-Session-Id")
    overrides = (
        'profile = "cisco"\ncoa_bounce = false\ncoa_disconnect = "cisco-port-shutdown"\n'
        'coa_session = ["Acct-Session-Id", "NAS-IP-Address", "Calling-Station-Id"]\n'
    )
    (custom,) = load_config(_config(tmp_path, overrides)).clients
    assert (custom.bounce, custom.disconnect) == ("none", "cisco-port-shutdown")
    assert custom.coa_session == ("NAS-IP-Address", "Calling-Station-Id", "Acct-Session-Id")  # wire order
    (generic,) = load_config(_config(tmp_path, "")).clients
    assert (generic.reauth, generic.bounce, generic.disconnect) == ("rfc5176", "none", "rfc5176")
    assert generic.coa_session == coa.DEFAULT_SESSION


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ("coa_bounce = true\n", "profile 'generic' has no port bounce"),
        ('coa_bounce = "yes"\n', "coa_bounce: true or false"),
        ('coa_disconnect = "shutdown"\n', '"rfc5176" or "cisco-port-shutdown"'),
        ('coa_session = ["Framed-IP-Address"]\n', "unknown Framed-IP-Address"),
        ('coa_session = ["NAS-IP-Address", "NAS-Identifier"]\n', "needs a session identification"),
        ('coa_session = ["User-Name", "User-Name"]\n', "names an attribute twice"),
        ("coa_session = []\n", "a list of attribute names"),
    ],
)
def test_bad_coa_overrides_are_refused_naming_the_setting(tmp_path: Path, client: str, message: str) -> None:
    with pytest.raises(ConfigError, match="coa_") as err:
        load_config(_config(tmp_path, client))
    assert message in str(err.value)


def test_an_operator_profile_sets_bounce_and_session(tmp_path: Path) -> None:
    text = '[my-switch]\ncoa.reauth = "cisco"\ncoa.bounce = "cisco"\ncoa.session = ["Calling-Station-Id"]\n'
    profile = parse_profiles(text, origin="mine.toml")["my-switch"]
    assert (profile.bounce, profile.session) == ("cisco", ("Calling-Station-Id",))
    with pytest.raises(ConfigError, match=r"mine.toml: \[bad\]: coa.bounce must be one of none, cisco"):
        parse_profiles('[bad]\ncoa.bounce = "aruba"\n', origin="mine.toml")
    (sw,) = load_config(_config(tmp_path, 'profile = "my-switch"\n', equipment=text)).clients
    assert (sw.bounce, sw.coa_session) == ("cisco", ("Calling-Station-Id",))


# -- the queue: a re-authorization knows whether the VLAN changes, and who shares the port ----


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "nac.db")
    yield s
    s.close()


def _session(store: Store, mac: str, session: str, port_id: str) -> None:
    codes = Codes.from_dictionary(load_dictionary())
    nas = FakeNas(codes, secret=KEY)
    data = nas.accounting_request(mac, session_id=session, extra=[attr(87, port_id)])
    decoded = dict(attributes(data))
    event = codes.accounting.event(decoded, client="sw1", nas_ip="192.0.2.10", now=1000.0)
    tiers.write_batch(store.conn, [], [event])


def test_queue_carries_vlan_change_and_counts_the_sessions_on_the_port(store: Store) -> None:
    _session(store, "00-10-a4-00-00-01", "a", "Gi1/0/1")
    _session(store, "00-10-a4-00-00-02", "b", "Gi1/0/2")
    _session(store, "00-10-a4-00-00-03", "c", "Gi1/0/2")  # a PC behind a phone
    for n, vlan_change in ((1, True), (2, True), (3, False)):
        session_store.request_action(
            store.conn, mac=f"00:10:a4:00:00:0{n}", kind="reauth", reason="t", requested_by="t",
            now=2000.0, vlan_change=vlan_change,
        )  # fmt: skip
    rows = {r["mac"]: r for r in session_store.take_pending(store.conn)}
    assert {m: (r["vlan_change"], r["port_sessions"]) for m, r in rows.items()} == {
        "00:10:a4:00:00:01": (1, 1),
        "00:10:a4:00:00:02": (1, 2),
        "00:10:a4:00:00:03": (0, 2),
    }
    assert rows["00:10:a4:00:00:01"]["nas_port_id"] == "Gi1/0/1"


def test_a_database_from_before_gets_the_new_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:  # as the tables were before
        conn.execute("ALTER TABLE coa_jobs DROP COLUMN vlan_change")
        conn.execute("ALTER TABLE sessions DROP COLUMN audit_session_id")
        conn.execute(
            "INSERT INTO sessions (client, nas_ip, session_id, status, started, updated)"
            " VALUES ('sw', '192.0.2.1', 'S1', 'active', 0, 0)"
        )
        conn.execute(
            "INSERT INTO coa_jobs (session, kind, reason, requested, requested_by, status)"
            " VALUES (1, 'reauth', 'old', 0, 't', 'ack')"
        )
    conn.close()
    store = Store(db)
    try:
        assert store.conn.execute("SELECT vlan_change FROM coa_jobs").fetchall() == [(0,)]
        assert store.conn.execute("SELECT session_id, audit_session_id FROM sessions").fetchall() == [
            ("S1", None)
        ]
    finally:
        store.close()


def test_enforce_marks_a_new_vlan_but_not_a_ban(store: Store) -> None:
    from nac.policy.decide import Defaults, Policy, Rule
    from nac.resources import load_registry
    from nac.sessions.enforce import enforce

    _session(store, "00-10-a4-00-00-01", "a", "Gi1/0/1")  # Xircom
    _session(store, "00-e0-fc-00-00-02", "b", "Gi1/0/2")  # Huawei
    registry = load_registry()
    after = Policy(
        [
            Rule(id="ban", kind="vendor", value="huawei", action="reject"),
            Rule(id="q", kind="oui", value="00:10:A4", action="quarantine", vlan="99"),
        ],
        registry=registry,
        defaults=Defaults(),
    )
    enforce(
        store.conn,
        Policy([], registry=registry, defaults=Defaults()),
        after,
        reason="r",
        requested_by="t",
        now=1.0,
    )
    rows = store.conn.execute(
        "SELECT s.mac, j.kind, j.vlan_change FROM coa_jobs j JOIN sessions s ON s.id = j.session"
        " ORDER BY s.mac"
    ).fetchall()
    assert rows == [("00:10:a4:00:00:01", "reauth", 1), ("00:e0:fc:00:00:02", "disconnect", 0)]


# -- through a running server -------------------------------------------------------------

CISCO_ADDRESS: Final = "127.0.0.4"


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nac", *args, "--db", str(db)],
        capture_output=True, text=True, timeout=60, check=False, env=subprocess_env(),
    )  # fmt: skip


def test_cisco_client_gets_reauthenticate_then_bounce_from_a_running_server(
    nac_server_factory: NacServerFactory,
) -> None:
    (coa_port,) = free_udp_ports(1, host=CISCO_ADDRESS)
    nas = DasListener(coa_port, secret=SECRET.encode(), address=CISCO_ADDRESS)
    try:
        extra = (
            f'\n[[client]]\nname = "cat9k"\naddress = "{CISCO_ADDRESS}/32"\nsecret = "{SECRET}"\n'
            f'profile = "cisco"\ncoa_port = {coa_port}\n'
        )
        server = nac_server_factory(extra_config=extra)
        codes = Codes.from_dictionary(load_dictionary())
        switch = FakeNas(codes, secret=SECRET.encode())
        # As a Catalyst sends it: the Audit-Session-Id rides in a Cisco-AVPair.
        audit = attr(VSA, struct.pack("!I", 9) + attr(1, f"audit-session-id={AUDIT}"))
        start = switch.accounting_request(
            "00-10-a4-23-19-c0",
            session_id="0A0B0C0D00000012",
            extra=[attr(87, "GigabitEthernet1/0/9"), audit],
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((CISCO_ADDRESS, 0))
        sock.settimeout(5)
        sock.sendto(start, ("127.0.0.1", server.acct_port))
        assert sock.recvfrom(4096)[0][0] == 5  # Accounting-Response: the session is recorded
        sock.close()

        result = _cli(server.db, "reauth", "00:10:a4:23:19:c0")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ack" in result.stdout
        (reauth,) = nas.wait(1)
        assert reauth[0] == 43
        attrs = _verified(reauth, SECRET.encode())
        assert _avpairs(attrs) == [f"audit-session-id={AUDIT}", "subscriber:command=reauthenticate"]
        assert _identifying(attrs) == (CALLING, SESSION_ID)
        assert dict(attrs)[SESSION_ID] == b"0A0B0C0D00000012"
        assert abs(struct.unpack("!I", dict(attrs)[EVENT_TIMESTAMP])[0] - time.time()) < 60

        # A rule that moves the device to another VLAN, applied now: a wired MAB device alone on
        # its port gets its port bounced, so it asks DHCP for an address in the new VLAN.
        added = _cli(
            server.db, "rules", "add", "--oui", "00:10:A4", "--action", "quarantine", "--vlan", "99",
            "--apply", "now",
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        received = nas.wait(2)
        assert len(received) == 2, "the bounce never reached the NAS"
        bounce = _verified(received[1], SECRET.encode())
        assert received[1][0] == 43
        assert _avpairs(bounce) == [f"audit-session-id={AUDIT}", "subscriber:command=bounce-host-port"]
        assert _identifying(bounce) == (CALLING, SESSION_ID)
        deadline = time.monotonic() + 10
        rows: list[Any] = []
        while time.monotonic() < deadline:
            with sqlite3.connect(server.db) as conn:
                rows = conn.execute("SELECT kind, status, detail FROM coa_jobs ORDER BY id").fetchall()
            conn.close()
            if rows and rows[-1][1] == "ack":
                break
            time.sleep(0.1)
        assert rows == [("reauth", "ack", "ack"), ("reauth", "ack", "bounce-host-port ack")]
    finally:
        nas.close()
