"""History in two tiers, like a log-structured store; every reader sees both as one.

* The recent tier, a database file of its own beside the main one (``nac.db-recent``): a log
  of the server's group commits.  Each commit appends ONE row to ``recent.history_batches``:
  the ids it took (``id``, the first, to ``last``), its time span, and the decisions
  themselves as one blob (nac/history/format.py).  A row of a few KiB per commit instead of a
  row of 24 columns per decision, and nothing per decision to delete later (bench/README.md,
  "History and sustained load").  Each commit takes the ids after the newest batch's (or
  after ``recent.history_seq``, the floor that collection and prune raise before they delete
  the newest batch) in the statement that appends it, under the write lock: server workers
  sharing the file never collide.
* ``main.history``: a row per decision, indexed by time, for SQL.  The indexer
  (nac/history/indexer.py) unpacks batches into it and raises a watermark (meta
  ``history_indexed_upto``) in the same transaction; the writer deletes indexed batches from
  the recent tier a few at a time.  Writing rows costs more than deciding, so under load that
  never lets up they wait for an idle core, and the recent tier grows meanwhile.
* the MAC index (nac/history/macindex.py): cheap enough to keep pace with any load; a batch
  is indexed there before its rows are written.  The indexer never writes the recent file: a thread at idle
  priority holding the server's write lock would stall its commits.

Readers see both through a TEMP VIEW named ``history`` (it shadows main.history): main's rows
and the unindexed recent ones, which :func:`sync_recent` unpacks into a TEMP table of the
reading connection (only the batches it has not seen yet).  nac/history/reader.py syncs before
every query.  A row keeps its id when it moves, and the view shows recent rows above the
watermark only, so a reader sees every decision exactly once.  A separate file, not a second
table: SQLite has one write lock per file, and the indexer's long transactions must never hold
up the server's commits.
"""

from __future__ import annotations

import logging
import marshal
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from nac import dbfile
from nac.history import format as blob_format
from nac.history import macindex
from nac.history.record import HISTORY_COLUMNS
from nac.radius.accounting import SessionEvent
from nac.sessions import store as session_store

_HISTORY_TYPES: Final = {
    "ts": "REAL NOT NULL",
    "prefix_bits": "INTEGER",
    "nas_port": "INTEGER",
    "message_authenticator": "INTEGER NOT NULL",
    "reply": "INTEGER NOT NULL",
    "action": "TEXT NOT NULL",
    "rule": "TEXT NOT NULL",
    "reason": "TEXT NOT NULL",
    "client": "TEXT NOT NULL",
    "nas_ip": "TEXT NOT NULL",
    "method": "TEXT NOT NULL",
    "src": "TEXT NOT NULL",
    "snapshot": "TEXT NOT NULL",
    "latency_us": "INTEGER",
}
RECENT_SUFFIX: Final = "-recent"
_MAC: Final = HISTORY_COLUMNS.index("mac")
_TS: Final = HISTORY_COLUMNS.index("ts")
_ACTION: Final = HISTORY_COLUMNS.index("action")
_INDEXED_UPTO: Final = "SELECT CAST(value AS INTEGER) FROM main.meta WHERE key = 'history_indexed_upto'"
#: Every stored column of a history row (`id` and the generated `time` aside): the record's, then
#: the server that made it, kept per batch (every decision of a group commit is one server's).
STORED_COLUMNS: Final = (*HISTORY_COLUMNS, "node")
_COLUMN_DEFS: Final = ", ".join(f"{name} {_HISTORY_TYPES.get(name, 'TEXT')}" for name in STORED_COLUMNS)
_ID_AND_COLUMNS: Final = ", ".join(("id", *STORED_COLUMNS))
_ID_AND_PARAMS: Final = ", ".join("?" * (1 + len(STORED_COLUMNS)))
#: A row as the tier before batches kept it (no node).
_ID_AND_RECORD: Final = ", ".join(("id", *HISTORY_COLUMNS))
#: At low load every decision is a commit of its own, which writes the table's last page to the
#: WAL: 1 KiB pages make that WAL (and the checkpoints' copying) a quarter of 4 KiB pages'.
#: A large batch's blob fills overflow pages of either size.
RECENT_PAGE_SIZE: Final = 1024
#: Page cache per connection for the recent tier (negative: KiB).  Appends touch the last pages
#: and readers scan it once: a small cache does, and every server thread has a connection.
RECENT_CACHE_KIB: Final = -512
_RECENT_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS recent.history_batches (id INTEGER PRIMARY KEY, last INTEGER NOT NULL,"
    " ts_first REAL NOT NULL, ts_last REAL NOT NULL, rows BLOB NOT NULL, node TEXT, keys BLOB)",
    "CREATE TABLE IF NOT EXISTS recent.history_seq"
    " (one INTEGER PRIMARY KEY CHECK (one = 1), last INTEGER NOT NULL)",
)
_TOP: Final = (
    "MAX(COALESCE((SELECT last FROM recent.history_batches ORDER BY id DESC LIMIT 1), 0),"
    " COALESCE((SELECT last FROM recent.history_seq), 0))"
)
_APPEND: Final = (
    "INSERT INTO recent.history_batches (id, last, ts_first, ts_last, rows, node, keys)"  # noqa: S608
    f" SELECT top + 1, top + ?, ?, ?, ?, ?, ? FROM (SELECT {_TOP} AS top) RETURNING id"
)
#: Collection and prune keep the id floor before they delete batches (perhaps the newest).
_KEEP_FLOOR: Final = f"UPDATE recent.history_seq SET last = {_TOP}"  # noqa: S608 - constants
# The newest batch stays: the next commit's ids follow it.
_COLLECT_IN_COMMIT: Final = (
    "DELETE FROM recent.history_batches WHERE id IN (SELECT id FROM recent.history_batches"
    " WHERE id <= ?1 AND last <= ?1 AND id < (SELECT MAX(id) FROM recent.history_batches)"
    " ORDER BY id LIMIT ?2)"
)
#: Batches holding ids above ?1: the rowid range from the batch that holds ?1 (the ids are
#: ascending with ``last``; a filter on ``last`` alone would scan the table from its start).
_AFTER: Final = "id >= COALESCE((SELECT MAX(id) FROM recent.history_batches WHERE id <= ?1), 0) AND last > ?1"
_COLLECT: Final = (
    "DELETE FROM recent.history_batches WHERE id IN (SELECT id FROM recent.history_batches"  # noqa: S608
    f" WHERE id <= COALESCE(({_INDEXED_UPTO}), 0) AND last <= COALESCE(({_INDEXED_UPTO}), 0)"
    " ORDER BY id LIMIT ?)"
)
_INSERT_MAIN: Final = f"INSERT OR IGNORE INTO main.history ({_ID_AND_COLUMNS}) VALUES ({_ID_AND_PARAMS})"  # noqa: S608
_INSERT_SEEN: Final = (
    f"INSERT OR IGNORE INTO temp.recent_history ({_ID_AND_COLUMNS}) VALUES ({_ID_AND_PARAMS})"  # noqa: S608
)
_HISTORY_VIEW: Final = (
    # Columns named: a database from before node has it after `time` (ALTER TABLE appends).
    f"CREATE TEMP VIEW IF NOT EXISTS history AS SELECT {_ID_AND_COLUMNS}, time FROM main.history"  # noqa: S608
    f" UNION ALL SELECT {_ID_AND_COLUMNS}, time FROM temp.recent_history"
    f" WHERE id > COALESCE(({_INDEXED_UPTO}), 0)"
)


#: The recent tier's batch format this nac writes (nac/history/format.py).
FORMAT_VERSION: Final = blob_format.VERSION

log = logging.getLogger("nac.history")


def recent_path(path: str | Path) -> str:
    """The recent tier's file for the database at ``path`` (an in-memory one for ``:memory:``)."""
    path = os.fspath(path)
    return ":memory:" if path == ":memory:" else path + RECENT_SUFFIX


def history_table(qualified: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {qualified} (
        id INTEGER PRIMARY KEY,
        {_COLUMN_DEFS},
        time TEXT GENERATED ALWAYS AS (strftime('%Y-%m-%dT%H:%M:%fZ', ts, 'unixepoch')) VIRTUAL
    )"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """main.history and its indexes, in the caller's transaction."""
    conn.execute(history_table("main.history"))
    if "node" not in {row[1] for row in conn.execute("PRAGMA main.table_info(history)")}:
        conn.execute("ALTER TABLE main.history ADD COLUMN node TEXT")  # made before nodes
    conn.execute("CREATE INDEX IF NOT EXISTS history_ts ON history (ts)")
    # MACs are indexed by nac/history/macindex.py, not by a B-tree on this table (an index page
    # written per row); nor actions, which `--action` filters read through the ts index.
    conn.execute("DROP INDEX IF EXISTS history_mac")
    conn.execute("DROP INDEX IF EXISTS history_action")
    macindex.ensure(conn)


def attach_recent(conn: sqlite3.Connection, path: str | Path, *, readonly: bool = False) -> bool:
    """Attach the recent tier of the database at ``path`` to ``conn`` as ``recent`` and make the
    TEMP VIEW ``history`` over both tiers; False if there is none to attach (a read-only open
    of a database no server has written since it had tiers: then ``history`` is main's table).

    A writable open creates the tier (or converts one of the older row-per-decision layout)
    and raises its id sequence above main.history's ids.
    """
    if readonly:
        target = Path(recent_path(path))
        if not target.is_file():
            return False
        conn.execute("ATTACH ? AS recent", (dbfile.readonly_uri(str(target)),))
        conn.execute(f"PRAGMA recent.cache_size={RECENT_CACHE_KIB}")
        names = {row[0] for row in conn.execute("SELECT name FROM recent.sqlite_master WHERE type = 'table'")}
        if "history_batches" not in names:  # an older server's layout: the next start converts it
            conn.execute("DETACH recent")
            return False
    else:
        dbfile.create_private(recent_path(path))  # its -wal and -shm take its mode
        conn.execute("ATTACH ? AS recent", (recent_path(path),))
        conn.execute(f"PRAGMA recent.page_size={RECENT_PAGE_SIZE}")  # a new file's (WAL fixes it)
        conn.execute("PRAGMA recent.journal_mode=WAL")
        conn.execute("PRAGMA recent.synchronous=NORMAL")
        conn.execute(f"PRAGMA recent.journal_size_limit={dbfile.WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA recent.cache_size={RECENT_CACHE_KIB}")
        with conn:
            for ddl in _RECENT_TABLES:
                conn.execute(ddl)
            columns = {row[1] for row in conn.execute("PRAGMA recent.table_info(history_batches)")}
            if "node" not in columns:
                conn.execute("ALTER TABLE recent.history_batches ADD COLUMN node TEXT")
            if "keys" not in columns:  # batches before the MAC index: it decodes their rows
                conn.execute("ALTER TABLE recent.history_batches ADD COLUMN keys BLOB")
            _convert_row_tier(conn)
            _convert_marshal_batches(conn)
            # Above every id ever indexed too: main's newest rows may have been pruned.
            top = max(conn.execute("SELECT MAX(id) FROM main.history").fetchone()[0] or 0, indexed_upto(conn))
            seq = conn.execute("SELECT last FROM recent.history_seq").fetchone()
            if seq is None:
                conn.execute("INSERT INTO recent.history_seq (one, last) VALUES (1, ?)", (top,))
            elif seq[0] < top:
                conn.execute("UPDATE recent.history_seq SET last = ?", (top,))
    conn.execute(history_table("temp.recent_history"))
    conn.execute("CREATE INDEX IF NOT EXISTS temp.recent_history_ts ON recent_history (ts)")
    conn.execute(_HISTORY_VIEW)
    return True


def _convert_row_tier(conn: sqlite3.Connection) -> None:
    """A recent tier from before the batches (a row per decision in ``recent.history``): index
    its rows into main and drop the table, in the caller's transaction."""
    old = "SELECT 1 FROM recent.sqlite_master WHERE type = 'table' AND name = 'history'"
    if conn.execute(old).fetchone() is None:
        return
    upto = indexed_upto(conn)
    moved = conn.execute(
        f"INSERT OR IGNORE INTO main.history ({_ID_AND_RECORD})"  # noqa: S608 - constants
        f" SELECT {_ID_AND_RECORD} FROM recent.history WHERE id > ?",
        (upto,),
    ).rowcount
    high = conn.execute("SELECT MAX(id) FROM recent.history").fetchone()[0]
    if high is not None and high > upto:
        _set_indexed_upto(conn, int(high))
    conn.execute("DROP TABLE recent.history")
    log.info("history: the recent tier now holds batches; its %d unindexed rows are indexed", moved)


def outdated(conn: sqlite3.Connection) -> bool:
    """Whether the recent tier may hold batches an older nac wrote (before format 1): a
    writable open converts them (:func:`attach_recent`) before anything reads them."""
    row = conn.execute("SELECT value FROM main.meta WHERE key = 'history_format'").fetchone()
    return row is None or int(row[0]) < blob_format.VERSION


def _convert_marshal_batches(conn: sqlite3.Connection) -> None:
    """Rewrite, in the caller's transaction, the batches nac wrote before format 1 (Python's
    marshal, which Python may change between versions) in format 1; once per database."""
    if not outdated(conn):
        return
    converted = 0
    for first, blob in conn.execute("SELECT id, rows FROM recent.history_batches").fetchall():
        if blob_format.is_current(blob):
            continue
        # Our own server wrote it into our own database: no more trusted than the rules beside it.
        rows = marshal.loads(blob)  # noqa: S302
        fresh = blob_format.encode(rows)
        conn.execute("UPDATE recent.history_batches SET rows = ? WHERE id = ?", (fresh, first))
        converted += 1
    conn.execute(
        "INSERT INTO main.meta (key, value) VALUES ('history_format', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(blob_format.VERSION),),
    )
    if converted:
        log.info("history: %d recent batches rewritten in format %d", converted, blob_format.VERSION)


def connect(path: str | Path, *, sync: bool = True) -> sqlite3.Connection:
    """A plain sqlite3 connection to the database at ``path`` (WAL, the recent tier attached,
    the ``history`` view over both tiers as of now): for threads and scripts that use SQL
    directly.  A connection kept open must call sync_recent() before it reads ``history``
    again, or it misses the decisions committed since.  ``sync=False``: a connection that never
    reads the view (the indexer's) skips unpacking the unindexed batches into it."""
    conn = sqlite3.connect(path, timeout=dbfile.BUSY_TIMEOUT_MS / 1000)
    dbfile.use_wal(conn)
    attach_recent(conn, path)
    if sync:
        sync_recent(conn)
    return conn



def has_recent(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "recent" for row in conn.execute("PRAGMA database_list"))


def indexed_upto(conn: sqlite3.Connection) -> int:
    """The highest id moved into main.history: recent rows up to it are copies, awaiting
    collection (the view leaves them out)."""
    row = conn.execute(_INDEXED_UPTO).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def _set_indexed_upto(conn: sqlite3.Connection, high: int) -> None:
    conn.execute(
        "INSERT INTO main.meta (key, value) VALUES ('history_indexed_upto', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(high),),
    )


def append_history(
    conn: sqlite3.Connection, rows: Sequence[Sequence[object]], node: str | None = None
) -> None:
    """Append ``rows`` (``HISTORY_COLUMNS``, oldest first), decided by the server ``node``, to
    the recent tier as one batch, in the caller's transaction: the caller commits."""
    blob = blob_format.encode(rows)
    keys = blob_format.encode_keys(rows, _MAC, _TS, _ACTION)
    conn.execute(_APPEND, (len(rows), rows[0][0], rows[-1][0], blob, node, keys)).fetchall()


def unpack(first: int, blob: bytes, above: int, node: str | None) -> list[tuple[object, ...]]:
    """The rows of the batch whose first id is ``first``, with their ids and node; those above
    ``above`` only."""
    rows = blob_format.decode(blob, len(HISTORY_COLUMNS))
    skip = max(0, above + 1 - first)
    return [(first + i, *row, node) for i, row in enumerate(rows) if i >= skip]


def sync_recent(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s view of the recent tier up to date: unpack the batches committed since
    its last call into its TEMP table, and drop the rows indexed or pruned since.  Returns how
    many rows it added.  Three indexed lookups when nothing changed."""
    if not has_recent(conn):
        return 0
    with conn:
        upto = indexed_upto(conn)
        conn.execute("DELETE FROM temp.recent_history WHERE id <= ?", (upto,))
        low, high = conn.execute("SELECT MIN(id), MAX(id) FROM temp.recent_history").fetchone()
        if low is not None:  # batches pruned before they were indexed: gone here too
            at = low
            kept = conn.execute(
                f"SELECT id, last FROM recent.history_batches WHERE {_AFTER} AND id <= ?2 ORDER BY id",  # noqa: S608
                (low - 1, high),
            ).fetchall()
            for first, last in kept:
                if first > at:
                    conn.execute("DELETE FROM temp.recent_history WHERE id BETWEEN ? AND ?", (at, first - 1))
                at = max(at, last + 1)
            if at <= high:
                conn.execute("DELETE FROM temp.recent_history WHERE id BETWEEN ? AND ?", (at, high))
        above = max(upto, high or 0)
        added = 0
        for first, blob, node in conn.execute(
            f"SELECT id, rows, node FROM recent.history_batches WHERE {_AFTER} ORDER BY id",  # noqa: S608
            (above,),
        ).fetchall():
            rows = unpack(first, blob, above, node)
            conn.executemany(_INSERT_SEEN, rows)
            added += len(rows)
    return added


def history_count(conn: sqlite3.Connection) -> int:
    """Rows in both tiers (counted tier by tier: COUNT(*) over the view is several times slower)."""
    total = int(conn.execute("SELECT COUNT(*) FROM main.history").fetchone()[0])
    if has_recent(conn):
        upto = indexed_upto(conn)
        total += int(
            conn.execute(
                "SELECT COALESCE(SUM(last - MAX(id, ?2 + 1) + 1), 0)"  # noqa: S608 - constants
                f" FROM recent.history_batches WHERE {_AFTER}",
                (upto, upto),
            ).fetchone()[0]
        )
    return total


def top_id(conn: sqlite3.Connection) -> int:
    """The newest decision's id (0 for none)."""
    return int(conn.execute(f"SELECT {_TOP}").fetchone()[0])


def recent_backlog(conn: sqlite3.Connection) -> int:
    """Rows waiting for the indexer (from the id range: exact unless a prune removed some)."""
    top = conn.execute(f"SELECT {_TOP}").fetchone()[0]
    return max(0, int(top) - indexed_upto(conn))


def move_recent(conn: sqlite3.Connection, batch: int) -> int:
    """Unpack the oldest unindexed batches of the recent tier (whole ones, until ``batch`` rows
    or more) into main.history and raise the watermark in the same transaction; returns how
    many rows it took.  The batches stay in the recent tier, hidden by the view, until
    collect_recent() deletes them.

    Only batches the MAC index holds are moved (it indexes them first if need be): a batch
    collected from the recent tier must be in both.

    The batches are read (a short read transaction on the recent tier) before main's write
    transaction begins: the long part, the row inserts, holds main's write lock but no
    snapshot of the recent tier.  The indexer runs at idle priority and can be stopped
    anywhere for as long as a burst lasts; a snapshot held that long would keep every
    checkpoint from rewinding the recent tier's WAL, which the server appends to at full speed.
    One executemany per batch: the GIL is released around every row's insert, and never held
    for long by a thread at idle priority, which the event loop would then wait for."""
    macindex.post(conn, batch)  # rows only for what the MAC index holds: see collect_recent
    upto = indexed_upto(conn)
    posted = macindex.upto(conn)
    taken: list[tuple[int, int, bytes, str | None]] = []
    count = 0
    try:
        cursor = conn.execute(
            f"SELECT id, last, rows, node FROM recent.history_batches WHERE {_AFTER} AND last <= ?2"  # noqa: S608
            " ORDER BY id",
            (upto, posted),
        )
        while count < batch:
            got = cursor.fetchone()
            if got is None:
                break
            taken.append(got)
            count += got[1] - max(got[0], upto + 1) + 1
        cursor.close()
        conn.commit()
        if not taken:
            return 0
        for first, _, blob, node in taken:
            conn.executemany(_INSERT_MAIN, unpack(first, blob, upto, node))
        _set_indexed_upto(conn, taken[-1][1])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return count


def prune_recent(conn: sqlite3.Connection, cutoff: float, limit: int) -> tuple[int, int]:
    """Delete up to ``limit`` unindexed batches of the recent tier whose decisions are all older
    than ``cutoff``; returns (decisions, batches) deleted.  The indexer skips what is gone."""
    with conn:
        upto = indexed_upto(conn)
        conn.execute(_KEEP_FLOOR)
        gone = conn.execute(
            "DELETE FROM recent.history_batches WHERE id IN (SELECT id FROM recent.history_batches"  # noqa: S608
            f" WHERE {_AFTER} AND ts_last < ?2 ORDER BY id LIMIT ?3) RETURNING id, last",
            (upto, cutoff, limit),
        ).fetchall()
    return sum(last - max(first, upto + 1) + 1 for first, last in gone), len(gone)


def collect_recent(conn: sqlite3.Connection, limit: int) -> int:
    """Delete up to ``limit`` batches of the recent tier that are already in main.history;
    returns how many.  A short transaction on the recent tier (a few pages per batch)."""
    oldest = conn.execute("SELECT MIN(id) FROM recent.history_batches").fetchone()[0]
    if oldest is None or oldest > indexed_upto(conn):
        return 0  # nothing indexed is left: no write (the tick comes four times a second)
    try:
        conn.execute(_KEEP_FLOOR)
        deleted = conn.execute(_COLLECT, (limit,)).rowcount
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return int(deleted)



def write_batch(
    conn: sqlite3.Connection,
    rows: Sequence[Sequence[object]],
    events: Sequence[SessionEvent],
    *,
    collect: tuple[int, int] | None = None,
    node: str | None = None,
) -> int:
    """History rows and accounting events of one server batch (the server ``node``'s), in one
    transaction: the group commit that comes before any of the batch's replies is sent.

    ``collect`` = (indexed_upto, limit): first delete up to ``limit`` recent batches that the
    indexer has copied (through ``indexed_upto``), in the same commit: collection a few rows
    at a time costs no commit of its own and never stalls the event loop the way a bulk
    delete does.  Returns how many it deleted; a failed deletion is skipped."""
    collected = 0
    if collect is not None:
        try:
            collected = conn.execute(_COLLECT_IN_COMMIT, collect).rowcount
        except sqlite3.Error as exc:  # before the append: whatever it undid, nothing is lost
            log.debug("collecting indexed history in the group commit: %s", exc)
    try:
        if rows:
            append_history(conn, rows, node)
        if events:
            session_store.apply_events(conn, events, node=node)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return collected
