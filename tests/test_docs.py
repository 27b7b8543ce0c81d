"""The README's commands are the ones that work (sqlite-utils' test_docs.py, in spirit)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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
