"""Authorization profiles against a real supplicant: `eapol_test` PEAP-MSCHAPv2 through a real
`nac serve`, with the user's VLAN in the Access-Accept only where the vendor policy accepts
the device (tests/test_eapol.py has the PKI, the rules and the helpers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import NacServer, NacServerFactory, subprocess_env
from tests.test_eapol import (
    BANNED,
    PASSWORD,
    QUARANTINED,
    RULES,
    assert_failure,
    assert_success,
    eapol_test,
    last_decision,
    network,
    pki,
)

__all__ = ["pki"]  # the module-scoped fixture, shared with tests/test_eapol.py
ALLOWED = "00:10:a4:23:19:c1"  # Xircom: no rule, the default accepts


def _add_user(server: NacServer, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "nac", "users", "add", "alice", *args, "--db", str(server.db)],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
    )


@pytest.fixture
def server(nac_server_factory: NacServerFactory, pki: Path) -> NacServer:
    lab = pki / "lab"
    extra = (
        f'\n[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n'
        'methods = ["peap"]\n'
    )
    return nac_server_factory(rules=RULES, extra_config=extra)


def _vlans(stdout: str) -> list[str]:
    """Tunnel-Private-Group-Id values in the Access-Accept, as eapol_test dumps them
    (`Attribute 81 (Tunnel-Private-Group-Id) length=6` then `Value: 00313030`, tag 0)."""
    found = re.findall(r"Attribute 81 \(Tunnel-Private-Group-Id\) length=\d+\s+Value: ([0-9a-f]+)", stdout)
    return [bytes.fromhex(value).lstrip(b"\x00").decode() for value in found]


def test_peap_user_with_a_vlan_gets_it_and_the_keys(server: NacServer, pki: Path) -> None:
    _add_user(server, "--vlan", "100")
    result = eapol_test(server, network(pki, "peap-mschapv2"), mac=ALLOWED)
    assert_success(result)  # MS-MPPE keys still there
    assert _vlans(result.stdout) == ["100"], result.stdout[-3000:]
    row = last_decision(server)
    assert (row["action"], row["vlan"], row["user_name"]) == ("accept", "100", "alice")
    assert "user alice: profile alice (VLAN 100)" in str(row["reason"])


def test_group_profile_gives_the_vlan_and_its_attributes(server: NacServer, pki: Path) -> None:
    server.cli_ok("groups", "add", "staff", "--vlan", "200", "--attr", "Filter-Id=staff-acl")
    _add_user(server, "--group", "staff")
    result = eapol_test(server, network(pki, "peap-mschapv2"), mac=ALLOWED)
    assert_success(result)
    assert _vlans(result.stdout) == ["200"], result.stdout[-3000:]
    # eapol_test names no Filter-Id and shows no value: its type and the length of "staff-acl"
    assert "Attribute 11 (?Unknown?) length=11" in result.stdout, result.stdout[-3000:]
    row = last_decision(server)
    assert row["vlan"] == "200"
    assert "user alice, group staff: profile staff (VLAN 200, Filter-Id=staff-acl)" in str(row["reason"])


def test_quarantined_manufacturer_keeps_the_quarantine_vlan(server: NacServer, pki: Path) -> None:
    _add_user(server, "--vlan", "100")
    result = eapol_test(server, network(pki, "peap-mschapv2"), mac=QUARANTINED)
    assert_success(result)
    assert _vlans(result.stdout) == ["666"], result.stdout[-3000:]
    row = last_decision(server)
    assert (row["action"], row["vlan"], row["rule"]) == ("quarantine", "666", "quarantine-intel")
    assert "profile alice (VLAN 100), not applied: quarantine by rule quarantine-intel" in str(row["reason"])


def test_banned_manufacturer_is_refused_whoever_logs_in(server: NacServer, pki: Path) -> None:
    _add_user(server, "--vlan", "100")
    result = eapol_test(server, network(pki, "peap-mschapv2"), mac=BANNED)
    assert_failure(result)
    assert "code=3 (Access-Reject)" in result.stdout
    assert (last_decision(server)["rule"], last_decision(server)["action"]) == ("ban-huawei", "reject")


def test_a_changed_group_takes_effect_at_the_next_authentication(server: NacServer, pki: Path) -> None:
    server.cli_ok("groups", "add", "staff", "--vlan", "200")
    _add_user(server, "--group", "staff")
    assert _vlans(eapol_test(server, network(pki, "peap-mschapv2"), mac=ALLOWED).stdout) == ["200"]
    server.cli_ok("groups", "add", "staff", "--vlan", "300")
    assert _vlans(eapol_test(server, network(pki, "peap-mschapv2"), mac=ALLOWED).stdout) == ["300"]
