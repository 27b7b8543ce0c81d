"""Text rendering shared by the CLI and its typer-free fast path (`nac why`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

#: Text-table columns of decisions (`nac history`, `nac why`); --json and --csv have them all.
DECISION_COLUMNS: Final = (
    "time",
    "mac",
    "vendor",
    "action",
    "vlan",
    "rule",
    "client",
    "port",
    "ssid",
    "reason",
)
#: Widest vendor name a text table shows before cutting it (--json has it whole).
VENDOR_WIDTH: Final = 28
_CONTROL: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def iso_time(value: float | str | None) -> str | None:
    """The one spelling of a time in nac's output, text or JSON: ISO 8601 in UTC, whole
    seconds, ``Z`` (``2026-12-06T10:00:00Z``).  Takes a Unix time, or an ISO 8601 string of
    any precision or offset as the database keeps them; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value  # not a time after all: shown as it is, never dropped
        value = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return datetime.fromtimestamp(int(value // 1), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def printable(text: object) -> str:
    """``text`` with control characters escaped (a User-Name may carry terminal escapes)."""
    return "" if text is None else str(text).translate(_CONTROL)


def decision_cells(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for row in rows:
        cells = {c: printable(row.get(c)) for c in DECISION_COLUMNS}
        if len(cells["vendor"]) > VENDOR_WIDTH:
            cells["vendor"] = cells["vendor"][: VENDOR_WIDTH - 1] + "…"
        out.append(cells)
    return out


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """Aligned columns with an upper-case header, one string per line."""
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


@dataclass(frozen=True, kw_only=True)
class Record(Mapping[str, Any]):
    """Base of the typed results the CLI and the web page render.  ``to_json()`` is the JSON
    object ``--json`` prints: the fields in declared order, nested records converted.  A record
    also reads as that object (``row["id"]``, ``{**row}``), so tables and templates that take
    mappings take records too."""

    #: JSON keys that cannot be field names (``from``), by field.
    json_keys: ClassVar[Mapping[str, str]] = {}

    def to_json(self) -> dict[str, Any]:
        return {self.json_keys.get(f.name, f.name): plain(getattr(self, f.name)) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        for f in fields(self):  # fields(), not __dataclass_fields__: that holds json_keys too
            if self.json_keys.get(f.name, f.name) == key:
                return getattr(self, f.name)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (self.json_keys.get(f.name, f.name) for f in fields(self))

    def __len__(self) -> int:
        return len(fields(self))


def plain(value: object) -> Any:
    """``value`` with every :class:`Record` in it turned into its JSON object."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def json_default(value: object) -> Any:
    """``json.dumps``'s ``default``: a record is written as its JSON object."""
    if isinstance(value, Record):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(data: object, *, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False, default=json_default)


def why_text(report: Mapping[str, Any]) -> list[str]:
    """`nac why` in plain words, then its latest decisions as a table."""
    lines = [printable(line) for line in report["lines"]]
    if report["decisions"]:
        lines += ["", "Latest decisions:", *table(decision_cells(report["decisions"]), DECISION_COLUMNS)]
    return lines
