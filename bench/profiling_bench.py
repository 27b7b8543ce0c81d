"""DHCP profiling: how many client messages one core reads, and how soon a banned phone's
DHCP request turns into a Disconnect-Request on the wire.

    taskset -c 0 python bench/profiling_bench.py [--messages 20000] [--rounds 20]

* listener: Profiler.received() in process on a fresh database, the shipped signatures, for
  --messages messages: first each from a new MAC (a profile written per message), then the
  same MACs again (nothing new: no write).  Messages per second of one core.
* disconnect: a real `nac serve` with [profiling] on loopback and a vendor ban; for each round
  an Accounting-Start opens a session for a new randomized MAC, then a relayed DHCP copy with
  Huawei's vendor class goes to the listener, and the time until the Disconnect-Request
  reaches the NAS's CoA port (a socket here) is taken.
Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from netaddr import IPNetwork

from nac.policy.decide import Defaults, Policy
from nac.profiling.service import Profiler, ProfilingConfig
from nac.profiling.signatures import load_signatures
from nac.resources import load_families, load_registry
from nac.sessions import store as session_store

SECRET = b"bench-secret"
COOKIE = bytes((99, 130, 83, 99))


def dhcp(mac: int, vendor_class: bytes) -> bytes:
    header = struct.pack("!BBBBIHH", 1, 1, 6, 0, mac & 0xFFFFFFFF, 0, 0) + bytes(12) + bytes((127, 0, 0, 1))
    header += mac.to_bytes(6, "big").ljust(16, b"\x00") + bytes(192)
    options = b"\x35\x01\x01" + bytes((60, len(vendor_class))) + vendor_class
    options += b"\x37\x04\x01\x03\x06\x0f" + b"\xff"
    return header + COOKIE + options


def listener(messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "nac.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # as the server runs it
        session_store.ensure_schema(conn)
        registry = load_registry()
        policy = Policy([], registry=registry, defaults=Defaults(), families=load_families())
        config = ProfilingConfig(dhcp_listen=(("127.0.0.1", 0),), loaded=tuple(load_signatures()))
        profiler = Profiler(
            config, conn=conn, profiles={}, policy=lambda: policy,
            sources=[IPNetwork("127.0.0.0/8")], counters=Counter(),
        )  # fmt: skip
        packets = [dhcp(0xDAC0FF000000 + i, b"HUAWEI:android:VOG-L29") for i in range(messages)]
        for label in ("new profile each (one write each)", "same again (no write)"):
            started = time.perf_counter()
            for data in packets:
                profiler.received(data, "127.0.0.1")
            elapsed = time.perf_counter() - started
            each = elapsed / messages * 1e6
            print(f"listener, {label}: {messages / elapsed:,.0f} messages/s ({each:.1f} us each)")


def accounting_start(mac: str, session: str, identifier: int) -> bytes:
    def attr(kind: int, value: bytes) -> bytes:
        return bytes((kind, 2 + len(value))) + value

    body = attr(40, (1).to_bytes(4, "big")) + attr(44, session.encode()) + attr(31, mac.encode())
    body += attr(1, mac.encode()) + attr(4, bytes((127, 0, 0, 1)))
    header = struct.pack("!BBH", 4, identifier, 20 + len(body))
    authenticator = hashlib.md5(header + bytes(16) + body + SECRET).digest()
    return header + authenticator + body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def disconnect(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        auth, acct, dhcp_port, coa = free_port(), free_port(), free_port(), free_port()
        config = Path(tmp) / "nac.toml"
        config.write_text(
            f'[server]\nbind = "127.0.0.1"\nauth_port = {auth}\nacct_port = {acct}\n'
            f'[[client]]\nname = "bench-nas"\naddress = "127.0.0.1"\nsecret = "{SECRET.decode()}"\n'
            f"coa_port = {coa}\n"
            f'[profiling]\ndhcp_listen = ["127.0.0.1:{dhcp_port}"]\n'
        )
        db = str(Path(tmp) / "nac.db")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        nac = [sys.executable, "-m", "nac"]
        subprocess.run([*nac, "rules", "add", "--vendor", "huawei", "--action", "reject", "--db", db],
                       check=True, capture_output=True, env=env)  # fmt: skip
        server = subprocess.Popen([*nac, "serve", "--config", str(config), "--db", db],
                                  stderr=subprocess.PIPE, env=env)  # fmt: skip
        try:
            assert server.stderr is not None
            for line in server.stderr:
                if b"ready:" in line:
                    break
            nas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            nas.bind(("127.0.0.1", coa))
            nas.settimeout(5.0)
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.settimeout(2.0)
            times = []
            for i in range(rounds):
                mac = f"da:c0:ff:ee:{i >> 8:02x}:{i & 255:02x}"
                sender.sendto(accounting_start(mac, f"S{i}", i % 256), ("127.0.0.1", acct))
                sender.recvfrom(4096)  # the Accounting-Response: the session is written
                time.sleep(0.05)  # the group commit that holds the session
                started = time.perf_counter()
                sender.sendto(
                    dhcp(int(mac.replace(":", ""), 16), b"HUAWEI:android:VOG-L29"), ("127.0.0.1", dhcp_port)
                )
                while True:
                    data, _ = nas.recvfrom(4096)
                    if data[0] == 40:  # Disconnect-Request
                        times.append((time.perf_counter() - started) * 1e3)
                        break
            times.sort()
            print(
                f"DHCP copy to Disconnect-Request, {rounds} rounds: p50 {statistics.median(times):.2f} ms, "
                f"p95 {times[int(len(times) * 0.95) - 1]:.2f} ms, max {times[-1]:.2f} ms"
            )
        finally:
            server.terminate()
            server.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    listener(args.messages)
    disconnect(args.rounds)


if __name__ == "__main__":
    main()
