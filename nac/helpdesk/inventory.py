"""Inventory audit: what the current rules decide for a list of MACs (`nac check -`).

Pure: lines in, one result per input line out.  The input is one MAC per line, or a CSV whose
header names a MAC column (``mac``, ``mac_address``, ``Calling-Station-Id``: an export from a
switch, an asset database or nac's own history).  A line that is not a MAC gives an error
result and the run goes on: an operator auditing 50,000 devices wants every answer at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any, Final

from nac.policy.decide import Context, Policy
from nac.registry.mac import LOCAL_BIT, format_mac, try_parse_mac

#: Header names (compared case-insensitively) that mark a CSV's MAC column, in preference order.
MAC_COLUMNS: Final = ("mac", "mac_address", "calling-station-id")
FIELDS: Final = (
    "line",
    "input",
    "mac",
    "vendor",
    "prefix",
    "prefix_bits",
    "randomized",
    "action",
    "vlan",
    "rule",
    "reason",
    "error",
)


def mac_column(header: str) -> int | None:
    """The index of the MAC column if ``header`` is a CSV header naming one, else ``None``."""
    cells = [cell.strip().lstrip("\ufeff").lower() for cell in next(csv.reader([header]), [])]
    for name in MAC_COLUMNS:
        if name in cells:
            return cells.index(name)
    return None


def _values(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(line number, MAC text)`` per input line that holds a value."""
    it = iter(lines)
    first = next(it, None)
    if first is None:
        return
    column = mac_column(first)
    if column is None:
        for number, line in enumerate(chain([first], it), 1):
            text = line.strip().lstrip("\ufeff")
            if text:
                yield number, text
        return
    reader = csv.reader(it)
    for row in reader:
        text = row[column].strip() if column < len(row) else ""
        if text or any(cell.strip() for cell in row):
            # +1: the header line was read before the reader started counting.
            yield reader.line_num + 1, text


def _decider(policy: Policy, now: float | None) -> Callable[[int], tuple[Any, Any]]:
    """Decide as of ``now``: time-limited rules apply, scoped ones cannot (an inventory line
    has no NAS, SSID or port), as `nac check MAC` does."""
    if not policy.contextual or now is None:
        return policy.decide
    context = Context(now=now)
    return lambda mac: policy.decide(mac, context)


def _decide(
    policy: Policy, lines: Iterable[str], now: float | None = None
) -> Iterator[tuple[int, str, int | None, Any, Any]]:
    """``(line, text, mac or None, registry match, decision)`` per value in ``lines``."""
    decide = _decider(policy, now)
    for number, text in _values(lines):
        mac = try_parse_mac(text)
        if mac is None:
            yield number, text, None, None, None
        else:
            decision, match = decide(mac)
            yield number, text, mac, match, decision


def _error(text: str) -> str:
    return f"{text!r} is not a MAC address"


def check_lines(policy: Policy, lines: Iterable[str], now: float | None = None) -> Iterator[dict[str, Any]]:
    """One result per MAC in ``lines`` (keys: :data:`FIELDS`); ``error`` is set for a line
    that is not a MAC, and the decision fields are then ``None``."""
    for number, text, mac, match, decision in _decide(policy, lines, now):
        if mac is None:
            yield {
                "line": number,
                "input": text,
                "mac": None,
                "vendor": None,
                "prefix": None,
                "prefix_bits": None,
                "randomized": None,
                "action": None,
                "vlan": None,
                "rule": None,
                "reason": None,
                "error": _error(text),
            }
            continue
        yield {
            "line": number,
            "input": text,
            "mac": format_mac(mac),
            "vendor": match.organization if match else None,
            "prefix": match.prefix_text if match else None,
            "prefix_bits": match.prefix_bits if match else None,
            "randomized": bool(mac & LOCAL_BIT),
            "action": decision.action,
            "vlan": decision.vlan,
            "rule": decision.rule,
            "reason": decision.reason,
            "error": None,
        }


def csv_lines(policy: Policy, lines: Iterable[str], now: float | None = None) -> Iterator[tuple[str, bool]]:
    """The same results as CSV text, header first (booleans as ``true``/``false``), each with
    whether it is a result for a valid MAC (False for an error row).

    An inventory has few distinct (registry block, decision) pairs, so the quoted columns of
    each pair are rendered once and reused: 100,000 MACs print in well under a second.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def render(row: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield render(FIELDS), True
    tails: dict[tuple[int, int, bool], str] = {}
    decide = _decider(policy, now)
    for number, text in _values(lines):
        mac = try_parse_mac(text)
        if mac is None:
            yield render((number, text, *([""] * (len(FIELDS) - 3)), _error(text))), False
            continue
        decision, match = decide(mac)
        randomized = bool(mac & LOCAL_BIT)
        key = (id(match), id(decision), randomized)
        tail = tails.get(key)
        if tail is None:
            tail = tails[key] = render(
                (
                    match.organization if match else "",
                    match.prefix_text if match else "",
                    match.prefix_bits if match else "",
                    "true" if randomized else "false",
                    decision.action,
                    decision.vlan or "",
                    decision.rule,
                    decision.reason,
                    "",
                )
            )
        # A MAC that parsed holds only hex digits and separators: nothing to quote.
        yield f"{number},{text},{format_mac(mac)},{tail}", True
