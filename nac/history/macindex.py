"""The MAC index: for every MAC, the ids, times and actions of its decisions, kept in segments
that are written whole and merged later, like the sorted runs of a log-structured merge tree.

A B-tree keyed by MAC takes each decision at a random place: one index page read and written
per decision once the index outgrows the cache, several times what deciding costs, so a server
under load that never let up fell behind its own index (bench/README.md, "History and
sustained load").  Here one pass takes every decision committed since the last, groups them
by MAC in memory and appends the groups as one new segment: a row per MAC seen (its posting
list, nac/history/format.py), written in key order at the end of the table.  A device that
re-authenticates a thousand times in a pass costs one row.

* ``main.history_mac_segments``: a segment per pass or merge, the id range it covers, its
  level (0 for a pass, one more per merge) and its newest decision's time (for retention).
* ``main.history_mac``: (segment, MAC) -> posting list.  A lookup seeks each segment once.
* meta ``history_mac_upto``: every decision up to this id is in a segment; the batches above
  it are read from the recent tier (nac/history/tiers.py) by :func:`lookup` itself.

Merges keep the segments few: ``FANOUT`` segments of one level become one of the next, a
chunk of MACs per transaction (each MAC's postings move from the old segments to the new one
in the same transaction, so a lookup finds every decision exactly once at every moment, and a
merge cut short by a crash resumes where it stopped).  A merge drops decisions retention has
passed (meta ``history_pruned_before``), which lookups leave out until then.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from nac.history import format as blob_format
from nac.history.record import HISTORY_COLUMNS

#: Segments of one level that are merged into one of the next.
FANOUT: Final = 8
#: Merges stop here: a segment of this level covers FANOUT**MAX_LEVEL passes.
MAX_LEVEL: Final = 6
#: MACs a merge moves per transaction at most: main's write lock is held briefly.
MERGE_CHUNK: Final = 2000
#: Bytes of posting lists a merge step unpacks at most (but one MAC's whatever their size): what
#: it unpacks is memory the server keeps afterwards.  About 35,000 decisions.
MERGE_STEP_BYTES: Final = 512 * 1024
#: A segment of this many decisions is merged no further, so that one MAC's posting lists in a
#: merge step stay bounded (FANOUT of these at most), even for a MAC that floods the network.
SEGMENT_FULL: Final = 100_000

log = logging.getLogger("nac.history")

_MAC: Final = HISTORY_COLUMNS.index("mac")
_TS: Final = HISTORY_COLUMNS.index("ts")
_ACTION: Final = HISTORY_COLUMNS.index("action")

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS main.history_mac_segments (seg INTEGER PRIMARY KEY,"
    " first INTEGER NOT NULL, last INTEGER NOT NULL, level INTEGER NOT NULL,"
    " decisions INTEGER NOT NULL, ts_last REAL, merging_into INTEGER)",
    "CREATE TABLE IF NOT EXISTS main.history_mac (seg INTEGER NOT NULL, mac TEXT NOT NULL,"
    " postings BLOB NOT NULL, PRIMARY KEY (seg, mac)) WITHOUT ROWID",
)
_UPTO: Final = "SELECT CAST(value AS INTEGER) FROM main.meta WHERE key = 'history_mac_upto'"
_PRUNED: Final = "SELECT CAST(value AS REAL) FROM main.meta WHERE key = 'history_pruned_before'"
_SET: Final = (
    "INSERT INTO main.meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
#: Rows of main.history read per step when an older database's MAC index is built.
_BUILD_CHUNK: Final = 200_000


class Posting(NamedTuple):
    """One decision of a MAC."""

    id: int
    ts: float
    action: str


def ensure(conn: sqlite3.Connection) -> None:
    """The index's tables, in the caller's transaction.  A database whose history predates
    them gets its rows indexed here, once, and the old per-decision MAC index dropped."""
    for ddl in _SCHEMA:
        conn.execute(ddl)
    if conn.execute(_UPTO).fetchone() is not None:
        return
    count = conn.execute("SELECT COUNT(*) FROM main.history").fetchone()[0]
    if count:
        log.info("history: indexing the MACs of %d decisions (once, for this version of nac)", count)
    top = 0
    last_id = 0
    while True:
        rows = conn.execute(
            "SELECT id, mac, ts, action FROM main.history WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, _BUILD_CHUNK),
        ).fetchall()
        if not rows:
            break
        last_id = rows[-1][0]
        groups = _group(rows)
        if groups:
            _write_segment(conn, rows[0][0], last_id, groups)
        top = last_id
    indexed = conn.execute(
        "SELECT CAST(value AS INTEGER) FROM main.meta WHERE key = 'history_indexed_upto'"
    ).fetchone()
    conn.execute(_SET, ("history_mac_upto", str(max(top, indexed[0] if indexed and indexed[0] else 0))))
    conn.execute("DROP INDEX IF EXISTS main.history_mac_action")


def present(conn: sqlite3.Connection) -> bool:
    """Whether this database has the index (a read-only open of an older one has not)."""
    return (
        conn.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'history_mac_segments'").fetchone()
        is not None
        and conn.execute(_UPTO).fetchone() is not None
    )


def upto(conn: sqlite3.Connection) -> int:
    row = conn.execute(_UPTO).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def pruned_before(conn: sqlite3.Connection) -> float:
    row = conn.execute(_PRUNED).fetchone()
    return float("-inf") if row is None or row[0] is None else float(row[0])


def _group(rows: Iterable[Sequence[object]]) -> dict[str, tuple[list[int], list[float], list[str]]]:
    """(id, mac, ts, action) rows grouped by MAC, each group in the rows' order."""
    groups: dict[str, tuple[list[int], list[float], list[str]]] = {}
    # A pass holds every decision's action until it is written: one string object per action
    # word, not one per decision, keeps that memory small (the server keeps what a pass grows).
    words: dict[object, str] = {}
    for id_, mac, ts, action in rows:
        if mac is None:
            continue
        group = groups.get(mac)  # type: ignore[call-overload]
        if group is None:
            group = groups[mac] = ([], [], [])  # type: ignore[index]
        group[0].append(id_)
        group[1].append(ts)
        group[2].append(words.setdefault(action, action))  # type: ignore[arg-type]
    return groups


def _write_segment(
    conn: sqlite3.Connection,
    first: int,
    last: int,
    groups: dict[str, tuple[list[int], list[float], list[str]]],
    *,
    level: int = 0,
) -> None:
    decisions = sum(len(g[0]) for g in groups.values())
    ts_last = max((max(g[1]) for g in groups.values()), default=None)
    seg = conn.execute(
        "INSERT INTO main.history_mac_segments (first, last, level, decisions, ts_last)"
        " VALUES (?, ?, ?, ?, ?) RETURNING seg",
        (first, last, level, decisions, ts_last),
    ).fetchone()[0]
    conn.executemany(
        "INSERT INTO main.history_mac (seg, mac, postings) VALUES (?, ?, ?)",
        [(seg, mac, blob_format.encode_postings(groups[mac])) for mac in sorted(groups)],
    )


def batch_keys(
    first: int, keys: bytes | None, rows: bytes | None, skip_to: int
) -> Iterable[tuple[int, object, object, object]]:
    """(id, mac, ts, action) of each decision in a recent batch above ``skip_to``: from its
    keys blob, or from its rows for a batch written before batches had keys."""
    if keys is not None:
        macs, stamps, actions = blob_format.decode_keys(keys)
    elif rows is None:
        raise blob_format.FormatError("a history batch without rows")
    else:
        decoded = blob_format.decode(rows, len(HISTORY_COLUMNS))
        macs = [row[_MAC] for row in decoded]
        stamps = [row[_TS] for row in decoded]  # type: ignore[misc]
        actions = [row[_ACTION] for row in decoded]  # type: ignore[misc]
    start = max(0, skip_to + 1 - first)
    ids = range(first + start, first + len(macs))
    return zip(ids, macs[start:], stamps[start:], actions[start:], strict=True)


def post(conn: sqlite3.Connection, limit: int) -> int:
    """Index the batches committed since the last pass (whole ones, until ``limit`` decisions
    or more) as one new segment; returns how many decisions it took.

    The batches are read in a read transaction of their own, ended before main's write
    transaction begins (see tiers.move_recent for why).  Only one process indexes a database;
    the check of the watermark under the write lock keeps two passes from taking the same
    batches all the same."""
    start = upto(conn)
    conn.commit()
    taken: list[tuple[int, int, bytes | None, bytes | None]] = []
    count = 0
    try:
        cursor = conn.execute(  # a batch's rows only if it has no keys
            "SELECT id, last, keys, CASE WHEN keys IS NULL THEN rows END FROM recent.history_batches"
            " WHERE id >= COALESCE((SELECT MAX(id) FROM recent.history_batches WHERE id <= ?1), 0)"
            " AND last > ?1 ORDER BY id",
            (start,),
        )
        while count < limit:
            got = cursor.fetchone()
            if got is None:
                break
            taken.append(got)
            count += got[1] - max(got[0], start + 1) + 1
        cursor.close()
        conn.commit()
        if not taken:
            return 0
        groups = _group(row for first, _, keys, rows in taken for row in batch_keys(first, keys, rows, start))
        conn.execute("BEGIN IMMEDIATE")
        if upto(conn) != start:  # another pass took them meanwhile
            conn.rollback()
            return 0
        if groups:  # decisions without a MAC (garbage) need no segment
            _write_segment(conn, max(taken[0][0], start + 1), taken[-1][1], groups)
        conn.execute(_SET, ("history_mac_upto", str(taken[-1][1])))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return count


def backlog(conn: sqlite3.Connection, top: int) -> int:
    """Decisions committed (through id ``top``) but not yet in a segment."""
    return max(0, top - upto(conn))


def lookup(conn: sqlite3.Connection, mac: str, *, recent: bool = True) -> list[Posting]:
    """Every decision of ``mac`` still kept, in both tiers (``recent``: the recent tier is
    attached), by id.

    The recent tier is read first, in the same read transaction: the batches above the
    watermark read before it stay there until the watermark passes them, so the watermark read
    second (the same or higher) leaves no decision out and counts none twice."""
    floor = pruned_before(conn)
    seen = upto(conn)  # a first look: the segments will cover at least this much
    conn.commit()
    found: list[Posting] = []
    try:
        conn.execute("BEGIN")
        tail = (
            conn.execute(
                "SELECT id, keys, CASE WHEN keys IS NULL THEN rows END FROM recent.history_batches"
                " WHERE id >= COALESCE((SELECT MAX(id) FROM recent.history_batches WHERE id <= ?1), 0)"
                " AND last > ?1 ORDER BY id",
                (seen,),
            ).fetchall()
            if recent
            else []
        )
        posted = upto(conn)
        for (blob,) in conn.execute(
            "SELECT postings FROM main.history_mac WHERE seg IN"
            " (SELECT seg FROM main.history_mac_segments) AND mac = ?",
            (mac,),
        ):
            ids, stamps, actions = blob_format.decode_postings(blob)
            found.extend(map(Posting._make, zip(ids, stamps, actions, strict=True)))
        for first, keys, rows in tail:
            found.extend(
                Posting(id_, ts, action)  # type: ignore[arg-type]
                for id_, key, ts, action in batch_keys(first, keys, rows, posted)
                if key == mac
            )
    finally:
        conn.commit()
    found.sort()
    return [p for p in found if p.ts >= floor]


def mark_pruned(conn: sqlite3.Connection, cutoff: float) -> int:
    """After retention removed the decisions before ``cutoff``: lookups leave them out from now
    on, and the segments holding nothing newer go (one transaction each); returns how many."""
    with conn:
        if cutoff > pruned_before(conn):
            conn.execute(_SET, ("history_pruned_before", repr(cutoff)))
    gone = 0
    for (seg,) in conn.execute(
        "SELECT seg FROM main.history_mac_segments WHERE ts_last < ? AND merging_into IS NULL"
        " AND seg NOT IN (SELECT merging_into FROM main.history_mac_segments"
        " WHERE merging_into IS NOT NULL)",
        (cutoff,),
    ).fetchall():
        with conn:
            conn.execute("DELETE FROM main.history_mac WHERE seg = ?", (seg,))
            conn.execute("DELETE FROM main.history_mac_segments WHERE seg = ?", (seg,))
        gone += 1
    return gone


def segments(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM main.history_mac_segments").fetchone()[0])


def _start_merge(conn: sqlite3.Connection) -> int | None:
    """Pick FANOUT segments of the lowest level that has as many and make their target; in
    the caller's transaction.  Returns the target, or None when nothing needs merging."""
    row = conn.execute(
        "SELECT level FROM main.history_mac_segments WHERE level < ? AND merging_into IS NULL"
        " AND decisions < ? GROUP BY level HAVING COUNT(*) >= ? ORDER BY level LIMIT 1",
        (MAX_LEVEL, SEGMENT_FULL, FANOUT),
    ).fetchone()
    if row is None:
        return None
    level = row[0]
    sources = conn.execute(
        "SELECT seg, first, last, decisions, ts_last FROM main.history_mac_segments"
        " WHERE level = ? AND merging_into IS NULL AND decisions < ? ORDER BY first LIMIT ?",
        (level, SEGMENT_FULL, FANOUT),
    ).fetchall()
    target: int = conn.execute(
        "INSERT INTO main.history_mac_segments (first, last, level, decisions, ts_last)"
        " VALUES (?, ?, ?, ?, ?) RETURNING seg",
        (
            sources[0][1],
            sources[-1][2],
            level + 1,
            sum(s[3] for s in sources),
            max((s[4] for s in sources if s[4] is not None), default=None),
        ),
    ).fetchone()[0]
    conn.executemany(
        "UPDATE main.history_mac_segments SET merging_into = ? WHERE seg = ?",
        [(target, s[0]) for s in sources],
    )
    return target


def merge_step(conn: sqlite3.Connection, *, chunk: int = MERGE_CHUNK) -> bool:
    """Move one chunk of MACs of the merge under way (starting one if a level is full), in one
    transaction; False when there is nothing to merge."""
    with conn:
        row = conn.execute(
            "SELECT merging_into FROM main.history_mac_segments WHERE merging_into IS NOT NULL LIMIT 1"
        ).fetchone()
        target = row[0] if row is not None else _start_merge(conn)
        if target is None:
            return False
        sources = [
            seg
            for (seg,) in conn.execute(
                "SELECT seg FROM main.history_mac_segments WHERE merging_into = ? ORDER BY first",
                (target,),
            )
        ]
        # This step: the MACs up to the lowest of each source's chunk-th (every source's
        # postings of a MAC move together), fewer if their posting lists are many bytes.
        bound: str | None = None
        sizes: dict[str, int] = {}
        for seg in sources:
            listed = conn.execute(
                "SELECT mac, length(postings) FROM main.history_mac WHERE seg = ? ORDER BY mac LIMIT ?",
                (seg, chunk),
            ).fetchall()
            for mac, size in listed:
                sizes[mac] = sizes.get(mac, 0) + size
            if len(listed) == chunk and (bound is None or listed[-1][0] < bound):
                bound = listed[-1][0]
        total = 0
        listed_macs = sorted(sizes)
        for at, mac in enumerate(listed_macs):
            if bound is not None and mac > bound:
                break
            total += sizes[mac]
            if total >= MERGE_STEP_BYTES and (bound is not None or at < len(listed_macs) - 1):
                bound = mac  # (the last MAC left: no bound, so that this step ends the merge)
                break
        floor = pruned_before(conn)
        parts: dict[str, list[blob_format.Columns]] = {}
        for seg in sources:
            for mac, blob in conn.execute(
                "SELECT mac, postings FROM main.history_mac WHERE seg = ?1 AND (?2 IS NULL OR mac <= ?2)",
                (seg, bound),
            ):
                parts.setdefault(mac, []).append(blob_format.decode_postings(blob))
            conn.execute(
                "DELETE FROM main.history_mac WHERE seg = ?1 AND (?2 IS NULL OR mac <= ?2)", (seg, bound)
            )
        merged = {mac: _join(lists) for mac, lists in parts.items()}
        rows = []
        for mac in sorted(merged):
            ids, stamps, actions = merged[mac]
            if stamps and min(stamps) < floor:  # retention passed some: leave them behind
                kept = [i for i, ts in enumerate(stamps) if ts >= floor]
                ids = [ids[i] for i in kept]
                stamps = [stamps[i] for i in kept]
                actions = [actions[i] for i in kept]
            if ids:
                rows.append((target, mac, blob_format.encode_postings((ids, stamps, actions))))
        conn.executemany("INSERT INTO main.history_mac (seg, mac, postings) VALUES (?, ?, ?)", rows)
        if bound is None:  # every source is empty now
            conn.executemany(
                "DELETE FROM main.history_mac_segments WHERE seg = ?", [(seg,) for seg in sources]
            )
    return True


def _join(parts: list[blob_format.Columns]) -> tuple[list[int], list[float], list[str]]:
    """One MAC's posting lists from several segments as one, in id order."""
    ids: list[int] = []
    stamps: list[float] = []
    actions: list[str] = []
    in_order = True
    for part_ids, part_stamps, part_actions in parts:  # each in id order already
        if ids and part_ids and part_ids[0] <= ids[-1]:
            in_order = False  # segments whose id ranges interleave
        ids.extend(part_ids)
        stamps.extend(part_stamps)
        actions.extend(part_actions)
    if not in_order:
        ordered = sorted(zip(ids, stamps, actions, strict=True))
        ids = [p[0] for p in ordered]
        stamps = [p[1] for p in ordered]
        actions = [p[2] for p in ordered]
    return ids, stamps, actions


def merge(conn: sqlite3.Connection, *, within: float) -> int:
    """Merge steps for up to ``within`` seconds; returns how many."""
    deadline = time.monotonic() + within
    steps = 0
    while time.monotonic() < deadline and merge_step(conn):
        steps += 1
    return steps
