"""ISO 8601 times for rules' validity windows, and spans (``15m``, ``7d``) for the CLI and the
config: parsed and spelled by hand, with no clock.

The policy core may not read the clock (tests/test_core_purity.py); these functions only do
calendar arithmetic on what they are given.
"""

from __future__ import annotations

import re
from typing import Final

from nac.errors import PolicyError

_ISO_TIME_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SPAN_RE: Final = re.compile(r"(\d+)\s*([smhdw])")
_SPAN_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: object, *, where: str) -> float:
    """An ISO 8601 time (``2026-05-01``, ``2026-05-01T09:00``, ``...:00Z``, ``...+02:00``;
    no offset means UTC) as epoch seconds.  Calendar arithmetic by hand: the core imports no
    ``datetime``, so it cannot read the clock (tests/test_core_purity.py)."""
    match = _ISO_TIME_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise PolicyError(f"{where}: {value!r} is not an ISO 8601 time (2026-05-01T00:00Z)")
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = (int(match[i] or 0) for i in (4, 5, 6))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days_in_month = _DAYS_IN_MONTH[month - 1] + (month == 2 and leap) if 1 <= month <= 12 else 0
    if not (1 <= day <= days_in_month and hour < 24 and minute < 60 and second < 60):
        raise PolicyError(f"{where}: {value!r} is not a valid date and time")
    ts = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if match[7]:
        ts += int(match[7]) / 10 ** len(match[7])
    if match[9]:
        offset = int(match[10]) * 3600 + int(match[11]) * 60
        ts -= offset if match[9] == "+" else -offset
    return float(ts)


def format_time(ts: float) -> str:
    """The canonical spelling of a rule's ``starts``/``expires``: UTC, whole seconds, ``Z``."""
    days, rest = divmod(int(ts), 86400)
    year, month, day = _civil_from_days(days)
    return f"{year:04d}-{month:02d}-{day:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def canonical_time(value: object, *, where: str) -> str:
    return format_time(parse_time(value, where=where))


def span_seconds(text: str) -> int | None:
    """The seconds in a span such as ``90d``, ``2h``, ``15m`` (``0m`` is 0), or None if ``text``
    is not one (it may be a time instead)."""
    match = _SPAN_RE.fullmatch(text.strip())
    return int(match[1]) * _SPAN_UNITS[match[2]] if match else None


def parse_span(text: str) -> int:
    """A span such as ``90d``, ``2h``, ``15m`` in seconds (bad input: :class:`PolicyError`)."""
    seconds = span_seconds(text)
    if not seconds:
        raise PolicyError(f"{text!r} is not a span: use a number and s, m, h, d or w (15m, 2h, 90d)")
    return seconds
