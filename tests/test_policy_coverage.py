"""Why each losing rule lost, in the words `nac check` prints, for the cases the precedence
tests do not reach; and a policy's defaults refused when they are wrong."""

from __future__ import annotations

import pytest

from nac.errors import PolicyError
from nac.policy.decide import Context, Defaults, Policy, Rule, method_class
from nac.registry.mac import parse_mac
from nac.registry.oui import Registry, registry_from_manuf

MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "01:00:5E\tIANA\tICANN, IANA Department",
    ]
)
HUAWEI = parse_mac("00:e0:fc:12:34:56")
MULTICAST = parse_mac("01:00:5e:00:00:fb")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


def _why(registry: Registry, mac: int, *rules: Rule, ctx: Context | None = None) -> dict[str, str]:
    policy = Policy(rules, registry=registry, defaults=Defaults(quarantine_vlan="999"))
    return {v.rule.id: ("decided" if v.decided else v.why) for v in policy.explain(mac, ctx)}


def test_the_longer_vendor_name_is_the_more_precise_rule(registry: Registry) -> None:
    why = _why(
        registry,
        HUAWEI,
        Rule(id="huawei", kind="vendor", value="huawei", action="reject"),
        Rule(id="huawei-tech", kind="vendor", value="huawei technologies", action="accept"),
    )
    assert why == {"huawei-tech": "decided", "huawei": "rule huawei-tech names the vendor more precisely"}


def test_at_equal_rank_and_action_the_scoped_rule_then_the_older_rule_comes_first(registry: Registry) -> None:
    why = _why(
        registry,
        HUAWEI,
        Rule(id="first", kind="oui", value="00:E0:FC", action="reject", reason="first"),
        Rule(id="second", kind="oui", value="00:E0:FC", action="reject", reason="second"),
        Rule(id="wireless", kind="oui", value="00:E0:FC", action="reject", port_type="wireless"),
        ctx=Context(port_type="Ethernet"),
    )
    assert why["first"] == "decided"
    assert why["second"] == "at the same specificity and action, rule first was added first"
    assert why["wireless"].startswith("does not apply: ")
    why = _why(
        registry,
        HUAWEI,
        Rule(id="any-port", kind="oui", value="00:E0:FC", action="reject"),
        Rule(id="wired", kind="oui", value="00:E0:FC", action="reject", port_type="wired"),
        ctx=Context(port_type="Ethernet"),
    )
    assert why == {
        "wired": "decided",
        "any-port": "at the same specificity and action, the scoped rule wired comes first",
    }


def test_a_multicast_mac_is_refused_before_prefix_rules(registry: Registry) -> None:
    why = _why(registry, MULTICAST, Rule(id="iana", kind="oui", value="01:00:5E", action="accept"))
    assert why == {"iana": "a multicast MAC is refused before prefix, vendor and randomized rules"}


def test_method_class_is_mab_or_dot1x() -> None:
    assert [method_class(m) for m in (None, "mab", "eap-tls", "peap", "eap-md5")] == [
        None, "mab", "dot1x", "dot1x", "dot1x",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"monitor": "yes"}, "default monitor must be true or false"),
        ({"groups": ["sw1"]}, "groups must be a table of name = [client names]"),
        ({"groups": {"bad name": ["sw1"]}}, "group 'bad name': use letters, digits and . _ : -"),
        ({"groups": {"site": "sw1"}}, "group site: must be a list of client names"),
        ({"groups": {"site": ["sw1", ""]}}, "group site: must be a list of client names"),
        ({"action": "allow"}, "default action must be one of accept, quarantine, reject"),
    ],
)
def test_wrong_defaults_are_refused(settings: dict[str, object], error: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Defaults(**settings)  # type: ignore[arg-type]
    assert str(caught.value) == error


def test_groups_keep_their_members_as_tuples() -> None:
    # JSON and TOML give lists.
    assert Defaults(groups={"site": ["sw1", "sw2"]}).groups == {"site": ("sw1", "sw2")}  # type: ignore[dict-item]
