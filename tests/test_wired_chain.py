"""End to end on a wired port: hostapd (driver=wired) is the switch, wpa_supplicant in a network
namespace is the device, nac is the RADIUS server.  An allowed device's port is authorized, a
banned device's port stays closed, and a device banned while on the network loses its port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.interop import NacServer, NacServerFactory, free_udp_ports, subprocess_env
from tests.wired import WiredChain, require_wired_tools

PASSWORD: Final = "correct horse battery"
ALLOWED: Final = "00:10:a4:23:19:c0"  # Xircom: the default admits it
HUAWEI: Final = "00:e0:fc:12:34:56"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [sys.executable, "-m", "nac", "certs", "init", str(root)],
        check=True, capture_output=True, env=subprocess_env(), timeout=60,
    )  # fmt: skip
    return root


def _peap(pki: Path) -> str:
    return (
        'network={\n    key_mgmt=IEEE8021X\n    eap=PEAP\n    identity="alice"\n'
        f'    password="{PASSWORD}"\n    phase2="auth=MSCHAPV2"\n    ca_cert="{pki / "ca.pem"}"\n'
        "    eapol_flags=0\n}\n"
    )


def _server(
    factory: NacServerFactory, pki: Path, *, rules: tuple[tuple[str, ...], ...] = (), coa_port: int = 3799
) -> NacServer:
    extra = (
        f'\n[eap]\ncertificate = "{pki / "server.pem"}"\nprivate_key = "{pki / "server.key"}"\n'
        f'ca_certificates = "{pki / "ca.pem"}"\nmethods = ["tls", "peap", "ttls"]\n'
    )
    server = factory(rules=rules, extra_config=extra, coa_port=coa_port)
    subprocess.run(
        [sys.executable, "-m", "nac", "users", "add", "alice", "--db", str(server.db)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True, env=subprocess_env(), timeout=60,
    )  # fmt: skip
    return server


@pytest.fixture
def chains(tmp_path: Path) -> Iterator[list[WiredChain]]:
    require_wired_tools()
    made: list[WiredChain] = []
    yield made
    for chain in made:
        chain.stop()


def _chain(
    chains: list[WiredChain],
    tmp_path: Path,
    server: NacServer,
    mac: str,
    pki: Path,
    das_port: int | None = None,
) -> WiredChain:
    chain = WiredChain(tmp_path / f"chain-{len(chains)}", server, mac, _peap(pki), das_port=das_port)
    chains.append(chain)
    chain.start()
    return chain


def test_allowed_device_port_is_authorized(
    nac_server_factory: NacServerFactory, pki: Path, chains: list[WiredChain], tmp_path: Path
) -> None:
    server = _server(nac_server_factory, pki)
    chain = _chain(chains, tmp_path, server, ALLOWED, pki)
    assert chain.wait_authorized(True), chain.port_state() + chain.log("hostapd.log")[-2000:]
    [row] = server.history("--mac", ALLOWED, "--limit", "1")
    assert (row["action"], row["method"], row["client"]) == ("accept", "peap", "lab-switch")


def test_banned_device_port_stays_closed(
    nac_server_factory: NacServerFactory, pki: Path, chains: list[WiredChain], tmp_path: Path
) -> None:
    server = _server(nac_server_factory, pki, rules=(("--vendor", "huawei", "--action", "reject"),))
    chain = _chain(chains, tmp_path, server, HUAWEI, pki)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not server.history("--mac", HUAWEI):
        time.sleep(0.2)
    rows = server.history("--mac", HUAWEI)
    assert rows, chain.log("hostapd.log")[-2000:]
    assert all(r["action"] == "reject" for r in rows)
    assert not chain.authorized()
    assert "[AUTHORIZED]" not in chain.port_state()


def test_device_banned_while_on_the_network_loses_its_port(
    nac_server_factory: NacServerFactory, pki: Path, chains: list[WiredChain], tmp_path: Path
) -> None:
    (das_port,) = free_udp_ports(1)
    server = _server(nac_server_factory, pki, coa_port=das_port)
    chain = _chain(chains, tmp_path, server, HUAWEI, pki, das_port=das_port)
    assert chain.wait_authorized(True), chain.port_state() + chain.log("hostapd.log")[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not json.loads(server.cli_ok("sessions", "--active", "--json")):
        time.sleep(0.2)  # hostapd's Accounting Start
    sessions = json.loads(server.cli_ok("sessions", "--active", "--json"))
    assert [s["mac"] for s in sessions] == [HUAWEI], chain.log("hostapd.log")[-2000:]
    out = server.cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--apply", "now")
    assert out.returncode == 0, out.stderr
    assert "disconnect" in out.stdout
    # hostapd answers the Disconnect-Request, deauthorizes the port; the device tries again and
    # is refused: the port stays closed without anything done on the device.
    assert chain.wait_authorized(False, timeout=20), chain.port_state() + chain.log("hostapd.log")[-3000:]
    assert f"RADIUS DAS: Found a matching session {HUAWEI} - disconnecting" in chain.log("hostapd.log")
    history = server.history("--mac", HUAWEI)
    assert any(r["method"] == "coa" and r["action"] == "disconnect" and "ack" in r["reason"] for r in history)
    time.sleep(3)
    assert not chain.authorized()


def test_nac_disconnect_is_acknowledged_by_hostapd_and_ends_the_session(
    nac_server_factory: NacServerFactory, pki: Path, chains: list[WiredChain], tmp_path: Path
) -> None:
    (das_port,) = free_udp_ports(1)
    server = _server(nac_server_factory, pki, coa_port=das_port)
    chain = _chain(chains, tmp_path, server, ALLOWED, pki, das_port=das_port)
    assert chain.wait_authorized(True), chain.port_state() + chain.log("hostapd.log")[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not json.loads(server.cli_ok("sessions", "--active", "--json")):
        time.sleep(0.2)
    out = server.cli("disconnect", ALLOWED)
    assert out.returncode == 0, out.stdout + out.stderr + chain.log("hostapd.log")[-3000:]
    assert f"disconnect {ALLOWED} on lab-switch (127.0.0.1): ack" in out.stdout
    assert "RADIUS DAS: Found a matching session 00:10:a4:23:19:c0 - disconnecting" in chain.log(
        "hostapd.log"
    )
    # hostapd ended the session: the port is closed and its accounting Stop ends the session.
    assert chain.wait_authorized(False, timeout=10), chain.port_state()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and json.loads(server.cli_ok("sessions", "--active", "--json")):
        time.sleep(0.2)
    [session] = json.loads(server.cli_ok("sessions", "--mac", ALLOWED, "--json"))
    assert session["status"] == "stopped"
