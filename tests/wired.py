"""The whole wired chain, with real peers we did not write: hostapd (driver=wired) as the switch on
one end of a veth pair, wpa_supplicant (driver=wired) as the device in a network namespace on the
other, and nac as hostapd's RADIUS server on loopback.  Nothing leaves the namespaces the test
makes; they are removed at the end.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from tests.interop import SECRET, NacServer, subprocess_env

_COUNTER = itertools.count()
START_TIMEOUT: Final = 10.0


def require_wired_tools() -> None:
    """hostapd, wpa_supplicant and `ip netns` as root; skip without them, except under CI."""
    missing = [
        tool
        for tool in ("hostapd", "hostapd_cli", "wpa_supplicant", "wpa_cli", "ip")
        if not shutil.which(tool)
    ]
    reason = ""
    if missing:
        reason = f"missing {', '.join(missing)} (Debian packages hostapd, wpasupplicant, iproute2)"
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI is set and CI installs them", pytrace=False)
        pytest.skip(reason)


def _run(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", netns, *args] if netns else list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=check)


@dataclass
class WiredChain:
    workdir: Path
    server: NacServer
    mac: str  # the supplicant's MAC, as the switch will see it
    network: str  # the wpa_supplicant network block (eap=..., identity=..., ...)
    das_port: int | None = None  # hostapd's Dynamic Authorization Server port, if any
    hostapd_extra: tuple[str, ...] = ()  # more hostapd.conf lines (radius_client_addr=...)
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000}{next(_COUNTER)}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return f"nacsup{self.tag}"

    @property
    def switch_if(self) -> str:
        return f"nacA{self.tag}"[:15]

    @property
    def device_if(self) -> str:
        return f"nacS{self.tag}"[:15]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.switch_if, "type", "veth", "peer", "name", self.device_if)
        _run("ip", "link", "set", self.device_if, "netns", self.netns)
        _run("ip", "link", "set", self.device_if, "address", self.mac, netns=self.netns)
        _run("ip", "link", "set", self.switch_if, "up")
        _run("ip", "link", "set", self.device_if, "up", netns=self.netns)
        _run("ip", "link", "set", "lo", "up", netns=self.netns)
        hostapd_conf = self.workdir / "hostapd.conf"
        lines = [
            f"interface={self.switch_if}",
            "driver=wired",
            f"ctrl_interface={self.workdir / 'hostapd-ctrl'}",
            "ieee8021x=1",
            "eapol_version=2",
            "use_pae_group_addr=1",
            "eap_reauth_period=0",
            "dynamic_vlan=0",
            "own_ip_addr=127.0.0.1",
            "nas_identifier=wired-lab",
            "auth_server_addr=127.0.0.1",
            f"auth_server_port={self.server.auth_port}",
            f"auth_server_shared_secret={SECRET}",
            "acct_server_addr=127.0.0.1",
            f"acct_server_port={self.server.acct_port}",
            f"acct_server_shared_secret={SECRET}",
            "logger_stdout=-1",
            "logger_stdout_level=0",
        ]
        lines += self.hostapd_extra
        if self.das_port is not None:
            lines += [
                f"radius_das_port={self.das_port}",
                f"radius_das_client=127.0.0.1 {SECRET}",
                "radius_das_require_event_timestamp=1",
            ]
        hostapd_conf.write_text("\n".join(lines) + "\n")
        self._spawn(["hostapd", "-dd", str(hostapd_conf)], "hostapd.log")
        self._wait((self.workdir / "hostapd-ctrl" / self.switch_if).exists, "hostapd's control socket")
        supplicant_conf = self.workdir / "wpa_supplicant.conf"
        supplicant_conf.write_text(
            f"ctrl_interface={self.workdir / 'wpa-ctrl'}\nap_scan=0\neapol_version=2\n{self.network}"
        )
        self._spawn(
            ["ip", "netns", "exec", self.netns, "wpa_supplicant", "-dd", "-D", "wired", "-i", self.device_if,
             "-c", str(supplicant_conf)],
            "wpa_supplicant.log",
        )  # fmt: skip

    def _spawn(self, argv: list[str], log: str) -> None:
        out = (self.workdir / log).open("wb")
        self.procs.append(
            subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        )

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise AssertionError(
            f"{what} did not appear in {timeout} s; hostapd log:\n{self.log('hostapd.log')[-3000:]}"
        )

    def log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def port_state(self) -> str:
        """hostapd's view of the device's port: its 802.1X PAE state and whether it is authorized."""
        result = subprocess.run(
            ["hostapd_cli", "-p", str(self.workdir / "hostapd-ctrl"), "-i", self.switch_if, "sta", self.mac],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return result.stdout

    def authorized(self) -> bool:
        return "[AUTHORIZED]" in self.port_state()

    def wait_authorized(self, expected: bool, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.authorized() == expected:
                return True
            time.sleep(0.2)
        return self.authorized() == expected

    def supplicant_state(self) -> str:
        return self.wpa_cli("status")

    def wpa_cli(self, *command: str) -> str:
        """A wpa_cli command to the device's supplicant; its output."""
        ctrl = str(self.workdir / "wpa-ctrl")
        result = _run("wpa_cli", "-p", ctrl, "-i", self.device_if, *command, netns=self.netns, check=False)
        return result.stdout

    def eap_attempts(self) -> int:
        return len(re.findall(r"CTRL-EVENT-EAP-STARTED", self.log("wpa_supplicant.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        _run("ip", "link", "del", self.switch_if, check=False)
        _run("ip", "netns", "del", self.netns, check=False)


# -- the 802.1X side most wired-chain tests share ----------------------------------------------

PEAP_PASSWORD: Final = "correct horse battery"


def lab_pki(directory: Path) -> Path:
    """`nac certs init`: a lab CA and server certificate in ``directory``."""
    subprocess.run(
        [sys.executable, "-m", "nac", "certs", "init", str(directory)],
        check=True, capture_output=True, env=subprocess_env(), timeout=60,
    )  # fmt: skip
    return directory


def eap_config(pki: Path, methods: str = '["peap"]') -> str:
    """An [eap] section for a config file, on ``pki``'s certificates."""
    return (
        f'\n[eap]\ncertificate = "{pki / "server.pem"}"\nprivate_key = "{pki / "server.key"}"\n'
        f'ca_certificates = "{pki / "ca.pem"}"\nmethods = {methods}\n'
    )


def add_user(server: NacServer, name: str = "alice", password: str = PEAP_PASSWORD) -> None:
    subprocess.run(
        [sys.executable, "-m", "nac", "users", "add", name, "--db", str(server.db)],
        input=password + "\n", text=True, check=True, capture_output=True, env=subprocess_env(), timeout=60,
    )  # fmt: skip


def peap_network(pki: Path, identity: str = "alice", password: str = PEAP_PASSWORD) -> str:
    """A wpa_supplicant network block for PEAP-MSCHAPv2 that trusts ``pki``'s CA."""
    return (
        f'network={{\n    key_mgmt=IEEE8021X\n    eap=PEAP\n    identity="{identity}"\n'
        f'    password="{password}"\n    phase2="auth=MSCHAPV2"\n    ca_cert="{pki / "ca.pem"}"\n'
        "    eapol_flags=0\n}\n"
    )
