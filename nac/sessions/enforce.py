"""Enforcement on change: when the rules change the decision for a device that is on the
network now, tell its NAS (RFC 5176) instead of waiting for its next authentication.

A rejected device is disconnected; a device whose VLAN or admission changes otherwise is asked
to re-authorize.  The jobs go to the same queue as `nac disconnect` / `nac reauth`; the
server, which holds the NAS secrets, sends them at a bounded rate per NAS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import sqlite3

    from nac.policy.decide import Decision, Policy

#: What a rule change does to devices on the network: act at once, or at their next
#: authentication.  The CLI adds its interactive "ask" on top of these.
APPLY_MODES: Final = ("now", "next")


@dataclass(frozen=True)
class Change:
    mac: str
    client: str
    before: Decision
    after: Decision

    @property
    def kind(self) -> str:
        return "disconnect" if self.after.action == "reject" else "reauth"


def changes(conn: sqlite3.Connection, before: Policy, after: Policy, *, now: float) -> list[Change]:
    """Active sessions whose device the new rules treat differently (action or VLAN)."""
    from nac.sessions import store as session_store  # noqa: PLC0415

    return changes_in(session_store.query(conn, active=True), before, after, now=now)


def changes_in(
    sessions: Iterable[Mapping[str, Any]], before: Policy, after: Policy, *, now: float
) -> list[Change]:
    """:func:`changes` over given active ``sessions`` (every server's, on PostgreSQL)."""
    # Imported here so that the CLI reads APPLY_MODES without loading the policy engine.
    from nac.policy.decide import Context  # noqa: PLC0415
    from nac.registry.mac import parse_mac  # noqa: PLC0415

    out = []
    seen: set[tuple[str, str]] = set()
    for row in sessions:
        mac_text = row["mac"]
        if mac_text is None or (mac_text, row["client"]) in seen:
            continue
        seen.add((mac_text, row["client"]))
        mac = parse_mac(mac_text)
        # Accounting does not say how the device authenticated; scoped rules see the NAS,
        # the SSID and the time.
        ctx = Context(row["client"], row["called_station_id"], None, None, now)
        old, _ = before.decide(mac, ctx)
        new, _ = after.decide(mac, ctx)
        if (old.action, old.vlan) != (new.action, new.vlan):
            out.append(Change(mac_text, row["client"], old, new))
    return out


def enforce(
    conn: sqlite3.Connection, before: Policy, after: Policy, *, reason: str, requested_by: str, now: float
) -> list[tuple[Change, list[int]]]:
    """Queue a Disconnect or re-authorize for every session the change affects."""
    from nac.sessions import store as session_store  # noqa: PLC0415

    queued = []
    for change in changes(conn, before, after, now=now):
        ids = session_store.request_action(
            conn,
            mac=change.mac,
            kind=change.kind,
            reason=reason,
            requested_by=requested_by,
            now=now,
            vlan_change=change.before.vlan != change.after.vlan,
        )
        queued.append((change, ids))
    return queued
