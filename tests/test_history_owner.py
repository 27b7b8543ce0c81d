"""History has one owner, nac/history/: the asyncio shell and the rest of nac go through its
writer and reader, and the rules its comments state hold."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nac import dbfile
from nac.history import indexer

NAC = Path(__file__).resolve().parent.parent / "nac"
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|DROP|ALTER|BEGIN|VACUUM)\b", re.IGNORECASE)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_server_issues_no_sql_and_imports_neither_sqlite3_nor_the_tiers() -> None:
    path = NAC / "serve" / "server.py"
    imported = _imports(path)
    assert "sqlite3" not in imported
    assert not {name for name in imported if name.startswith(("nac.history.indexer", "nac.history.tiers"))}
    strings = [
        node.value
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    assert not [s for s in strings if SQL.match(s)], "SQL in nac/serve/server.py"


def test_only_the_history_package_syncs_the_recent_tier_or_touches_its_tables() -> None:
    """Readers go through nac/history/reader.py, which syncs before every query: no module
    elsewhere calls sync_recent or names the tiers' own tables."""
    outside = [
        path
        for path in NAC.rglob("*.py")
        if "history" not in path.relative_to(NAC).parts
        and re.search(r"sync_recent|recent\.history_batches|temp\.recent_history", path.read_text("utf-8"))
    ]
    assert outside == []


def test_the_wal_marks_rise_below_the_journal_size_limit() -> None:
    """A group commit never truncates a WAL: the event loop rewinds the recent tier's before it
    reaches the size SQLite truncates at (nac/history/indexer.py checks this at import too)."""
    assert indexer.WAL_TAIL < indexer.WAL_HIGH < indexer.WAL_HARD < dbfile.WAL_SIZE_LIMIT
