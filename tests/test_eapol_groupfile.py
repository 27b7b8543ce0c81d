"""User groups from policy files against a real supplicant: `eapol_test` PEAP-MSCHAPv2 through
a running `nac serve` whose group profiles come from `nac policy import` or `[policy] watch`,
and a changed file's VLAN in the next Access-Accept, with no restart."""

from __future__ import annotations

import json
from pathlib import Path

from tests.interop import NacServer, NacServerFactory, wait_for_decision
from tests.test_eapol import RULES, assert_success, eapol_test, last_decision, network, pki
from tests.test_eapol_profiles import ALLOWED, _add_user, _vlans

__all__ = ["pki"]  # the module-scoped fixture, shared with tests/test_eapol.py
EAP = 'methods = ["peap"]\n'


def _policy(vlan: str) -> str:
    return (
        '[defaults]\naction = "accept"\n\n'
        '[[rule]]\nid = "ban-huawei"\noui = "00:E0:FC"\naction = "reject"\n\n'
        f'[user_groups.staff]\nvlan = "{vlan}"\nattrs = ["Filter-Id=staff-acl"]\n'
    )


def _eap_config(pki: Path) -> str:
    lab = pki / "lab"
    return f'\n[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n{EAP}'


def _staff_vlan(server: NacServer) -> str | None:
    groups = {row["name"]: row for row in json.loads(server.cli_ok("groups", "list", "--json"))}
    return groups["staff"]["vlan"] if "staff" in groups else None


def _authenticated_vlans(server: NacServer, pki: Path) -> list[str]:
    result = eapol_test(server, network(pki, "peap-mschapv2"), mac=ALLOWED)
    assert_success(result)
    return _vlans(result.stdout)


def test_an_imported_policy_files_group_vlan_reaches_the_supplicant_and_follows_a_new_import(
    nac_server_factory: NacServerFactory, pki: Path
) -> None:
    server = nac_server_factory(rules=RULES, extra_config=_eap_config(pki))
    first = server.workdir / "site.toml"
    first.write_text(_policy("100"))
    server.cli_ok("policy", "import", str(first))
    _add_user(server, "--group", "staff")
    assert _authenticated_vlans(server, pki) == ["100"]
    row = last_decision(server)
    assert "group staff: profile staff (VLAN 100, Filter-Id=staff-acl)" in str(row["reason"])
    changed = server.workdir / "site-v2.toml"
    changed.write_text(_policy("200"))
    server.cli_ok("policy", "import", str(changed))
    assert _authenticated_vlans(server, pki) == ["200"]  # the same process: no restart
    assert last_decision(server)["vlan"] == "200"
    assert server.running


def test_a_watched_policy_files_groups_apply_at_the_next_authentication(
    nac_server_factory: NacServerFactory, pki: Path, tmp_path: Path
) -> None:
    edit = "300"
    watched = tmp_path / "watched.toml"
    watched.write_text(_policy("100"))
    server = nac_server_factory(extra_config=_eap_config(pki) + f'\n[policy]\nwatch = "{watched}"\n')
    assert wait_for_decision(lambda: _staff_vlan(server), "100") == "100", server.stderr()
    _add_user(server, "--group", "staff")
    assert _authenticated_vlans(server, pki) == ["100"]
    watched.write_text(_policy(edit) + "# edited\n")
    assert wait_for_decision(lambda: _staff_vlan(server), edit) == edit, server.stderr()
    assert _authenticated_vlans(server, pki) == [edit]
    assert "policy.watch" in server.cli_ok("audit")
