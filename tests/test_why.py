"""`nac why MAC`: the device's story in plain words, and what the current rules would say."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.app.facade import open_store
from nac.cli.main import app
from nac.registry.oui import Registry
from tests.helpdesk_rows import decision, write

HUAWEI = "00:e0:fc:12:34:56"
APPLE = "3c:22:fb:00:00:01"
HUAWEI_ROW = {"vendor": "HUAWEI TECHNOLOGIES CO.,LTD", "prefix": "00:E0:FC", "client": "access-sw2"}


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> None:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "why.db")
    open_store(path).close()  # `nac why` reads a database; it never makes one
    return path


def run(db: str, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, [*args, "--db", db], terminal_width=250)
    assert result.exit_code == code, (
        f"nac {' '.join(args)}: {result.exit_code}\n{result.output}{result.stderr}"
    )
    return result


@pytest.fixture
def refused(db: str) -> float:
    """Accepted two days ago, then rejected 37 times, every 5 minutes; returns the first refusal."""
    now = time.time()
    first = now - 37 * 300
    rows = [decision(now - 2 * 86400, HUAWEI, "accept", **HUAWEI_ROW)]
    rows += [decision(first + i * 300, HUAWEI, "reject", **HUAWEI_ROW) for i in range(37)]
    write(db, rows)
    return first


def test_why_tells_rule_vendor_switch_and_refusal_count(db: str, refused: float) -> None:
    run(
        db,
        "rules",
        "add",
        "--vendor",
        "huawei",
        "--action",
        "reject",
        "--id",
        "ban-huawei",
        "--reason",
        "ministry ban",
    )
    out = run(db, "why", "00E0.FC12.3456").stdout
    first = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(refused))  # as every command prints times
    [line] = [line for line in out.splitlines() if line.startswith("Rejected 37 times since ")]
    assert f"since {first};" in line
    assert "before that accepted" in out
    assert "rule ban-huawei: ministry ban" in out
    assert "HUAWEI TECHNOLOGIES CO.,LTD" in out
    assert "registry prefix 00:E0:FC/24" in out
    assert "on switch access-sw2 (192.0.2.10), port GigabitEthernet1/0/7, by MAB" in out
    assert "The current rules still reject it (rule ban-huawei" in out
    assert "Latest decisions:" in out
    assert out.count(HUAWEI) >= 6  # the header line and five decisions


def test_why_says_when_the_rules_have_changed(db: str, refused: float) -> None:
    out = run(db, "why", HUAWEI).stdout  # no rule bans Huawei any more: the default accepts
    assert "The rules have changed since: now they would accept it (rule default" in out
    report = json.loads(run(db, "why", HUAWEI, "--json").stdout)
    assert report["changed"] is True
    assert report["now"]["action"] == "accept"
    assert report["decisions"][0]["action"] == "reject"


def test_why_json(db: str, refused: float) -> None:
    report = json.loads(run(db, "why", "00-E0-FC-12-34-56", "--json", "--latest", "3").stdout)
    assert report["mac"] == HUAWEI
    assert len(report["decisions"]) == 3
    assert report["streak"]["action"] == "reject"
    assert report["streak"]["count"] == 37
    assert report["streak"]["before"]["action"] == "accept"
    assert report["refused"]["count"] == 37
    assert any("Rejected 37 times" in line for line in report["lines"])


def test_why_wireless_names_the_ssid(db: str) -> None:
    write(
        db,
        [
            decision(
                time.time() - 60,
                APPLE,
                "quarantine",
                vendor="Apple, Inc.",
                client="wlc1",
                method="peap",
                nas_port=None,
                nas_port_id=None,
                called_station_id="00-11-22-33-44-55:eduroam",
            ),
        ],
    )
    out = run(db, "why", APPLE).stdout
    assert "on access point/controller wlc1 (192.0.2.10), SSID eduroam, by PEAP" in out
    assert "quarantined to VLAN 666 by rule q" in out
    assert "Quarantined once since" in out


def test_why_unknown_device(db: str) -> None:
    out = run(db, "why", "0010a42319c0").stdout
    assert "No decision for 00:10:a4:23:19:c0 is on record" in out
    assert "The current rules would accept it" in out


def test_why_bad_mac_exits_2(db: str) -> None:
    result = run(db, "why", "00:10:a4:23:19", code=2)
    assert "00:10:a4:23:19" in result.stderr


def test_why_asks_the_rules_about_the_latest_request_so_scoped_rules_count(db: str, refused: float) -> None:
    run(
        db,
        "rules",
        "add",
        "--vendor",
        "huawei",
        "--action",
        "reject",
        "--id",
        "ban-huawei",
        "--client",
        "access-sw2",
        "--reason",
        "ministry ban",
    )
    out = run(db, "why", HUAWEI).stdout  # last seen on access-sw2: the scoped rule applies
    assert "The current rules still reject it (rule ban-huawei" in out
    write(db, [decision(time.time(), HUAWEI, "reject", **{**HUAWEI_ROW, "client": "access-sw9"})])
    out = run(db, "why", HUAWEI).stdout  # now last seen elsewhere: the rule does not reach it
    assert "now they would accept it (rule default" in out
