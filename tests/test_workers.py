"""`nac serve --workers N`: processes sharing the ports, every decision in history once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nac.history import tiers
from tests.interop import exchange, free_udp_ports, mab_request, parse_reply, subprocess_env, udp_socket
from tests.test_profiling_dhcp import DISCOVER, message, option


class Workers:
    def __init__(self, tmp_path: Path, n: int, *, config: Path | None = None) -> None:
        self.db = tmp_path / "nac.db"
        self.auth_port, self.acct_port = free_udp_ports(2)
        self.stderr = tmp_path / "serve.stderr"
        with_config = ["--config", str(config)] if config is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nac", "serve", *with_config, "--db", str(self.db), "--bind", "127.0.0.1",
             "--auth-port", str(self.auth_port), "--acct-port", str(self.acct_port), "--workers", str(n)],
            stdout=subprocess.DEVNULL, stderr=self.stderr.open("wb"), env=subprocess_env(), cwd=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while f"{n} workers ready" not in self.log():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"worker \d \(pid (\d+)\) starting", self.log())]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    server = Workers(tmp_path, 2)
    yield server
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0, server.log()


def _ask(port: int, mac: str) -> int:
    with udp_socket(timeout=2.0) as sock:
        request, _ = mab_request(mac)
        reply = exchange(sock, request, port)
    assert reply is not None, mac
    return parse_reply(reply).code


def test_two_workers_both_answer_and_history_has_every_decision_once(workers: Workers) -> None:
    macs = [f"3c22fb{i:06x}" for i in range(200)]
    for mac in macs:  # a fresh socket (source port) each: the kernel spreads them over both workers
        assert _ask(workers.auth_port, mac) == 2
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(timeout=20) == 0, workers.log()
    per_worker = [int(n) for n in re.findall(r"stopped; decision=(\d+)", workers.log())]
    assert len(per_worker) == 2
    assert all(n > 0 for n in per_worker), per_worker  # both workers decided
    assert sum(per_worker) == 200
    with tiers.connect(str(workers.db)) as conn:
        rows = conn.execute("SELECT mac, COUNT(*) FROM history GROUP BY mac").fetchall()
    assert len(rows) == 200
    assert {count for _, count in rows} == {1}
    assert "all workers stopped" in workers.log()


def test_a_second_server_on_the_same_ports_is_refused(workers: Workers, tmp_path: Path) -> None:
    for extra in ([], ["--workers", "2"]):
        result = subprocess.run(
            [sys.executable, "-m", "nac", "serve", "--db", str(tmp_path / "other.db"), "--bind", "127.0.0.1",
             "--auth-port", str(workers.auth_port), "--acct-port", str(workers.acct_port), *extra],
            capture_output=True, text=True, timeout=60, check=False, env=subprocess_env(),
        )  # fmt: skip
        assert result.returncode == 1
        assert f"127.0.0.1 port {workers.auth_port}/udp" in result.stderr
    assert _ask(workers.auth_port, "3c22fb000999") == 2


def test_a_worker_that_dies_is_started_again(workers: Workers) -> None:
    victim = workers.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while len(workers.worker_pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "died" in workers.log()
    assert len(workers.worker_pids()) == 3
    time.sleep(0.5)
    for i in range(20):
        assert _ask(workers.auth_port, f"3c22fb0010{i:02x}") == 2


def test_each_worker_serves_its_own_metrics(tmp_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    config = tmp_path / "nac.toml"
    config.write_text(f'[metrics]\nbind = "127.0.0.1:{base}"\n')
    auth_port, acct_port = free_udp_ports(2)
    stderr = tmp_path / "serve.stderr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nac", "serve", "--config", str(config), "--db", str(tmp_path / "nac.db"),
         "--bind", "127.0.0.1", "--auth-port", str(auth_port), "--acct-port", str(acct_port),
         "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=stderr.open("wb"), env=subprocess_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "2 workers ready" not in stderr.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        for i in range(40):
            assert _ask(auth_port, f"3c22fb0020{i:02x}") == 2
        total = 0.0
        for port in (base, base + 1):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            found = re.search(r'^nac_handled_total\{kind="decision"\} (\S+)$', text, re.MULTILINE)
            assert found is not None
            total += float(found[1])
        assert total == 40
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_workers_run_one_dhcp_listener_and_all_decide_on_its_profiles(tmp_path: Path) -> None:
    (dhcp_port,) = free_udp_ports(1)
    config = tmp_path / "nac.toml"
    config.write_text(f'[profiling]\ndhcp_listen = ["127.0.0.1:{dhcp_port}"]\n')
    subprocess.run(
        [sys.executable, "-m", "nac", "rules", "add", "--vendor", "huawei", "--action", "reject",
         "--db", str(tmp_path / "nac.db")],
        check=True, capture_output=True, env=subprocess_env(), timeout=60,
    )  # fmt: skip
    server = Workers(tmp_path, 2, config=config)
    try:
        assert server.log().count(f"DHCP profiling on 127.0.0.1:{dhcp_port}") == 1  # worker 0 only
        phone = "dac0ffee0009"
        assert _ask(server.auth_port, phone) == 2
        copy = message(DISCOVER, option(60, b"HUAWEI:android:VOG-L29"), mac=bytes.fromhex(phone))
        with udp_socket() as sock:
            sock.sendto(copy, ("127.0.0.1", dhcp_port))
        deadline = time.monotonic() + 5  # the other worker polls profiles with the rules
        answers: list[int] = []
        while time.monotonic() < deadline:
            answers = [_ask(server.auth_port, phone) for _ in range(20)]  # spread over both
            if set(answers) == {3}:
                break
            time.sleep(0.2)
        assert set(answers) == {3}, (answers, server.log())
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0, server.log()
