"""Registry benchmark (issue 3, "Acceptance"): lookups per second, `nac check -` over 100,000
MACs, registry load time at start-up, and the memory the index takes.

Run from the top of the repository:

    python bench/registry_bench.py [--count 100000] [--json]

Targets: > 1,000,000 lookups/s for integer MACs, > 300,000/s from strings (parse + lookup),
`nac check -` over 100,000 MACs < 2 s, registry load < 1 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nac.policy.decide import Defaults, Policy, Rule  # noqa: E402
from nac.registry.mac import format_mac, parse_mac  # noqa: E402
from nac.registry.oui import Registry, Snapshot  # noqa: E402
from nac.resources import load_active_registry, load_families, load_registry  # noqa: E402
from nac.store import Store  # noqa: E402

SPELLINGS = (
    format_mac,  # 00:10:a4:23:19:c0
    lambda m: format_mac(m).replace(":", "-").upper(),  # 00-10-A4-23-19-C0
    lambda m: f"{m:012x}",  # 0010a42319c0
    lambda m: ".".join(f"{m:012x}"[i : i + 4] for i in (0, 4, 8)),  # 0010.a423.19c0
)


def sample_macs(registry: Registry, count: int, seed: int = 1) -> list[int]:
    """An inventory-like mix: 80% inside registered blocks (all three sizes), 10% unregistered
    universal addresses, 10% randomized (locally administered)."""
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


def rate(fn: Any, items: list[Any], repeat: int = 3) -> float:
    """Best-of-``repeat`` items per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def lookup_ints(registry: Registry, macs: list[int]) -> None:
    lookup = registry.lookup
    for mac in macs:
        lookup(mac)


def lookup_strings(registry: Registry, texts: list[str]) -> None:
    lookup = registry.lookup
    for text in texts:
        lookup(parse_mac(text))


def decide_ints(policy: Policy, macs: list[int]) -> None:
    decide = policy.decide
    for mac in macs:
        decide(mac)


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def index_memory() -> tuple[int, int]:
    """Bytes the bundled registry and its organisation index hold (tracemalloc), and the
    process's peak RSS growth while building them."""
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    registry = load_registry()
    next(registry.matching("huawei"), None)  # builds the word index vendor rules use
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del registry
    return current, (rss_after - rss_before) * 1024


def check_stdin(texts: list[str], workdir: Path) -> float:
    """Wall time of `nac check - --csv` over ``texts`` (a new process: imports, database,
    registry and policy load included), with one vendor-family rule in force."""
    db = workdir / "bench.db"
    macs = workdir / "macs.txt"
    macs.write_text("\n".join(texts) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nac",
            "rules",
            "add",
            "--vendor",
            "huawei",
            "--action",
            "reject",
            "--db",
            str(db),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    best = float("inf")
    for _ in range(3):
        with macs.open("rb") as stdin:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "nac", "check", "-", "--csv", "--db", str(db)],
                stdin=stdin,
                capture_output=True,
                env=env,
                check=False,
            )
            best = min(best, time.perf_counter() - start)
        lines = done.stdout.count(b"\n")
        if done.returncode != 0 or lines != len(texts) + 1:
            raise SystemExit(f"nac check - failed ({done.returncode}, {lines} lines): {done.stderr.decode()}")
    return best


def db_load(workdir: Path, registry: Registry) -> float:
    """Load time of the active registry from the database after an import."""
    store = Store(workdir / "import.db")
    entries = [(e.prefix, e.prefix_bits, e.organization, e.registry) for e in registry.entries]
    snapshot = Snapshot(source="bench", date="2026-01-01", sha256="0" * 64, counts=registry.counts())
    store.replace_registry(entries, snapshot=snapshot, replaced=[], base=registry.snapshot, now=time.time())
    best = float("inf")
    for _ in range(3):
        _, took = timed(lambda: load_active_registry(store))
        best = min(best, took)
    store.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="MACs per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    registry, bundled_load = timed(load_registry)
    families = load_families()
    rules = [Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject")]
    policy, policy_build = timed(
        lambda: Policy(rules, registry=registry, defaults=Defaults(), families=families)
    )
    macs = sample_macs(registry, args.count)
    rng = random.Random(2)
    texts = [rng.choice(SPELLINGS)(mac) for mac in macs]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results: dict[str, Any] = {
            "registry_entries": len(registry),
            "registry_counts": registry.counts(),
            "load_bundled_s": round(bundled_load, 3),
            "load_from_db_s": round(db_load(workdir, registry), 3),
            "policy_build_s": round(policy_build, 3),
            "lookups_per_s_int": round(rate(lambda xs: lookup_ints(registry, xs), macs)),
            "lookups_per_s_str": round(rate(lambda xs: lookup_strings(registry, xs), texts)),
            "decisions_per_s_int": round(rate(lambda xs: decide_ints(policy, xs), macs)),
            "check_stdin_macs": len(texts),
            "check_stdin_csv_s": round(check_stdin(texts, workdir), 3),
        }
    traced, rss = index_memory()
    results["index_bytes_tracemalloc"] = traced
    results["index_rss_growth_bytes"] = rss
    if args.json:
        print(json.dumps(results, indent=2))
        return
    mib = 1024 * 1024
    print(f"registry: {results['registry_entries']} entries {results['registry_counts']}")
    from_db = results["load_from_db_s"]
    print(f"load at start-up: bundled manuf {bundled_load:.3f} s, from the database {from_db:.3f} s")
    print(f"policy build with a family rule: {policy_build:.3f} s")
    print(f"lookups/s, integer MACs:  {results['lookups_per_s_int']:>12,}  (target > 1,000,000)")
    print(f"lookups/s, from strings:  {results['lookups_per_s_str']:>12,}  (target > 300,000)")
    print(f"decisions/s, integer MACs: {results['decisions_per_s_int']:>11,}")
    print(f"nac check - --csv, {len(texts):,} MACs: {results['check_stdin_csv_s']:.3f} s  (target < 2 s)")
    print(f"index memory: {traced / mib:.1f} MiB traced, {rss / mib:.1f} MiB peak RSS growth")


if __name__ == "__main__":
    main()
