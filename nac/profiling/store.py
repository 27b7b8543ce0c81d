"""Device profiles in the database: one row per MAC, what identified it, and when.

Written by the server (its DHCP listener, its accounting) and read by every process: the
server keeps the MAC -> family map in memory and polls ``version`` for rows that other
processes (workers) wrote, as it polls the rules.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from nac.profiling.signatures import Evidence, Identity
from nac.registry.mac import format_mac

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS profiles (
    mac TEXT PRIMARY KEY,           -- canonical, as history stores it
    family TEXT,                    -- NULL: signals seen, no manufacturer decided
    source TEXT NOT NULL,           -- dhcp, accounting
    evidence TEXT NOT NULL,         -- JSON: the matched signatures
    fields TEXT NOT NULL,           -- JSON: the last identifying fields seen
    ambiguous INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    version INTEGER NOT NULL        -- rises with every change, for other processes to poll
);
CREATE INDEX IF NOT EXISTS profiles_version ON profiles (version);
"""
#: Seconds between two writes of an unchanged profile (its last_seen): a device renewing its
#: lease, or a flood of copies of one message, costs no write per packet.
TOUCH_INTERVAL: Final = 60.0


@dataclass(frozen=True, kw_only=True)
class Profile:
    mac: int
    family: str | None
    source: str
    evidence: tuple[Evidence, ...]
    fields: dict[str, str]
    ambiguous: bool = False
    first_seen: float
    last_seen: float

    def row(self) -> dict[str, Any]:
        """As `nac profile --json` shows it (evidence and fields as objects)."""
        return {
            "mac": format_mac(self.mac),
            "family": self.family,
            "source": self.source,
            "evidence": [evidence_row(e) for e in self.evidence],
            "fields": self.fields,
            "ambiguous": self.ambiguous,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def record(
    conn: sqlite3.Connection,
    *,
    mac: int,
    identity: Identity,
    fields: dict[str, str],
    source: str,
    now: float,
) -> tuple[Profile | None, Profile | None]:
    """Store what a message said about ``mac``: (the profile before, the profile after).

    A message that adds nothing (same family, evidence and fields, seen within
    TOUCH_INTERVAL) writes nothing and returns (before, before).  The caller commits.
    """
    before = get(conn, mac)
    evidence = identity.evidence
    if before is not None and not evidence and before.evidence:
        # A message without identifying fields (a renewal) keeps what earlier ones proved.
        evidence, family, ambiguous = before.evidence, before.family, before.ambiguous
        fields = {**before.fields, **fields}
    else:
        family, ambiguous = identity.family, identity.ambiguous
    same = (
        before is not None
        and (before.family, before.evidence, before.fields, before.ambiguous)
        == (family, evidence, fields, ambiguous)
    )
    if same and before is not None and now - before.last_seen < TOUCH_INTERVAL:
        return before, before
    after = Profile(
        mac=mac,
        family=family,
        source=source,
        evidence=evidence,
        fields=fields,
        ambiguous=ambiguous,
        first_seen=before.first_seen if before is not None else now,
        last_seen=now,
    )
    conn.execute(
        "INSERT INTO profiles (mac, family, source, evidence, fields, ambiguous, first_seen, last_seen,"
        " version) VALUES (:mac, :family, :source, :evidence, :fields, :ambiguous, :first_seen,"
        " :last_seen, (SELECT COALESCE(MAX(version), 0) + 1 FROM profiles))"
        " ON CONFLICT (mac) DO UPDATE SET family = excluded.family, source = excluded.source,"
        " evidence = excluded.evidence, fields = excluded.fields, ambiguous = excluded.ambiguous,"
        " last_seen = excluded.last_seen, version = excluded.version",
        {
            "mac": format_mac(mac),
            "family": family,
            "source": source,
            "evidence": json.dumps([evidence_row(e) for e in evidence]),
            "fields": json.dumps(fields, sort_keys=True),
            "ambiguous": int(ambiguous),
            "first_seen": after.first_seen,
            "last_seen": now,
        },
    )
    return before, after


def get(conn: sqlite3.Connection, mac: int) -> Profile | None:
    row = conn.execute(
        "SELECT mac, family, source, evidence, fields, ambiguous, first_seen, last_seen"
        " FROM profiles WHERE mac = ?",
        (format_mac(mac),),
    ).fetchone()
    return _profile(row) if row is not None else None


def families_since(conn: sqlite3.Connection, version: int) -> tuple[dict[int, str | None], int]:
    """MAC -> family for every profile changed after ``version``, and the newest version."""
    rows = conn.execute(
        "SELECT mac, family, version FROM profiles WHERE version > ? ORDER BY version", (version,)
    ).fetchall()
    found = {int(mac.replace(":", ""), 16): family for mac, family, _ in rows}
    return found, max((v for _, _, v in rows), default=version)


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Profiled devices per family (`nac stats`)."""
    rows = conn.execute(
        "SELECT COALESCE(family, ''), COUNT(*) FROM profiles GROUP BY family ORDER BY COUNT(*) DESC"
    ).fetchall()
    return {family or "(undecided)": n for family, n in rows}


def _profile(row: Iterable[Any]) -> Profile:
    mac, family, source, evidence, fields, ambiguous, first_seen, last_seen = row
    return Profile(
        mac=int(mac.replace(":", ""), 16),
        family=family,
        source=source,
        evidence=tuple(Evidence(**e) for e in json.loads(evidence)),
        fields=json.loads(fields),
        ambiguous=bool(ambiguous),
        first_seen=first_seen,
        last_seen=last_seen,
    )


def evidence_row(e: Evidence) -> dict[str, str]:
    return {
        "field": e.field,
        "value": e.value,
        "family": e.family,
        "strength": e.strength,
        "pattern": e.pattern,
        "note": e.note,
    }
