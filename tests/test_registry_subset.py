"""`nac why` decides with only the device's own registry entries: the same answer as the full
registry gives, for every kind of rule."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nac.policy.decide import Defaults, Policy, Rule
from nac.registry.mac import parse_mac
from nac.resources import load_families, load_registry, load_registry_for
from nac.store import Store

RULES = [
    Rule(id="ban", kind="vendor", value="huawei", action="reject"),
    Rule(id="dahua", kind="vendor", value="dahua", action="quarantine", vlan="66"),
    Rule(id="words", kind="vendor", value="xircom", action="quarantine", vlan="77"),
    Rule(id="mam", kind="oui", value="00:55:DA:1", action="reject"),
    Rule(id="one", kind="mac", value="00:e0:fc:00:00:01", action="accept"),
    Rule(id="rnd", kind="randomized", value="", action="quarantine", vlan="900"),
]


@pytest.fixture(scope="module")
def full() -> Policy:
    return Policy(RULES, registry=load_registry(), defaults=Defaults(), families=load_families())


def test_subset_registry_decides_as_the_full_one(full: Policy, tmp_path: Path) -> None:
    store = Store(tmp_path / "nac.db")
    rng = random.Random(7)
    entries = rng.sample(full.registry.entries, 150)
    macs = [e.prefix << (48 - e.prefix_bits) | rng.getrandbits(48 - e.prefix_bits) for e in entries]
    macs += [
        parse_mac(m)
        for m in ("00:e0:fc:00:00:01", "02:11:22:33:44:55", "70:b3:d5:ff:ff:ff", "00:55:da:1f:00:01")
    ]
    for mac in macs:
        subset = load_registry_for(store, mac)
        assert len(subset) <= 3
        policy = Policy(RULES, registry=subset, defaults=Defaults(), families=load_families())
        decision, match = policy.decide(mac)
        expected, expected_match = full.decide(mac)
        assert decision == expected
        assert (match is None) == (expected_match is None)
        if match is not None and expected_match is not None:
            assert match[:3] == expected_match[:3]  # prefix, bits, organisation
    store.close()
