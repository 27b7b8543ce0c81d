"""The `nac` command (CONTRACT.md): rules, check, history, vendors search, and tested help."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import nac.resources
from nac.app.facade import open_store
from nac.cli.main import app
from nac.history import tiers
from nac.history.record import HistoryRecord, record_row
from nac.policy.decide import Defaults
from nac.registry.oui import Registry, normalize_name
from nac.store import Store

CHECK_KEYS = {"mac", "randomized", "prefix", "prefix_bits", "vendor", "action", "vlan", "rule", "reason"}
HISTORY_KEYS = {"time", "mac", "vendor", "action", "vlan", "rule", "reason", "client", "nas_ip", "method"}
RULE_KEYS = {"id", "kind", "value", "action", "vlan", "reason"}


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> Iterator[None]:
    # Every command gets --db; nothing may fall back to ./nac.db or $NAC_DB.
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    # The bundled registry is parsed once per module rather than once per command (speed only:
    # it is the same data load_registry() returns).
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)
    yield
    assert not (tmp_path / "nac.db").exists(), "a command ignored --db"


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "test.db")
    open_store(path).close()  # what a first `nac serve` or `nac rules add` makes: readers make none
    return path


class Nac:
    """Runs `nac ...` in process with the test database."""

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
def nac_cli(db: str) -> Nac:
    return Nac(db)


# -- rules ----------------------------------------------------------------------------------------


def test_rules_list_empty_on_fresh_database(nac_cli: Nac) -> None:
    assert nac_cli.json("rules", "list") == []
    assert "no rules" in nac_cli("rules", "list").stdout


def test_rules_add_vendor_list_and_remove(nac_cli: Nac) -> None:
    out = nac_cli(
        "rules", "add", "--vendor", "huawei", "--action", "reject", "--reason", "ministry ban"
    ).stdout
    assert "added rule" in out
    rules = nac_cli.json("rules", "list")
    assert len(rules) == 1
    rule = rules[0]
    assert set(rule) >= RULE_KEYS
    assert (rule["kind"], rule["value"], rule["action"], rule["vlan"], rule["reason"]) == (
        "vendor",
        "huawei",
        "reject",
        None,
        "ministry ban",
    )
    assert rule["id"] in out
    assert rule["id"] in nac_cli("rules", "list").stdout
    removed = nac_cli("rules", "remove", rule["id"]).stdout
    assert rule["id"] in removed
    assert nac_cli.json("rules", "list") == []


def test_rules_add_keeps_order_and_ids(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "ban-huawei")
    nac_cli("rules", "add", "--randomized", "--action", "quarantine", "--vlan", "666", "--id", "random")
    nac_cli("rules", "add", "--mac", "0010.a423.19c0", "--action", "accept", "--id", "printer")
    rules = nac_cli.json("rules", "list")
    assert [(r["id"], r["kind"], r["value"]) for r in rules] == [
        ("ban-huawei", "vendor", "huawei"),
        ("random", "randomized", ""),
        ("printer", "mac", "00:10:a4:23:19:c0"),
    ]


def test_rules_add_duplicate_id_refused(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "r1")
    result = nac_cli("rules", "add", "--vendor", "zte", "--action", "reject", "--id", "r1", code=2)
    assert "r1" in result.stderr


OUIS = [
    # (spelling, canonical value, a MAC inside the block)
    ("00:E0:FC", "00:E0:FC", "00:e0:fc:00:00:01"),
    ("00e0fc", "00:E0:FC", "00-E0-FC-12-34-56"),
    ("00-E0-FC", "00:E0:FC", "00e0.fcff.ffff"),
    ("70-B3-D5-1", "70:B3:D5:1", "70:b3:d5:1f:00:00"),
    ("70B3D5123", "70:B3:D5:12:3", "70b3d5123abc"),
    ("70:B3:D5:00:10:00/36", "70:B3:D5:00:1", "70:b3:d5:00:1a:bc"),
]


@pytest.mark.parametrize(("spelling", "canonical", "mac"), OUIS)
def test_rules_add_oui_in_each_spelling(nac_cli: Nac, spelling: str, canonical: str, mac: str) -> None:
    nac_cli("rules", "add", "--oui", spelling, "--action", "reject", "--id", "block")
    [rule] = nac_cli.json("rules", "list")
    assert (rule["kind"], rule["value"]) == ("oui", canonical)
    result = nac_cli.json("check", mac)
    assert (result["action"], result["rule"]) == ("reject", "block")


@pytest.mark.parametrize("spelling", ["00e0f", "00e0fc12", "00:E0:FG", "70:B3:D5:12:31:00/36"])
def test_rules_add_bad_oui_refused(nac_cli: Nac, spelling: str) -> None:
    result = nac_cli("rules", "add", "--oui", spelling, "--action", "reject", code=2)
    assert spelling in result.stderr
    assert nac_cli.json("rules", "list") == []


@pytest.mark.parametrize(
    "spelling", ["00-10-A4-23-19-C0", "0010a42319c0", "0010.a423.19c0", "0010-a423-19c0"]
)
def test_rules_add_mac_is_an_exception_to_a_vendor_rule(nac_cli: Nac, spelling: str) -> None:
    nac_cli("rules", "add", "--oui", "00:10:A4", "--action", "reject", "--id", "ban-xircom")
    nac_cli("rules", "add", "--mac", spelling, "--action", "accept", "--id", "the-printer")
    assert nac_cli.json("check", "00:10:a4:23:19:c0")["rule"] == "the-printer"
    assert nac_cli.json("check", "00:10:a4:23:19:c1")["rule"] == "ban-xircom"


def test_rules_add_randomized(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--randomized", "--action", "quarantine", "--vlan", "guest", "--id", "rnd")
    result = nac_cli.json("check", "da:a1:19:01:02:03")
    assert (result["randomized"], result["vendor"], result["action"], result["vlan"], result["rule"]) == (
        True,
        None,
        "quarantine",
        "guest",
        "rnd",
    )


def test_rules_add_quarantine_without_vlan_refused(nac_cli: Nac) -> None:
    result = nac_cli("rules", "add", "--vendor", "huawei", "--action", "quarantine", code=2)
    assert "--vlan" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert nac_cli.json("rules", "list") == []


def test_rules_add_quarantine_with_vlan(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "quarantine", "--vlan", "666")
    assert nac_cli.json("check", "00:e0:fc:01:02:03")["vlan"] == "666"


def test_rules_add_quarantine_uses_default_quarantine_vlan(nac_cli: Nac, db: str) -> None:
    # CONTRACT.md: --vlan is required for quarantine "unless a default quarantine VLAN is configured".
    store = Store(db)
    try:
        store.set_policy(Defaults(quarantine_vlan="999"))
    finally:
        store.close()
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "quarantine", "--id", "q")
    result = nac_cli.json("check", "00:e0:fc:01:02:03")
    assert (result["action"], result["vlan"], result["rule"]) == ("quarantine", "999", "q")


@pytest.mark.parametrize("vlan", ["0", "4095", "bad vlan"])
def test_rules_add_bad_vlan_refused(nac_cli: Nac, vlan: str) -> None:
    result = nac_cli("rules", "add", "--vendor", "huawei", "--action", "quarantine", "--vlan", vlan, code=2)
    assert "VLAN" in result.stderr


def test_rules_add_reject_with_vlan_refused(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--vlan", "10", code=2)


def test_rules_add_unknown_vendor_refused(nac_cli: Nac) -> None:
    result = nac_cli("rules", "add", "--vendor", "nosuchvendorcorp", "--action", "reject", code=2)
    assert "nosuchvendorcorp" in result.stderr
    assert nac_cli.json("rules", "list") == []


@pytest.mark.parametrize(
    "args",
    [
        ("--action", "reject"),
        ("--vendor", "huawei", "--oui", "00e0fc", "--action", "reject"),
        ("--mac", "00:10:a4:23:19:c0", "--randomized", "--action", "reject"),
    ],
    ids=["no match", "two matches", "mac and randomized"],
)
def test_rules_add_needs_exactly_one_match(nac_cli: Nac, args: tuple[str, ...]) -> None:
    result = nac_cli("rules", "add", *args, code=2)
    assert "exactly one" in result.stderr


def test_rules_add_bad_action_refused(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "allow", code=2)


def test_rules_remove_unknown_exits_1(nac_cli: Nac) -> None:
    # nac/cli/main.py: "1 an operation failed (e.g. no such rule), 2 bad input".
    result = nac_cli("rules", "remove", "no-such-rule", code=1)
    assert "no-such-rule" in result.stderr


# -- bad MACs ------------------------------------------------------------------------------------

BAD_MACS = ["00:10:a4:23:19", "0:10:a4:23:19:c0", "0010a42319c", "0x0010a42319c0", "00:10:a4:23:19:c0x"]


@pytest.mark.parametrize("mac", BAD_MACS)
@pytest.mark.parametrize(
    "command",
    [
        ("check", "{mac}"),
        ("rules", "add", "--mac", "{mac}", "--action", "reject"),
        ("history", "--mac", "{mac}"),
    ],
    ids=["check", "rules add", "history"],
)
def test_bad_mac_is_refused_with_exit_2(nac_cli: Nac, mac: str, command: tuple[str, ...]) -> None:
    result = nac_cli(*(part.format(mac=mac) for part in command), code=2)
    assert mac in result.stderr
    assert "MAC" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- check ---------------------------------------------------------------------------------------


def test_check_json_keys_and_values(nac_cli: Nac) -> None:
    nac_cli(
        "rules", "add", "--vendor", "huawei", "--action", "reject", "--reason", "ministry ban", "--id", "hw"
    )
    nac_cli("rules", "add", "--oui", "70:B3:D5:00:1", "--action", "quarantine", "--vlan", "666", "--id", "sd")
    result = nac_cli.json("check", "00-E0-FC-12-34-56")
    assert set(result) >= CHECK_KEYS
    assert {k: result[k] for k in CHECK_KEYS} == {
        "mac": "00:e0:fc:12:34:56",
        "randomized": False,
        "prefix": "00:E0:FC",
        "prefix_bits": 24,
        "vendor": result["vendor"],
        "action": "reject",
        "vlan": None,
        "rule": "hw",
        "reason": "ministry ban",
    }
    assert normalize_name(result["vendor"]).startswith("huawei technologies")

    ma_s = nac_cli.json("check", "70b3.d500.1abc")
    assert {k: ma_s[k] for k in CHECK_KEYS} == {
        "mac": "70:b3:d5:00:1a:bc",
        "randomized": False,
        "prefix": "70:B3:D5:00:1",
        "prefix_bits": 36,
        "vendor": "SOREDI touch systems GmbH",
        "action": "quarantine",
        "vlan": "666",
        "rule": "sd",
        "reason": ma_s["reason"],
    }

    ma_m = nac_cli.json("check", "00:55:DA:1A:BC:DE")
    assert (ma_m["prefix"], ma_m["prefix_bits"], ma_m["vendor"]) == ("00:55:DA:1", 28, "KoolPOS Inc.")
    assert (ma_m["action"], ma_m["rule"]) == ("accept", "default")


def test_check_json_randomized(nac_cli: Nac) -> None:
    result = nac_cli.json("check", "02:e0:fc:12:34:56")
    assert {
        k: result[k] for k in ("mac", "randomized", "prefix", "prefix_bits", "vendor", "action", "vlan")
    } == {
        "mac": "02:e0:fc:12:34:56",
        "randomized": True,
        "prefix": None,
        "prefix_bits": None,
        "vendor": None,
        "action": "accept",
        "vlan": None,
    }


def test_check_json_multicast(nac_cli: Nac) -> None:
    result = nac_cli.json("check", "01:00:5e:00:00:01")
    assert (result["action"], result["rule"]) == ("reject", "builtin:multicast")


def test_check_text_output(nac_cli: Nac) -> None:
    nac_cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "hw")
    out = nac_cli("check", "00e0.fc12.3456").stdout
    assert "00:e0:fc:12:34:56" in out
    assert "reject" in out
    assert "hw" in out


# -- history -------------------------------------------------------------------------------------


def _record(ts: float, mac: str, action: str, *, vlan: str | None = None, vendor: str = "Xircom") -> Any:
    rule = {"accept": "default", "reject": "ban", "quarantine": "q"}[action]
    return record_row(
        HistoryRecord(
            ts=ts,
            mac=mac,
            vendor=vendor,
            prefix=mac[:8].upper(),
            prefix_bits=24,
            action=action,
            vlan=vlan,
            rule=rule,
            reason=f"{action} because",
            client="access-sw1",
            nas_ip="192.0.2.10",
            method="mab",
            user_name=mac,
            calling_station_id=mac,
            called_station_id=None,
            nas_port=1,
            nas_port_id="Gi1/0/1",
            nas_port_type="Ethernet",
            nas_identifier="sw1",
            src="192.0.2.10:50000",
            message_authenticator=1,
            reply=3 if action == "reject" else 2,
            snapshot="test@0",
        ),
        120,
    )


XIRCOM = "00:10:a4:23:19:c0"
HUAWEI = "00:e0:fc:12:34:56"
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@pytest.fixture
def history_db(db: str) -> dict[str, float]:
    """Four decisions at known ages; returns their timestamps by name."""
    now = time.time()
    stamps = {"a": now - MINUTE, "b": now - 3 * HOUR, "c": now - 3 * DAY, "d": now - 10 * DAY}
    store = Store(db)
    try:
        tiers.write_batch(store.conn, [
                _record(stamps["c"], XIRCOM, "quarantine", vlan="666"),
                _record(stamps["a"], XIRCOM, "accept"),
                _record(stamps["d"], HUAWEI, "reject", vendor="Huawei"),
                _record(stamps["b"], HUAWEI, "reject", vendor="Huawei"),
            ], ())
    finally:
        store.close()
    return stamps


def _which(rows: list[dict[str, Any]], stamps: dict[str, float]) -> str:
    """The names of the inserted decisions that ``rows`` are, in order (by their ISO time)."""
    names = []
    for row in rows:
        when = datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp()
        [name] = [name for name, ts in stamps.items() if 0 <= ts - when < 1]  # whole seconds
        names.append(name)
    return "".join(names)


def _iso(ts: float, *, zone: bool = True) -> str:
    text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z" if zone else text


HISTORY_QUERIES = [
    ((), "abcd"),
    (("--mac", "0010.a423.19c0"), "ac"),
    (("--mac", "00-10-A4-23-19-C0"), "ac"),
    (("--mac", "00E0FC123456"), "bd"),
    (("--mac", "0010a4-2319c1"), ""),
    (("--action", "reject"), "bd"),
    (("--action", "quarantine"), "c"),
    (("--action", "accept"), "a"),
    (("--since", "15m"), "a"),
    (("--since", "2h"), "a"),
    (("--since", "1d"), "ab"),
    (("--since", "7d"), "abc"),
    (("--since", "30d"), "abcd"),
    (("--mac", "0010a42319c0", "--action", "quarantine"), "c"),
    (("--action", "reject", "--since", "7d"), "b"),
    (("--limit", "1"), "a"),
    (("--limit", "3"), "abc"),
]


@pytest.mark.parametrize(("args", "expected"), HISTORY_QUERIES)
def test_history_json_filters(
    nac_cli: Nac, history_db: dict[str, float], args: tuple[str, ...], expected: str
) -> None:
    rows = nac_cli.json("history", *args)
    assert _which(rows, history_db) == expected
    for row in rows:
        assert set(row) >= HISTORY_KEYS


@pytest.mark.parametrize("zone", [True, False], ids=["Z", "naive means UTC"])
def test_history_since_iso_time(nac_cli: Nac, history_db: dict[str, float], zone: bool) -> None:
    since = _iso(history_db["c"] - HOUR, zone=zone)
    assert _which(nac_cli.json("history", "--since", since), history_db) == "abc"
    since = _iso(history_db["b"] - HOUR, zone=zone)
    assert _which(nac_cli.json("history", "--since", since), history_db) == "ab"


def test_history_row_fields(nac_cli: Nac, history_db: dict[str, float]) -> None:
    row = nac_cli.json("history", "--action", "quarantine")[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["time"]), row["time"]
    when = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
    assert 0 <= history_db["c"] - when.timestamp() < 1  # whole seconds, as every command prints times
    assert {k: row[k] for k in HISTORY_KEYS - {"time"}} == {
        "mac": XIRCOM,
        "vendor": "Xircom",
        "action": "quarantine",
        "vlan": "666",
        "rule": "q",
        "reason": "quarantine because",
        "client": "access-sw1",
        "nas_ip": "192.0.2.10",
        "method": "mab",
    }


def test_history_csv(nac_cli: Nac, history_db: dict[str, float]) -> None:
    out = nac_cli("history", "--csv", "--action", "reject").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert set(rows[0]) >= HISTORY_KEYS
    assert [r["mac"] for r in rows] == [HUAWEI, HUAWEI]
    assert _which(rows, history_db) == "bd"
    assert rows[0]["vlan"] == ""


def test_history_csv_empty_has_header(nac_cli: Nac) -> None:
    out = nac_cli("history", "--csv").stdout
    header = next(csv.reader(io.StringIO(out)))
    assert {"time", "mac", "action"} <= set(header)


def test_history_text(nac_cli: Nac, history_db: dict[str, float]) -> None:
    out = nac_cli("history", "--mac", HUAWEI).stdout
    assert out.count(HUAWEI) == 2
    assert XIRCOM not in out
    assert "no decisions" in nac_cli("history", "--action", "accept", "--since", "1s").stdout


def test_history_json_and_csv_exclude_each_other(nac_cli: Nac) -> None:
    nac_cli("history", "--json", "--csv", code=2)


def test_history_bad_since_is_bad_input_exit_2(nac_cli: Nac) -> None:
    # nac/cli/main.py: "2 bad input (a bad MAC, prefix, flag or file)".
    result = nac_cli("history", "--since", "yesterday", code=2)
    assert "yesterday" in result.stderr


# -- vendors -------------------------------------------------------------------------------------


def test_vendors_search_huawei_json(nac_cli: Nac) -> None:
    rows = nac_cli.json("vendors", "search", "huawei")
    prefixes: dict[str, int] = {}  # the registry spells some names several ways
    for row in rows:
        assert set(row) >= {"organization", "prefixes", "registries"}
        assert row["prefixes"] == sum(row["registries"].values()) > 0
        name = normalize_name(row["organization"])
        prefixes[name] = prefixes.get(name, 0) + row["prefixes"]
    assert prefixes["huawei technologies co ltd"] > 100
    assert prefixes["huawei device co ltd"] > 100
    assert len({r["organization"] for r in rows}) == len(rows)
    assert [r["prefixes"] for r in rows] == sorted((r["prefixes"] for r in rows), reverse=True)


def test_vendors_search_covers_what_a_vendor_rule_covers(nac_cli: Nac) -> None:
    rows = nac_cli.json("vendors", "search", "huawei")
    out = nac_cli("rules", "add", "--vendor", "huawei", "--action", "reject").stdout
    assert f"({sum(r['prefixes'] for r in rows)} registry prefixes)" in out


def test_vendors_search_text_and_no_match(nac_cli: Nac) -> None:
    assert "Huawei" in nac_cli("vendors", "search", "huawei").stdout
    assert nac_cli.json("vendors", "search", "nosuchvendorcorp") == []


# -- documentation: every command's help has an example ------------------------------------------


def _leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command that does something (groups only dispatch, unless, like `nac history`,
    they also run on their own), as its words after `nac`."""
    subcommands = getattr(command, "commands", None)  # a group (typer vendors its own click)
    if subcommands is None:
        return [path]
    out: list[tuple[str, ...]] = [path] if getattr(command, "invoke_without_command", False) else []
    for name, sub in subcommands.items():
        out.extend(_leaf_commands(sub, (*path, name)))
    return out


LEAVES = _leaf_commands(typer.main.get_command(app))


def test_cli_has_the_contract_commands() -> None:
    assert {
        ("serve",),
        ("rules", "add"),
        ("rules", "list"),
        ("rules", "remove"),
        ("check",),
        ("history",),
        ("vendors", "search"),
    } <= set(LEAVES)


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_cli_help_has_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert f"nac {' '.join(path)}" in result.stdout


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_cli_data_commands_take_db(path: tuple[str, ...]) -> None:
    if path in NO_DATABASE:
        pytest.skip(f"nac {' '.join(path)} reads and writes no data")
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert "--db" in result.stdout or (path == ("serve",) and "--config" in result.stdout)


#: Commands that touch no database (CONTRACT.md: "every command that reads or writes data").
NO_DATABASE = {("bench",), ("certs", "init")}


def test_python_m_nac_runs(db: str, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "nac", "check", "0010.a423.19c0", "--json", "--db", db],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mac"] == "00:10:a4:23:19:c0"
    bad = subprocess.run(
        [sys.executable, "-m", "nac", "check", "00:10:a4:23:19", "--db", db],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "00:10:a4:23:19" in bad.stderr
