"""Positions in TOML files, for error messages that name the file, line and setting."""

from __future__ import annotations

import re
from typing import Final

#: Tables written as arrays (``[[client]]``, ``[[rule]]``): messages number them.
ARRAY_TABLES: Final = frozenset({"client", "rule"})


class Locator:
    """Finds the line of ``key`` in table ``[name]`` (or the n-th ``[[name]]``) of a TOML text."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def where(self, table: str, key: str | None = None, index: int = 0) -> str:
        header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
        any_header = re.compile(r"^\s*\[")
        seen = -1
        inside = False
        found = 0
        for lineno, line in enumerate(self.lines, 1):
            if header.match(line):
                seen += 1
                inside = seen == index
                if inside:
                    found = lineno
                continue
            if any_header.match(line):
                inside = False
                continue
            if inside and key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                found = lineno
                break
        setting = f"[{table}]" if table not in ARRAY_TABLES else f"[[{table}]] #{index + 1}"
        if key:
            setting += f" {key}"
        return f"{self.path}, line {found}: {setting}" if found else f"{self.path}: {setting}"
