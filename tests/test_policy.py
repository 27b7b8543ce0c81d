"""nac.policy: rule precedence, VLAN checks and the decision for a MAC (CONTRACT.md, "Rules")."""

from __future__ import annotations

import pytest

from nac.errors import PolicyError
from nac.policy.decide import MULTICAST, Decision, Defaults, Policy, Rule, canonical_match, check_vlan
from nac.registry.families import parse_families
from nac.registry.mac import parse_mac
from nac.registry.oui import Registry, registry_from_manuf

MANUF = "\n".join(
    [
        "70:B3:D5\tIEEERegistr\tIEEE Registration Authority",
        "70:B3:D5:10/28\tAcme28\tAcme Twenty Eight Ltd",
        "70:B3:D5:12:30:00/36\tAcme36\tAcme Sensors GmbH",
        "00:11:22\tAcme\tACME Corp",
        # Some real MA-L assignments have the U/L bit set (02:07:01 Racal-Datacom, for one).
        "02:11:22\tAcmeLocal\tAcme Local Corp",
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:11:33\tHuaweiDevice\tHuawei Device Co., Ltd.",
        "01:80:C2\tAcmeGroup\tAcme Group Addresses",
        "00:77:77\tAcmeTrading\tAcme Unrelated Trading",
    ]
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


def policy(registry: Registry, *rules: Rule, defaults: Defaults | None = None) -> Policy:
    return Policy(rules, registry=registry, defaults=defaults or Defaults())


# One rule of every kind, each matching a different part of the same address space.
PRECEDENCE_RULES = (
    Rule(id="r-mac", kind="mac", value="70:b3:d5:12:34:56", action="accept", vlan="10"),
    Rule(id="r-mac-local", kind="mac", value="02:11:22:00:00:01", action="accept"),
    Rule(id="r-36", kind="oui", value="70:B3:D5:12:3", action="quarantine", vlan="36"),
    Rule(id="r-28", kind="oui", value="70:B3:D5:1", action="quarantine", vlan="28"),
    Rule(id="r-24", kind="oui", value="70:B3:D5", action="quarantine", vlan="24"),
    Rule(id="r-local-24", kind="oui", value="02:AA:BB", action="accept", vlan="77"),
    Rule(id="r-vendor", kind="vendor", value="acme", action="reject"),
    Rule(id="r-random", kind="randomized", value="", action="quarantine", vlan="666"),
)

PRECEDENCE = [
    # (MAC, rule that decides, vendor the decision reports)
    ("70:b3:d5:12:34:56", "r-mac", "Acme Sensors GmbH"),  # exact MAC over every prefix
    ("70-B3-D5-12-34-57", "r-36", "Acme Sensors GmbH"),  # 36-bit prefix over vendor, 28, 24
    ("70b3d5124000", "r-28", "Acme Twenty Eight Ltd"),  # 28-bit prefix over vendor and 24
    ("70b3.d520.0000", "r-24", "IEEE Registration Authority"),  # 24-bit prefix
    ("00:11:22:33:44:55", "r-vendor", "ACME Corp"),  # vendor
    ("02:11:22:00:00:01", "r-mac-local", None),  # exact MAC over the randomized rule
    ("02:aa:bb:00:00:01", "r-local-24", None),  # a prefix over the randomized rule
    ("02:11:22:33:44:55", "r-random", None),  # randomized, though 02:11:22 is registered
    ("da:a1:19:00:00:01", "r-random", None),  # randomized
    ("00:99:99:00:00:01", "default", None),  # nothing matches
    ("00:e0:fc:00:00:01", "default", "HUAWEI TECHNOLOGIES CO.,LTD"),
]


@pytest.mark.parametrize(("mac", "rule", "vendor"), PRECEDENCE)
def test_policy_decide_precedence(registry: Registry, mac: str, rule: str, vendor: str | None) -> None:
    decision, match = policy(registry, *PRECEDENCE_RULES).decide(parse_mac(mac))
    assert decision.rule == rule
    assert (match.organization if match else None) == vendor


@pytest.mark.parametrize(("mac", "rule", "vendor"), PRECEDENCE)
def test_policy_decide_precedence_ignores_rule_order(
    registry: Registry, mac: str, rule: str, vendor: str | None
) -> None:
    decision, _ = policy(registry, *reversed(PRECEDENCE_RULES)).decide(parse_mac(mac))
    assert decision.rule == rule


def test_policy_decision_carries_action_vlan_and_reason(registry: Registry) -> None:
    p = policy(registry, *PRECEDENCE_RULES)
    assert p.decide(parse_mac("70:b3:d5:12:34:57"))[0] == Decision(
        "quarantine", "36", "r-36", "prefix 70:B3:D5:12:3 is quarantined"
    )
    assert p.decide(parse_mac("00:11:22:33:44:55"))[0] == Decision(
        "reject", None, "r-vendor", "vendor acme is banned"
    )
    reasoned = Rule(id="why", kind="vendor", value="acme", action="reject", reason="ministry ban 2026-04")
    assert (
        policy(registry, reasoned).decide(parse_mac("00:11:22:33:44:55"))[0].reason == "ministry ban 2026-04"
    )


@pytest.mark.parametrize(
    "mac", ["02:11:22:33:44:55", "06:11:22:33:44:55", "0a:00:00:00:00:00", "fe:ff:ff:ff:ff:ff"]
)
def test_policy_randomized_mac_has_no_vendor(registry: Registry, mac: str) -> None:
    # A vendor rule covering the registered 02:11:22 block does not apply to a randomized MAC.
    p = policy(registry, Rule(id="acme-local", kind="vendor", value="acme local corp", action="reject"))
    decision, match = p.decide(parse_mac(mac))
    assert match is None
    assert decision.rule == "default"
    assert decision.action == "accept"


@pytest.mark.parametrize(
    "mac", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "01:80:c2:00:00:03", "ff:ff:ff:ff:ff:ff"]
)
def test_policy_multicast_mac_is_rejected(registry: Registry, mac: str) -> None:
    p = policy(
        registry,
        Rule(id="accept-all-acme", kind="vendor", value="acme", action="accept"),
        Rule(id="random-ok", kind="randomized", value="", action="accept"),
    )
    decision, _ = p.decide(parse_mac(mac))
    assert decision == MULTICAST
    assert decision.action == "reject"
    assert decision.rule == "builtin:multicast"
    assert decision.vlan is None


@pytest.mark.parametrize(
    "rules",
    [
        (
            Rule(id="huawei", kind="vendor", value="huawei", action="reject"),
            Rule(id="huawei-device", kind="vendor", value="Huawei Device", action="accept"),
        ),
        (
            Rule(id="huawei-device", kind="vendor", value="Huawei Device", action="accept"),
            Rule(id="huawei", kind="vendor", value="huawei", action="reject"),
        ),
    ],
    ids=["broad-first", "specific-first"],
)
def test_policy_more_specific_vendor_text_wins(registry: Registry, rules: tuple[Rule, Rule]) -> None:
    p = policy(registry, *rules)
    assert p.decide(parse_mac("00:11:33:00:00:01"))[0].rule == "huawei-device"
    assert p.decide(parse_mac("00:e0:fc:00:00:01"))[0].rule == "huawei"


def test_policy_quarantine_without_vlan_uses_default_quarantine_vlan(registry: Registry) -> None:
    rule = Rule(id="q", kind="vendor", value="acme", action="quarantine")
    p = policy(registry, rule, defaults=Defaults(quarantine_vlan="999"))
    decision, _ = p.decide(parse_mac("00:11:22:00:00:01"))
    assert (decision.action, decision.vlan, decision.rule) == ("quarantine", "999", "q")


def test_policy_quarantine_rule_vlan_beats_default_quarantine_vlan(registry: Registry) -> None:
    rule = Rule(id="q", kind="vendor", value="acme", action="quarantine", vlan="quarantine-net")
    p = policy(registry, rule, defaults=Defaults(quarantine_vlan="999"))
    assert p.decide(parse_mac("00:11:22:00:00:01"))[0].vlan == "quarantine-net"


def test_policy_quarantine_without_any_vlan_is_refused(registry: Registry) -> None:
    with pytest.raises(PolicyError, match=r"rule q\b.*vlan"):
        policy(registry, Rule(id="q", kind="vendor", value="acme", action="quarantine"))


def test_policy_reject_rule_with_vlan_is_refused() -> None:
    with pytest.raises(PolicyError, match="reject rule cannot carry a VLAN"):
        Rule(id="r", kind="vendor", value="acme", action="reject", vlan="10")


def test_policy_accept_and_reject_carry_no_default_quarantine_vlan(registry: Registry) -> None:
    p = policy(
        registry,
        Rule(id="a", kind="vendor", value="acme corp", action="accept"),
        Rule(id="r", kind="vendor", value="huawei", action="reject"),
        defaults=Defaults(quarantine_vlan="999"),
    )
    assert p.decide(parse_mac("00:11:22:00:00:01"))[0].vlan is None
    assert p.decide(parse_mac("00:e0:fc:00:00:01"))[0].vlan is None
    assert p.decide(parse_mac("00:99:99:00:00:01"))[0].vlan is None


@pytest.mark.parametrize(
    ("defaults", "action", "vlan"),
    [
        (Defaults(), "accept", None),
        (Defaults(action="reject"), "reject", None),
        (Defaults(action="quarantine", quarantine_vlan="999"), "quarantine", "999"),
    ],
)
def test_policy_default_decision(
    registry: Registry, defaults: Defaults, action: str, vlan: str | None
) -> None:
    decision, _ = policy(registry, defaults=defaults).decide(parse_mac("00:99:99:00:00:01"))
    assert (decision.action, decision.vlan, decision.rule) == (action, vlan, "default")


def test_defaults_quarantine_needs_a_vlan() -> None:
    with pytest.raises(PolicyError):
        Defaults(action="quarantine")


VLANS = [
    ("1", True),
    ("10", True),
    ("4094", True),
    ("0", False),
    ("4095", False),
    ("65536", False),
    ("guest", True),
    ("Quarantine_VLAN-2.a", True),
    ("a" * 32, True),
    ("a" * 33, False),
    ("", False),
    ("-guest", False),
    ("_guest", False),
    ("guest vlan", False),
    ("guest/vlan", False),
    ("vlan\n", False),
    ("-1", False),
    ("\u00b2", False),  # superscript two: str.isdigit() is true but int() refuses it
    ("\uff11\uff10", False),  # full-width "10": neither a decimal id nor an ASCII name
    ("\u0661\u0660", False),  # Arabic-Indic "10"
]


@pytest.mark.parametrize(("vlan", "valid"), VLANS)
def test_check_vlan(vlan: str, valid: bool) -> None:
    if valid:
        check_vlan(vlan, where="test")
        Rule(id="q", kind="randomized", value="", action="quarantine", vlan=vlan)
    else:
        with pytest.raises(PolicyError, match="test"):
            check_vlan(vlan, where="test")
        with pytest.raises(PolicyError):
            Rule(id="q", kind="randomized", value="", action="quarantine", vlan=vlan)


@pytest.mark.parametrize(("vlan", "valid"), VLANS)
def test_defaults_quarantine_vlan_is_checked(vlan: str, valid: bool) -> None:
    if valid:
        assert Defaults(quarantine_vlan=vlan).quarantine_vlan == vlan
    else:
        with pytest.raises(PolicyError):
            Defaults(quarantine_vlan=vlan)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "", "kind": "mac", "value": "00:10:a4:23:19:c0", "action": "accept"}, "rule id"),
        ({"id": "has space", "kind": "mac", "value": "00:10:a4:23:19:c0", "action": "accept"}, "rule id"),
        ({"id": "x" * 65, "kind": "mac", "value": "00:10:a4:23:19:c0", "action": "accept"}, "rule id"),
        ({"id": "r", "kind": "ssid", "value": "corp", "action": "accept"}, "kind"),
        ({"id": "r", "kind": "mac", "value": "00:10:a4:23:19:c0", "action": "allow"}, "action"),
        ({"id": "r", "kind": "vendor", "value": "acme", "action": "reject", "reason": "x" * 201}, "reason"),
    ],
)
def test_rule_validates_in_constructor(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Rule(**kwargs)


@pytest.mark.parametrize(
    ("kind", "value", "canonical"),
    [
        ("mac", "00-10-A4-23-19-C0", "00:10:a4:23:19:c0"),
        ("mac", "0010.a423.19c0", "00:10:a4:23:19:c0"),
        ("mac", "0010a4-2319c0", "00:10:a4:23:19:c0"),
        ("oui", "00e0fc", "00:E0:FC"),
        ("oui", "70-B3-D5-1", "70:B3:D5:1"),
        ("oui", "70B3D5123", "70:B3:D5:12:3"),
        ("oui", "70:B3:D5:12:30:00/36", "70:B3:D5:12:3"),
        ("vendor", "  Huawei ", "Huawei"),
        ("randomized", "", ""),
    ],
)
def test_canonical_match(kind: str, value: str, canonical: str) -> None:
    assert canonical_match(kind, value) == canonical


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("mac", "00:10:a4:23:19"),
        ("mac", "0x0010a42319c0"),
        ("oui", "00e0fc12"),
        ("oui", "70:B3:D5:12:31:00/36"),
        ("vendor", " ,. "),
        ("ssid", "corp"),
    ],
)
def test_canonical_match_refuses(kind: str, value: str) -> None:
    with pytest.raises(PolicyError):
        canonical_match(kind, value)


def test_policy_covered_lists_vendor_blocks(registry: Registry) -> None:
    p = policy(registry)
    assert {e.prefix_text for e in p.covered("acme")} == {
        "70:B3:D5:1",
        "70:B3:D5:12:3",
        "00:11:22",
        "02:11:22",
        "01:80:C2",
        "00:77:77",
    }


FAMILIES = """
[acme]
name = "Acme"
organizations = ["acme corp", "acme sensors"]
prefixes = ["70:B3:D5:1"]
"""


@pytest.mark.parametrize(
    ("mac", "rule"),
    [
        ("00:11:22:00:00:01", "ban-acme"),  # organisation "ACME Corp"
        ("70:b3:d5:12:3a:bc", "ban-acme"),  # organisation "Acme Sensors GmbH"
        ("70:b3:d5:1f:00:00", "ban-acme"),  # a prefix the family names
        ("00:77:77:00:00:01", "default"),  # "Acme Unrelated Trading" is not in the family
    ],
)
def test_policy_vendor_rule_uses_family(registry: Registry, mac: str, rule: str) -> None:
    families = parse_families(FAMILIES, origin="families-test")
    p = Policy(
        [Rule(id="ban-acme", kind="vendor", value="ACME", action="reject")],
        registry=registry,
        defaults=Defaults(),
        families=families,
    )
    assert p.decide(parse_mac(mac))[0].rule == rule
