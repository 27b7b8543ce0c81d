"""Conditional rules (issue 4): scope, monitor mode and validity windows, in memory.

The policy core gets the request's context (client, Called-Station-Id, NAS-Port-Type, method,
receive time) from its caller; a rule that does not apply falls through to the next one.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fakenas import FakeNas
from netaddr import IPNetwork

from nac.admission.engine import Engine
from nac.equipment.clients import Client
from nac.errors import PolicyError
from nac.isotime import format_time, parse_time
from nac.policy.decide import Context, Defaults, Policy, Rule, port_class, ssid_of
from nac.radius.packet import Codes
from nac.registry.mac import parse_mac
from nac.registry.oui import Registry, registry_from_manuf
from nac.resources import load_dictionary

MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:1B:21\tIntel\tIntel Corporate",
    ]
)
HUAWEI = parse_mac("00:e0:fc:12:34:56")
EXEMPT = parse_mac("00:e0:fc:00:00:01")
INTEL = parse_mac("00:1b:21:aa:bb:cc")
RANDOM = parse_mac("da:a1:19:00:00:01")
T0 = parse_time("2026-05-01T00:00:00Z", where="test")
DAY = 86400.0

BAN = Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", reason="ministry ban")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


def policy(registry: Registry, *rules: Rule, defaults: Defaults | None = None) -> Policy:
    return Policy(rules, registry=registry, defaults=defaults or Defaults(quarantine_vlan="999"))


def ctx(
    client: str | None = "sw1",
    ssid: str | None = None,
    port_type: str | None = "Ethernet",
    method: str = "mab",
    now: float = T0,
) -> Context:
    called = f"00-11-22-33-44-55:{ssid}" if ssid is not None else None
    return Context(client, called, port_type, method, now)


# -- the request's side --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("called", "ssid"),
    [
        ("00-11-22-33-44-55:corp", "corp"),
        ("00:11:22:33:44:55:guest wifi", "guest wifi"),
        ("001122334455:a:b", "a:b"),
        ("0011.2233.4455:lab", "lab"),
        ("00-11-22-33-44-55", None),  # wired switches send their own MAC only
        ("10.0.0.1", None),
        ("", None),
        (None, None),
    ],
)
def test_ssid_of_called_station_id(called: str | None, ssid: str | None) -> None:
    assert ssid_of(called) == ssid


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Ethernet", "wired"),
        ("Wireless-802.11", "wireless"),
        ("Wireless-Other", "wireless"),
        ("Virtual", None),
    ],
)
def test_port_class_from_nas_port_type_name(name: str, kind: str | None) -> None:
    assert port_class(name) == kind


def test_parse_time_agrees_with_datetime() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        ts = rng.randint(-2_000_000_000, 10_000_000_000)
        dt = datetime.fromtimestamp(ts, UTC)
        assert format_time(ts) == dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert parse_time(dt.isoformat(), where="t") == ts
        offset = timezone(timedelta(minutes=rng.choice([-300, 60, 330])))
        assert parse_time(dt.astimezone(offset).isoformat(), where="t") == ts
    assert parse_time("2026-05-01", where="t") == parse_time("2026-05-01T00:00:00Z", where="t")


@pytest.mark.parametrize("text", ["2026-02-29", "2026-13-01", "2026-05-01T25:00", "yesterday", "1 May"])
def test_parse_time_refuses_impossible_times(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_time(text, where="t")


# -- scope -----------------------------------------------------------------------------------


def test_policy_without_conditional_rules_needs_no_context(registry: Registry) -> None:
    p = policy(registry, BAN)
    assert not p.contextual
    assert p.decide(HUAWEI)[0].rule == "ban-huawei"


@pytest.mark.parametrize(
    ("rule", "request_ctx", "applies"),
    [
        ({"clients": ("sw1",)}, ctx(client="sw1"), True),
        ({"clients": ("sw1",)}, ctx(client="sw2"), False),
        ({"clients": ("site-a",)}, ctx(client="sw2"), True),  # a group from [groups]
        ({"clients": ("site-a",)}, ctx(client="sw9"), False),
        ({"ssids": ("guest",)}, ctx(ssid="guest"), True),
        ({"ssids": ("guest",)}, ctx(ssid="Guest"), False),  # SSIDs are octets: case counts
        ({"ssids": ("guest",)}, ctx(ssid=None), False),
        ({"port_type": "wired"}, ctx(port_type="Ethernet"), True),
        ({"port_type": "wired"}, ctx(port_type="Wireless-802.11"), False),
        ({"port_type": "wireless"}, ctx(port_type="Wireless-802.11"), True),
        ({"port_type": "wireless"}, ctx(port_type=None), False),
        ({"method": "mab"}, ctx(method="mab"), True),
        ({"method": "dot1x"}, ctx(method="mab"), False),
        ({"clients": ("sw1",), "port_type": "wired"}, ctx(client="sw1", port_type="Ethernet"), True),
        ({"clients": ("sw1",), "port_type": "wired"}, ctx(client="sw1", port_type="Wireless-802.11"), False),
    ],
)
def test_scoped_rule_applies_only_in_scope(
    registry: Registry, rule: dict[str, object], request_ctx: Context, applies: bool
) -> None:
    scoped = Rule(id="scoped", kind="mac", value="00:e0:fc:12:34:56", action="accept", **rule)  # type: ignore[arg-type]
    groups = {"site-a": ("sw1", "sw2")}
    p = policy(registry, BAN, scoped, defaults=Defaults(groups=groups))
    decision, _ = p.decide(HUAWEI, request_ctx)
    assert decision.rule == ("scoped" if applies else "ban-huawei")


def test_scoped_rule_without_context_does_not_apply(registry: Registry) -> None:
    scoped = Rule(id="lab", kind="mac", value="00:e0:fc:12:34:56", action="accept", clients=("lab-sw",))
    assert policy(registry, BAN, scoped).decide(HUAWEI)[0].rule == "ban-huawei"


def test_scoped_rule_never_weakens_a_stricter_rule_at_the_same_level(registry: Registry) -> None:
    everywhere = Rule(id="everywhere", kind="vendor", value="huawei", action="reject")
    wired = Rule(id="wired-only", kind="vendor", value="huawei", action="quarantine", port_type="wired")
    p = policy(registry, everywhere, wired)
    assert p.decide(HUAWEI, ctx(port_type="Ethernet"))[0].rule == "everywhere"
    assert p.decide(HUAWEI, ctx(port_type="Wireless-802.11"))[0].rule == "everywhere"


def test_scoped_stricter_rule_wins_where_it_applies(registry: Registry) -> None:
    everywhere = Rule(id="everywhere", kind="vendor", value="huawei", action="quarantine")
    wired = Rule(id="wired-ban", kind="vendor", value="huawei", action="reject", port_type="wired")
    p = policy(registry, everywhere, wired)
    assert p.decide(HUAWEI, ctx(port_type="Ethernet"))[0].rule == "wired-ban"
    assert p.decide(HUAWEI, ctx(port_type="Wireless-802.11"))[0].rule == "everywhere"


def test_randomized_rule_scoped_to_wired_ports(registry: Registry) -> None:
    rule = Rule(id="random-wired", kind="randomized", value="", action="quarantine", port_type="wired")
    p = policy(registry, rule)
    wired = p.decide(RANDOM, ctx(port_type="Ethernet"))[0]
    assert (wired.action, wired.vlan, wired.rule) == ("quarantine", "999", "random-wired")
    assert p.decide(RANDOM, ctx(port_type="Wireless-802.11"))[0].rule == "default"


# -- monitor mode ----------------------------------------------------------------------------


def test_monitor_rule_admits_and_says_what_it_would_do(registry: Registry) -> None:
    monitored = Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", mode="monitor")
    decision, _ = policy(registry, monitored).decide(HUAWEI)
    assert decision.action == "accept"
    assert decision.vlan is None
    assert decision.rule == "ban-huawei"
    assert decision.reason.startswith("monitor: would reject (rule ban-huawei)")


def test_monitor_quarantine_names_the_vlan_it_would_use(registry: Registry) -> None:
    rule = Rule(id="q-intel", kind="vendor", value="intel", action="quarantine", mode="monitor")
    decision, _ = policy(registry, rule).decide(INTEL)
    assert (decision.action, decision.vlan) == ("accept", None)
    assert "would quarantine vlan 999" in decision.reason


def test_global_monitor_switch_admits_everything_but_enforce_rules(registry: Registry) -> None:
    defaults = Defaults(action="reject", monitor=True)
    enforced = Rule(id="ban-intel", kind="vendor", value="intel", action="reject", mode="enforce")
    p = policy(registry, BAN, enforced, defaults=defaults)
    assert p.decide(HUAWEI)[0].action == "accept"
    assert "would reject (rule ban-huawei)" in p.decide(HUAWEI)[0].reason
    unknown = p.decide(parse_mac("00:99:99:00:00:01"))[0]
    assert (unknown.action, unknown.rule) == ("accept", "default")
    assert "would reject (rule default)" in unknown.reason
    assert p.decide(INTEL)[0].action == "reject"  # an explicit enforce rule still enforces


# -- validity --------------------------------------------------------------------------------


def test_exemption_applies_inside_its_window_only(registry: Registry) -> None:
    exempt = Rule(
        id="exempt-1",
        kind="mac",
        value="00:e0:fc:00:00:01",
        action="accept",
        starts="2026-05-01T00:00:00Z",
        expires="2026-05-08T00:00:00Z",
    )
    p = policy(registry, BAN, exempt)
    assert p.contextual
    assert p.decide(EXEMPT, ctx(now=T0 - 1))[0].rule == "ban-huawei"  # not yet
    assert p.decide(EXEMPT, ctx(now=T0))[0].rule == "exempt-1"
    assert p.decide(EXEMPT, ctx(now=T0 + 7 * DAY - 1))[0].rule == "exempt-1"
    assert p.decide(EXEMPT, ctx(now=T0 + 7 * DAY))[0].rule == "ban-huawei"  # lapsed by itself
    assert p.decide(HUAWEI, ctx(now=T0))[0].rule == "ban-huawei"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"port_type": "fibre"}, "port_type must be one of wired, wireless"),
        ({"method": "eap"}, "method must be one of mab, dot1x"),
        ({"mode": "audit"}, "mode must be one of monitor, enforce"),
        ({"starts": "yesterday"}, "not an ISO 8601 time"),
        ({"starts": "2026-05-02T00:00Z", "expires": "2026-05-01T00:00Z"}, "expires"),
        ({"clients": ("",)}, "clients must be a list of non-empty names"),
    ],
)
def test_rule_refuses_bad_scope(fields: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Rule(id="r", kind="mac", value="00:e0:fc:12:34:56", action="accept", **fields)  # type: ignore[arg-type]


# -- through the admission engine ------------------------------------------------------------


@pytest.fixture(scope="module")
def codes() -> Codes:
    return Codes.from_dictionary(load_dictionary())


def _client(nas: FakeNas, name: str) -> Client:
    return Client(name=name, network=IPNetwork("192.0.2.0/24"), secret=nas.secret)


def test_engine_passes_client_ssid_port_type_and_time(codes: Codes, registry: Registry) -> None:
    allow = Rule(id="allow-huawei", kind="vendor", value="huawei", action="accept")
    guest = Rule(id="guest-ssid", kind="vendor", value="huawei", action="reject", ssids=("guest",))
    lab = Rule(id="lab-switch", kind="vendor", value="huawei", action="quarantine", clients=("lab",))
    later = Rule(id="later", kind="vendor", value="intel", action="reject", starts="2026-05-01T00:00:00Z")
    engine = Engine(codes=codes, policy=policy(registry, allow, guest, lab, later))
    nas = FakeNas(codes)

    def decide(mac: str, *, client: str = "sw1", called: str | None = None, now: float = T0) -> str:
        data = nas.mab(mac, called=called, nas_port_type=19 if called else 15)
        outcome = engine.handle(
            data, src=nas.src, port=1812, service="auth", client=_client(nas, client), now=now
        )
        assert outcome.record is not None
        return outcome.record.rule

    assert decide("00:e0:fc:12:34:56") == "allow-huawei"
    assert decide("00:e0:fc:12:34:56", called="00-11-22-33-44-55:guest") == "guest-ssid"
    assert decide("00:e0:fc:12:34:56", called="00-11-22-33-44-55:corp") == "allow-huawei"
    assert decide("00:e0:fc:12:34:56", client="lab") == "lab-switch"
    assert decide("00:1b:21:aa:bb:cc", now=T0 - 1) == "default"
    assert decide("00:1b:21:aa:bb:cc", now=T0) == "later"


def test_engine_monitor_rule_records_would_reject_and_accepts(codes: Codes, registry: Registry) -> None:
    monitored = Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", mode="monitor")
    engine = Engine(codes=codes, policy=policy(registry, monitored))
    nas = FakeNas(codes)
    data = nas.mab("00:e0:fc:12:34:56")
    outcome = engine.handle(data, src=nas.src, port=1812, service="auth", client=_client(nas, "sw1"), now=T0)
    assert outcome.reply[0] == 2  # Access-Accept
    assert outcome.record is not None
    assert outcome.record.action == "accept"
    assert outcome.record.rule == "ban-huawei"
    assert outcome.record.reason.startswith("monitor: would reject")
