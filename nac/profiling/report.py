"""What `nac profile` shows: one device's profile beside its registry entry, and the
signatures in force.  Reads only; a database that has never profiled anything has no table,
which reads as "no profile"."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nac.policy.decide import Policy
from nac.profiling import store
from nac.profiling.signatures import Signature
from nac.registry.families import Family
from nac.registry.mac import LOCAL_BIT, format_mac
from nac.registry.oui import Registry
from nac.render import Record, iso_time


@dataclass(frozen=True, kw_only=True)
class ProfileReport(Record):
    """`nac profile MAC`: what DHCP and the switches said of the device (None and empty when
    nothing was seen), beside its OUI's maker, and whether the two disagree (a spoof suspected)."""

    mac: str
    vendor: str | None
    family: str | None
    source: str | None
    evidence: list[dict[str, str]]
    fields: dict[str, str]
    first_seen: str | None
    last_seen: str | None
    ambiguous: bool
    oui_vendor: str | None
    conflict: bool


def profile_row(
    conn: sqlite3.Connection, mac: int, *, registry: Registry, policy: Policy, families: Mapping[str, Family]
) -> ProfileReport:
    """``nac profile MAC --json``: the keys are fixed (``mac``, ``vendor``, ``family``,
    ``source``, ``evidence``, ``first_seen``, ``last_seen``, ``conflict``) and null when no
    profile exists."""
    try:
        found = store.get(conn, mac)
    except sqlite3.OperationalError:  # no profiles table: profiling never ran on this database
        found = None
    match = None if mac & LOCAL_BIT else registry.lookup(mac)
    family = found.family if found is not None else None
    known = families.get(family) if family is not None else None
    return ProfileReport(
        mac=format_mac(mac),
        vendor=(known.name if known is not None else family) if family is not None else None,
        family=family,
        source=found.source if found is not None else None,
        evidence=[store.evidence_row(e) for e in found.evidence] if found is not None else [],
        fields=found.fields if found is not None else {},
        first_seen=iso_time(found.first_seen) if found is not None else None,
        last_seen=iso_time(found.last_seen) if found is not None else None,
        ambiguous=found.ambiguous if found is not None else False,
        oui_vendor=match.organization if match is not None else None,
        conflict=policy.spoofed(match, family),
    )


def signature_rows(signatures: Iterable[Signature]) -> list[dict[str, str]]:
    """`nac profile signatures --json`."""
    return [
        {
            "family": s.family,
            "field": s.field,
            "pattern": s.pattern,
            "strength": s.strength,
            "note": s.note,
            "origin": s.origin,
        }
        for s in signatures
    ]
