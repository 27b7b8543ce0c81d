"""DHCP profiling with real software we did not write: busybox's udhcpc as a phone on a
randomized MAC with Huawei's vendor class, ISC's dhcrelay relaying its broadcast both to a
real DHCP server (dnsmasq, which leases it an address) and to nac's listener, and nac then
rejecting the device by the vendor ban, asked with radclient.

    [ns cli] udhcpc --veth-- [ns relay] dhcrelay --veth-- [root] nac listener 10.231.2.1:67
                                                  \\-veth-- [ns srv] dnsmasq 10.231.3.1:67

Everything lives in network namespaces the test makes and removes; nothing leaves them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop import NacServer, NacServerFactory, free_udp_ports, mab_attrs, wait_for_decision
from tests.wired import WiredChain, add_user, eap_config, lab_pki, peap_network, require_wired_tools

PHONE = "da:c0:ff:ee:00:07"  # locally administered, as Android 10+ and iOS 14+ join Wi-Fi
VENDOR_CLASS = "HUAWEI:android:VOG-L29"
_COUNTER = itertools.count()


def _run(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", netns, *args] if netns else list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


def _require_tools() -> None:
    missing = [t for t in ("ip", "dhcrelay", "dnsmasq", "busybox") if not shutil.which(t)]
    reason = ""
    if missing:
        reason = (
            f"missing {', '.join(missing)} (Debian packages iproute2, isc-dhcp-relay, dnsmasq-base, busybox)"
        )
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI is set and CI installs them", pytrace=False)
        pytest.skip(reason)


class Chain:
    def __init__(self, workdir: Path) -> None:
        tag = f"{os.getpid() % 1000}{next(_COUNTER)}"
        self.workdir = workdir
        self.cli, self.relay, self.srv = f"nacdc{tag}", f"nacdr{tag}", f"nacds{tag}"
        self.links = {name: f"{name}{tag}"[:15] for name in ("ndc", "ndr", "ndn", "ndq", "nds", "ndt")}
        self.procs: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        link = self.links
        for ns in (self.cli, self.relay, self.srv):
            _run("ip", "netns", "add", ns)
        # client <-> relay, relay <-> root (nac), relay <-> srv (dnsmasq)
        for a, b, ns_a, ns_b in (
            ("ndc", "ndr", self.cli, self.relay),
            ("ndn", "ndq", None, self.relay),
            ("nds", "ndt", self.srv, self.relay),
        ):
            _run("ip", "link", "add", link[a], "type", "veth", "peer", "name", link[b])
            if ns_a is not None:
                _run("ip", "link", "set", link[a], "netns", ns_a)
            _run("ip", "link", "set", link[b], "netns", ns_b)
        _run("ip", "link", "set", link["ndc"], "address", PHONE, netns=self.cli)
        for name, ns, address in (
            ("ndc", self.cli, None),
            ("ndr", self.relay, "10.231.1.1/24"),
            ("ndn", None, "10.231.2.1/24"),
            ("ndq", self.relay, "10.231.2.2/24"),
            ("nds", self.srv, "10.231.3.1/24"),
            ("ndt", self.relay, "10.231.3.2/24"),
        ):
            if address is not None:
                _run("ip", "addr", "add", address, "dev", link[name], netns=ns)
            _run("ip", "link", "set", link[name], "up", netns=ns)
        for ns in (self.cli, self.relay, self.srv):
            _run("ip", "link", "set", "lo", "up", netns=ns)
        # dnsmasq answers the relay's giaddr (10.231.1.1): the way back goes through the relay.
        _run("ip", "route", "add", "10.231.1.0/24", "via", "10.231.3.2", netns=self.srv)

    def start_dhcp(self) -> None:
        link = self.links
        leases = self.workdir / "dnsmasq.leases"
        self._spawn(
            self.srv,
            "dnsmasq", "--no-daemon", "--port=0", "--bind-interfaces", "--listen-address=10.231.3.1",
            "--dhcp-range=10.231.1.100,10.231.1.150,255.255.255.0,5m", f"--dhcp-leasefile={leases}",
            "--no-resolv", "--no-hosts", "--log-dhcp", "--pid-file=",
        )  # fmt: skip
        self._spawn(
            self.relay,
            "dhcrelay", "-4", "-d", "-id", link["ndr"], "-iu", link["ndq"], "-iu", link["ndt"],
            "10.231.2.1", "10.231.3.1",
        )  # fmt: skip
        time.sleep(0.5)  # both bound before the client broadcasts

    def udhcpc(self) -> subprocess.CompletedProcess[str]:
        """One lease, as the phone asks for it: vendor class and host name set."""
        return _run(
            "busybox", "udhcpc", "-i", self.links["ndc"], "-n", "-q", "-f", "-t", "5", "-T", "1",
            "-V", VENDOR_CLASS, "-x", "hostname:HUAWEI_P30-7f2a", "-s", "/bin/true",
            netns=self.cli, check=False,
        )  # fmt: skip

    def _spawn(self, ns: str, *argv: str) -> None:
        log = (self.workdir / f"{argv[0]}.log").open("wb")
        self.procs.append(
            subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log, stderr=subprocess.STDOUT)
        )

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        _run("ip", "link", "del", self.links["ndn"], check=False)
        for ns in (self.cli, self.relay, self.srv):
            _run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    _require_tools()
    built = Chain(tmp_path / "chain")
    built.workdir.mkdir()
    try:
        built.build()
        yield built
    finally:
        built.close()


def test_relayed_dhcp_from_a_real_client_gets_a_randomized_huawei_phone_banned(
    chain: Chain, nac_server_factory: NacServerFactory
) -> None:
    server: NacServer = nac_server_factory(
        rules=[("--vendor", "huawei", "--action", "reject", "--reason", "ministry ban")],
        extra_config='\n[profiling]\ndhcp_listen = ["10.231.2.1:67"]\ndhcp_sources = ["10.231.2.0/24"]\n',
    )
    assert server.radclient(mab_attrs(PHONE)).code == "Access-Accept"  # nothing known yet
    chain.start_dhcp()
    lease = chain.udhcpc()
    assert lease.returncode == 0, (
        f"{lease.stdout}{lease.stderr}\n{chain.log('dhcrelay')}\n{chain.log('dnsmasq')}"
    )
    assert "10.231.1." in lease.stdout + lease.stderr  # the real server leased an address

    def family() -> str | None:
        profile = json.loads(server.cli_ok("profile", PHONE, "--json"))
        return profile["family"]

    assert wait_for_decision(family, "huawei") == "huawei", f"{server.stderr()}\n{chain.log('dhcrelay')}"
    profile = json.loads(server.cli_ok("profile", PHONE, "--json"))
    assert profile["fields"]["vendor_class"] == VENDOR_CLASS
    assert profile["fields"]["hostname"] == "HUAWEI_P30-7f2a"
    code = wait_for_decision(lambda: server.radclient(mab_attrs(PHONE)).code, "Access-Reject")
    assert code == "Access-Reject"
    row = server.history("--mac", PHONE, "--limit", "1")[0]
    assert (row["action"], row["vendor"]) == ("reject", "Huawei (profiled)")


# -- the wired chain: the phone's own DHCP request takes its port away ------------------------

WIRED_PHONE = "da:c0:ff:ee:00:08"


def test_dhcp_request_naming_huawei_disconnects_an_authorized_randomized_device(
    nac_server_factory: NacServerFactory, tmp_path: Path
) -> None:
    require_wired_tools()
    _require_tools()
    pki = lab_pki(tmp_path / "pki")
    (das_port,) = free_udp_ports(1)
    extra = eap_config(pki) + '\n[profiling]\ndhcp_listen = ["0.0.0.0:67"]\ndhcp_sources = ["0.0.0.0/32"]\n'
    server = nac_server_factory(
        rules=[("--vendor", "huawei", "--action", "reject")], extra_config=extra, coa_port=das_port
    )
    add_user(server)
    network = peap_network(pki)
    chain = WiredChain(tmp_path / "wired", server, WIRED_PHONE, network, das_port=das_port)
    try:
        chain.start()
        assert chain.wait_authorized(True), chain.port_state() + chain.log("hostapd.log")[-2000:]

        def sessions() -> list[str]:
            return [s["mac"] for s in json.loads(server.cli_ok("sessions", "--active", "--json"))]

        assert wait_for_decision(sessions, [WIRED_PHONE], deadline=10) == [WIRED_PHONE]
        # nac hears the port's DHCP broadcast directly, as it does on a segment it is on.
        _run("ip", "addr", "add", "10.231.6.1/24", "dev", chain.switch_if)
        _run(
            "busybox", "udhcpc", "-i", chain.device_if, "-n", "-q", "-f", "-t", "2", "-T", "1",
            "-V", VENDOR_CLASS, "-s", "/bin/true", netns=chain.netns, check=False,
        )  # fmt: skip
        assert chain.wait_authorized(False, timeout=20), (
            chain.port_state() + chain.log("hostapd.log")[-3000:] + server.stderr()[-3000:]
        )
        assert f"RADIUS DAS: Found a matching session {WIRED_PHONE} - disconnecting" in chain.log(
            "hostapd.log"
        )
        history = server.history("--mac", WIRED_PHONE)
        assert any(r["method"] == "coa" and r["action"] == "disconnect" for r in history)
        # The device authenticates again (EAPOL-Start) and is refused on its profile.
        _run(
            "wpa_cli", "-p", str(chain.workdir / "wpa-ctrl"), "-i", chain.device_if, "reauthenticate",
            netns=chain.netns,
        )  # fmt: skip

        def latest() -> tuple[str, str | None]:
            rows = [r for r in server.history("--mac", WIRED_PHONE) if r["method"] != "coa"]
            return rows[0]["action"], rows[0]["vendor"]

        assert wait_for_decision(latest, ("reject", "Huawei (profiled)"), deadline=15) == (
            "reject",
            "Huawei (profiled)",
        ), chain.log("wpa_supplicant.log")[-2000:]
        assert not chain.authorized()
    finally:
        chain.stop()
