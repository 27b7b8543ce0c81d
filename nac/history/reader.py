"""Reading history: every query here sees every decision committed, in either tier.

The ``history`` view (nac/history/tiers.py) shows the recent tier as of the connection's last
sync; :func:`execute` syncs first, so a connection kept open (`nac web`, a thread) never
misses what was committed since.  A sync costs three indexed lookups when nothing changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from nac.history import tiers


def execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
    """``sql`` over the ``history`` view, after bringing the view up to date."""
    tiers.sync_recent(conn)
    return conn.execute(sql, params)


def count(conn: sqlite3.Connection) -> int:
    """Decisions in both tiers."""
    return tiers.history_count(conn)


def replay(conn: sqlite3.Connection, since: float) -> list[tuple[Any, ...]]:
    """History since ``since`` as `nac rules simulate` replays it (nac/simulate.ReplayRow),
    oldest first; rows without a MAC (not MAB, garbage) are left out."""
    return execute(
        conn,
        "SELECT ts, mac, client, called_station_id, nas_port_type, method FROM history"
        " WHERE ts >= ? AND mac IS NOT NULL ORDER BY ts, id",
        (since,),
    ).fetchall()
