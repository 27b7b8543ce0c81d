"""The hostapd profile on the real wired chain: hostapd (driver=wired) as a client configured
with `profile = "hostapd"`, wpa_supplicant authorized by PEAP, re-authorized (hostapd takes a
Disconnect for it), then banned while on the network and disconnected through hostapd's DAS with
the profile's spelling."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.interop import SECRET, NacServerFactory, free_udp_ports
from tests.wired import WiredChain, add_user, eap_config, lab_pki, peap_network, require_wired_tools

DEVICE = "00:e0:fc:12:34:57"  # a Huawei prefix


def test_hostapd_profile_client_authorizes_and_disconnects_on_the_wired_chain(
    nac_server_factory: NacServerFactory, tmp_path: Path
) -> None:
    require_wired_tools()
    pki = lab_pki(tmp_path / "pki")
    (das_port,) = free_udp_ports(1)
    extra = eap_config(pki) + (
        f'\n[[client]]\nname = "hostapd-port"\naddress = "127.0.0.4"\nsecret = "{SECRET}"\n'
        f'profile = "hostapd"\ncoa_port = {das_port}\n'
    )
    server = nac_server_factory(extra_config=extra)
    add_user(server)
    network = peap_network(pki)
    chain = WiredChain(
        tmp_path / "wired", server, DEVICE, network, das_port=das_port,
        hostapd_extra=("radius_client_addr=127.0.0.4",),
    )  # fmt: skip
    try:
        chain.start()
        assert chain.wait_authorized(True), chain.port_state() + chain.log("hostapd.log")[-2000:]
        [row] = server.history("--mac", DEVICE, "--limit", "1")
        assert (row["action"], row["client"], row["method"]) == ("accept", "hostapd-port", "peap")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not json.loads(server.cli_ok("sessions", "--active", "--json")):
            time.sleep(0.2)
        clients = {
            c["name"]: c
            for c in json.loads(server.cli_ok("clients", "--config", str(server.config), "--json"))
        }
        assert clients["hostapd-port"]["profile"] == "hostapd"
        assert clients["hostapd-port"]["requests"] > 0
        # A re-authorization: hostapd answers CoA-Request with NAK 405, so the profile sends a
        # Disconnect and the supplicant authenticates again.
        accepts = len(server.history("--mac", DEVICE, "--action", "accept"))
        out = server.cli("reauth", DEVICE)
        assert out.returncode == 0, out.stderr
        assert "ack" in out.stdout, out.stdout
        assert f"RADIUS DAS: Found a matching session {DEVICE} - disconnecting" in chain.log("hostapd.log")
        assert chain.wait_authorized(False), chain.port_state()
        # A wired supplicant notices nothing until its link or EAPOL-Start timer restarts it; a
        # Wi-Fi station is deauthenticated and associates again.  Stand in for the link flap:
        chain.wpa_cli("reauthenticate")
        assert chain.wait_authorized(True), chain.port_state() + chain.log("hostapd.log")[-3000:]
        assert len(server.history("--mac", DEVICE, "--action", "accept")) == accepts + 1
        out = server.cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--apply", "now")
        assert out.returncode == 0, out.stderr
        assert chain.wait_authorized(False, timeout=20), chain.port_state() + chain.log("hostapd.log")[-3000:]
        assert f"RADIUS DAS: Found a matching session {DEVICE} - disconnecting" in chain.log("hostapd.log")
        history = server.history("--mac", DEVICE)
        assert any(
            r["method"] == "coa" and r["client"] == "hostapd-port" and "ack" in r["reason"] for r in history
        )
    finally:
        chain.stop()
