"""The sessions table: applied from accounting events inside the server's group commit."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from nac.radius.accounting import STALE_AFTER, SessionEvent

#: The server's logger: housekeeping runs from the server's tick.
log = logging.getLogger("nac.server")

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    nas_ip TEXT NOT NULL,
    session_id TEXT NOT NULL,
    nas_identifier TEXT,
    mac TEXT,
    user_name TEXT,
    nas_port INTEGER,
    nas_port_id TEXT,
    called_station_id TEXT,
    calling_station_id TEXT,
    framed_ip TEXT,
    vlan TEXT,
    status TEXT NOT NULL,            -- active, stopped, stale
    started REAL NOT NULL,
    updated REAL NOT NULL,
    stopped REAL,
    session_time INTEGER,
    input_octets INTEGER,
    output_octets INTEGER,
    input_packets INTEGER,
    output_packets INTEGER,
    terminate_cause TEXT,
    audit_session_id TEXT,            -- Cisco's, from Cisco-AVPair audit-session-id
    node TEXT,                        -- the server that last had its accounting
    UNIQUE (client, nas_ip, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_mac ON sessions (mac, status);
CREATE TABLE IF NOT EXISTS coa_jobs (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions (id),
    kind TEXT NOT NULL,               -- disconnect, reauth
    reason TEXT NOT NULL,
    requested REAL NOT NULL,
    requested_by TEXT NOT NULL,
    status TEXT NOT NULL,             -- pending, sent, ack, nak, timeout, error
    attempts INTEGER NOT NULL DEFAULT 0,
    error_cause INTEGER,
    detail TEXT,
    finished REAL,
    vlan_change INTEGER NOT NULL DEFAULT 0  -- a reauth for a new VLAN (a MAB port may be bounced)
);
CREATE INDEX IF NOT EXISTS coa_jobs_status ON coa_jobs (status);
CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status, updated);
"""

_UPSERT: Final = """
INSERT INTO sessions (client, nas_ip, session_id, nas_identifier, mac, user_name, nas_port,
    nas_port_id, called_station_id, calling_station_id, framed_ip, vlan, status, started, updated, stopped,
    session_time, input_octets, output_octets, input_packets, output_packets, terminate_cause,
    audit_session_id, node)
VALUES (:client, :nas_ip, :session_id, :nas_identifier, :mac, :user_name, :nas_port,
    :nas_port_id, :called_station_id, :calling_station_id, :framed_ip, :vlan, :status, :started, :ts,
    :stopped, :session_time, :input_octets, :output_octets, :input_packets, :output_packets, :terminate_cause,
    :audit_session_id, :node)
ON CONFLICT (client, nas_ip, session_id) DO UPDATE SET
    nas_identifier = COALESCE(excluded.nas_identifier, nas_identifier),
    mac = COALESCE(excluded.mac, mac),
    user_name = COALESCE(excluded.user_name, user_name),
    nas_port = COALESCE(excluded.nas_port, nas_port),
    nas_port_id = COALESCE(excluded.nas_port_id, nas_port_id),
    called_station_id = COALESCE(excluded.called_station_id, called_station_id),
    calling_station_id = COALESCE(excluded.calling_station_id, calling_station_id),
    framed_ip = COALESCE(excluded.framed_ip, framed_ip),
    vlan = COALESCE(excluded.vlan, vlan),
    status = excluded.status,
    started = CASE WHEN :restart THEN excluded.started ELSE started END,
    updated = excluded.updated,
    stopped = excluded.stopped,
    session_time = COALESCE(excluded.session_time, session_time),
    input_octets = COALESCE(excluded.input_octets, input_octets),
    output_octets = COALESCE(excluded.output_octets, output_octets),
    input_packets = COALESCE(excluded.input_packets, input_packets),
    output_packets = COALESCE(excluded.output_packets, output_packets),
    terminate_cause = excluded.terminate_cause,
    audit_session_id = COALESCE(excluded.audit_session_id, audit_session_id),
    node = COALESCE(excluded.node, node)
"""
# Accounting-On / -Off (RFC 2866 §5.1): the NAS (re)started or is going down; every session it
# had is over, whether or not its Stop ever arrives.
_NAS_RESTART: Final = """
UPDATE sessions SET status = 'stopped', stopped = :ts, updated = :ts, terminate_cause = :cause
WHERE client = :client AND nas_ip = :nas_ip AND status != 'stopped'
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    # Databases made before re-authorizations said whether the VLAN changes.
    if "vlan_change" not in {row[1] for row in conn.execute("PRAGMA table_info(coa_jobs)")}:
        conn.execute("ALTER TABLE coa_jobs ADD COLUMN vlan_change INTEGER NOT NULL DEFAULT 0")
    # Databases made before sessions kept Cisco's Audit-Session-Id, and the server's node.
    have = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
    for column in ("audit_session_id", "node"):
        if column not in have:
            conn.execute(f"ALTER TABLE sessions ADD COLUMN {column} TEXT")


def apply_events(
    conn: sqlite3.Connection, events: Iterable[SessionEvent], *, node: str | None = None
) -> None:
    """Apply events in arrival order, inside the caller's transaction; ``node``: the server
    that received them."""
    for event in events:
        row = event._asdict()
        row["node"] = node
        if event.status in ("accounting-on", "accounting-off"):
            cause = "NAS-Reboot (Accounting-On)" if event.status == "accounting-on" else "Accounting-Off"
            conn.execute(
                _NAS_RESTART, {"ts": event.ts, "cause": cause, "client": event.client, "nas_ip": event.nas_ip}
            )
            continue
        if event.session_id is None or event.status not in ("start", "interim", "stop"):
            continue
        stopping = event.status == "stop"
        # A session first seen in an Interim-Update or a Stop (its Start was lost) began
        # Acct-Session-Time seconds before this event.
        started = event.ts - (event.session_time or 0) if event.status != "start" else event.ts
        row.update(
            status="stopped" if stopping else "active",
            started=started,
            stopped=event.ts if stopping else None,
            restart=event.status == "start",
        )
        conn.execute(_UPSERT, row)


def expire_stale(conn: sqlite3.Connection, *, now: float, stale_after: float) -> int:
    """Mark active sessions with no accounting for ``stale_after`` seconds as stale."""
    with conn:
        cursor = conn.execute(
            "UPDATE sessions SET status = 'stale' WHERE status = 'active' AND updated < ?",
            (now - stale_after,),
        )
    return cursor.rowcount


def housekeeping(conn: sqlite3.Connection, counters: Counter[str], *, now: float) -> None:
    """Once a minute, from the server's tick: sessions whose Stop was lost become stale."""
    try:
        stale = expire_stale(conn, now=now, stale_after=STALE_AFTER)
    except sqlite3.Error as exc:
        log.warning("cannot expire stale sessions: %s", exc)
        return
    if stale:
        counters["sessions_stale"] += stale
        log.info("%d sessions had no accounting for %d h: marked stale", stale, STALE_AFTER // 3600)


def query(
    conn: sqlite3.Connection, *, active: bool = False, mac: str | None = None, client: str | None = None
) -> list[dict[str, Any]]:
    where = []
    params: list[object] = []
    if active:
        where.append("status = 'active'")
    if mac is not None:
        where.append("mac = ?")
        params.append(mac)
    if client is not None:
        where.append("client = ?")
        params.append(client)
    sql = (
        "SELECT *, strftime('%Y-%m-%dT%H:%M:%fZ', started, 'unixepoch') AS started_time,"
        " strftime('%Y-%m-%dT%H:%M:%fZ', updated, 'unixepoch') AS updated_time FROM sessions"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated DESC"
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def request_action(
    conn: sqlite3.Connection,
    *,
    mac: str,
    kind: str,
    reason: str,
    requested_by: str,
    now: float,
    vlan_change: bool = False,
) -> list[int]:
    """Queue a Disconnect or re-authorize for every active session of ``mac``; the server,
    which holds the NAS secrets, sends them.  ``vlan_change``: the re-authorization moves the
    device to another VLAN (nac/equipment/coa.py may bounce its port).  Returns the job ids
    (none: no active session)."""
    with conn:
        rows = conn.execute("SELECT id FROM sessions WHERE mac = ? AND status = 'active'", (mac,)).fetchall()
        ids = []
        for (session,) in rows:
            cursor = conn.execute(
                "INSERT INTO coa_jobs (session, kind, reason, requested, requested_by, status, vlan_change)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (session, kind, reason, now, requested_by, int(vlan_change)),
            )
            ids.append(int(cursor.lastrowid or 0))
    return ids


def jobs(conn: sqlite3.Connection, ids: Iterable[int]) -> list[dict[str, Any]]:
    wanted = list(ids)
    if not wanted:
        return []
    cursor = conn.execute(
        "SELECT j.id, j.kind, j.status, j.attempts, j.error_cause, j.detail, s.mac, s.client, s.nas_ip,"
        " s.session_id FROM coa_jobs j JOIN sessions s ON s.id = j.session"
        " WHERE j.id IN (SELECT value FROM json_each(?)) ORDER BY j.id",
        (json.dumps(wanted),),
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def take_pending(conn: sqlite3.Connection, *, per_client: int = 10) -> list[dict[str, Any]]:
    """Claim pending jobs (their status becomes 'sent'), each with its session: at most
    ``per_client`` per NAS per call, so a rule change that touches 5,000 sessions on one
    switch stack reaches it as a steady trickle, not a burst it drops.  ``port_sessions``
    counts the active sessions on the job's port (a bounce would cut them all)."""
    with conn:
        cursor = conn.execute(
            "SELECT job, kind, reason, vlan_change, session, client, nas_ip, session_id, mac, user_name,"
            " calling_station_id, nas_identifier, called_station_id, nas_port, nas_port_id, audit_session_id,"
            " (SELECT COUNT(*) FROM sessions o WHERE o.client = p.client AND o.nas_ip = p.nas_ip"
            "  AND o.status = 'active' AND o.nas_port IS p.nas_port AND o.nas_port_id IS p.nas_port_id)"
            " AS port_sessions FROM ("
            " SELECT j.id AS job, j.kind, j.reason, j.vlan_change, s.id AS session, s.client, s.nas_ip,"
            " s.session_id, s.mac, s.user_name, s.calling_station_id, s.nas_identifier,"
            " s.called_station_id, s.nas_port, s.nas_port_id, s.audit_session_id,"
            " ROW_NUMBER() OVER (PARTITION BY s.client ORDER BY j.id) AS n"
            " FROM coa_jobs j JOIN sessions s ON s.id = j.session WHERE j.status = 'pending'"
            ") AS p WHERE n <= ? ORDER BY job",
            (per_client,),
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        conn.executemany("UPDATE coa_jobs SET status = 'sent' WHERE id = ?", [(r["job"],) for r in rows])
    return rows


def finish(
    conn: sqlite3.Connection,
    job: int,
    *,
    status: str,
    attempts: int,
    error_cause: int | None,
    detail: str,
    now: float,
) -> None:
    with conn:
        conn.execute(
            "UPDATE coa_jobs SET status = ?, attempts = ?, error_cause = ?, detail = ?, finished = ?"
            " WHERE id = ?",
            (status, attempts, error_cause, detail, now, job),
        )
        if status == "ack":
            session = conn.execute("SELECT session, kind FROM coa_jobs WHERE id = ?", (job,)).fetchone()
            if session is not None and session[1] == "disconnect":
                conn.execute(
                    "UPDATE sessions SET status = 'stopped', stopped = ?, terminate_cause = 'Disconnect-ACK'"
                    " WHERE id = ?",
                    (now, session[0]),
                )


def wait_jobs(conn: sqlite3.Connection, ids: Iterable[int], *, wait: float) -> list[dict[str, Any]]:
    """The jobs' rows once the server has answered them all, or as they stand after ``wait`` s."""
    wanted = list(ids)
    deadline = time.monotonic() + wait
    rows = jobs(conn, wanted)
    while time.monotonic() < deadline and any(r["status"] in ("pending", "sent") for r in rows):
        time.sleep(0.1)
        rows = jobs(conn, wanted)
    return rows
