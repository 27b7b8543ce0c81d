"""Full load that never lets up: does nac hold its burst rate, and does history keep pace?

    python bench/sustained.py                       # 10 minutes, in 20 s windows
    python bench/sustained.py --minutes 3 --json

nac runs pinned to one core (``--server-cpu``, default 0) on its embedded defaults with the
reference policy (bench/compare.py), the load generator to the other (``--client-cpu``,
default 1), 128 requests in flight, back to back in windows of ``--window-seconds``.  Printed
per window: decisions/s, the server's resident memory, and the decisions not yet in the MAC
index (the ``nac_history_unindexed`` gauge).  After the load: how long until every decision
is in the MAC index.  The goal: the last window at 90 % or more of the first, the index caught
up within seconds, resident memory under 80 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from compare import SECRET, running, start_nac  # noqa: E402

from nac.bench.load import run  # noqa: E402
from nac.bench.request import default_macs  # noqa: E402
from nac.helpdesk import queries  # noqa: E402
from nac.registry.mac import format_mac, parse_mac  # noqa: E402
from nac.store import Store  # noqa: E402

PORT = 19812
METRICS = "127.0.0.1:19899"


def gauge(name: str, metrics: str = METRICS) -> float | None:
    """The value of ``name`` on the server's /metrics at ``metrics`` (None: not there)."""
    try:
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=2) as page:
            for line in page.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now, or its high-water mark over the process's life (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _why(db: Path) -> tuple[float, int]:
    """Milliseconds `nac why` takes (a read-only open, as the CLI's) for one of the load's MACs,
    and how many decisions it counted."""
    mac = format_mac(parse_mac(default_macs(1)[0]))
    started = time.perf_counter()
    store = Store.readonly(db)
    try:
        report = queries.why(store.conn, mac, decide=None, now=time.time())
    finally:
        store.close()
    took = (time.perf_counter() - started) * 1000
    return took, report.streak.count if report.streak is not None else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window-seconds", type=float, default=20.0)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--after-seconds", type=float, default=60.0, help="idle time before VmHWM is read")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "nac.toml"
        config.write_text(
            f'[server]\ndb = "{workdir / "nac.db"}"\n[metrics]\nbind = "{METRICS}"\n'
            f'[[client]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "{SECRET}"\n'
        )
        server = start_nac(port=PORT, cpu=args.server_cpu, workdir=workdir, config=None)
        server.process.kill()  # the rules are in place; start again with metrics on
        server.process.wait()
        server = start_nac(port=PORT, cpu=args.server_cpu, workdir=workdir, config=config)
        windows: list[dict[str, float]] = []
        with running(server):
            if args.client_cpu != "none":
                os.sched_setaffinity(0, {int(cpu) for cpu in args.client_cpu.split(",")})
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                result = run(port=PORT, secret=SECRET.encode(), duration=args.window_seconds, window=128)
                window = {
                    "rate": result.requests_per_second,
                    "rss_mb": _rss_mb(server.process.pid),
                    "unindexed": gauge("nac_history_unindexed") or 0.0,
                }
                windows.append(window)
                if not args.json:
                    print(
                        f"{len(windows) * args.window_seconds:6.0f} s  {window['rate']:8.0f}/s"
                        f"  rss {window['rss_mb']:5.1f} MB  unindexed {window['unindexed']:10.0f}",
                        flush=True,
                    )
            stopped = time.monotonic()
            while (gauge("nac_history_unindexed") or 0.0) > 0 and time.monotonic() - stopped < 600:
                time.sleep(0.5)
            catch_up = time.monotonic() - stopped
            peak_rss = max(_rss_mb(server.process.pid), *(w["rss_mb"] for w in windows))
            why_ms, why_decisions = _why(workdir / "nac.db")
            # Then a while of the idle thread writing rows and merging, which the windows miss.
            time.sleep(args.after_seconds)
            high_water = _rss_mb(server.process.pid, "VmHWM")
    first, last = windows[0]["rate"], windows[-1]["rate"]
    ratio = last / first if first else 0.0
    summary = {
        "windows": windows,
        "first_rate": first,
        "last_rate": last,
        "last_over_first": ratio,
        "index_caught_up_s": catch_up,
        "peak_rss_mb": peak_rss,
        "high_water_rss_mb": high_water,
        "why_ms": why_ms,
        "why_decisions": why_decisions,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"last window {last:.0f}/s = {100 * ratio:.0f} % of the first ({first:.0f}/s);"
            f" MAC index caught up {catch_up:.1f} s after the load; peak RSS {peak_rss:.1f} MB;"
            f" nac why {why_ms:.0f} ms for a device with {why_decisions} decisions;"
            f" VmHWM {high_water:.1f} MB {args.after_seconds:.0f} s after the load"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
