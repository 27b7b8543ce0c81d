"""The systemd unit is valid, strictly sandboxed, and nac speaks sd_notify."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nac.serve.observe import sd_notify, watchdog_interval

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "nac.service"


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed")
    return path


def test_unit_passes_systemd_analyze_verify() -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "verify", str(UNIT)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in result.stderr.splitlines() if line.startswith("nac.service")]
    assert result.returncode == 0, result.stderr
    assert not problems, problems


def test_unit_exposure_is_at_most_2() -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for nac\.service: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= 2.0


def test_unit_runs_unprivileged_with_notify_and_reload() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "StateDirectory=nac",
        "User=nac",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), line


def test_sd_notify_sends_to_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("READY=1")  # not under systemd: nothing to do


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


def test_server_notifies_ready_reloading_and_stopping(tmp_path: Path) -> None:
    from tests.interop import free_udp_ports, subprocess_env

    path = str(tmp_path / "notify.sock")
    auth_port, acct_port = free_udp_ports(2)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(20)
        env = subprocess_env() | {"NOTIFY_SOCKET": path}
        proc = subprocess.Popen(
            [sys.executable, "-m", "nac", "serve", "--db", str(tmp_path / "nac.db"), "--bind", "127.0.0.1",
             "--auth-port", str(auth_port), "--acct-port", str(acct_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            assert sock.recv(200) == b"READY=1"
            proc.send_signal(1)  # SIGHUP
            reloading = sock.recv(200)
            assert reloading.startswith(b"RELOADING=1\nMONOTONIC_USEC=")
            assert sock.recv(200) == b"READY=1"
            proc.terminate()
            assert sock.recv(200) == b"STOPPING=1"
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
