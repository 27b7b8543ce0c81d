"""A NAS's requests while someone floods its source address with forged datagrams.

    python bench/spoof.py                       # 10 s quiet, then 10 s under 10,000 forged/s
    python bench/spoof.py --rate 50000 --kind forged --seconds 5

Starts ``nac serve`` on its embedded defaults (client 127.0.0.1, secret testing123) on
127.0.0.1 only, pinned to ``--server-cpu``.  This process plays the NAS: MAB Access-Requests
from 127.0.0.1, ``--nas-rate`` a second (open loop), an answer later than a second counting as
none.  Another, pinned to ``--client-cpu``, sends ``--rate`` forged datagrams a second from the
same address
(``--kind``: ``random`` 20-octet headers, ``forged`` well-formed requests signed with the wrong
secret, or ``both``, half each).  Each phase (quiet, then flooded) runs ``--seconds``; each
reports the NAS's answered share, the p50 and p99 of its round trips, and the server's CPU
(all its threads) over the phase.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing import Event, Process, Value
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from compare import SECRET, group_cpu_seconds, running, start_nac  # noqa: E402

from nac.bench.load import build_request  # noqa: E402

NAS = "127.0.0.1"  # the embedded default client's address, shared by the NAS and the forger
BURSTS_PER_SECOND = 100  # the forger sends its rate in 10 ms bursts
TIMEOUT = 1.0  # an answer later than this counts as none (a NAS retransmits by then)


def _forge(port: int, rate: int, kind: str, cpu: str, stop: EventType, total: Any) -> None:
    """Send ``rate`` forged datagrams a second from the NAS's address until ``stop``."""
    if cpu not in {"", "none"}:
        os.sched_setaffinity(0, {int(c) for c in cpu.split(",")})
    pool: list[bytes] = []
    for i in range(4096):
        if kind == "random" or (kind == "both" and i % 2):
            pool.append(os.urandom(20))
        else:
            pool.append(build_request(f"00e0fc{i:06x}", b"forged", i % 256, os.urandom(16)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((NAS, 0))
    target = ("127.0.0.1", port)
    burst = max(1, rate // BURSTS_PER_SECOND)
    interval = burst / rate
    sent = 0
    due = time.monotonic()
    while not stop.is_set():
        for _ in range(burst):
            with contextlib.suppress(OSError):  # ENOBUFS: the loopback is full; no matter
                sock.sendto(pool[sent & 4095], target)
            sent += 1
        due += interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    total.value = sent


def _nas(port: int, rate: float, seconds: float) -> dict[str, Any]:
    """MAB requests at ``rate`` a second, open loop (a lost one does not hold up the next), each
    answer matched by its Response Authenticator: answered share, p50, p99 (ms)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((NAS, 0))
    sock.settimeout(0.05)
    secret = SECRET.encode()
    pending: dict[int, tuple[bytes, float]] = {}  # identifier -> (request authenticator, sent)
    rtts: list[float] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            now = time.perf_counter()
            asked = pending.get(reply[1])
            if asked is None:
                continue
            expected = hashlib.md5(reply[:4] + asked[0] + reply[20:] + secret).digest()
            if expected == reply[4:20] and now - asked[1] <= TIMEOUT:
                rtts.append(now - asked[1])
                del pending[reply[1]]

    receiver = threading.Thread(target=receive)
    receiver.start()
    count = int(rate * seconds)
    started = time.monotonic()
    for i in range(count):
        authenticator = os.urandom(16)
        request = build_request(f"3c22fb{i:06x}", secret, i % 256, authenticator)
        pending[i % 256] = (authenticator, time.perf_counter())
        sock.sendto(request, ("127.0.0.1", port))
        pause = started + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    time.sleep(TIMEOUT)  # the last ones' answers
    done.set()
    receiver.join()
    sock.close()
    rtts.sort()
    return {
        "sent": count,
        "answered": len(rtts),
        "answered_share": len(rtts) / count if count else 0.0,
        "p50_ms": statistics.median(rtts) * 1000 if rtts else None,
        "p99_ms": rtts[math.ceil(len(rtts) * 0.99) - 1] * 1000 if rtts else None,  # nearest rank
    }


def _phase(server: Any, args: argparse.Namespace, rate: int) -> dict[str, Any]:
    stop = Event()
    total = Value("q", 0)
    forger = None
    if rate:
        forger = Process(target=_forge, args=(server.port, rate, args.kind, args.client_cpu, stop, total))
        forger.start()
        time.sleep(0.5)  # the flood is on before the NAS starts
    cpu0, t0 = group_cpu_seconds(server.process.pid), time.monotonic()
    result = _nas(server.port, args.nas_rate, args.seconds)
    busy = group_cpu_seconds(server.process.pid) - cpu0
    elapsed = time.monotonic() - t0
    if forger is not None:
        stop.set()
        forger.join(5)
    result.update(
        forged_per_second=rate,
        forged_sent_per_second=total.value / (time.monotonic() - t0 + 0.5) if rate else 0.0,
        server_cpu_percent=100 * busy / elapsed,
    )
    return result


def _line(r: dict[str, Any]) -> str:
    p50 = f"{r['p50_ms']:.2f}" if r["p50_ms"] is not None else "-"
    p99 = f"{r['p99_ms']:.2f}" if r["p99_ms"] is not None else "-"
    return (
        f"forged {r['forged_per_second']:>6}/s: NAS answered {r['answered']}/{r['sent']} "
        f"({100 * r['answered_share']:.1f} %), p50 {p50} ms, p99 {p99} ms, "
        f"server CPU {r['server_cpu_percent']:.0f} % (forger sent {r['forged_sent_per_second']:.0f}/s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="forged datagrams a second")
    parser.add_argument("--kind", choices=["random", "forged", "both"], default="both")
    parser.add_argument("--nas-rate", type=float, default=100.0, help="the NAS's requests a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--port", type=int, default=18140)
    parser.add_argument("--server-cpu", default="0", help='core for the server ("none": no pinning)')
    parser.add_argument("--client-cpu", default="1", help='core for the forger ("none")')
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="nac-spoof-") as tmp:
        server = start_nac(port=args.port, cpu=args.server_cpu, workdir=Path(tmp), config=None)
        with running(server):
            for rate in (0, args.rate):
                r = _phase(server, args, rate)
                results.append(r)
                if not args.json:
                    print(_line(r), flush=True)
        # The server's own count of what reached it and why it dropped what it did.
        counters = re.findall(r"stopped; (.*)", server.log.read_text())
        if counters and not args.json:
            print("server counters:", counters[-1])
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
