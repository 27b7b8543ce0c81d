"""Reading history: every query here sees every decision committed, in either tier.

The ``history`` view (nac/history/tiers.py) shows the recent tier as of the connection's last
sync; :func:`execute` syncs first, so a connection kept open (`nac web`, a thread) never
misses what was committed since.  A sync costs three indexed lookups when nothing changed, and
unpacks every batch not yet in the rows table otherwise.

One device's decisions never need that: :func:`mac_decisions` reads the MAC index
(nac/history/macindex.py), and :func:`load` puts the rows of the ids it found, from either
tier, into the TEMP table ``history_scope`` alone, for SQL over them.  So a device's story
takes milliseconds even while a load that never lets up keeps the rows table behind; and the
newest decisions (`nac history` without a MAC) come from the newest batches alone
(:func:`newest_first`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from nac.history import format as blob_format
from nac.history import macindex, tiers
from nac.history.macindex import Posting as Posting  # noqa: PLC0414 - the helpdesk's type
from nac.history.record import HISTORY_COLUMNS

#: The TEMP table :func:`load` and :func:`newest_first` fill: the ``history`` view's columns.
SCOPE: Final = "history_scope"
#: Decisions outside the rows table past which a newest-first search reads the newest batches
#: itself: bringing the view up to date unpacks every one of them (minutes, after a long load).
NEWEST_FIRST_MIN: Final = 100_000
#: Batches :func:`newest_first` adds per step.
NEWEST_STEP: Final = 200
_COLUMNS: Final = ", ".join(("id", *tiers.STORED_COLUMNS))
_PARAMS: Final = ", ".join("?" * (1 + len(tiers.STORED_COLUMNS)))
_AFTER_MAIN: Final = (
    f"SELECT {_COLUMNS} FROM main.history WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"  # noqa: S608
)


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


def mac_decisions(conn: sqlite3.Connection, mac: str) -> list[Posting]:
    """Every decision of ``mac`` (canonical spelling) as (id, ts, action), by id."""
    if macindex.present(conn):
        return macindex.lookup(conn, mac, recent=tiers.has_recent(conn))
    # A read-only open of a database no nac with the MAC index has opened: its rows' own index.
    return [
        Posting._make(row)
        for row in execute(conn, "SELECT id, ts, action FROM history WHERE mac = ? ORDER BY id", (mac,))
    ]


def _rows(conn: sqlite3.Connection, ids: Iterable[int]) -> list[tuple[Any, ...]]:
    """The stored rows (id, then ``tiers.STORED_COLUMNS``) of ``ids`` still kept, from either
    tier.  The recent tier is read first, in one read transaction with main: a batch above the
    rows table's watermark as read before stays in the recent tier until that watermark passes
    it, so the watermark read after it leaves no id out and takes none twice."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    recent = tiers.has_recent(conn)
    first_look = tiers.indexed_upto(conn) if recent else 0
    conn.commit()
    found: dict[int, tuple[Any, ...]] = {}  # from main
    tail_found: dict[int, tuple[Any, ...]] = {}  # from the recent tier
    try:
        conn.execute("BEGIN")
        if recent:
            tail = [i for i in wanted if i > first_look]
            at = 0
            while at < len(tail):
                got = conn.execute(
                    "SELECT id, last, rows, node FROM recent.history_batches"
                    " WHERE id <= ? ORDER BY id DESC LIMIT 1",
                    (tail[at],),
                ).fetchone()
                if got is None or got[1] < tail[at]:  # pruned, or in no batch: skip it
                    at += 1
                    continue
                first, last, blob, node = got
                decoded = blob_format.decode(blob, len(HISTORY_COLUMNS))
                while at < len(tail) and tail[at] <= last:
                    tail_found[tail[at]] = (tail[at], *decoded[tail[at] - first], node)
                    at += 1
        upto = tiers.indexed_upto(conn) if recent else wanted[-1]
        in_main = [i for i in wanted if i <= upto]
        for start in range(0, len(in_main), 10_000):
            for row in conn.execute(
                f"SELECT {_COLUMNS} FROM main.history WHERE id IN (SELECT value FROM json_each(?))",  # noqa: S608
                (json.dumps(in_main[start : start + 10_000]),),
            ):
                found[row[0]] = row
        in_tail = {i: row for i, row in tail_found.items() if i > upto}
        return [row for i in wanted if (row := found.get(i) if i <= upto else in_tail.get(i)) is not None]
    finally:
        conn.commit()


def load(conn: sqlite3.Connection, ids: Iterable[int]) -> str:
    """Put the decisions ``ids`` (those still kept) into the TEMP table :data:`SCOPE`,
    alone; returns its name, for SQL that reads it as it would ``history``."""
    rows = _rows(conn, ids)
    with conn:
        _fresh_scope(conn)
        conn.executemany(f"INSERT INTO temp.{SCOPE} ({_COLUMNS}) VALUES ({_PARAMS})", rows)  # noqa: S608
    return SCOPE


def decision_ts(conn: sqlite3.Connection, id_: int) -> float | None:
    """When decision ``id_`` was made; None if there is none (pruned)."""
    rows = _rows(conn, [id_])
    return float(rows[0][1]) if rows else None


def unstored(conn: sqlite3.Connection) -> int:
    """Decisions not yet in the rows table (those the view unpacks when it syncs)."""
    return tiers.recent_backlog(conn) if tiers.has_recent(conn) else 0


def _fresh_scope(conn: sqlite3.Connection) -> None:
    conn.execute(tiers.history_table(f"temp.{SCOPE}"))
    conn.execute(f"DELETE FROM temp.{SCOPE}")  # noqa: S608 - a constant


def newest_first(conn: sqlite3.Connection) -> Iterator[float]:
    """Fill the TEMP table :data:`SCOPE` with the decisions not yet in the rows table, newest
    batches first, ``NEWEST_STEP`` batches at a time; after each step, yield the newest time of
    any decision not in it (older batches, and the rows table's): a newest-first answer from the
    scope whose last row is newer than that is the whole answer.  Ends after the oldest batch
    (then the answer may need the rows table: ask the view)."""
    with conn:
        _fresh_scope(conn)
    upto = tiers.indexed_upto(conn)
    main_top = conn.execute("SELECT MAX(ts) FROM main.history").fetchone()[0]
    below = None
    while True:
        batches = conn.execute(
            "SELECT id, last, rows, node FROM recent.history_batches WHERE last > ?1"
            " AND id < COALESCE(?2, id + 1) ORDER BY id DESC LIMIT ?3",
            (upto, below, NEWEST_STEP),
        ).fetchall()
        if not batches:
            return
        with conn:
            for first, _, blob, node in batches:
                conn.executemany(
                    f"INSERT OR IGNORE INTO temp.{SCOPE} ({_COLUMNS}) VALUES ({_PARAMS})",  # noqa: S608
                    tiers.unpack(first, blob, upto, node),
                )
        below = batches[-1][0]
        rest = conn.execute(
            "SELECT MAX(ts_last) FROM recent.history_batches WHERE last > ? AND id < ?", (upto, below)
        ).fetchone()[0]
        yield max((t for t in (main_top, rest) if t is not None), default=float("-inf"))


def after(conn: sqlite3.Connection, above: int, limit: int) -> list[tuple[Any, ...]]:
    """The decisions after id ``above`` (``id``, then tiers.STORED_COLUMNS), in id order:
    about ``limit`` (whole batches of the recent tier), read in one transaction so that no batch
    moves between the tiers under it: what a copy elsewhere (PostgreSQL's) follows.  Rows that
    retention pruned are not there: the first id may jump."""
    conn.execute("BEGIN")
    try:
        upto = tiers.indexed_upto(conn)
        rows: list[tuple[Any, ...]] = []
        if above < upto:
            rows = conn.execute(_AFTER_MAIN, (above, upto, limit)).fetchall()
            if rows:
                return rows
            above = upto  # what was there is pruned
        for first, blob, node in conn.execute(
            "SELECT id, rows, node FROM recent.history_batches"
            " WHERE id >= COALESCE((SELECT MAX(id) FROM recent.history_batches WHERE id <= ?1), 0)"
            " AND last > ?1 ORDER BY id",
            (above,),
        ):
            rows.extend(tiers.unpack(first, blob, above, node))
            if len(rows) >= limit:
                break
        return rows
    finally:
        conn.rollback()
