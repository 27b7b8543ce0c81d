"""The audit trail (issue 4): every change recorded with who, when, before and after, in a
hash chain that `nac audit verify` checks; editing the table by hand breaks it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_policyfile import MINISTRY, Cli

import nac.resources
from nac.registry.oui import Registry
from nac.store import os_user


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> None:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(str(tmp_path / "test.db"))
    c("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "ban-huawei")
    c("rules", "add", "--mac", "00:e0:fc:00:00:01", "--action", "accept", "--id", "exempt", "--expires", "7d")
    c("rules", "remove", "exempt")
    c("policy", "import", str(MINISTRY))
    return c


def test_every_change_is_recorded_with_user_before_and_after(cli: Cli) -> None:
    rows = cli.json("audit")
    assert [(r["action"], r["subject"]) for r in rows] == [
        ("policy.init", str(Path(nac.resources.default_policy_path()))),
        ("rules.add", "ban-huawei"),
        ("rules.add", "exempt"),
        ("rules.remove", "exempt"),
        ("policy.import", str(MINISTRY)),
    ]
    assert {r["user"] for r in rows} == {os_user()}
    assert all(r["time"].endswith("Z") for r in rows)
    add, remove, imported = rows[2], rows[3], rows[4]
    assert add["before"] is None
    assert add["after"]["mac"] == "00:e0:fc:00:00:01"
    assert remove["before"] == add["after"]
    assert remove["after"] is None
    assert [r["id"] for r in imported["before"]["rules"]] == ["ban-huawei"]
    assert len(imported["after"]["rules"]) == 5
    assert imported["after"]["defaults"]["quarantine_vlan"] == "999"
    assert "policy.import" in cli("audit").stdout


def test_verify_passes_on_an_untouched_trail(cli: Cli) -> None:
    assert "audit trail intact: 5 rows" in cli("audit", "verify").stdout


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE audit SET user = 'mallory' WHERE id = 2", "row 2: its contents do not match its hash"),
        ("UPDATE audit SET after = replace(after, 'reject', 'accept') WHERE id = 2", "row 2"),
        ("DELETE FROM audit WHERE id = 3", "row 4: its link to the row before is broken"),
        ("DELETE FROM audit WHERE id = 5", "the newest rows are missing"),
        (
            "INSERT INTO audit (id, time, user, action, subject, before, after, prev, hash)"
            " SELECT 6, time, user, action, subject, before, after, hash, hash FROM audit WHERE id = 5",
            "row 6: its contents do not match its hash",
        ),
    ],
)
def test_hand_edits_make_verify_fail(cli: Cli, sql: str, problem: str) -> None:
    conn = sqlite3.connect(cli.db)
    with conn:
        conn.execute(sql)
    conn.close()
    err = cli("audit", "verify", code=1).stderr
    assert "audit trail broken" in err
    assert problem in err


def test_rehashing_a_row_still_breaks_the_next_link(cli: Cli) -> None:
    """An editor who recomputes the edited row's hash breaks the following row's link."""
    from nac.policy.audit import row_hash

    conn = sqlite3.connect(cli.db)
    conn.row_factory = sqlite3.Row
    with conn:
        row = dict(conn.execute("SELECT * FROM audit WHERE id = 2").fetchone())
        row["user"] = "mallory"
        conn.execute(
            "UPDATE audit SET user = ?, hash = ? WHERE id = 2", ("mallory", row_hash(row["prev"], row))
        )
    conn.close()
    assert "row 3: its link to the row before is broken" in cli("audit", "verify", code=1).stderr


def test_audit_json_decodes_before_and_after(cli: Cli) -> None:
    rows = cli.json("audit")
    assert isinstance(rows[1]["after"], dict)
    assert json.dumps(rows)  # plain JSON all the way down
