"""The CLI's modules import one another one way: nac/cli/main.py assembles the command modules,
which share nac/cli/common.py and never import nac.cli; the server never loads the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import free_udp_ports, subprocess_env

NAC = Path(__file__).resolve().parent.parent / "nac"
#: What a server would hold for its whole life without using it: the CLI's parsers (typer,
#: click, pydantic, rich), and the TLS libraries that only 802.1X with an [eap] section needs.
SERVER_NEVER_LOADS = ("typer", "click", "pydantic", "pydantic_core", "rich", "OpenSSL", "cryptography")
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


def test_nac_serve_as_typed_loads_neither_typer_nor_tls_libraries(tmp_path: Path) -> None:
    """`nac serve` through the command's own entry point (nac/entry.py), up to where its event
    loop would start: the server is built, its sockets bound, and these were never imported."""
    auth, acct = free_udp_ports(2)
    argv = ["serve", "--db", str(tmp_path / "nac.db"), "--bind", "127.0.0.1"]
    argv += ["--auth-port", str(auth), "--acct-port", str(acct)]
    code = (
        "import json, sys\n"
        "from nac.serve.server import Server\n"
        "async def report(self):\n"
        "    print(json.dumps(sorted(sys.modules)))\n"
        "Server.serve = report\n"
        "from nac.entry import main\n"
        f"main({argv!r})\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        check=False,
    )
    assert run.returncode == 0, run.stderr
    modules = set(json.loads(run.stdout))
    assert {"nac.serve.server", "nac.admission.engine", "nac.registry.oui"} <= modules  # it got there
    assert not {m for m in modules if m.split(".")[0] in SERVER_NEVER_LOADS or m.startswith("nac.cli.main")}
