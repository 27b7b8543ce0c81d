"""`nac why` answers from a fast path without typer: same words, same exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nac.cli.main import app
from nac.entry import main
from nac.store import Store
from tests.interop import subprocess_env


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "nac.db"
    add = ["rules", "add", "--vendor", "huawei", "--action", "reject", "--db", str(path)]
    subprocess.run(
        [sys.executable, "-m", "nac", *add], check=True, capture_output=True, env=subprocess_env(), timeout=60
    )
    store = Store(path)
    store.close()
    return str(path)


@pytest.mark.parametrize("extra", [[], ["--json"], ["--latest", "2"]])
def test_fast_path_prints_what_the_typer_command_prints(db: str, extra: list[str]) -> None:
    args = ["why", "00-E0-FC-00-00-01", *extra, "--db", db]
    fast = subprocess.run(
        [sys.executable, "-m", "nac", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    typer_result = CliRunner().invoke(app, args)
    assert fast.returncode == typer_result.exit_code == 0
    assert fast.stdout == typer_result.stdout
    assert "reject" in fast.stdout


def test_fast_path_refuses_a_bad_mac_with_exit_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["why", "00:11:22:33:44:5", "--db", db])
    assert exc.value.code == 2
    assert "is not a MAC address" in capsys.readouterr().err


def test_why_help_still_comes_from_typer(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["why", "--help"])
    assert exc.value.code == 0
    assert "Example: nac why" in capsys.readouterr().out
