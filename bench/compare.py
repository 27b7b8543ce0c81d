"""Benchmark FreeRADIUS and nac side by side with the same load generator and the same policy.

    python bench/compare.py                          # FreeRADIUS only (the default)
    python bench/compare.py --server nac             # nac only
    python bench/compare.py --server both --repeat 3
    python bench/compare.py --server both --paced 60 70 80   # then latency at % of each peak

Each server runs pinned to one core (``--server-cpu``, default 0) and the load generator
(``python -m nac.bench``) to the other (``--client-cpu``, default 1), so the two never compete
for a core.  Each server first gets a short warm-up run, then ``--repeat`` measured runs of
``--count`` MAB Access-Requests with ``--window`` in flight; the median run is reported.
With ``--paced``, each server then gets open-loop runs of ``--paced-seconds`` at those
percentages of its own median rate (up to 1,024 in flight), for the latency at a given load.

The policy on both sides: Huawei OUIs -> Access-Reject with a Reply-Message, 00:10:A4 ->
Access-Accept in VLAN 666, everything else -> Access-Accept (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECRET = "testing123"  # noqa: S105 - FreeRADIUS's and nac's well-known local test client
PACED_WINDOW = 1024  # in flight at most in a paced run: room for a stall's queue


@dataclass(frozen=True)
class Server:
    """A server under test: a name, where it listens and its process (group leader)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def _pinned(cpu: str, argv: list[str]) -> list[str]:
    if cpu in {"", "none"}:
        return argv
    if shutil.which("taskset") is None:
        sys.exit("compare.py: taskset not found (util-linux)")
    return ["taskset", "-c", cpu, *argv]


def start_freeradius(
    *, port: int, threads: int, cpu: str, workdir: Path, decision_log: bool = False
) -> Server:
    """FreeRADIUS 3.2 with the reference policy, via bench/freeradius/run.sh; with
    ``decision_log`` it also writes a line per decision before replying (rlm_linelog)."""
    log = workdir / "freeradius.log"
    env = dict(os.environ, FR_PORT=str(port), FR_THREADS=str(threads), FR_CPU=cpu)
    env["FR_DECISION_LOG"] = "yes" if decision_log else "no"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(HERE / "freeradius" / "run.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server("freeradius", port, process, log)


def _nac(*args: str) -> list[str]:
    return [sys.executable, "-m", "nac", *args]


def _nac_env() -> dict[str, str]:
    """The environment for nac commands: this checkout first on the import path."""
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def start_nac(*, port: int, cpu: str, workdir: Path, config: Path | None, workers: int = 1) -> Server:
    """nac's own server with the same policy, as CONTRACT.md describes its command line.

    Without ``config`` nac runs on its embedded defaults (client 127.0.0.1 / ::1, secret
    testing123) with a fresh database in ``workdir`` holding the two rules of the reference
    policy.  With ``config`` (a TOML file, see CONTRACT.md) the file's own clients and
    database are used; ``--bind``/``--auth-port``/``--acct-port`` still override it so the
    load generator finds the server.  ``workers`` > 1: that many processes sharing the port
    (``nac serve --workers``); pin them to no core (``--server-cpu none``) to spread them.
    Change this function if nac's command line changes.
    """
    db = workdir / "nac.db"
    if config is None:
        rules = [
            ["--vendor", "huawei", "--action", "reject", "--reason", "Huawei devices are not admitted"],
            ["--oui", "00:10:A4", "--action", "quarantine", "--vlan", "666"],
        ]
        for rule in rules:
            subprocess.run(
                _nac("rules", "add", *rule, "--db", str(db)),
                check=True,
                cwd=workdir,
                env=_nac_env(),
                stdout=subprocess.DEVNULL,
            )
    argv = _nac("serve")
    if config is not None:
        argv += ["--config", str(config)]
    else:
        argv += ["--db", str(db)]
    argv += ["--bind", "127.0.0.1", "--auth-port", str(port), "--acct-port", str(port + 1)]
    if workers != 1:
        argv += ["--workers", str(workers)]
    log = workdir / "nac.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _pinned(cpu, argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
            env=_nac_env(),
        )
    return Server("nac", port, process, log)


def wait_ready(server: Server, *, within: float = 30.0) -> None:
    """Until one MAB request is answered (works for any server, no Status-Server needed)."""
    sys.path.insert(0, str(REPO))
    from nac.bench.load import run  # noqa: PLC0415 - the repository root is on sys.path only now

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        result = run(port=server.port, secret=SECRET.encode(), count=1, window=1, timeout=0.2)
        if result.received:
            return
    stop(server)
    sys.exit(
        f"compare.py: {server.name} did not answer on port {server.port}; its log:\n{server.log.read_text()}"
    )


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (run.sh forwards it to FreeRADIUS), then wait."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)


_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by the processes of group ``pgid``."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        # After "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
        # cmajflt utime stime ...  (proc(5))
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def bench(
    port: int, *, count: int = 0, window: int, cpu: str, rate: float = 0.0, seconds: float = 0.0
) -> dict[str, Any]:
    """One run of the load generator, pinned to ``cpu``, as a separate process: ``count``
    requests, or with ``rate`` paced (open loop) for ``seconds``."""
    amount = ["--duration", str(seconds), "--rate", str(rate)] if rate else ["--count", str(count)]
    argv = _pinned(
        cpu,
        [
            sys.executable,
            "-m",
            "nac.bench",
            "--port",
            str(port),
            "--secret",
            SECRET,
            *amount,
            "--window",
            str(window),
            "--json",
        ],
    )
    out = subprocess.run(argv, check=True, capture_output=True, cwd=REPO).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _line(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:<11} {r['requests_per_second']:>10,.0f} req/s  p50 {r['latency_p50_ms']:>7.3f} ms  "
        f"p99 {r['latency_p99_ms']:>7.3f} ms  timeouts {r['timeouts']:<4} "
        f"accept {r['codes']['Access-Accept']:<7} reject {r['codes']['Access-Reject']:<7} "
        f"cpu: server {r.get('server_cpu_percent', 0):.0f}% client {r['client_cpu_percent']:.0f}%"
    )


def check_policy(server: Server) -> None:
    """bench/check.sh: both servers must answer Accept / Reject / VLAN alike before we time them."""
    done = subprocess.run(
        ["bash", str(HERE / "check.sh"), str(server.port), SECRET],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"compare.py: {server.name} fails the policy check:\n{done.stdout}{done.stderr}")
    print(f"{server.name}: policy check passed", flush=True)


def _timed(server: Server, **load: Any) -> dict[str, Any]:
    """One bench() run with the server's CPU over it (all its processes and threads)."""
    cpu0, t0 = group_cpu_seconds(server.process.pid), time.monotonic()
    r = bench(server.port, **load)
    busy = group_cpu_seconds(server.process.pid) - cpu0
    # Over the generator's whole process lifetime (start-up included): a lower bound.
    r["server_cpu_percent"] = round(100 * busy / (time.monotonic() - t0), 1)
    return r


def measure(start: Callable[[], Server], args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then ``args.repeat`` runs; return the median one (by requests/s), with the
    paced runs at ``args.paced`` percent of its rate under "paced".

    Each paced run gets a server of its own from ``start`` (for nac on its embedded defaults,
    with a new database), warmed up the same way: a run must not inherit what the ones before
    it left behind, such as nac's backlog of decisions still to index (bench/README.md,
    "History and sustained load")."""
    with running(start()) as server:
        if args.check:
            check_policy(server)
        if args.warmup:
            bench(server.port, count=args.warmup, window=args.window, cpu=args.client_cpu)
        runs = []
        for i in range(args.repeat):
            r = _timed(server, count=args.count, window=args.window, cpu=args.client_cpu)
            print(_line(f"{server.name}#{i + 1}", r), flush=True)
            runs.append(r)
    median = statistics.median_low(r["requests_per_second"] for r in runs)
    peak = next(r for r in runs if r["requests_per_second"] == median)
    # The latency at a given load, as a fraction of this server's own peak just measured:
    # open loop, so a stall shows as the queue it builds, not as requests never sent.
    peak["paced"] = []
    for percent in args.paced:
        rate = round(peak["requests_per_second"] * percent / 100)
        with running(start()) as server:
            if args.warmup:
                bench(server.port, count=args.warmup, window=args.window, cpu=args.client_cpu)
            r = _timed(
                server, rate=rate, seconds=args.paced_seconds, window=PACED_WINDOW, cpu=args.client_cpu
            )
        r["percent_of_peak"] = percent
        print(_line(f"{server.name}@{percent:g}%", r), flush=True)
        peak["paced"].append(r)
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["freeradius", "nac", "both"], default="freeradius")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20_000, help="requests before measuring (0: none)")
    parser.add_argument("--server-cpu", default="0", help='core for the server ("none": no pinning)')
    parser.add_argument("--client-cpu", default="1", help='core for the load generator ("none")')
    parser.add_argument("--fr-port", type=int, default=18120)
    parser.add_argument("--fr-threads", type=int, default=0, help="FreeRADIUS worker threads; 0: -t")
    parser.add_argument(
        "--fr-decision-log",
        action="store_true",
        help="FreeRADIUS also writes a line per decision before replying (rlm_linelog)",
    )
    parser.add_argument("--nac-port", type=int, default=18130)
    parser.add_argument("--nac-config", type=Path, default=None, help="nac serve --config FILE")
    parser.add_argument("--nac-workers", type=int, default=1, help="nac serve --workers N (0: one per core)")
    parser.add_argument(
        "--paced",
        type=float,
        nargs="+",
        default=[],
        metavar="PERCENT",
        help="then paced (open-loop) runs at these percentages of each server's own peak",
    )
    parser.add_argument("--paced-seconds", type=float, default=20.0, help="length of each paced run")
    parser.add_argument("--json", action="store_true", help="print the median runs as JSON")
    parser.add_argument(
        "--no-check", dest="check", action="store_false", help="skip the radclient policy check"
    )
    args = parser.parse_args(argv)

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="nac-compare.") as tmp:
        workdir = Path(tmp)
        if args.server in {"freeradius", "both"}:
            results["freeradius"] = measure(
                lambda: start_freeradius(
                    port=args.fr_port,
                    threads=args.fr_threads,
                    cpu=args.server_cpu,
                    workdir=Path(tempfile.mkdtemp(dir=workdir)),
                    decision_log=args.fr_decision_log,
                ),
                args,
            )
        if args.server in {"nac", "both"}:
            results["nac"] = measure(
                lambda: start_nac(
                    port=args.nac_port,
                    cpu=args.server_cpu,
                    workdir=Path(tempfile.mkdtemp(dir=workdir)),
                    config=args.nac_config,
                    workers=args.nac_workers,
                ),
                args,
            )

    print(f"\nmedian of {args.repeat} x {args.count:,} requests, window {args.window}:")
    for name, r in results.items():
        print(_line(name, r))
    if len(results) == 2:
        ratio = results["nac"]["requests_per_second"] / results["freeradius"]["requests_per_second"]
        print(f"nac / freeradius: {ratio:.2f}x")
    if args.paced:
        print(f"\npaced (open loop) for {args.paced_seconds:g} s, at a percentage of each server's peak:")
        for name, r in results.items():
            for paced in r["paced"]:
                print(_line(f"{name}@{paced['percent_of_peak']:g}%", paced))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
