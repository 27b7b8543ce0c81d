"""Ban lists as data (nac/data/banlists.toml and an operator's --lists FILE): what the shipped
lists say, how a bad list file is refused, and the rules a list makes, kept and removed whole."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nac.app.facade import Nac, open_store
from nac.cli.main import app
from nac.errors import PolicyError
from nac.policy.file import dump_policy, parse_policy
from nac.registry.banlists import parse_banlists
from nac.resources import load_banlists, load_families

FAMILIES = load_families()
GOOD = """\
[site-ban]
title = "Our ministry's circular"
issuer = "Ministry of Examples"
document = "Circular 12/2026 on network equipment"
url = "https://example.org/circular-12-2026.pdf"
date = 2026-04-01

[[site-ban.entity]]
name = "Huawei Technologies Co., Ltd."
family = "huawei"

[[site-ban.entity]]
name = "Some Cloud Service"
out_of_scope = "a service: no MAC prefix"
"""


def test_ndaa_889_names_the_five_makers_of_section_889_f_3() -> None:
    ndaa = load_banlists(FAMILIES)["ndaa-889"]
    assert ndaa.families == ("huawei", "zte", "hytera", "hikvision", "dahua")
    assert ndaa.date == "2018-08-13"
    assert "115-232" in ndaa.document
    assert all("subsidiary or affiliate" in e.subsidiaries for e in ndaa.entities)


def test_fcc_covered_list_says_which_entities_no_mac_rule_can_enforce() -> None:
    fcc = load_banlists(FAMILIES)["fcc-covered"]
    assert fcc.families == ("huawei", "zte", "hytera", "hikvision", "dahua")
    outside = {e.name: e.out_of_scope for e in fcc.entities if e.family is None}
    assert "AO Kaspersky Lab" in outside
    assert "software" in str(outside["AO Kaspersky Lab"])
    assert {"China Mobile International USA Inc.", "Pacific Networks Corp."} <= outside.keys()
    assert "ComNet (USA) LLC" in next(
        e.subsidiaries for e in fcc.entities if e.name == "Pacific Networks Corp."
    )


def test_an_operators_list_file_reads_with_its_evidence() -> None:
    [site] = parse_banlists(GOOD, origin="mine.toml", families=FAMILIES).values()
    assert (site.name, site.date, site.families, site.source) == (
        "site-ban",
        "2026-04-01",
        ("huawei",),
        "mine.toml",
    )
    assert site.evidence()["url"] == "https://example.org/circular-12-2026.pdf"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('family = "huawei"', 'family = "huaweii"'),
            "line 10: [site-ban.entity] family: list site-ban: entity #1: unknown family 'huaweii'",
        ),
        (("date = 2026-04-01\n", ""), "line 1: [site-ban]: list site-ban: date is missing"),
        (
            ("date = 2026-04-01", 'date = "April 2026"'),
            "line 6: [site-ban] date: list site-ban: use the document's date as YYYY-MM-DD",
        ),
        (('url = "https://', 'url = "ftp://'), "line 5: [site-ban] url: list site-ban: 'ftp://example.org"),
        (('issuer = "Ministry of Examples"\n', ""), "list site-ban: issuer is missing"),
        (('family = "huawei"', 'family = "huawei"\nout_of_scope = "x"'), "entity #1: give either family"),
        (('out_of_scope = "a service: no MAC prefix"', ""), "entity #2: give either family"),
        (('name = "Some Cloud Service"\n', ""), "entity #2: name is missing"),
        (
            ("[site-ban]\n", "[site-ban]\nsource = 1\n"),
            "line 2: [site-ban] source: list site-ban: unknown setting",
        ),
        (("[site-ban]", "[Site_Ban]"), "a list's name is 1-40 lower-case letters"),
        (("[[site-ban.entity]]", "[[site-ban.entit]]"), "list site-ban: unknown setting"),
        (("= 2026-04-01", "= 2026-04-01\n[site-ban.x"), "mine.toml: "),
    ],
)
def test_a_bad_list_file_is_refused_naming_file_line_and_list(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(PolicyError) as err:
        parse_banlists(GOOD.replace(old, new, 1), origin="mine.toml", families=FAMILIES)
    assert message in str(err.value)
    assert str(err.value).startswith("mine.toml")


def test_every_error_in_a_list_file_is_named_at_once() -> None:
    text = GOOD.replace("date = 2026-04-01\n", "").replace('family = "huawei"', 'family = "nokia"')
    with pytest.raises(PolicyError) as err:
        parse_banlists(text, origin="mine.toml", families=FAMILIES)
    assert len(str(err.value).splitlines()) == 2


# -- the commands -----------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("NAC_DB", raising=False)
    db = str(tmp_path / "test.db")
    open_store(db).close()

    def invoke(*args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(app, [*args, "--db", db])
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    return invoke


def test_a_bad_list_file_exits_2_with_the_error(run: Any, tmp_path: Path) -> None:
    bad = tmp_path / "mine.toml"
    bad.write_text(GOOD.replace('family = "huawei"', 'family = "nokia"'))
    for args in (
        ("vendors", "lists"),
        ("vendors", "show-list", "site-ban"),
        ("rules", "add", "--list", "site-ban", "--action", "reject"),
    ):
        result = run(*args, "--lists", str(bad), code=2)
        assert (
            f"{bad}, line 10: [site-ban.entity] family: list site-ban: entity #1: unknown family 'nokia'"
            in result.stderr
        )
    assert json.loads(run("rules", "list", "--json").stdout) == []


def test_an_operators_list_may_not_take_a_shipped_lists_name(run: Any, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(GOOD.replace("site-ban", "ndaa-889"))
    result = run("vendors", "lists", "--lists", str(mine), code=2)
    assert "ndaa-889 ship with nac" in result.stderr
    assert (
        "no list 'nope'; known lists: fcc-covered, ndaa-889"
        in run("vendors", "show-list", "nope", code=2).stderr
    )


def test_vendors_lists_and_show_list_give_evidence_and_prefix_counts(run: Any, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(GOOD)
    rows = json.loads(run("vendors", "lists", "--lists", str(mine), "--json").stdout)
    assert [r["name"] for r in rows] == ["ndaa-889", "fcc-covered", "site-ban"]
    assert list(rows[0]) == [
        "name",
        "title",
        "issuer",
        "date",
        "url",
        "source",
        "families",
        "prefixes",
        "out_of_scope",
    ]
    report = json.loads(run("vendors", "show-list", "fcc-covered", "--json").stdout)
    huawei = json.loads(run("vendors", "show", "huawei", "--json").stdout)
    assert report["families"][0]["prefixes"] == huawei["total"]["prefixes"] > 0
    assert report["prefixes"] == sum(f["prefixes"] for f in report["families"]) == rows[1]["prefixes"]
    assert report["date"] == "2022-09-20"
    text = run("vendors", "show-list", "fcc-covered").stdout
    assert "AO Kaspersky Lab: software" in text


def test_list_rules_carry_the_list_through_a_policy_file_and_refuse_to_be_made_twice(
    run: Any, tmp_path: Path
) -> None:
    out = run(
        "rules", "add", "--list", "fcc-covered", "--action", "quarantine", "--vlan", "666", "--client", "lab"
    ).stdout
    assert "not enforceable by MAC" in out
    assert "AO Kaspersky Lab" in out
    rules = json.loads(run("rules", "list", "--json").stdout)
    assert {(r["id"], r["list"], r["vlan"], tuple(r["clients"])) for r in rules} == {
        (f"fcc-covered-{f}", "fcc-covered", "666", ("lab",))
        for f in ("huawei", "zte", "hytera", "hikvision", "dahua")
    }
    again = run("rules", "add", "--list", "fcc-covered", "--action", "reject", code=2)
    assert "has rules already" in again.stderr
    exported = run("policy", "export").stdout
    assert exported.count('list = "fcc-covered"') == 5
    defaults, rules_back = parse_policy(exported, origin="export.toml")
    assert {r.banlist for r in rules_back} == {"fcc-covered"}
    assert parse_policy(dump_policy(defaults, rules_back), origin="again.toml")[1] == rules_back
    assert "removed" in run("rules", "remove", "--list", "fcc-covered").stdout
    assert json.loads(run("rules", "list", "--json").stdout) == []
    assert "no rules of list 'fcc-covered'" in run("rules", "remove", "--list", "fcc-covered", code=1).stderr


def test_a_list_rule_that_duplicates_a_rule_in_force_is_refused(run: Any) -> None:
    run("rules", "add", "--vendor", "zte", "--action", "reject")
    result = run("rules", "add", "--list", "ndaa-889", "--action", "reject", code=2)
    assert "rule ndaa-889-zte duplicates rule reject-vendor-zte" in result.stderr
    assert [r["id"] for r in json.loads(run("rules", "list", "--json").stdout)] == ["reject-vendor-zte"]


def test_rules_remove_takes_an_id_or_a_list_not_both(run: Any) -> None:
    assert "give a rule ID or --list NAME" in run("rules", "remove", code=2).stderr
    assert "give a rule ID or --list NAME" in run("rules", "remove", "x", "--list", "y", code=2).stderr


def test_a_database_made_before_lists_gains_the_list_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE rules DROP COLUMN list")
    conn.commit()
    conn.close()
    nac = Nac(str(path))
    try:
        nac.add_list("ndaa-889", action="reject")
        assert {r.banlist for r in nac.store.rules()} == {"ndaa-889"}
    finally:
        nac.close()


def test_a_registry_import_says_which_prefixes_a_lists_rules_gain_and_lose(run: Any, tmp_path: Path) -> None:
    run("rules", "add", "--list", "ndaa-889", "--action", "reject")
    run("rules", "add", "--vendor", "xiaomi", "--action", "reject")  # no list: not reported
    manuf = tmp_path / "manuf"
    # MA-L replaced whole: Huawei keeps one prefix and gains one; the other makers lose theirs.
    manuf.write_text(
        "00:18:82\tHuawei\tHuawei Technologies Co.,Ltd\nAC:BB:CC\tHuawei\tHuawei Device Co., Ltd.\n"
    )
    report = json.loads(run("oui", "import", str(manuf), "--replace", "--dry-run", "--json").stdout)
    changes = {c["rule"]: c for c in report["lists"]}
    assert set(changes) == {f"ndaa-889-{f}" for f in ("huawei", "zte", "hytera", "hikvision", "dahua")}
    huawei = changes["ndaa-889-huawei"]
    assert (huawei["list"], huawei["family"]) == ("ndaa-889", "huawei")
    assert [(e["prefix"], e["organization"]) for e in huawei["gained"]] == [
        ("AC:BB:CC", "Huawei Device Co., Ltd.")
    ]
    assert "00:18:82" not in {e["prefix"] for e in huawei["lost"]}
    assert len(huawei["lost"]) > 100
    assert changes["ndaa-889-zte"]["gained"] == []
    text = run("oui", "import", str(manuf), "--replace", "--dry-run").stdout
    assert "list ndaa-889, rule ndaa-889-huawei (huawei): gains 1 prefixes, loses " in text
    assert "  + AC:BB:CC/24 MA-L  Huawei Device Co., Ltd." in text


def test_simulate_a_list_replays_history_through_its_rules(run: Any, tmp_path: Path) -> None:
    from test_simulate import HISTORY, A, B

    from nac.history import tiers
    from nac.store import Store

    store = Store(str(tmp_path / "test.db"))
    tiers.write_batch(store.conn, HISTORY, ())
    store.close()
    args = ("rules", "simulate", "--since", "30d", "--list", "ndaa-889", "--action", "reject")
    report = json.loads(run(*args, "--json").stdout)
    assert report["candidate"] == "list ndaa-889 dated 2018-08-13"
    assert {d["mac"]: (d["after"], d["rule_after"]) for d in report["device_list"]} == {
        A: ("reject", "ndaa-889-huawei"),
        B: ("reject", "ndaa-889-huawei"),
    }
    assert json.loads(run("rules", "list", "--json").stdout) == []  # a simulation stores nothing
    assert "--list" in run("rules", "simulate", "--since", "30d", "--list", "ndaa-889", code=2).stderr
