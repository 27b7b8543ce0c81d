"""The README's commands are the ones that work (sqlite-utils' test_docs.py, in spirit)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nac.cli.main import app
from nac.registry.ieee import MAX_REMOVED_SHARE
from nac.registry.store import KEPT_SNAPSHOTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _first_screen() -> str:
    return "\n".join(README.splitlines()[:40])


def test_readme_first_screen_gives_the_two_fresh_machine_commands() -> None:
    screen = _first_screen()
    assert "pip install . && nac serve" in screen
    assert "bash .ci/run" in screen


def test_ci_runs_the_test_command_the_readme_names() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pytest -q" in README
    assert re.search(r"^python3 -m pytest -q$", ci, re.MULTILINE)
    assert "freeradius-utils" in ci  # radclient, for the interop tests


def _tour_commands() -> list[str]:
    block = README.split("## Ten-second tour", 1)[1].split("```", 2)[1]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line.startswith("nac ")]


def test_readme_tour_commands_run_in_order(tmp_path: Path) -> None:
    commands = _tour_commands()
    assert len(commands) >= 5
    db = tmp_path / "tour.db"
    for command in commands:
        argv = shlex.split(command)[1:]
        result = subprocess.run(
            [sys.executable, "-m", "nac", *argv, "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{command!r} failed: {result.stderr}"
    check = subprocess.run(
        [sys.executable, "-m", "nac", "check", "00e0fc112233", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"action": "reject"' in check.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["bench"],
        ["rules", "add"],
        ["rules", "list"],
        ["rules", "remove"],
        ["check"],
        ["history"],
        ["vendors", "search"],
        ["vendors", "lists"],
        ["vendors", "show-list"],
        ["oui", "import"],
        ["oui", "rollback"],
        ["oui", "status"],
    ],
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nac", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Example:" in result.stdout


def test_readme_says_where_the_registry_files_come_from_and_how_imports_are_undone() -> None:
    section = README.split("## Registry updates", 1)[1].split("\n## ", 1)[0]
    for url in (
        "https://standards-oui.ieee.org/oui/oui.csv",
        "https://standards-oui.ieee.org/oui28/mam.csv",
        "https://standards-oui.ieee.org/oui36/oui36.csv",
        "https://standards-oui.ieee.org/iab/iab.csv",
    ):
        assert url in section
    for command in ("nac oui import --dry-run", "nac oui import --replace", "nac oui rollback"):
        assert command in section


def test_oui_import_help_states_the_limit_and_the_flags() -> None:
    def help_text(*command: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "nac", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        return " ".join(result.stdout.split())

    text = help_text("oui", "import")
    assert f"more than {MAX_REMOVED_SHARE * 100:.0f} % of the entries" in text
    assert "--dry-run" in text
    assert "--replace" in text
    assert f"the last {KEPT_SNAPSHOTS} replaced snapshots are kept" in help_text("oui", "rollback")


def _command_paths() -> list[list[str]]:
    """Every command and group, as the words that run it (`rules list`)."""
    paths: list[list[str]] = []

    def walk(command: Any, words: list[str]) -> None:
        paths.append(words)
        for name, sub in getattr(command, "commands", {}).items():  # a group's subcommands
            walk(sub, [*words, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("command", _command_paths(), ids=lambda words: " ".join(words) or "nac")
def test_help_shows_flags_as_flags_and_keeps_brackets(command: list[str]) -> None:
    """`-h` works everywhere; a boolean option reads `--json`, never `--json <bool>` or
    `--json / --no-json`; help text is printed as written (no markup eating `[eap]`)."""
    result = CliRunner().invoke(app, [*command, "-h"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert "<bool>" not in result.stdout
    assert " / --no-" not in result.stdout
    assert "╭" not in result.stdout  # plain text, not rich panels


def test_help_text_keeps_square_brackets() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nac", "certs", "init", "-h"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "prints the [eap] section" in " ".join(out.split())


def test_version_is_the_package_version() -> None:
    for flag in ("--version", "-V"):
        out = subprocess.run(
            [sys.executable, "-m", "nac", flag], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert out == f"nac {version('nac')}\n"
