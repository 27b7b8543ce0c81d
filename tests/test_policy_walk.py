"""Policy.decide's walk over the levels when a level's rules do not decide: the levels below
are tried in turn, for plain and for profiled devices (nac/policy/decide.py, "Precedence")."""

from __future__ import annotations

import pytest

from nac.policy.decide import MULTICAST, Context, Defaults, Policy, Rule
from nac.registry.mac import parse_mac
from nac.registry.oui import Registry, registry_from_manuf

MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:1B:21\tIntel\tIntel Corporate",
    ]
)
HUAWEI = parse_mac("00:e0:fc:12:34:56")
INTEL = parse_mac("00:1b:21:aa:bb:cc")
RANDOM = parse_mac("02:11:22:33:44:55")  # locally administered: no registry entry
GUEST = Context(called_station_id="00-11-22-33-44-55:guest", now=1_800_000_000.0)
CORP = Context(called_station_id="00-11-22-33-44-55:corp", now=1_800_000_000.0)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


def decide(registry: Registry, rules: list[Rule], mac: int, ctx: Context, family: str | None = None) -> str:
    p = Policy(rules, registry=registry, defaults=Defaults(quarantine_vlan="999"))
    decision, _ = p.decide(mac, ctx, family)
    return f"{decision.action} {decision.rule}"


@pytest.mark.parametrize(
    ("ctx", "family", "expected"),
    [
        (GUEST, "huawei", "reject guest-huawei"),  # the profiled family's vendor rule applies
        (CORP, "huawei", "quarantine random"),  # it is scoped away: the randomized level next
        (GUEST, None, "quarantine random"),  # not profiled: no vendor level for this MAC
        (GUEST, "intel", "quarantine random"),  # profiled as a maker no vendor rule names
    ],
)
def test_profiled_randomized_device_falls_through_a_scoped_vendor_rule(
    registry: Registry, ctx: Context, family: str | None, expected: str
) -> None:
    rules = [
        Rule(id="guest-huawei", kind="vendor", value="huawei", action="reject", ssids=("guest",)),
        Rule(id="random", kind="randomized", value="", action="quarantine"),
    ]
    assert decide(registry, rules, RANDOM, ctx, family) == expected


def test_every_level_that_does_not_decide_is_passed_on_to_the_next(registry: Registry) -> None:
    rules = [
        Rule(id="mac-guest", kind="mac", value="00:e0:fc:12:34:56", action="reject", ssids=("guest",)),
        Rule(id="oui-guest", kind="oui", value="00:E0:FC", action="quarantine", ssids=("guest",)),
        Rule(id="vendor-corp", kind="vendor", value="huawei", action="quarantine", ssids=("corp",)),
    ]
    assert decide(registry, rules, HUAWEI, GUEST) == "reject mac-guest"
    assert decide(registry, rules, HUAWEI, CORP) == "quarantine vendor-corp"
    assert decide(registry, rules[:2], HUAWEI, CORP) == "accept default"


def test_multicast_mac_is_refused_when_its_exact_mac_rule_does_not_apply(registry: Registry) -> None:
    multicast = HUAWEI | (1 << 40)
    rules = [
        Rule(id="guest-only", kind="mac", value="01:e0:fc:12:34:56", action="accept", ssids=("guest",)),
        Rule(id="allow-huawei", kind="oui", value="00:E0:FC", action="accept"),
    ]
    p = Policy(rules, registry=registry, defaults=Defaults())
    assert p.decide(multicast, GUEST)[0].rule == "guest-only"
    assert p.decide(multicast, CORP)[0] == MULTICAST


def test_monitor_rule_above_a_rule_that_does_not_apply_is_recorded_and_admits(registry: Registry) -> None:
    rules = [
        Rule(id="watch", kind="oui", value="00:E0:FC", action="reject", mode="monitor"),
        Rule(id="ban-guest", kind="vendor", value="huawei", action="reject", ssids=("guest",)),
    ]
    assert decide(registry, rules, HUAWEI, GUEST) == "reject ban-guest"
    p = Policy(rules, registry=registry, defaults=Defaults())
    decision, _ = p.decide(HUAWEI, CORP)
    assert (decision.action, decision.rule) == ("accept", "watch")
    assert decision.reason.startswith("monitor: would reject")
