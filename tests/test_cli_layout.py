"""The CLI's modules import one another one way: nac/cli/main.py assembles the command modules,
which share nac/cli/common.py and never import nac.cli; the server never loads the CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

NAC = Path(__file__).resolve().parent.parent / "nac"
COMMAND_MODULES = sorted(p for p in (NAC / "cli").glob("*.py") if p.stem not in ("__init__", "main"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.name)
def test_command_module_does_not_import_nac_cli(path: Path) -> None:
    assert "nac.cli.main" not in _imported(path)


def test_every_command_module_is_found() -> None:
    assert {"common.py", "helpdesk.py", "policy.py"} <= {p.name for p in COMMAND_MODULES}


def test_server_assembly_imports_no_cli_module_even_lazily() -> None:
    imported = _imported(NAC / "serve" / "run.py")
    assert not {name for name in imported if name == "nac.cli" or name.startswith(("nac.cli.", "typer"))}


def test_server_assembly_loads_neither_the_cli_nor_typer() -> None:
    code = (
        "import sys, nac.serve.run\n"
        "cli = ('typer', 'nac.cli', 'nac.entry')\n"
        "print(sorted(m for m in sys.modules if m in cli or m.startswith('nac.cli.')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=NAC.parent
    )
    assert run.stdout.strip() == "[]"
