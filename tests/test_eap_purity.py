"""The EAP protocol modules are core too (STYLE.md): no I/O, no clock, randomness injected.

tests/test_core_purity.py follows nac's flat modules; this applies its rules to nac/eap/,
except config.py (reads certificate files), users.py and groups.py (the database) and certs.py (writes files),
which belong to the shell.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_core_purity import FORBIDDEN_CALLS, FORBIDDEN_MODULES

EAP = Path(__file__).resolve().parent.parent / "nac" / "eap"
CORE = ["eap", "limits", "method", "tls", "peap", "ttls", "mschapv2", "md4", "keys", "profiles"]
SHELL = {"nac.eap.config", "nac.eap.users", "nac.eap.certs"}


def _tree(module: str) -> ast.Module:
    return ast.parse((EAP / f"{module}.py").read_text(encoding="utf-8"))


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", CORE)
def test_eap_core_module_imports_no_io(module: str) -> None:
    names = _imports(_tree(module))
    bad = sorted(
        n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_MODULES) or n in SHELL
    )
    assert not bad, f"nac/eap/{module}.py imports {bad}"


@pytest.mark.parametrize("module", CORE)
def test_eap_core_module_calls_no_io_builtins(module: str) -> None:
    calls = {
        node.func.id
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & FORBIDDEN_CALLS, f"nac/eap/{module}.py calls {sorted(calls & FORBIDDEN_CALLS)}"


@pytest.mark.parametrize("module", CORE)
def test_eap_core_module_uses_os_only_for_urandom(module: str) -> None:
    uses = {
        node.attr
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
    }
    assert uses <= {"urandom"}, f"nac/eap/{module}.py uses os.{sorted(uses - {'urandom'})}"
