"""Policy benchmark (issue 4, "Acceptance"): the cost of one decision with 10 rules and with
10,000 rules loaded, without and with conditional (scoped, time-limited) rules among them.

Run from the top of the repository:

    python bench/policy_bench.py [--count 50000] [--repeat 25] [--json] [--against REV]

Target: 10,000 rules cost within 10% of 10 rules.  ``--against REV`` also times the policy
module of git revision REV (e.g. ``HEAD~5``) with the same plain rules, to show that the
common case (no conditional rule) costs no more than it did.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nac.policy.decide import Context, Defaults, Policy, Rule  # noqa: E402
from nac.registry.mac import format_mac  # noqa: E402
from nac.registry.oui import Registry  # noqa: E402
from nac.resources import load_families, load_registry  # noqa: E402

NOW = 1_800_000_000.0
#: The same request context for every decision: a wired MAB request on one switch.
CONTEXT = Context("sw1", "00-11-22-33-44-55:corp", "Ethernet", "mab", NOW)


def sample_macs(registry: Registry, count: int, seed: int = 1) -> list[int]:
    """80% inside registered blocks, 10% unregistered universal, 10% randomized."""
    rng = random.Random(seed)
    entries = registry.entries
    out: list[int] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.8:
            entry = rng.choice(entries)
            host_bits = 48 - entry.prefix_bits
            out.append((entry.prefix << host_bits) | rng.getrandbits(host_bits))
        elif roll < 0.9:
            out.append(rng.getrandbits(48) & ~(3 << 40))
        else:
            out.append((rng.getrandbits(48) | (1 << 41)) & ~(1 << 40))
    return out


def make_rules(
    rule_cls: Any, registry: Registry, count: int, macs: Sequence[int], *, conditional: bool
) -> list[Any]:
    """Ten rules that decide the traffic (vendor, randomized, device and prefix rules, hit by
    the sample MACs), then ``count - 10`` more for other devices and prefixes, so both sizes
    give the same decisions and the difference is the cost of having the rules loaded.  With
    ``conditional``, two of the ten and every fifth other rule are scoped or time-limited."""
    rng = random.Random(7)
    scoped: dict[str, Any] = {"ssids": ("guest",)} if conditional else {}
    timed: dict[str, Any] = {"expires": "2030-01-01T00:00:00Z"} if conditional else {}
    universal = [mac for mac in macs if not mac & (3 << 40)]
    rules = [
        rule_cls(id="ban-huawei", kind="vendor", value="huawei", action="reject"),
        rule_cls(id="reject-dahua", kind="vendor", value="dahua", action="reject", **scoped),
        rule_cls(id="q-random", kind="randomized", value="", action="quarantine", vlan="999"),
        *(
            rule_cls(id=f"dev-{i}", kind="mac", value=format_mac(universal[i]), action="accept", **timed)
            for i in range(4)
        ),
        rule_cls(id="oui-24", kind="oui", value=f"{universal[10] >> 24:06X}", action="accept"),
        rule_cls(id="oui-28", kind="oui", value=f"{universal[11] >> 20:07X}", action="accept"),
        rule_cls(id="oui-36", kind="oui", value=f"{universal[12] >> 12:09X}", action="accept"),
    ]
    taken_macs = set(macs)
    taken_24 = {mac >> 24 for mac in macs}
    n = 0
    while len(rules) < count:
        n += 1
        extra: dict[str, Any] = {}
        if conditional and n % 5 == 0:
            extra = rng.choice(
                [
                    {"clients": ("sw2", "sw3")},
                    {"ssids": ("guest",)},
                    {"port_type": "wireless"},
                    {"expires": "2030-01-01T00:00:00Z"},
                ]
            )
        if n % 4 == 0:
            prefix = rng.getrandbits(24) & ~(3 << 16)
            if prefix in taken_24:
                continue
            rules.append(rule_cls(id=f"oui-{n}", kind="oui", value=f"{prefix:06X}", action="accept", **extra))
        else:
            mac = rng.getrandbits(48) & ~(3 << 40)
            if mac in taken_macs:
                continue
            rules.append(rule_cls(id=f"mac-{n}", kind="mac", value=format_mac(mac), action="accept", **extra))
    return rules[:count]


def per_decision_ns(policies: Sequence[tuple[Any, Any]], macs: Sequence[int], repeat: int) -> list[float]:
    """Best-of-``repeat`` nanoseconds per decision for each ``(policy, context)``; the runs
    take turns, so a busy neighbour on the machine slows all of them alike."""
    best = [float("inf")] * len(policies)
    for _ in range(repeat):
        for i, (policy, ctx) in enumerate(policies):
            decide = policy.decide
            if ctx is None:
                start = time.perf_counter_ns()
                for mac in macs:
                    decide(mac)
            else:
                start = time.perf_counter_ns()
                for mac in macs:
                    decide(mac, ctx)
            best[i] = min(best[i], time.perf_counter_ns() - start)
    return [b / len(macs) for b in best]


def load_policy_module(rev: str) -> ModuleType:
    # The module moved into the policy package; a revision from before has it at nac/policy.py.
    for name in ("nac/policy/decide.py", "nac/policy.py"):
        shown = subprocess.run(
            ["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if shown.returncode == 0:
            source = shown.stdout
            break
    else:
        raise SystemExit(f"no policy module at {rev}")
    path = Path(tempfile.mkdtemp()) / "policy_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("policy_at_rev", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building classes
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50_000, help="decisions per measurement")
    parser.add_argument("--repeat", type=int, default=25, help="take the best of this many runs")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--against", metavar="REV", help="also time the policy module at this git revision")
    args = parser.parse_args()

    registry = load_registry()
    families = load_families()
    macs = sample_macs(registry, args.count)
    results: dict[str, Any] = {"decisions": args.count, "registry_entries": len(registry)}
    cases: list[tuple[str, ModuleType | None, bool, Any]] = [
        ("plain", None, False, None),
        ("conditional", None, True, CONTEXT),
    ]
    if args.against:
        cases.insert(0, (f"plain@{args.against}", load_policy_module(args.against), False, None))
    timed: list[tuple[str, int, Any, Any]] = []
    for label, module, conditional, ctx in cases:
        policy_cls = module.Policy if module else Policy
        rule_cls = module.Rule if module else Rule
        defaults = module.Defaults() if module else Defaults()
        for size in (10, 10_000):
            rules = make_rules(rule_cls, registry, size, macs, conditional=conditional)
            policy = policy_cls(rules, registry=registry, defaults=defaults, families=families)
            timed.append((label, size, policy, ctx))
    costs = per_decision_ns([(policy, ctx) for _, _, policy, ctx in timed], macs, args.repeat)
    for (label, size, _, _), cost in zip(timed, costs, strict=True):
        results.setdefault(label, {})[f"ns_per_decision_{size}"] = round(cost, 1)
    for label, *_ in cases:
        row = results[label]
        row["ratio_10000_vs_10"] = round(row["ns_per_decision_10000"] / row["ns_per_decision_10"], 3)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.count} decisions per run, best of {args.repeat}; registry {len(registry)} entries")
    for label, row in results.items():
        if isinstance(row, dict):
            print(
                f"{label:<22} 10 rules {row['ns_per_decision_10']:>7.1f} ns   "
                f"10,000 rules {row['ns_per_decision_10000']:>7.1f} ns   ratio {row['ratio_10000_vs_10']:.3f}"
            )


if __name__ == "__main__":
    main()
