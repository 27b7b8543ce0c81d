"""A ban list end to end: `nac rules add --list ndaa-889` against a running `nac serve`, asked
by radclient (a peer we did not write) for a device of each manufacturer the list names."""

from __future__ import annotations

import json

from tests.interop import NacServer, mab_attrs, wait_for_decision

#: One device per manufacturer NDAA FY2019 §889(f)(3) names, by a prefix its family covers.
NAMED = {
    "huawei": "00:18:82:12:34:56",  # Huawei Technologies Co.,Ltd (MA-L)
    "zte": "00:15:eb:12:34:56",  # zte corporation (MA-L)
    "hytera": "64:69:bc:12:34:56",  # Hytera Communications Co.,ltd (MA-L)
    "hikvision": "00:bc:99:12:34:56",  # Hangzhou Hikvision Digital Technology (MA-L)
    "dahua": "08:ed:ed:12:34:56",  # Zhejiang Dahua Technology (MA-L)
}
#: Shanghai Dahua Scale Factory (MA-M 40:2C:76:1): a look-alike the dahua family excludes.
LOOK_ALIKE = "40:2c:76:12:34:56"


def _audit(server: NacServer) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(server.cli_ok("audit", "--json"))
    return rows


def test_ndaa_889_list_rejects_each_named_maker_by_mab_and_is_removed_whole(nac_server: NacServer) -> None:
    assert nac_server.radclient(mab_attrs(NAMED["huawei"])).code == "Access-Accept"

    out = nac_server.cli_ok("rules", "add", "--list", "ndaa-889", "--action", "reject")
    assert "dated 2018-08-13 (5 rules)" in out

    first = wait_for_decision(lambda: nac_server.radclient(mab_attrs(NAMED["huawei"])).code, "Access-Reject")
    assert first == "Access-Reject", nac_server.stderr()
    for family, mac in NAMED.items():
        result = nac_server.radclient(mab_attrs(mac))
        assert result.code == "Access-Reject", (family, result.stdout)
        assert any("ndaa-889" in m for m in result.values("Reply-Message")), result.stdout
        [row] = nac_server.history("--mac", mac, "--limit", "1")
        assert row["rule"] == f"ndaa-889-{family}"
    look_alike = nac_server.radclient(mab_attrs(LOOK_ALIKE))
    assert look_alike.code == "Access-Accept", look_alike.stdout
    [tally] = json.loads(nac_server.cli_ok("stats", "--json"))["by_list"]
    # The Huawei device was asked twice (the wait above, then the loop): six refusals, five devices.
    sites = tally.pop("sites")
    assert tally == {"list": "ndaa-889", "decisions": 6, "rejected": 6, "devices_rejected": 5}
    # One NAS client in no group of the policy: the client is the site.
    assert [(s["decisions"], s["devices_rejected"]) for s in sites] == [(6, 5)]

    added = _audit(nac_server)[-1]
    assert added["action"] == "rules.add-list"
    assert added["subject"] == "list ndaa-889 dated 2018-08-13"
    after = added["after"]
    assert isinstance(after, dict)
    assert (after["list"], after["date"]) == ("ndaa-889", "2018-08-13")
    assert after["url"].startswith("https://www.congress.gov/")
    assert [r["id"] for r in after["rules"]] == [f"ndaa-889-{f}" for f in NAMED]

    out = nac_server.cli_ok("rules", "remove", "--list", "ndaa-889")
    assert "5 rules removed" in out
    rules = json.loads(nac_server.cli_ok("rules", "list", "--json"))
    assert [r for r in rules if r["list"] == "ndaa-889"] == []
    removed = _audit(nac_server)[-1]
    assert (removed["action"], removed["subject"]) == ("rules.remove-list", "list ndaa-889")
    back = wait_for_decision(lambda: nac_server.radclient(mab_attrs(NAMED["zte"])).code, "Access-Accept")
    assert back == "Access-Accept", nac_server.stderr()
