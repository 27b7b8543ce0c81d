"""Every shipped equipment profile end to end, through one running `nac serve` with one client per
profile (each on its own loopback address, with its own secret):

* 802.1X (PEAP) by the real peer eapol_test, with the attributes that equipment adds to its
  Access-Requests; the device's vendor is quarantined, so the Access-Accept must carry the VLAN
  as that equipment takes it, and history must have read the request as the equipment meant it;
* accounting in the equipment's shape, then a Disconnect (`nac disconnect`) and a
  re-authorization (a rule change applied now), received by a fake NAS on the client's address
  that answers only what is signed with its secret; the test checks the exact spelling.

The expectations are written out per profile here, not read from nac/data/equipment.toml: a
wrong change to the data must fail a test.  tests/test_equipment*.py check the same spellings in
memory; this module checks that a running server sends them to the right NAS.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import selectors
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import pytest

from nac.equipment.profiles import load_profiles
from tests.interop import NacServer, attribute, exchange, reply_signed, start_server, udp_socket
from tests.test_eapol import require_eapol_test
from tests.test_equipment_coa import (
    CALLING,
    EVENT_TIMESTAMP,
    HOSTAPD_ALLOWED,
    MESSAGE_AUTH,
    NAS_ID,
    NAS_IP,
    SERVICE_TYPE,
    SESSION_ID,
    USER_NAME,
    VSA,
    _avpairs,
    _verified,
)
from tests.wired import PEAP_PASSWORD, add_user, eap_config, lab_pki, peap_network

#: The shipped profiles, written out: dropping one from the data fails the module (the server
#: refuses an unknown profile), and adding one without expectations here fails
#: test_the_profiles_under_test_are_the_shipped_ones.
PROFILES: Final = (
    "generic", "cisco", "aruba-cx", "arubaos-switch", "aruba-controller", "juniper", "huawei", "h3c",
    "extreme", "ruckus", "meraki", "fortinet", "ubiquiti", "hostapd",
)  # fmt: skip

# Attribute numbers (RFC 2865, 2866, 2868, 2869, 3580), written out rather than read from nac.
NAS_PORT, FILTER_ID, CALLED, ACCT_STATUS_TYPE, ACCT_AUTHENTIC = 5, 11, 30, 40, 45
NAS_PORT_TYPE, NAS_PORT_ID = 61, 87
TUNNEL_TYPE, TUNNEL_MEDIUM_TYPE, TUNNEL_PRIVATE_GROUP_ID = 64, 65, 81
ETHERNET, WIRELESS = 15, 19  # NAS-Port-Type (RFC 2865 §5.41)
DISCONNECT_REQUEST, COA_REQUEST, AUTHORIZE_ONLY = 40, 43, 17
CISCO, ARUBA = 9, 14823
USER: Final = "alice"
#: The device's vendor (Intel, 00:1B:21) is quarantined; so every 802.1X accept carries a VLAN.
QUARANTINE: Final = ("--oui", "00:1B:21", "--action", "quarantine", "--vlan", "666", "--id", "q-intel")


def vsa(vendor: int, kind: int, value: str) -> bytes:
    """A Vendor-Specific value (RFC 2865 §5.26) with one sub-attribute."""
    return struct.pack("!I", vendor) + bytes((kind, len(value) + 2)) + value.encode()


Attr = tuple[int, int | str | bytes]


@dataclass(frozen=True, kw_only=True)
class Equipment:
    """One NAS of a profile's family: where it is, and what it adds to its requests."""

    index: int
    #: How it spells a MAC in Calling-Station-Id (vendors differ, and most let it be configured).
    mac_style: str
    #: What it adds to 802.1X Access-Requests and to accounting: NAS and port identification.
    attrs: tuple[Attr, ...]
    port_type: str  # as history names NAS-Port-Type
    ssid: str | None = None  # what history reads from Called-Station-Id ("MAC:SSID")
    #: Cisco's Cisco-AVPair audit-session-id, which a Catalyst adds to requests and accounting.
    audit: bool = False

    @property
    def address(self) -> str:
        """Its source address, NAS-IP-Address, and where its DAS (RFC 5176) listens."""
        return f"127.0.20.{self.index}"

    def nas_identifier(self) -> str | None:
        found = [v for k, v in self.attrs if k == NAS_ID]
        return str(found[0]) if found else None


# What each family sends for 802.1X on a port (wired switches) or an SSID (wireless), besides
# what every 802.1X authenticator sends (User-Name, NAS-IP-Address, Calling-Station-Id,
# Service-Type Framed, Framed-MTU, EAP-Message: RFC 3580 §3, and eapol_test sends them).  A
# modest selection: each family's port naming and the attributes it adds; the values are
# illustrative, and the MAC spellings ones each can send (most let the operator choose).
EQUIPMENT: Final = {
    # RFC 3580 §3.19-3.21, §3.31: a switch port, Called-Station-Id the port's MAC.
    "generic": Equipment(
        index=1, mac_style="ietf", port_type="Ethernet",
        attrs=(
            (NAS_ID, "access-sw1"), (NAS_PORT, 1), (NAS_PORT_TYPE, ETHERNET), (CALLED, "00-11-22-33-44-01"),
        ),
    ),
    # Cisco IOS-XE Security Configuration Guide, "IEEE 802.1x Port-Based Authentication" (its
    # table of accounting AV pairs: NAS-Port, NAS-Port-Type, Called-Station-Id...) and "RADIUS
    # Change of Authorization" (Cisco-AVPair "audit-session-id=..."); the interface in NAS-Port-Id.
    "cisco": Equipment(
        index=2, mac_style="ietf", port_type="Ethernet", audit=True,
        attrs=(
            (NAS_PORT, 50102), (NAS_PORT_ID, "GigabitEthernet1/0/2"), (NAS_PORT_TYPE, ETHERNET),
            (CALLED, "00-1A-2B-3C-4D-02"),
        ),
    ),
    # AOS-CX: the interface as member/slot/port in NAS-Port-Id.
    "aruba-cx": Equipment(
        index=3, mac_style="bare", port_type="Ethernet",
        attrs=(
            (NAS_ID, "cx6300-1"), (NAS_PORT, 3), (NAS_PORT_ID, "1/1/3"), (NAS_PORT_TYPE, ETHERNET),
            (CALLED, "00-11-22-33-44-03"),
        ),
    ),
    # ArubaOS-Switch (ProCurve): the port number in NAS-Port.
    "arubaos-switch": Equipment(
        index=4, mac_style="bare", port_type="Ethernet",
        attrs=((NAS_ID, "procurve-2930"), (NAS_PORT, 4), (NAS_PORT_TYPE, ETHERNET), (CALLED, "001122334404")),
    ),
    # ArubaOS controller: the SSID, AP name and AP group in Aruba VSAs (vendor 14823:
    # Aruba-Essid-Name 5, Aruba-Location-Id 6, Aruba-AP-Group 10, as in FreeRADIUS's
    # dictionary.aruba); Called-Station-Id here a MAC alone, so history takes the SSID from
    # Aruba-Essid-Name.
    "aruba-controller": Equipment(
        index=5, mac_style="bare", port_type="Wireless-802.11", ssid="corp",
        attrs=(
            (NAS_ID, "mc7210"), (NAS_PORT, 0), (NAS_PORT_TYPE, WIRELESS), (CALLED, "001a1e000105"),
            (26, vsa(ARUBA, 5, "corp")), (26, vsa(ARUBA, 6, "ap-lobby")), (26, vsa(ARUBA, 10, "default")),
        ),
    ),
    # Junos (EX): the logical interface in NAS-Port-Id.
    "juniper": Equipment(
        index=6, mac_style="ietf-lower", port_type="Ethernet",
        attrs=(
            (NAS_ID, "ex4300-1"), (NAS_PORT, 6), (NAS_PORT_ID, "ge-0/0/6.0"), (NAS_PORT_TYPE, ETHERNET),
            (CALLED, "00-11-22-33-44-06"),
        ),
    ),
    # Huawei, radius-server nas-port-id-format new (the default): "slot=..;subslot=..;port=..;vlanid=..".
    "huawei": Equipment(
        index=7, mac_style="huawei", port_type="Ethernet",
        attrs=(
            (NAS_ID, "S5735-1"), (NAS_PORT_ID, "slot=0;subslot=0;port=7;vlanid=10"),
            (NAS_PORT_TYPE, ETHERNET), (CALLED, "00e0-fc00-0007"),
        ),
    ),
    # H3C Comware (of Huawei-3Com lineage): a slot/subslot/port/vlanid NAS-Port-Id.
    "h3c": Equipment(
        index=8, mac_style="ietf-lower", port_type="Ethernet",
        attrs=(
            (NAS_ID, "h3c-s5130"), (NAS_PORT_ID, "slot=1;subslot=0;port=8;vlanid=10"),
            (NAS_PORT_TYPE, ETHERNET), (CALLED, "00-11-22-33-44-08"),
        ),
    ),
    # ExtremeXOS: slot:port on a stack.
    "extreme": Equipment(
        index=9, mac_style="colon", port_type="Ethernet",
        attrs=(
            (NAS_ID, "x450-stack"), (NAS_PORT, 9), (NAS_PORT_ID, "1:9"), (NAS_PORT_TYPE, ETHERNET),
            (CALLED, "00:11:22:33:44:09"),
        ),
    ),
    # RUCKUS ICX (FastIron): unit/module/port.
    "ruckus": Equipment(
        index=10, mac_style="dotted", port_type="Ethernet",
        attrs=(
            (NAS_ID, "icx7150-1"), (NAS_PORT, 10), (NAS_PORT_ID, "1/1/10"), (NAS_PORT_TYPE, ETHERNET),
            (CALLED, "00-11-22-33-44-0A"),
        ),
    ),
    # Cisco Meraki, "Configuring RADIUS Authentication with WPA2-Enterprise" (the attributes an
    # MR access point sends): Called-Station-Id "AP-MAC:SSID", NAS-Port-Type Wireless-802.11.
    "meraki": Equipment(
        index=11, mac_style="ietf", port_type="Wireless-802.11", ssid="corp",
        attrs=((NAS_ID, "Q2XX-MR46-0B"), (NAS_PORT_TYPE, WIRELESS), (CALLED, "AA-BB-CC-00-00-0B:corp")),
    ),
    # FortiSwitch: the port name in NAS-Port-Id.
    "fortinet": Equipment(
        index=12, mac_style="colon", port_type="Ethernet",
        attrs=(
            (NAS_ID, "FS1E48T418000012"), (NAS_PORT_ID, "port12"), (NAS_PORT_TYPE, ETHERNET),
            (CALLED, "00-11-22-33-44-0C"),
        ),
    ),
    # Ubiquiti UniFi access points (hostapd underneath): "BSSID:SSID", Wireless-802.11.
    "ubiquiti": Equipment(
        index=13, mac_style="ietf", port_type="Wireless-802.11", ssid="corp",
        attrs=(
            (NAS_ID, "u6-pro-0d"), (NAS_PORT, 1), (NAS_PORT_TYPE, WIRELESS),
            (CALLED, "F4-92-BF-00-00-0D:corp"),
        ),
    ),
    # hostapd, src/ap/ieee802_1x.c: NAS-Port (the station's AID), "BSSID:SSID", Wireless-802.11.
    "hostapd": Equipment(
        index=14, mac_style="ietf", port_type="Wireless-802.11", ssid="corp",
        attrs=(
            (NAS_ID, "ap1.example"), (NAS_PORT, 1), (NAS_PORT_TYPE, WIRELESS),
            (CALLED, "02-00-00-00-01-0E:corp"),
        ),
    ),
}  # fmt: skip

#: RFC 3580 §3.31 with tag 0 on all three (RFC 2868): Tunnel-Type VLAN (13), Tunnel-Medium-Type
#: IEEE-802 (6), Tunnel-Private-Group-Id "666" (ids only: hostapd reads it with atoi()), as
#: eapol_test prints their octets.
TAGGED_666: Final = (
    (TUNNEL_TYPE, "0000000d"), (TUNNEL_MEDIUM_TYPE, "00000006"), (TUNNEL_PRIVATE_GROUP_ID, "00363636"),
)  # fmt: skip
#: The VLAN attributes each profile's Access-Accept carries for the quarantine.
REPLY: Final = {
    "generic": TAGGED_666,
    "cisco": TAGGED_666,
    "aruba-cx": TAGGED_666,
    "arubaos-switch": TAGGED_666,
    "aruba-controller": TAGGED_666,
    "juniper": TAGGED_666,
    "huawei": TAGGED_666,
    "h3c": TAGGED_666,
    "extreme": TAGGED_666,
    "ruckus": TAGGED_666,
    "meraki": TAGGED_666,
    "fortinet": TAGGED_666,
    "ubiquiti": TAGGED_666,
    "hostapd": TAGGED_666,
}


class Spelling(NamedTuple):
    """How a profile's NAS takes a re-authorization and a Disconnect (RFC 5176)."""

    #: The packet a re-authorization is: CoA-Request, or a Disconnect-Request for a NAS that
    #: refuses CoA-Request (the device authenticates again and gets the new decision).
    reauth: int
    #: The identifying attributes, in order (both requests).
    session: tuple[int, ...]
    #: Cisco-AVPairs of the re-authorization and of the Disconnect ("{audit}": the session's
    #: Audit-Session-Id); with none, a CoA-Request carries Service-Type Authorize-Only.
    reauth_avpairs: tuple[str, ...] = ()
    disconnect_avpairs: tuple[str, ...] = ()


DEFAULT: Final = (NAS_IP, NAS_ID, USER_NAME, CALLING, SESSION_ID)  # RFC 5176 §3
RFC5176: Final = Spelling(reauth=COA_REQUEST, session=DEFAULT)
COA: Final = {
    "generic": RFC5176,
    # Cisco's CoA table: every identifying attribute sent must match, and User-Name and
    # NAS-IP-Address are not among them; the Audit-Session-Id is what a Catalyst looks up first.
    "cisco": Spelling(
        reauth=COA_REQUEST,
        session=(CALLING, SESSION_ID),
        reauth_avpairs=("audit-session-id={audit}", "subscriber:command=reauthenticate"),
        disconnect_avpairs=("audit-session-id={audit}",),
    ),
    "aruba-cx": RFC5176,  # AOS-CX: NAS identification and User-Name are mandatory
    "arubaos-switch": RFC5176,
    "aruba-controller": RFC5176,
    "juniper": RFC5176,
    "huawei": RFC5176,
    "h3c": RFC5176,
    "extreme": RFC5176,
    # FastIron's CoA guide: a session is found by these two, and more may make the switch NAK.
    "ruckus": Spelling(reauth=COA_REQUEST, session=(NAS_IP, CALLING)),
    "meraki": RFC5176,
    "fortinet": RFC5176,
    "ubiquiti": RFC5176,
    # hostapd NAKs CoA-Request (405) unless built for Hotspot 2.0, and matches User-Name against
    # the EAP identity only; it needs Event-Timestamp (radius_das_require_event_time).
    "hostapd": Spelling(reauth=DISCONNECT_REQUEST, session=(NAS_IP, NAS_ID, CALLING, SESSION_ID)),
}


def secret(profile: str) -> str:
    return f"{profile}-s3cret"


def client_name(profile: str) -> str:
    return f"nas-{profile}"


def device(profile: str, network: int) -> str:
    """The device's MAC (an Intel prefix): network 1 for the 802.1X tests, 2 for CoA."""
    return f"00:1b:21:00:{network:02x}:{EQUIPMENT[profile].index:02x}"


def spell(mac: str, style: str) -> str:
    digits = mac.replace(":", "")
    pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
    quads = [digits[i : i + 4] for i in range(0, 12, 4)]
    return {
        "ietf": "-".join(pairs).upper(),  # RFC 3580 §3.21
        "ietf-lower": "-".join(pairs),
        "bare": digits,
        "colon": ":".join(pairs),
        "huawei": "-".join(quads),
        "dotted": ".".join(quads),
    }[style]


def audit_session_id(session_id: str) -> str:
    return "0A001402" + session_id.rjust(16, "0")


# -- the fake NASes' DAS ports ---------------------------------------------------------------


class DasPorts:
    """Every profile's NAS's RFC 5176 listener, on its own address: records each request and
    answers ACK to one signed with that NAS's secret (a NAS silently drops any other)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self.ports: dict[str, int] = {}
        self.received: dict[str, list[bytes]] = {p: [] for p in PROFILES}
        for profile in PROFILES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((EQUIPMENT[profile].address, 0))
            sock.setblocking(False)
            self.ports[profile] = sock.getsockname()[1]
            self._selector.register(sock, selectors.EVENT_READ, profile)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                data, peer = sock.recvfrom(4096)
                self.received[key.data].append(data)
                key_bytes = secret(key.data).encode()
                expected = hashlib.md5(data[:4] + bytes(16) + data[20:] + key_bytes).digest()
                if len(data) < 20 or data[0] not in (40, 43) or not hmac.compare_digest(expected, data[4:20]):
                    continue
                header = struct.pack("!BBH", data[0] + 1, data[1], 20)  # Disconnect-ACK 41, CoA-ACK 44
                sock.sendto(header + hashlib.md5(header + data[4:20] + key_bytes).digest(), peer)

    def wait(self, profile: str, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.received[profile]) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received[profile])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


class Lab(NamedTuple):
    server: NacServer
    pki: Path
    das: DasPorts


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One `nac serve` for the module: a client per profile, the quarantine rule, a PEAP user."""
    require_eapol_test()
    root = tmp_path_factory.mktemp("profiles")
    pki = lab_pki(root / "pki")
    das = DasPorts()
    try:
        clients = "".join(
            f'\n[[client]]\nname = "{client_name(p)}"\naddress = "{EQUIPMENT[p].address}/32"\n'
            f'secret = "{secret(p)}"\nprofile = "{p}"\ncoa_port = {das.ports[p]}\n'
            for p in PROFILES
        )
        server = start_server(root / "server", rules=[QUARANTINE], extra_config=eap_config(pki) + clients)
        try:
            add_user(server, USER, PEAP_PASSWORD)
            yield Lab(server, pki, das)
        finally:
            code = server.stop()
        assert code == 0, server.stderr()[-3000:]
    finally:
        das.close()


def test_the_profiles_under_test_are_the_shipped_ones() -> None:
    assert set(load_profiles()) == set(PROFILES)
    assert set(EQUIPMENT) == set(REPLY) == set(COA) == set(PROFILES)


def test_every_client_runs_with_its_profile(lab: Lab) -> None:
    listed = json.loads(lab.server.cli_ok("clients", "--config", str(lab.server.config), "--json"))
    shown = {c["name"]: c for c in listed}
    assert {p: shown[client_name(p)]["profile"] for p in PROFILES} == {p: p for p in PROFILES}
    assert shown[client_name("cisco")]["reauth"] == "cisco"


# -- 802.1X: eapol_test as the supplicant behind each equipment ----------------------------------


def eapol_arguments(attrs: tuple[Attr, ...]) -> list[str]:
    """eapol_test's -N ID:TYPE:VALUE for each attribute (d: integer, s: string, x: octets)."""
    out = []
    for kind, value in attrs:
        if isinstance(value, int):
            out.append(f"-N{kind}:d:{value}")
        elif isinstance(value, bytes):
            out.append(f"-N{kind}:x:{value.hex()}")
        else:
            out.append(f"-N{kind}:s:{value}")
    return out


_MESSAGE: Final = re.compile(r"^RADIUS message: code=(\d+) ")
_ATTRIBUTE: Final = re.compile(r"^\s+Attribute (\d+) \(")
_VALUE: Final = re.compile(r"^\s+Value: (.*)$")


def radius_messages(stdout: str) -> list[tuple[int, list[tuple[int, str | None]]]]:
    """The RADIUS messages eapol_test dumps, sent and received: code, then (attribute, value as
    printed: 'text', a number, or hex octets; None when it prints none)."""
    messages: list[tuple[int, list[tuple[int, str | None]]]] = []
    current: list[tuple[int, str | None]] | None = None
    for line in stdout.splitlines():
        if m := _MESSAGE.match(line):
            current = []
            messages.append((int(m[1]), current))
        elif current is not None and (m := _ATTRIBUTE.match(line)):
            current.append((int(m[1]), None))
        elif current and (m := _VALUE.match(line)) and current[-1][1] is None:
            current[-1] = (current[-1][0], m[1])
        else:
            current = None
    return messages


def printed(kind: int, value: int | str | bytes) -> str:
    """How eapol_test prints a value it sent."""
    if kind == NAS_IP and isinstance(value, bytes):
        return socket.inet_ntoa(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return f"'{value}'"


@pytest.mark.parametrize("profile", PROFILES)
def test_8021x_from_each_equipment_gets_the_quarantine_vlan_as_it_takes_it(lab: Lab, profile: str) -> None:
    equipment = EQUIPMENT[profile]
    mac, name = device(profile, 1), client_name(profile)
    calling = spell(mac, equipment.mac_style)
    nas_ip = socket.inet_aton(equipment.address)
    attrs: tuple[Attr, ...] = ((NAS_IP, nas_ip), (CALLING, calling), *equipment.attrs)
    if equipment.audit:
        attrs += ((VSA, vsa(CISCO, 1, f"audit-session-id={audit_session_id('1')}")),)
    conf = lab.server.workdir / f"eapol-{profile}.conf"
    conf.write_text(peap_network(lab.pki, USER, PEAP_PASSWORD))
    result = subprocess.run(
        [
            require_eapol_test(), "-c", str(conf), "-a", "127.0.0.1", "-A", equipment.address,
            "-p", str(lab.server.auth_port), "-s", secret(profile), "-M", mac, "-t", "15", "-r", "0",
            *eapol_arguments(attrs),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    tail = result.stdout[-3000:]
    assert result.returncode == 0, tail
    assert "MPPE keys OK: 1  mismatch: 0" in result.stdout, tail

    messages = radius_messages(result.stdout)
    first_request = messages[0][1]
    assert messages[0][0] == 1
    for kind, value in attrs:  # the request went out in the equipment's shape
        shown = [v for k, v in first_request if k == kind]
        assert shown, f"attribute {kind} was not sent"
        if kind != NAS_PORT_ID:  # which eapol_test does not know, so prints no value of
            assert printed(kind, value) in shown, (kind, shown)
    code, accept = messages[-1]
    assert code == 2, tail  # Access-Accept
    vlan = tuple((k, v) for k, v in accept if k in (TUNNEL_TYPE, TUNNEL_MEDIUM_TYPE, TUNNEL_PRIVATE_GROUP_ID))
    assert vlan == REPLY[profile]
    assert FILTER_ID not in {k for k, _ in accept}  # no role: the shipped profiles send none
    vendors = {v[:8] for k, v in accept if k == VSA and v is not None}
    assert vendors == {"00000137"}, vendors  # only Microsoft's MS-MPPE keys (RFC 2548)

    [row] = lab.server.history("--mac", mac, "--limit", "1")
    decided = (row["action"], row["vlan"], row["rule"], row["method"], row["user_name"])
    assert decided == ("quarantine", "666", "q-intel", "peap", USER)
    assert (row["client"], row["nas_ip"], row["calling_station_id"]) == (name, equipment.address, calling)
    values = dict(equipment.attrs)
    assert (row["nas_port_type"], row["ssid"]) == (equipment.port_type, equipment.ssid)
    port = (row["nas_port"], row["nas_port_id"], row["nas_identifier"])
    assert port == (values.get(NAS_PORT), values.get(NAS_PORT_ID), values.get(NAS_ID))


# -- accounting, then Disconnect and re-authorization to a fake NAS ------------------------------


def accounting_start(profile: str, mac: str, session_id: str) -> bytes:
    """An Accounting-Request Start as the equipment sends it for an 802.1X session (RFC 2866)."""
    equipment = EQUIPMENT[profile]
    body = (
        attribute(ACCT_STATUS_TYPE, struct.pack("!I", 1))
        + attribute(SESSION_ID, session_id.encode())
        + attribute(USER_NAME, USER.encode())
        + attribute(CALLING, spell(mac, equipment.mac_style).encode())
        + attribute(NAS_IP, socket.inet_aton(equipment.address))
        + attribute(ACCT_AUTHENTIC, struct.pack("!I", 1))
    )
    for kind, value in equipment.attrs:
        raw = struct.pack("!I", value) if isinstance(value, int) else value
        body += attribute(kind, raw if isinstance(raw, bytes) else raw.encode())
    if equipment.audit:
        body += attribute(VSA, vsa(CISCO, 1, f"audit-session-id={audit_session_id(session_id)}"))
    header = struct.pack("!BBH", 4, 1, 20 + len(body))
    return header + hashlib.md5(header + bytes(16) + body + secret(profile).encode()).digest() + body


def start_session(lab: Lab, profile: str, mac: str, session_id: str) -> None:
    start = accounting_start(profile, mac, session_id)
    with udp_socket(EQUIPMENT[profile].address, timeout=5.0) as sock:
        reply = exchange(sock, start, lab.server.acct_port)
    assert reply is not None, lab.server.stderr()[-2000:]
    assert reply[0] == 5  # Accounting-Response: the session is recorded
    assert reply_signed(reply, start[4:20], secret(profile))


def check_spelling(profile: str, packet: bytes, code: int, avpairs: tuple[str, ...], session_id: str) -> None:
    """The request is exactly what the profile's NAS expects: code, signatures, the identifying
    attributes in order with the session's values, Event-Timestamp, and the re-authorization's
    spelling (Service-Type Authorize-Only, or Cisco's AV-pairs)."""
    equipment = EQUIPMENT[profile]
    spelling = COA[profile]
    assert packet[0] == code, f"code {packet[0]}, expected {code}"
    attrs = _verified(packet, secret(profile).encode())
    identifying = tuple(k for k, _ in attrs if k not in (MESSAGE_AUTH, EVENT_TIMESTAMP, SERVICE_TYPE, VSA))
    assert identifying == spelling.session
    expected_pairs = sorted(p.format(audit=audit_session_id(session_id)) for p in avpairs)
    assert sorted(_avpairs(attrs)) == expected_pairs
    authorize_only = code == COA_REQUEST and not avpairs
    expected_kinds = [*spelling.session, EVENT_TIMESTAMP, MESSAGE_AUTH] + [SERVICE_TYPE] * authorize_only
    assert Counter(k for k, _ in attrs) == Counter(expected_kinds + [VSA] * len(avpairs))
    values = dict(attrs)
    if authorize_only:
        assert values[SERVICE_TYPE] == struct.pack("!I", AUTHORIZE_ONLY)  # RFC 5176 §3.1
    assert abs(struct.unpack("!I", values[EVENT_TIMESTAMP])[0] - time.time()) < 60
    sent = {
        NAS_IP: socket.inet_aton(equipment.address),
        NAS_ID: (equipment.nas_identifier() or "").encode(),
        USER_NAME: USER.encode(),
        CALLING: spell(device(profile, 2), equipment.mac_style).encode(),  # as the NAS spelled it
        SESSION_ID: session_id.encode(),
    }
    assert {k: values[k] for k in spelling.session} == {k: sent[k] for k in spelling.session}
    if profile == "hostapd":
        assert {k for k, _ in attrs} <= HOSTAPD_ALLOWED  # anything else: NAK 401


@pytest.mark.parametrize("profile", PROFILES)
def test_disconnect_and_reauthorize_reach_each_equipment_as_it_spells_them(lab: Lab, profile: str) -> None:
    equipment = EQUIPMENT[profile]
    spelling = COA[profile]
    mac = device(profile, 2)
    name = client_name(profile)
    first, second = f"{equipment.index:02X}00A001", f"{equipment.index:02X}00A002"

    start_session(lab, profile, mac, first)
    out = lab.server.cli("disconnect", mac, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"status": "ack"' in out.stdout, out.stdout
    [disconnect] = lab.das.wait(profile, 1)
    check_spelling(profile, disconnect, DISCONNECT_REQUEST, spelling.disconnect_avpairs, first)

    # The device comes back (a new session), then a rule moves it to another VLAN, applied now.
    start_session(lab, profile, mac, second)
    added = lab.server.cli_ok(
        "rules", "add", "--mac", mac, "--action", "quarantine", "--vlan", "667", "--id", f"move-{profile}",
        "--apply", "now",
    )  # fmt: skip
    assert f"{mac} on {name}: quarantine vlan 666 -> quarantine vlan 667 (reauth)" in added, added
    assert f"reauth {mac} on {name} ({equipment.address}): ack" in added, added
    received = lab.das.wait(profile, 2)
    assert len(received) == 2, "the re-authorization never reached the NAS"
    check_spelling(profile, received[1], spelling.reauth, spelling.reauth_avpairs, second)

    rows = lab.server.history("--mac", mac, "--method", "coa")
    recorded = sorted((r["client"], r["reason"]) for r in rows)
    assert recorded == [(name, "disconnect ack"), (name, "reauth ack")]
