"""Ban lists beyond their rules: `nac vendors review` names the lists a look-alike's family is on
and what list rules gained or lost since they were added (a new nac ships other families),
and `nac stats` and the helpdesk page count the devices refused under each list by site."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.app.facade
from nac.app.facade import Nac, open_store
from nac.cli.main import app
from nac.helpdesk.web import WebServer
from nac.policy.decide import Defaults
from nac.resources import load_families
from nac.store import Store
from tests.helpdesk_rows import decision, write

NDAA = "ndaa-889"
MINE = """\
[site-ban]
title = "Our ministry's circular"
issuer = "Ministry of Examples"
document = "Circular 12/2026"
url = "https://example.org/circular-12-2026.pdf"
date = 2026-04-01

[[site-ban.entity]]
name = "Huawei Technologies Co., Ltd."
family = "huawei"
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("NAC_DB", raising=False)
    path = str(tmp_path / "test.db")
    open_store(path).close()
    return path


def run(db: str, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, [*args, "--db", db], terminal_width=200)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def test_review_names_the_lists_on_a_look_alikes_family_and_which_are_in_force(
    db: str, tmp_path: Path
) -> None:
    run(db, "rules", "add", "--list", NDAA, "--action", "reject")
    mine = tmp_path / "mine.toml"
    mine.write_text(MINE)
    report = json.loads(run(db, "vendors", "review", "--lists", str(mine), "--json").stdout)
    scale = next(r for r in report["uncovered"] if r["organization"] == "Shanghai Dahua Scale Factory")
    assert list(scale) == [
        "family", "organization", "shared_words", "excluded", "prefixes", "registries", "lists"
    ]  # fmt: skip
    assert scale["lists"] == [
        {"list": NDAA, "in_force": True, "rules": ["ndaa-889-dahua"]},
        {"list": "fcc-covered", "in_force": False, "rules": []},
    ]
    # Every family entry of the bundled registry matches something: none to name lists on.
    assert all("lists" in r for r in report["unmatched"])
    assert report["since_added"] == []
    text = run(db, "vendors", "review").stdout
    line = next(x for x in text.splitlines() if "Shanghai Dahua Scale Factory" in x)
    assert line.endswith("[lists: ndaa-889 (in force), fcc-covered]")
    assert "list rules whose families cover other prefixes" not in text


def test_list_rules_record_what_they_covered_in_their_audit_row(db: str) -> None:
    run(db, "rules", "add", "--list", NDAA, "--action", "reject")
    [row] = [r for r in json.loads(run(db, "audit", "--json").stdout) if r["action"] == "rules.add-list"]
    covered = row["after"]["covered"]
    assert set(covered) == {f"ndaa-889-{f}" for f in ("huawei", "zte", "hytera", "hikvision", "dahua")}
    huawei = covered["ndaa-889-huawei"]
    shown = json.loads(run(db, "vendors", "show", "huawei", "--json").stdout)
    assert huawei["count"] == shown["total"]["prefixes"] > 100
    assert huawei["snapshot"] == shown["snapshot"]
    lines = [line for org in huawei["prefixes"].values() for line in org]
    assert "00:18:82/24 MA-L" in huawei["prefixes"]["Huawei Technologies Co.,Ltd"]
    assert len(lines) == huawei["count"]
    digest = hashlib.sha256("\n".join(sorted(x.split()[0] for x in lines)).encode()).hexdigest()
    assert huawei["sha256"] == digest


def test_review_says_what_list_rules_gained_and_lost_when_a_new_nac_changes_the_families(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(db, "rules", "add", "--list", NDAA, "--action", "reject")
    shipped = load_families()
    # A later nac's families: Huawei drops one block, Dahua takes in its look-alike's.
    newer = {
        **shipped,
        "huawei": replace(
            shipped["huawei"], exclude_prefixes=(*shipped["huawei"].exclude_prefixes, (0x001882, 24))
        ),
        "dahua": replace(shipped["dahua"], prefixes=((0x402C761, 28),), exclude_organizations=()),
    }
    monkeypatch.setattr(nac.app.facade, "load_families", lambda: newer)
    report = json.loads(run(db, "vendors", "review", "--json").stdout)
    changes = {c["rule"]: c for c in report["since_added"]}
    assert set(changes) == {"ndaa-889-huawei", "ndaa-889-dahua"}
    huawei, dahua = changes["ndaa-889-huawei"], changes["ndaa-889-dahua"]
    assert (huawei["list"], huawei["family"], huawei["gained"]) == (NDAA, "huawei", [])
    assert huawei["lost"] == [
        {
            "prefix": "00:18:82",
            "prefix_bits": 24,
            "registry": "MA-L",
            "organization": "Huawei Technologies Co.,Ltd",
        }
    ]
    assert [(e["prefix"], e["organization"]) for e in dahua["gained"]] == [
        ("40:2C:76:1", "Shanghai Dahua Scale Factory")
    ]
    assert dahua["lost"] == []
    text = run(db, "vendors", "review").stdout
    assert "list ndaa-889, rule ndaa-889-huawei (huawei): gains 0 prefixes, loses 1" in text
    assert "  - 00:18:82/24 MA-L  Huawei Technologies Co.,Ltd" in text
    assert "  + 40:2C:76:1/28 MA-M  Shanghai Dahua Scale Factory" in text
    upgrade = run(db, "db", "upgrade").stdout  # what an operator runs when rolling out a new nac
    assert "list ndaa-889, rule ndaa-889-dahua (dahua): gains 1 prefixes, loses 0" in upgrade
    assert {c["rule"] for c in json.loads(run(db, "db", "upgrade", "--json").stdout)["lists"]} == set(changes)


# -- refusals by list and site ----------------------------------------------------------------

A = "00:18:82:00:00:01"
B = "00:18:82:00:00:02"
C = "00:15:eb:00:00:03"


@pytest.fixture
def sites_db(db: str) -> str:
    """ndaa-889 in force; sw1 and sw2 make site hq (sw2 is in lab too: its first group counts),
    branch<7> is in no group."""
    nac_ = Nac(db)
    try:
        nac_.add_list(NDAA, action="reject")
        nac_.store.set_policy(Defaults(groups={"hq": ["sw1", "sw2"], "lab": ["sw2"]}))
    finally:
        nac_.close()
    now = time.time()
    huawei = {"rule": "ndaa-889-huawei", "reason": "ndaa-889"}
    rows = [
        decision(now - 50, A, "reject", client="sw1", **huawei),
        decision(now - 40, A, "reject", client="sw2", **huawei),  # the same device, the same site
        decision(now - 30, B, "reject", client="sw2", **huawei),
        decision(now - 20, C, "reject", client="branch<7>", rule="ndaa-889-zte", reason="ndaa-889"),
        decision(now - 10, "00:10:a4:23:19:c0", "accept", client="<b>sw9</b>"),
    ]
    write(db, rows)
    return db


def test_stats_counts_each_lists_refused_devices_by_site(sites_db: str) -> None:
    [tally] = json.loads(run(sites_db, "stats", "--json").stdout)["by_list"]
    assert (tally["list"], tally["rejected"], tally["devices_rejected"]) == (NDAA, 4, 3)
    assert tally["sites"] == [
        {"site": "hq", "decisions": 3, "rejected": 3, "devices_rejected": 2},
        {"site": "branch<7>", "decisions": 1, "rejected": 1, "devices_rejected": 1},
    ]
    text = run(sites_db, "stats").stdout
    by_site = text.split("ndaa-889 by site:")[1].splitlines()
    assert [line.split() for line in by_site if line.startswith(("hq ", "branch<7> "))] == [
        ["hq", "3", "3", "2"],
        ["branch<7>", "1", "1", "1"],
    ]


def test_the_helpdesk_page_shows_each_lists_refused_devices_by_site(sites_db: str) -> None:
    server = WebServer(sites_db, port=0, token="s3cret-token").start()
    try:
        headers = {"X-Nac-Token": "s3cret-token"}
        request = urllib.request.Request(server.url, headers=headers)  # noqa: S310 - our server
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            page = resp.read().decode()
        api = urllib.request.Request(server.url + "api/lists?since=all", headers=headers)  # noqa: S310
        with urllib.request.urlopen(api, timeout=10) as resp:  # noqa: S310
            data = json.loads(resp.read())
    finally:
        server.stop()
    assert "Ban lists in force: devices refused by site (the last 7d)" in page
    assert "<caption>ndaa-889: 3 devices refused (4 refusals)</caption>" in page
    assert "<tr><td>hq</td><td>2</td><td>3</td><td>3</td></tr>" in page
    assert "<tr><td>branch&lt;7&gt;</td><td>1</td><td>1</td><td>1</td></tr>" in page
    assert [(s["site"], s["devices_rejected"]) for s in data[0]["sites"]] == [("hq", 2), ("branch<7>", 1)]


def test_the_page_has_no_list_section_when_no_list_is_in_force(db: str) -> None:
    store = Store(db)
    store.close()
    server = WebServer(db, port=0).start()
    try:
        with urllib.request.urlopen(server.url, timeout=10) as resp:  # noqa: S310 - our server
            page = resp.read().decode()
    finally:
        server.stop()
    assert '<section id="lists" aria-label="ban lists"></section>' in page
