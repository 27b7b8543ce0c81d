"""`nac check -`: an inventory of MACs on stdin, one result per input line (issue 3,
"Inventory audit")."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.cli.main import app
from nac.helpdesk.inventory import FIELDS, mac_column
from nac.registry.oui import Registry, registry_from_manuf

MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:10:A4\tXircom\tXircom",
        "70:B3:D5:12:30:00/36\tThirtySix\tThirty Six GmbH",
    ]
)
MIXED = "\n".join(
    [
        "00:e0:fc:12:34:56",  # banned vendor
        "not-a-mac",
        "",  # blank lines are skipped, not errors
        "0010.a423.19c0",  # Cisco spelling, allowed vendor
        "70-B3-D5-12-34-56",  # inside an MA-S block
        "02:11:22:33:44:55",  # randomized
        "00:10:a4:23:19",  # five octets
        "00:99:99:00:00:01",  # in no registry
    ]
)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    registry: Registry = registry_from_manuf(MANUF, source="test-manuf", date="2026-01")
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: registry)
    db = str(tmp_path / "test.db")

    def invoke(*args: str, stdin: str = "", code: int = 0) -> Any:
        result = CliRunner().invoke(app, [*args, "--db", db], input=stdin)
        assert result.exit_code == code, f"{result.stdout}\n{result.stderr}\n{result.exception!r}"
        return result

    invoke("rules", "add", "--vendor", "huawei", "--action", "reject", "--reason", "ban")
    return invoke


def test_check_stdin_json_one_result_per_line_errors_do_not_stop_the_run(run: Any) -> None:
    result = run("check", "-", "--json", stdin=MIXED, code=2)
    rows = json.loads(result.stdout)
    assert [row["line"] for row in rows] == [1, 2, 4, 5, 6, 7, 8]
    assert all(set(row) == set(FIELDS) for row in rows)
    by_line = {row["line"]: row for row in rows}
    assert by_line[1]["vendor"] == "HUAWEI TECHNOLOGIES CO.,LTD"
    assert (by_line[1]["action"], by_line[1]["rule"], by_line[1]["reason"]) == (
        "reject",
        "reject-vendor-huawei",
        "ban",
    )
    assert by_line[2]["error"] == "'not-a-mac' is not a MAC address"
    assert by_line[2]["action"] is None
    assert (by_line[4]["mac"], by_line[4]["vendor"], by_line[4]["action"]) == (
        "00:10:a4:23:19:c0",
        "Xircom",
        "accept",
    )
    assert (by_line[5]["prefix"], by_line[5]["prefix_bits"], by_line[5]["vendor"]) == (
        "70:B3:D5:12:3",
        36,
        "Thirty Six GmbH",
    )
    assert by_line[6]["randomized"] is True
    assert by_line[6]["vendor"] is None
    assert by_line[7]["error"] is not None
    assert (by_line[8]["vendor"], by_line[8]["action"], by_line[8]["rule"]) == (None, "accept", "default")
    assert "2 line(s) are not MAC addresses" in result.stderr


def test_check_stdin_csv(run: Any) -> None:
    result = run("check", "-", "--csv", stdin=MIXED, code=2)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 7
    assert list(rows[0]) == list(FIELDS)
    assert rows[0]["vendor"] == "HUAWEI TECHNOLOGIES CO.,LTD"  # quoted: it has a comma
    assert rows[0]["randomized"] == "false"
    assert rows[0]["prefix_bits"] == "24"
    assert rows[1]["error"] == "'not-a-mac' is not a MAC address"
    assert rows[1]["action"] == ""
    assert rows[4]["randomized"] == "true"


def test_check_stdin_table(run: Any) -> None:
    out = run("check", "-", stdin=MIXED, code=2).stdout.splitlines()
    assert out[0].split() == [
        "LINE",
        "MAC",
        "VENDOR",
        "PREFIX",
        "RANDOMIZED",
        "ACTION",
        "VLAN",
        "RULE",
        "REASON",
    ]
    assert len(out) == 8
    assert "reject-vendor-huawei" in out[1]
    assert "00:E0:FC/24" in out[1]
    assert "not-a-mac" in out[2]
    assert "error" in out[2]


def test_check_stdin_all_valid_exits_0(run: Any) -> None:
    rows = json.loads(run("check", "-", "--json", stdin="00:e0:fc:00:00:01\n00e0fc000002\n").stdout)
    assert [row["action"] for row in rows] == ["reject", "reject"]


def test_check_stdin_empty_input(run: Any) -> None:
    assert json.loads(run("check", "-", "--json", stdin="").stdout) == []


@pytest.mark.parametrize("column", ["mac", "MAC", "mac_address", "Calling-Station-Id"])
def test_check_stdin_csv_input_finds_the_mac_column(run: Any, column: str) -> None:
    stdin = f'name,{column},site\nsw1,"00-E0-FC-12-34-56",hq\nsw2,bogus,"branch, east"\nsw3,0010a42319c0,x\n'
    rows = json.loads(run("check", "-", "--json", stdin=stdin, code=2).stdout)
    assert [(row["line"], row["action"]) for row in rows] == [(2, "reject"), (3, None), (4, "accept")]
    assert rows[0]["mac"] == "00:e0:fc:12:34:56"


def test_check_stdin_json_and_csv_exclude_each_other(run: Any) -> None:
    run("check", "-", "--json", "--csv", code=2)


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("mac", 0),
        ("\ufeffMAC_Address,name", 0),
        ("time,Calling-Station-Id,mac", 2),  # "mac" is preferred
        ("00:11:22:33:44:55", None),
        ("name,address", None),
    ],
)
def test_mac_column_detection(header: str, column: int | None) -> None:
    assert mac_column(header) == column


def test_check_stdin_applies_time_limited_rules_as_of_now(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.interop import subprocess_env

    db = str(tmp_path / "nac.db")

    def nac(*args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [sys.executable, "-m", "nac", *args, "--db", db],
            input=stdin, capture_output=True, text=True, check=True, env=subprocess_env(), timeout=60,
        )  # fmt: skip
        return result.stdout

    nac("rules", "add", "--vendor", "huawei", "--action", "reject")
    nac("rules", "add", "--mac", "00:e0:fc:00:00:01", "--action", "accept", "--expires", "7d")
    nac("rules", "add", "--mac", "00:e0:fc:00:00:02", "--action", "accept", "--starts", "7d")
    out = nac("check", "-", "--csv", stdin="00e0fc000001\n00e0fc000002\n")
    lines = out.splitlines()
    assert ",accept," in lines[1]  # the exemption in force now
    assert ",reject," in lines[2]  # the one that starts next week does not apply yet
