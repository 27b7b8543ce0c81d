"""`nac stats`: decisions by action, vendor, client and rule; top refused; BlastRADIUS readiness."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nac.cli.main import app
from tests.helpdesk_rows import decision, write

HUAWEI = "00:e0:fc:12:34:56"
HUAWEI2 = "00:e0:fc:00:00:02"
XIRCOM = "00:10:a4:23:19:c0"
DAY = 86400.0


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    now = time.time()
    huawei = {"vendor": "Huawei", "client": "access-sw2"}
    legacy = {"client": "fortigate", "nas_ip": "192.0.2.99", "message_authenticator": 0}
    rows = [decision(now - 60 - i, HUAWEI, "reject", **huawei) for i in range(5)]
    rows += [decision(now - 120 - i, HUAWEI2, "reject", **huawei) for i in range(2)]
    rows += [
        decision(now - 30, XIRCOM, "accept"),
        decision(now - 31, XIRCOM, "accept", message_authenticator=0),
    ]
    rows += [
        decision(now - 40, XIRCOM, "quarantine", **legacy),
        decision(now - 3 * DAY, HUAWEI2, "reject", **legacy),
    ]
    write(str(tmp_path / "stats.db"), rows)
    return str(tmp_path / "stats.db")


def stats(db: str, *args: str) -> Any:
    result = CliRunner().invoke(app, ["stats", *args, "--db", db], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result


def by(report: dict[str, Any], dim: str) -> dict[str, tuple[int, int]]:
    return {row["name"]: (row["decisions"], row["rejected"]) for row in report[f"by_{dim}"]}


def test_stats_counts_by_action_vendor_client_rule(db: str) -> None:
    report = json.loads(stats(db, "--json").stdout)
    assert report["decisions"] == 11
    assert by(report, "action") == {"reject": (8, 8), "accept": (2, 0), "quarantine": (1, 0)}
    assert by(report, "vendor") == {"Huawei": (7, 7), "Xircom": (4, 1)}
    assert by(report, "client") == {"access-sw2": (7, 7), "access-sw1": (2, 0), "fortigate": (2, 1)}
    assert by(report, "rule")["ban-huawei"] == (8, 8)
    assert by(report, "method") == {"mab": (11, 8)}


def test_stats_top_refused_devices(db: str) -> None:
    top = json.loads(stats(db, "--json").stdout)["top_refused"]
    assert [(row["mac"], row["rejected"]) for row in top] == [(HUAWEI, 5), (HUAWEI2, 3)]
    assert top[0]["first"] < top[0]["last"]


def test_stats_names_clients_that_never_send_message_authenticator(db: str) -> None:
    report = json.loads(stats(db, "--json").stdout)
    assert report["not_ready"] == ["fortigate"]
    clients = {row["client"]: row for row in report["message_authenticator"]}
    assert clients["fortigate"]["never_sends"] is True
    assert clients["fortigate"]["nas_ips"] == ["192.0.2.99"]
    assert clients["access-sw1"]["without_message_authenticator"] == 1  # sometimes: not "never"
    assert clients["access-sw1"]["never_sends"] is False
    assert clients["access-sw2"]["ready"] is True
    out = stats(db).stdout
    assert "fortigate (192.0.2.99): never sends it: not ready for strict enforcement" in out
    assert "access-sw1 (192.0.2.10): 1 of 2 requests without it" in out
    assert "access-sw2 (192.0.2.10): always sends it: ready" in out


def test_stats_since(db: str) -> None:
    report = json.loads(stats(db, "--since", "1d", "--json").stdout)
    assert report["decisions"] == 10
    assert [(row["mac"], row["rejected"]) for row in report["top_refused"]] == [(HUAWEI, 5), (HUAWEI2, 2)]


def test_stats_text(db: str) -> None:
    out = stats(db, "--top", "1").stdout
    assert out.startswith("11 decisions in all history kept")
    assert "by vendor:" in out
    assert "most refused devices:" in out
    assert HUAWEI in out
    assert HUAWEI2 not in out  # --top 1
