"""802.1X users from a real OpenLDAP (tests/slapd.py) through a real `nac serve`, with
`eapol_test` as the supplicant: TTLS-PAP binds as the user, LDAP groups give nac groups'
VLANs, EAP-TLS maps the certificate's CN to an entry, LDAPS with the directory's CA, and a
directory that is down fails closed while the server keeps answering."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop import (
    SECRET,
    NacServer,
    NacServerFactory,
    exchange,
    mab_request,
    status_server,
    subprocess_env,
    udp_socket,
)
from tests.slapd import GROUPS, PEOPLE, SERVICE_DN, USERS, Slapd
from tests.test_eapol import (
    BANNED,
    QUARANTINED,
    RULES,
    assert_failure,
    assert_success,
    eapol_test,
    last_decision,
    pki,
    require_eapol_test,
)

__all__ = ["pki"]  # the module-scoped fixture, shared with tests/test_eapol.py
ALLOWED = "00:10:a4:23:19:c2"  # Xircom: no rule, the default accepts


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def _nac(factory: NacServerFactory, pki: Path, slapd: Slapd, ldap: str, timeout: int = 2) -> NacServer:
    lab = pki / "lab"
    extra = (
        f'\n[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n'
        f'ca_certificates = "{lab / "ca.pem"}"\nmethods = ["tls", "ttls"]\n'
        f'\n[ldap]\nbind_dn = "{SERVICE_DN}"\nbind_password_file = "{slapd.password_file()}"\n'
        f'base = "{PEOPLE}"\ngroup_base = "{GROUPS}"\ntimeout = {timeout}\n{ldap}'
    )
    server = factory(rules=RULES, extra_config=extra)
    server.cli_ok("groups", "add", "staff", "--vlan", "100")
    server.cli_ok("groups", "add", "devices", "--vlan", "300")
    return server


@pytest.fixture
def server(nac_server_factory: NacServerFactory, pki: Path, slapd: Slapd) -> NacServer:
    return _nac(nac_server_factory, pki, slapd, f'url = "{slapd.url}"\n')


def ttls_pap(pki: Path, user: str, password: str) -> str:
    return (
        "network={\n    key_mgmt=WPA-EAP\n    eap=TTLS\n"
        f'    ca_cert="{pki / "lab" / "ca.pem"}"\n    identity="{user}"\n'
        f'    anonymous_identity="anonymous"\n    password="{password}"\n    phase2="auth=PAP"\n}}\n'
    )


def eap_tls(pki: Path) -> str:
    lab = pki / "lab"
    return (
        "network={\n    key_mgmt=WPA-EAP\n    eap=TLS\n"
        f'    ca_cert="{lab / "ca.pem"}"\n    identity="client.nac.lab"\n'
        f'    client_cert="{lab / "client.pem"}"\n    private_key="{lab / "client.key"}"\n}}\n'
    )


def vlans(stdout: str) -> list[str]:
    found = re.findall(r"Attribute 81 \(Tunnel-Private-Group-Id\) length=\d+\s+Value: ([0-9a-f]+)", stdout)
    return [bytes.fromhex(value).lstrip(b"\x00").decode() for value in found]


def counters(server: NacServer) -> str:
    """The counters line that SIGUSR1 writes to the log."""
    before = server.stderr().count("counters: ")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGUSR1)
    assert server.wait_for_log("counters: "), server.stderr()[-2000:]
    for _ in range(40):
        lines = [line for line in server.stderr().splitlines() if "counters: " in line]
        if len(lines) > before:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(server.stderr()[-2000:])


def test_ttls_pap_binds_as_the_user_and_the_ldap_group_gives_the_vlan(server: NacServer, pki: Path) -> None:
    result = eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=ALLOWED)
    assert_success(result)  # with the MPPE keys
    assert vlans(result.stdout) == ["100"], result.stdout[-3000:]
    row = last_decision(server)
    assert (row["action"], row["vlan"], row["method"], row["user_name"]) == ("accept", "100", "ttls", "carol")
    assert "user carol (ldap), group staff: profile staff (VLAN 100)" in str(row["reason"])


def test_a_reload_that_changes_the_directory_keeps_the_one_in_use_until_a_restart(
    server: NacServer, pki: Path
) -> None:
    assert server.proc is not None
    config = server.config.read_text()
    assert "url = " in config
    server.config.write_text(re.sub(r'url = "[^"]*"', 'url = "ldap://127.0.0.1:9"', config))
    server.proc.send_signal(signal.SIGHUP)
    assert server.wait_for_log("ldap changed: takes effect at the next restart"), server.stderr()[-2000:]
    assert server.wait_for_log("configuration reloaded"), server.stderr()[-2000:]
    result = eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=ALLOWED)
    assert_success(result)  # still the directory it started with, whole
    assert vlans(result.stdout) == ["100"]


def test_ttls_pap_wrong_password_is_rejected(server: NacServer, pki: Path) -> None:
    assert_failure(eapol_test(server, ttls_pap(pki, "carol", "not carol's"), mac=ALLOWED))
    row = last_decision(server)
    assert (row["action"], row["reason"]) == ("reject", "ttls: wrong password for 'carol'")


def test_nac_users_table_comes_first(server: NacServer, pki: Path) -> None:
    # alice is in the directory too, with another password: nac's own table decides.
    server.cli_ok("groups", "add", "contractors", "--vlan", "200")
    added = with_stdin(server, "nac's own password", "users", "add", "alice", "--group", "contractors")
    assert added.returncode == 0, added.stderr
    assert_failure(eapol_test(server, ttls_pap(pki, "alice", USERS["alice"][0]), mac=ALLOWED))
    result = eapol_test(server, ttls_pap(pki, "alice", "nac's own password"), mac=ALLOWED)
    assert_success(result)
    assert vlans(result.stdout) == ["200"]


def with_stdin(server: NacServer, line: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`nac ARGS --db DB` with ``line`` on stdin (a password)."""
    return subprocess.run(
        [sys.executable, "-m", "nac", *args, "--db", str(server.db)],
        input=line + "\n",
        text=True,
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )


def test_eap_tls_certificate_cn_maps_to_an_entry_and_its_group(server: NacServer, pki: Path) -> None:
    result = eapol_test(server, eap_tls(pki), mac=ALLOWED)
    assert_success(result)
    assert vlans(result.stdout) == ["300"], result.stdout[-3000:]
    row = last_decision(server)
    assert (row["method"], row["user_name"], row["vlan"]) == ("eap-tls", "client.nac.lab", "300")
    assert "user client.nac.lab (ldap), group devices" in str(row["reason"])


def test_the_vendor_policy_still_decides_first_for_directory_users(server: NacServer, pki: Path) -> None:
    assert_failure(eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=BANNED))
    assert (last_decision(server)["rule"], last_decision(server)["action"]) == ("ban-huawei", "reject")
    result = eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=QUARANTINED)
    assert_success(result)
    assert vlans(result.stdout) == ["666"]
    assert "ldap_requests:bind=1" in counters(server)  # the banned MAC never reached the directory


def test_a_directory_that_is_down_fails_closed_and_is_counted(
    server: NacServer, pki: Path, slapd: Slapd
) -> None:
    slapd.stop()
    try:
        result = eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=ALLOWED)
        assert_failure(result)
        assert "code=3 (Access-Reject)" in result.stdout
        row = last_decision(server)
        assert row["action"] == "reject"
        assert str(row["reason"]).startswith("ttls: directory unavailable (unreachable): ")
        assert server.wait_for_log("LDAP: directory unavailable (unreachable)")
        line = counters(server)
        assert "ldap_failures:unreachable=1" in line
        assert USERS["carol"][0] not in server.stderr()  # no password in any log line
    finally:
        slapd.start()
    assert server.running
    assert_success(eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=ALLOWED))


def test_ldaps_with_the_directorys_ca(nac_server_factory: NacServerFactory, pki: Path, slapd: Slapd) -> None:
    ldap = f'url = "{slapd.ldaps_url}"\nca_file = "{slapd.pki / "ca.pem"}"\n'
    server = _nac(nac_server_factory, pki, slapd, ldap)
    result = eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=ALLOWED)
    assert_success(result)
    assert vlans(result.stdout) == ["100"]


def test_ldaps_with_another_ca_is_refused(
    nac_server_factory: NacServerFactory, pki: Path, slapd: Slapd
) -> None:
    ldap = f'url = "{slapd.ldaps_url}"\nca_file = "{pki / "other" / "ca.pem"}"\n'
    server = _nac(nac_server_factory, pki, slapd, ldap)
    assert_failure(eapol_test(server, ttls_pap(pki, "carol", USERS["carol"][0]), mac=ALLOWED))
    assert str(last_decision(server)["reason"]).startswith("ttls: directory unavailable (tls): ")
    assert "ldap_failures:tls=1" in counters(server)


def test_users_test_shows_the_directory_source(server: NacServer) -> None:
    args = ("users", "test", "carol", "--config", str(server.config))
    wrong = with_stdin(server, "not carol's", *args)
    assert (wrong.returncode, wrong.stdout.splitlines()[0]) == (
        1,
        f"user carol: WRONG PASSWORD (source: ldap, uid=carol,{PEOPLE})",
    )
    ok = with_stdin(server, USERS["carol"][0], *args)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"user carol: password accepted (source: ldap, uid=carol,{PEOPLE})",
        "directory groups: Printers, staff",
        "groups: staff",
        "profile: staff (VLAN 100), when the vendor policy accepts",
    ]


def test_a_slow_directory_holds_up_no_other_request_and_is_asked_once(
    nac_server_factory: NacServerFactory, pki: Path, slapd: Slapd
) -> None:
    """A directory that takes the connection and never answers: while nac waits for it, other
    requests are answered, and the NAS's retransmissions of the waiting request ask nothing more."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f'url = "ldap://127.0.0.1:{silent.getsockname()[1]}"\n'
        server = _nac(nac_server_factory, pki, slapd, url, timeout=6)
        conf = server.workdir / "slow.conf"
        conf.write_text(ttls_pap(pki, "carol", USERS["carol"][0]))
        supplicant = subprocess.Popen(
            [require_eapol_test(), "-c", str(conf), "-a", "127.0.0.1", "-p", str(server.auth_port),
             "-s", SECRET, "-M", ALLOWED, "-t", "20", "-r", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            for _ in range(100):  # until the request waits for the directory
                if "ldap_requests:bind=1" in counters(server):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(server.stderr()[-2000:])
            with udp_socket(timeout=1.0) as sock:
                assert exchange(sock, status_server(), server.auth_port) is not None
                mab, _ = mab_request("00:10:a4:23:19:c3")
                answer = exchange(sock, mab, server.auth_port)
            assert answer is not None
            assert answer[0] == 2  # Access-Accept, while the 802.1X request still waits
            assert "ldap_failures" not in counters(server)
            stdout, _ = supplicant.communicate(timeout=30)
        finally:
            supplicant.kill()
            supplicant.wait()
    assert stdout.rstrip().endswith("FAILURE"), stdout[-3000:]
    assert str(last_decision(server)["reason"]).startswith("ttls: directory unavailable (timeout)")
    line = counters(server)
    assert "ldap_requests:bind=1," in line  # once, however often the NAS asked
    assert "ldap_failures:timeout=1" in line
    assert re.search(r"waiting=[1-9]", line), line  # eapol_test retransmitted meanwhile
