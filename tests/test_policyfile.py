"""Policy files (issue 4): parse, check, import (all or nothing), export round trip, diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.cli.main import app
from nac.errors import PolicyError
from nac.policy.decide import Defaults, Rule
from nac.policy.file import dump_policy, parse_policy
from nac.registry.oui import Registry
from nac.store import Store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "policies").glob("**/*.toml"))
MINISTRY = ROOT / "policies" / "examples" / "ministry.toml"


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> None:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)


class Cli:
    def __init__(self, db: str) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, [*args, "--db", self.db])
        assert result.exit_code == code, (
            f"nac {' '.join(args)} exited {result.exit_code}, expected {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(str(tmp_path / "test.db"))


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- parsing ---------------------------------------------------------------------------------


def test_parse_every_key() -> None:
    defaults, rules = parse_policy(
        """
[defaults]
action = "reject"
quarantine_vlan = "999"
monitor = true

[groups]
site-a = ["sw1", "sw2"]

[[rule]]
id = "lab"
mac = "0010.a423.19c0"
action = "accept"
vlan = "10"
reason = "lab"
clients = ["site-a", "sw9"]
ssids = ["corp"]
port_type = "wired"
method = "mab"
mode = "enforce"
starts = 2026-05-01T00:00:00+02:00
expires = "2026-06-01"
""",
        origin="p.toml",
    )
    assert defaults == Defaults(
        action="reject", quarantine_vlan="999", monitor=True, groups={"site-a": ("sw1", "sw2")}
    )
    assert rules == [
        Rule(
            id="lab",
            kind="mac",
            value="00:10:a4:23:19:c0",
            action="accept",
            vlan="10",
            reason="lab",
            clients=("site-a", "sw9"),
            ssids=("corp",),
            port_type="wired",
            method="mab",
            mode="enforce",
            starts="2026-04-30T22:00:00Z",
            expires="2026-06-01T00:00:00Z",
        )
    ]


@pytest.mark.parametrize(
    ("rule", "line", "message"),
    [
        ('port_type = "copper"', 8, "rule r1: port_type must be one of wired, wireless"),
        ('method = "eap"', 8, "rule r1: method must be one of mab, dot1x"),
        ('mode = "audit"', 8, "rule r1: mode must be one of monitor, enforce"),
        ('expires = "next week"', 8, "rule r1 expires: 'next week' is not an ISO 8601 time"),
        ('clients = "sw1"', 8, "rule r1: must be a list of names"),
        ('colour = "red"', 8, "unknown setting"),
        ('vlan = "5000"', 8, "VLAN id 5000 is outside 1-4094"),
    ],
)
def test_parse_errors_name_file_line_and_rule(rule: str, line: int, message: str) -> None:
    head = '[defaults]\naction = "accept"\n\n[[rule]]\nid = "r1"\n'
    text = f'{head}mac = "00:10:a4:23:19:c0"\naction = "accept"\n{rule}\n'
    with pytest.raises(PolicyError) as excinfo:
        parse_policy(text, origin="site.toml")
    assert str(excinfo.value).startswith(f"site.toml, line {line}: [[rule]] #1")
    assert message in str(excinfo.value)


BROKEN = """[defaults]
action = "accept"
colour = "blue"

[[rule]]
id = "a"
vendor = "huawei"
action = "explode"

[[rule]]
id = "b"
oui = "zz:zz"
action = "reject"
bogus = 1

[[rule]]
id = "c"
mac = "00:11:22:33:44:55"
action = "quarantine"
vlan = "5000"

[[rule]]
id = "fine"
mac = "00:11:22:33:44:56"
action = "accept"

[[rule]]
id = "a"
mac = "00:11:22:33:44:57"
action = "accept"
"""
#: Every error in BROKEN: (line, where, message), in the file's order within each table.
BROKEN_ERRORS = [
    (3, "[defaults] colour", "unknown setting"),
    (8, "[[rule]] #1 action", "rule a: action must be one of accept, quarantine, reject"),
    (14, "[[rule]] #2 bogus", "rule b: unknown setting"),
    (12, "[[rule]] #2 oui", "rule b: 'zz:zz' is not a hexadecimal IEEE prefix"),
    (20, "[[rule]] #3 vlan", "rule c: VLAN id 5000 is outside 1-4094"),
    (28, "[[rule]] #5 id", "rule id 'a' is used twice"),
]


def test_parse_reports_every_error_at_once() -> None:
    with pytest.raises(PolicyError) as excinfo:
        parse_policy(BROKEN, origin="site.toml")
    lines = str(excinfo.value).splitlines()
    assert len(lines) == len(BROKEN_ERRORS), lines
    for got, (line, where, message) in zip(lines, BROKEN_ERRORS, strict=True):
        assert got.startswith(f"site.toml, line {line}: {where}: "), got
        assert message in got


def test_policy_check_prints_every_error_and_exits_2(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    result = cli("policy", "check", str(path), code=2)
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    assert len(errors) == len(BROKEN_ERRORS)
    for got, (line, where, _) in zip(errors, BROKEN_ERRORS, strict=True):
        assert got.startswith(f"nac: error: {path}, line {line}: {where}: "), got


def test_policy_check_lists_every_vendor_that_matches_nothing(cli: Cli, tmp_path: Path) -> None:
    text = '[[rule]]\nid = "x"\nvendor = "huaewi"\naction = "reject"\n\n'
    text += '[[rule]]\nid = "y"\nvendor = "dahau"\naction = "reject"\n'
    errors = cli("policy", "check", str(write(tmp_path, text)), code=2).stderr.splitlines()
    assert [e.split(": rule ")[1].split(":")[0] for e in errors] == ["x", "y"]
    assert all("matches no organisation" in e for e in errors)


def test_dump_parses_back_to_the_same_policy() -> None:
    defaults, rules = parse_policy(MINISTRY.read_text(), origin=str(MINISTRY))
    again = parse_policy(dump_policy(defaults, rules, header="x\ny"), origin="dump")
    assert again == (defaults, rules)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_policies_check(cli: Cli, path: Path) -> None:
    assert ": ok:" in cli("policy", "check", str(path)).stdout


# -- check, import, export, diff -------------------------------------------------------------


def test_check_reports_compile_errors_with_line_and_rule(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, '[[rule]]\nid = "q"\nvendor = "intel"\naction = "quarantine"\n')
    err = cli("policy", "check", str(path), code=2).stderr
    assert f"{path}, line 2: [[rule]] #1 id: rule q: quarantine needs a VLAN" in err
    path = write(tmp_path, '[[rule]]\nid = "typo"\nvendor = "huaewi"\naction = "reject"\n')
    assert (
        "rule typo: vendor 'huaewi' matches no organisation"
        in cli("policy", "check", str(path), code=2).stderr
    )


def test_import_export_round_trip(cli: Cli, tmp_path: Path) -> None:
    cli("policy", "import", str(MINISTRY))
    rules = cli.json("rules", "list")
    assert [r["id"] for r in rules] == [
        "ban-huawei",
        "quarantine-randomized-wired",
        "exempt-hq-videowall",
        "exempt-lab-router",
        "exempt-ups-controller",
    ]
    exported = tmp_path / "exported.toml"
    cli("policy", "export", str(exported))
    assert cli("policy", "export").stdout == exported.read_text()
    other = Cli(str(tmp_path / "other.db"))
    other("policy", "import", str(exported))
    strip = ("created", "created_by", "seq")
    assert [{k: v for k, v in r.items() if k not in strip} for r in other.json("rules", "list")] == [
        {k: v for k, v in r.items() if k not in strip} for r in rules
    ]
    store_a, store_b = Store(cli.db), Store(other.db)
    try:
        assert store_a.defaults() == store_b.defaults()
        assert store_a.rules() == store_b.rules()
    finally:
        store_a.close()
        store_b.close()
    diff = cli.json("policy", "diff", str(exported))
    assert (diff["added"], diff["removed"], diff["changed"], diff["defaults"]) == ([], [], [], {})


def test_import_of_a_broken_file_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    cli("policy", "import", str(MINISTRY))
    before = cli.json("rules", "list")
    store = Store(cli.db)
    version, audit_rows = store.rules_version(), len(store.audit_rows())
    store.close()
    good = MINISTRY.read_text()
    # Valid TOML and valid rules up to the very last one, which names an impossible VLAN.
    broken = write(
        tmp_path,
        good.replace('"ministry ban 2026-04"', '"new reason"')
        + ('\n[[rule]]\nid = "bad"\noui = "00:11:22"\naction = "accept"\nvlan = "4095"\n'),
    )
    err = cli("policy", "import", str(broken), code=2).stderr
    line = broken.read_text().splitlines().index('vlan = "4095"') + 1
    assert f"{broken}, line {line}: [[rule]] #6 vlan: rule bad: VLAN id 4095" in err
    assert cli.json("rules", "list") == before
    store = Store(cli.db)
    assert (store.rules_version(), len(store.audit_rows())) == (version, audit_rows)
    store.close()


def test_diff_shows_added_removed_changed(cli: Cli, tmp_path: Path) -> None:
    cli("policy", "import", str(MINISTRY))
    text = MINISTRY.read_text().replace(
        'reason = "ministry ban 2026-04"', 'reason = "ban 2026-05"\nmode = "monitor"'
    )
    start = text.index('[[rule]]\nid = "exempt-ups-controller"')
    text = text[:start] + '[[rule]]\nid = "ban-zte"\nvendor = "zte"\naction = "reject"\n'
    path = write(tmp_path, text)
    diff = cli.json("policy", "diff", str(path))
    assert [r["id"] for r in diff["added"]] == ["ban-zte"]
    assert [r["id"] for r in diff["removed"]] == ["exempt-ups-controller"]
    assert diff["changed"] == [
        {
            "id": "ban-huawei",
            "fields": {
                "reason": {"before": "ministry ban 2026-04", "after": "ban 2026-05"},
                "mode": {"before": None, "after": "monitor"},
            },
        }
    ]
    out = cli("policy", "diff", str(path)).stdout
    for line in ("+ ban-zte", "- exempt-ups-controller", "~ ban-huawei"):
        assert line in out
    assert "1 added, 1 removed, 1 changed, 3 unchanged" in out
    assert len(cli.json("rules", "list")) == 5  # diff changes nothing


def test_rules_add_scope_flags(cli: Cli) -> None:
    out = cli(
        "rules",
        "add",
        "--mac",
        "00:e0:fc:12:34:56",
        "--action",
        "accept",
        "--id",
        "exempt",
        "--mode",
        "monitor",
        "--starts",
        "2026-05-01T00:00Z",
        "--expires",
        "2126-06-01",  # a window that starts in the past and ends long after any test run
        "--client",
        "sw1",
        "--client",
        "site-b",
        "--ssid",
        "corp",
        "--port-type",
        "wired",
        "--method",
        "mab",
    ).stdout
    assert "added rule exempt" in out
    (rule,) = cli.json("rules", "list")
    assert {k: rule[k] for k in ("clients", "ssids", "port_type", "method", "mode", "starts", "expires")} == {
        "clients": ["sw1", "site-b"],
        "ssids": ["corp"],
        "port_type": "wired",
        "method": "mab",
        "mode": "monitor",
        "starts": "2026-05-01T00:00:00Z",
        "expires": "2126-06-01T00:00:00Z",
    }
    cli("rules", "add", "--mac", "00:e0:fc:12:34:57", "--action", "accept", "--port-type", "copper", code=2)
    cli("rules", "add", "--mac", "00:e0:fc:12:34:57", "--action", "accept", "--expires", "soon", code=2)
    cli("rules", "add", "--mac", "00:e0:fc:12:34:57", "--action", "accept", "--expires", "7d")
    assert cli.json("rules", "list")[1]["expires"].endswith("Z")
