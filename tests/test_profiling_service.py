"""Profiles in the decision: a randomized Huawei phone is banned by `--vendor huawei` once its
DHCP message names its maker, a forged OUI is caught, and active sessions are acted on at once.

The profiler and the admission engine run in memory on an SQLite database in a temp dir; the
DHCP messages are built as tests/test_profiling_dhcp.py builds them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from fakenas import FakeNas
from interop import NacServerFactory, free_udp_ports, mab_attrs, udp_socket, wait_for_decision
from netaddr import IPNetwork
from test_profiling_dhcp import DISCOVER, message, option

from nac.admission.engine import Engine
from nac.equipment.clients import Client
from nac.errors import ConfigError
from nac.policy.decide import Defaults, Policy, Rule
from nac.profiling import store
from nac.profiling.effect import SPOOF_SUSPECTED
from nac.profiling.sensor import SensorCodes, sensor_fields
from nac.profiling.service import Profiler, ProfilingConfig, parse_profiling
from nac.profiling.signatures import load_signatures
from nac.radius.packet import Codes
from nac.registry.families import parse_families
from nac.registry.oui import Registry, registry_from_manuf
from nac.resources import load_dictionary
from nac.sessions import store as session_store
from nac.tomlfile import Locator

MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "F0:18:98\tApple\tApple, Inc.",
        "00:10:A4\tXircom\tXircom",
    ]
)
FAMILIES = '[huawei]\nname = "Huawei"\norganizations = ["huawei technologies"]\n'
PHONE = "da:c0:ff:ee:00:01"  # randomized
APPLE = "f0:18:98:00:00:01"
T0 = 1_800_000_000.0
HUAWEI_CLASS = option(60, b"HUAWEI:android:VOG-L29")
RELAY = "192.0.2.1"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


class Rig:
    def __init__(self, tmp_path: Path, codes: Codes, registry: Registry, **config: object) -> None:
        families = parse_families(FAMILIES, origin="test")
        rules = [Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", reason="ministry ban")]
        self.policy = Policy(
            rules, registry=registry, defaults=Defaults(quarantine_vlan="999"), families=families
        )
        self.engine = Engine(codes=codes, policy=self.policy)
        self.conn = sqlite3.connect(tmp_path / "nac.db")
        session_store.ensure_schema(self.conn)
        self.counters: Counter[str] = Counter()
        settings = ProfilingConfig(dhcp_listen=(("127.0.0.1", 0),), loaded=tuple(load_signatures()), **config)  # type: ignore[arg-type]
        self.engine.on_conflict = settings.on_conflict
        self.profiler = Profiler(
            settings,
            conn=self.conn,
            profiles=self.engine.profiles,
            policy=lambda: self.engine.policy,
            sources=[IPNetwork("192.0.2.0/24")],
            counters=self.counters,
        )
        self.nas = FakeNas(codes)
        self.client = Client(name="sw1", network=IPNetwork("192.0.2.0/24"), secret=self.nas.secret)

    def dhcp(self, mac: str, *options: bytes, source: str = RELAY, now: float = T0) -> None:
        data = message(
            DISCOVER, *options, mac=bytes.fromhex(mac.replace(":", "")), giaddr=bytes((192, 0, 2, 1))
        )
        self.profiler.received(data, source, now=now)

    def mab(self, mac: str) -> tuple[int, str, str | None, str]:
        outcome = self.engine.handle(
            self.nas.mab(mac), src=self.nas.src, port=1812, service="auth", client=self.client, now=T0
        )
        assert outcome.reply is not None
        assert outcome.record is not None
        return outcome.reply[0], outcome.record.rule, outcome.record.vendor, outcome.record.reason


@pytest.fixture
def rig(tmp_path: Path, codes: Codes, registry: Registry) -> Rig:
    return Rig(tmp_path, codes, registry)


def test_randomized_phone_is_admitted_until_its_dhcp_names_a_banned_maker(rig: Rig) -> None:
    assert rig.mab(PHONE)[0] == 2  # Access-Accept: a randomized MAC says nothing
    rig.dhcp(PHONE, HUAWEI_CLASS)
    code, rule, vendor, reason = rig.mab(PHONE)
    assert (code, rule, vendor) == (3, "ban-huawei", "Huawei (profiled)")
    assert "manufacturer Huawei from the device's DHCP profile" in reason
    profile = store.get(rig.conn, int(PHONE.replace(":", ""), 16))
    assert profile is not None
    assert profile.family == "huawei"
    assert profile.evidence[0].value == "HUAWEI:android:VOG-L29"
    assert rig.counters["profile:changes"] == 1


def test_weak_signal_alone_changes_no_decision(rig: Rig) -> None:
    rig.dhcp(PHONE, option(12, b"HUAWEI_P30"))
    assert rig.mab(PHONE)[0] == 2
    assert rig.engine.profiles == {int(PHONE.replace(":", ""), 16): None}


def test_forged_apple_mac_with_huawei_dhcp_is_flagged_by_default(rig: Rig) -> None:
    rig.dhcp(APPLE, HUAWEI_CLASS)
    code, rule, vendor, reason = rig.mab(APPLE)
    assert (code, rule, vendor) == (2, "default", "Apple, Inc.")
    assert "spoof suspected: the MAC's prefix is Apple, Inc.'s, its DHCP profile says Huawei" in reason


@pytest.mark.parametrize(("on_conflict", "code"), [("reject", 3), ("quarantine", 2)])
def test_forged_mac_gets_the_configured_conflict_action(
    tmp_path: Path, codes: Codes, registry: Registry, on_conflict: str, code: int
) -> None:
    rig = Rig(tmp_path, codes, registry, on_conflict=on_conflict)
    rig.dhcp(APPLE, HUAWEI_CLASS)
    assert rig.mab(APPLE)[:2] == (code, SPOOF_SUSPECTED)


def test_profile_change_queues_a_disconnect_for_the_active_session(rig: Rig) -> None:
    rig.conn.execute(
        "INSERT INTO sessions (client, nas_ip, session_id, mac, status, started, updated)"
        " VALUES ('sw1', '192.0.2.10', 'A1', ?, 'active', ?, ?)",
        (PHONE, T0, T0),
    )
    rig.conn.commit()
    rig.dhcp(PHONE, HUAWEI_CLASS)
    jobs = rig.conn.execute("SELECT kind, status, requested_by, reason FROM coa_jobs").fetchall()
    assert len(jobs) == 1
    assert jobs[0][:3] == ("disconnect", "pending", "profiling")
    assert "profile huawei" in jobs[0][3]
    rig.dhcp(PHONE, HUAWEI_CLASS, now=T0 + 1)  # the same evidence again: nothing new to do
    assert rig.conn.execute("SELECT COUNT(*) FROM coa_jobs").fetchone() == (1,)


def test_renewal_without_identifying_fields_keeps_the_profile(rig: Rig) -> None:
    rig.dhcp(PHONE, HUAWEI_CLASS)
    rig.dhcp(PHONE, now=T0 + 3600)
    assert rig.engine.profiles[int(PHONE.replace(":", ""), 16)] == "huawei"


def test_copies_from_outside_the_relay_networks_are_dropped(rig: Rig) -> None:
    rig.dhcp(PHONE, HUAWEI_CLASS, source="198.51.100.7")
    assert rig.counters["dhcp:dropped:unknown-source"] == 1
    assert rig.engine.profiles == {}


def test_malformed_datagrams_are_counted_by_reason(rig: Rig) -> None:
    rig.profiler.received(b"\x01" * 100, RELAY, now=T0)
    rig.profiler.received(message(option(53, b"\x05")), RELAY, now=T0)
    assert rig.counters["dhcp:dropped:too-short"] == 1
    assert rig.counters["dhcp:dropped:not-from-client"] == 1
    assert rig.counters["dhcp:received"] == 2


def test_another_process_profile_reaches_the_engine_by_polling(rig: Rig) -> None:
    other = Profiler(
        rig.profiler.config,
        conn=sqlite3.connect(rig.conn.execute("PRAGMA database_list").fetchone()[2]),
        profiles={},
        policy=lambda: rig.policy,
        sources=[IPNetwork("192.0.2.0/24")],
        counters=Counter(),
    )
    data = message(DISCOVER, HUAWEI_CLASS, mac=bytes.fromhex(PHONE.replace(":", "")))
    other.received(data, RELAY, now=T0)
    assert rig.engine.profiles == {}
    rig.profiler.poll()
    assert rig.mab(PHONE)[1] == "ban-huawei"


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ('dhcp_listen = ["0.0.0.0"]', "is not ADDRESS:PORT"),
        ('dhcp_listen = ["0.0.0.0:67"]\non_conflict = "maybe"', "one of flag, quarantine, reject"),
        ('dhcp_sources = ["not-a-network"]', "no address or CIDR"),
        ('color = "blue"', "unknown setting"),
        ('signatures = "/nonexistent/sigs.toml"', "cannot read the signatures file"),
    ],
)
def test_profiling_config_errors_name_the_setting(text: str, part: str) -> None:
    source = f"[profiling]\n{text}\n"
    with pytest.raises(ConfigError) as caught:
        parse_profiling(tomllib.loads(source)["profiling"], Locator("nac.toml", source))
    assert part in str(caught.value)
    assert "nac.toml" in str(caught.value)


# -- through a running server: a relayed DHCP copy over UDP, then radclient ------------------


def test_running_server_bans_a_randomized_huawei_phone_after_its_dhcp_copy(
    nac_server_factory: NacServerFactory,
) -> None:
    (dhcp_port,) = free_udp_ports(1)
    server = nac_server_factory(
        rules=[("--vendor", "huawei", "--action", "reject", "--reason", "ministry ban")],
        extra_config=f'\n[profiling]\ndhcp_listen = ["127.0.0.1:{dhcp_port}"]\n',
    )
    mac = "da:c0:ff:ee:00:02"
    assert f"dhcp 127.0.0.1:{dhcp_port}" in server.stderr()
    assert server.radclient(mab_attrs(mac)).code == "Access-Accept"
    copy = message(DISCOVER, HUAWEI_CLASS, mac=bytes.fromhex(mac.replace(":", "")))
    with udp_socket() as sock:
        sock.sendto(b"\x01garbage", ("127.0.0.1", dhcp_port))
        sock.sendto(copy, ("127.0.0.1", dhcp_port))
    code = wait_for_decision(lambda: server.radclient(mab_attrs(mac)).code, "Access-Reject")
    assert code == "Access-Reject", server.stderr()
    row = server.history("--mac", mac, "--limit", "1")[0]
    assert (row["rule"], row["vendor"]) == ("reject-vendor-huawei", "Huawei (profiled)")
    profile = json.loads(server.cli_ok("profile", mac, "--json"))
    assert (profile["family"], profile["vendor"], profile["source"]) == ("huawei", "Huawei", "dhcp")
    assert profile["evidence"][0]["pattern"] == "HUAWEI:android:*"
    shown = server.cli_ok("profile", mac)
    assert "HUAWEI:android:VOG-L29" in shown
    check = json.loads(server.cli_ok("check", mac, "--json"))
    assert (check["action"], check["rule"], check["vendor"]) == (
        "reject",
        "reject-vendor-huawei",
        "Huawei (profiled)",
    )
    assert check["profile"]["family"] == "huawei"
    assert [(m["rule"], m["decided"]) for m in check["matched"]] == [("reject-vendor-huawei", True)]
    assert "profile    Huawei from dhcp (vendor_class 'HUAWEI:android:VOG-L29'" in server.cli_ok("check", mac)
    assert json.loads(server.cli_ok("stats", "--json"))["profiled"] == {"huawei": 1}
    assert "profiled devices" in server.cli_ok("stats")
    why = server.cli_ok("why", mac)
    assert "Huawei (profiled)" in why
    assert "DHCP profile" in why
    assert server.stop(signal.SIGTERM) == 0
    assert "dhcp:dropped:too-short=1" in server.stderr()


# -- device-sensor data in accounting ----------------------------------------------------------


def cisco_avpair(text: bytes) -> bytes:
    """Vendor-Specific (26), vendor Cisco (9), Cisco-AVPair (1), as a switch encodes it."""
    sub = bytes((1, 2 + len(text))) + text
    return bytes((26, 2 + 4 + len(sub))) + (9).to_bytes(4, "big") + sub


def sensor_tlv(name: bytes, kind: int, value: bytes) -> bytes:
    return name + b"=" + kind.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value


@pytest.mark.parametrize(
    ("avpairs", "fields"),
    [
        (
            [sensor_tlv(b"dhcp-option", 60, b"HUAWEI:android:ELE-L29")],
            {"vendor_class": "HUAWEI:android:ELE-L29"},
        ),
        ([sensor_tlv(b"dhcp-option", 12, b"HUAWEI_P30")], {"hostname": "HUAWEI_P30"}),
        ([sensor_tlv(b"dhcp-option", 55, bytes((1, 3, 6, 15)))], {"fingerprint": "1,3,6,15"}),
        ([sensor_tlv(b"dhcp-option", 81, b"\x00\x00\x00phone1")], {"fqdn": "phone1"}),
        (
            [sensor_tlv(b"lldp-tlv", 6, b"Huawei Versatile Routing Platform")],
            {"lldp_description": "Huawei Versatile Routing Platform"},
        ),
        ([sensor_tlv(b"cdp-tlv", 6, b"cisco IP Phone 8845")], {"cdp_platform": "cisco IP Phone 8845"}),
        ([b"audit-session-id=0A0000010000001A", b"dhcp-option=\x00\x3c\x00"], {}),  # not a TLV
        ([b"dhcp-option=\x00\x3c\x00\x30short"], {}),  # the length runs past the value
        ([sensor_tlv(b"dhcp-option", 60, b"")], {}),
        ([sensor_tlv(b"lldp-tlv", 5, b"sw-name")], {}),  # a system name says nothing of the maker
    ],
)
def test_cisco_device_sensor_values_become_fields(avpairs: list[bytes], fields: dict[str, str]) -> None:
    assert sensor_fields(avpairs) == fields


def test_accounting_with_device_sensor_data_profiles_the_device(rig: Rig, codes: Codes) -> None:
    rig.engine.sensor = SensorCodes.from_dictionary(load_dictionary())
    extra = [
        cisco_avpair(b"audit-session-id=0A0000010000001A"),
        cisco_avpair(sensor_tlv(b"dhcp-option", 60, b"HUAWEI:android:VOG-L29")),
    ]
    request = rig.nas.accounting_request(PHONE, extra=extra)
    outcome = rig.engine.handle(
        request, src=rig.nas.src, port=1813, service="acct", client=rig.client, now=T0
    )
    assert outcome.sensed == {"vendor_class": "HUAWEI:android:VOG-L29"}
    assert outcome.session is not None
    assert outcome.session.mac == PHONE
    rig.profiler.sensed(outcome.session.mac, outcome.sensed, now=T0)
    assert rig.mab(PHONE)[:3] == (3, "ban-huawei", "Huawei (profiled)")
    assert store.get(rig.conn, int(PHONE.replace(":", ""), 16)).source == "accounting"  # type: ignore[union-attr]


def test_accounting_is_not_searched_for_sensor_data_when_profiling_is_off(rig: Rig) -> None:
    extra = [cisco_avpair(sensor_tlv(b"dhcp-option", 60, b"HUAWEI:android:VOG-L29"))]
    request = rig.nas.accounting_request(PHONE, extra=extra)
    outcome = rig.engine.handle(
        request, src=rig.nas.src, port=1813, service="acct", client=rig.client, now=T0
    )
    assert outcome.sensed is None


def test_huawei_oui_on_an_apple_profile_is_a_suspected_spoof(rig: Rig) -> None:
    huawei = "00:e0:fc:00:00:09"
    rig.dhcp(huawei, option(55, bytes((1, 121, 3, 6, 15, 108, 114, 119, 252))), option(12, b"Alices-iPhone"))
    code, rule, vendor, reason = rig.mab(huawei)
    assert (code, rule, vendor) == (3, "ban-huawei", "HUAWEI TECHNOLOGIES CO.,LTD")  # the OUI decides
    assert "spoof suspected" in reason
    assert "its DHCP profile says apple" in reason
