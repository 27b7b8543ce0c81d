"""The layout shows the architecture: each package imports only packages below it, and no
module grows past what one reader holds in mind.

Ranks, low to high: a module may import modules of its own rank or lower, never higher.  An
entry point (``__main__``) may import anything.  Imports under ``if TYPE_CHECKING:`` are types
only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NAC = Path(__file__).resolve().parent.parent / "nac"
#: Top-level modules and packages of nac, by rank.
RANKS = {
    # what everything may use
    "errors": 0, "isotime": 0, "tomlfile": 0, "render": 0, "dbfile": 0, "_speedups": 0, "_udp": 0,
    "registry": 1,  # MAC parsing, the IEEE registry, vendor families
    "radius": 2,  # the wire: codec, authenticators, accounting attributes, the CoA client
    "policy": 3,  # rules, precedence, policy files, the audit chain, simulation
    # the parts a decision is made of
    "sessions": 4, "history": 4, "eap": 4, "equipment": 4, "profiling": 4,
    "identity": 4,  # where 802.1X users come from besides nac's table: the directory (LDAP)
    "admission": 5,  # the decision core: a request in, a reply and a history record out
    "store": 6,  # the embedded database: rules, audit, registry; history and sessions beside them
    "resources": 7, "config": 7,
    "pg": 7,  # the rules on a shared PostgreSQL, and each server's side of it
    "serve": 8,  # the asyncio shell
    "app": 9, "helpdesk": 9,  # the library the CLI and the web page call
    "bench": 10,
    "cli": 11,
    "entry": 12,
}  # fmt: skip
#: Lines past which a module is split (about 600, with room for a docstring).
MAX_LINES = 620


def _name(path: Path) -> str:
    parts = path.relative_to(NAC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("nac."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "nac":
                names.update(f"nac.{a.name}" for a in node.names)
            elif node.module.startswith("nac."):
                names.add(node.module)
    return names


MODULES = sorted(p for p in NAC.rglob("*.py") if p.name != "__main__.py")


def test_every_top_level_part_has_a_rank() -> None:
    parts = {p.stem if p.parent == NAC else p.relative_to(NAC).parts[0] for p in MODULES}
    parts |= {p.stem for p in NAC.glob("*.c")}
    assert parts - {"__init__"} <= set(RANKS), sorted(parts - {"__init__"} - set(RANKS))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_a_module_imports_nothing_above_its_rank(path: Path) -> None:
    own = _name(path).split(".")[0]
    if not own:
        return  # nac/__init__.py
    upward = sorted(
        name for name in _imports(path) if RANKS.get(name.split(".")[1], -1) > RANKS[own]
    )
    assert not upward, f"nac/{_name(path)} ({own}, rank {RANKS[own]}) imports {upward}"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_grows_past_a_readable_size(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"nac/{_name(path)} has {lines} lines: split it along a seam"
