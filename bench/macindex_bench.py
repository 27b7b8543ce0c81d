"""What indexing history costs per decision: the MAC index's pass against the rows table, with
and without the per-row MAC B-tree that nac kept before the MAC index.

    taskset -c 0 python bench/macindex_bench.py                  # 1,000,000 decisions, 660 MACs
    taskset -c 0 python bench/macindex_bench.py --decisions 300000 --macs 300000

Each store gets the same group commits (128 decisions, MACs round-robin from the load
generator's mix, nac/bench/request.py), then: one MAC index pass per ``--pass-size`` decisions
(nac/history/macindex.py ``post``), the rows table filled by the indexer's own step
(nac/history/tiers.py ``move_recent``), the same with the old (mac, ts, action) index put back,
and a `nac why` for one MAC.  Printed: microseconds per decision for each, and the lookup's
milliseconds.  Deciding one request costs about 17 us at full load (bench/README.md): what
the server can afford to index on the request core is a small part of that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nac.bench.request import default_macs
from nac.helpdesk import queries
from nac.history import macindex, tiers
from nac.history.record import HistoryRecord, record_row
from nac.registry.mac import format_mac, parse_mac
from nac.store import Store

BATCH = 128


def _row(ts: float, mac: str) -> tuple[object, ...]:
    return record_row(
        HistoryRecord(
            ts=ts,
            mac=mac,
            vendor="Huawei Technologies Co.,Ltd",
            prefix="00:E0:FC",
            prefix_bits=24,
            action="reject",
            vlan=None,
            rule="ban-huawei",
            reason="banned vendor",
            client="bench",
            nas_ip="127.0.0.1",
            method="mab",
            user_name=mac.replace(":", ""),
            calling_station_id=mac.replace(":", "-").upper(),
            called_station_id="00-11-22-33-44-55:corp",
            nas_port=50107,
            nas_port_id="GigabitEthernet1/0/7",
            nas_port_type="Ethernet",
            nas_identifier="sw1",
            src="127.0.0.1:1645",
            message_authenticator=1,
            reply=3,
            snapshot="bundled",
        ),
        12,
    )


def _fill(store: Store, decisions: int, macs: list[str]) -> None:
    now = time.time()
    for start in range(0, decisions, BATCH):
        rows = [_row(now + (start + i) * 1e-5, macs[(start + i) % len(macs)]) for i in range(BATCH)]
        tiers.write_batch(store.conn, rows, [])


def _per_decision(seconds: float, decisions: int) -> float:
    return seconds * 1e6 / max(1, decisions)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--macs", type=int, default=660)
    parser.add_argument("--pass-size", type=int, default=12_500, help="decisions per MAC index pass")
    args = parser.parse_args()
    macs = [format_mac(parse_mac(m)) for m in default_macs(args.macs)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "nac.db"))
        _fill(store, args.decisions, macs)
        started = time.perf_counter()
        while macindex.post(store.conn, args.pass_size):
            pass
        posted = time.perf_counter() - started
        started = time.perf_counter()
        while tiers.move_recent(store.conn, 20_000):
            pass
        rows = time.perf_counter() - started
        segments = macindex.segments(store.conn)
        started = time.perf_counter()
        report = queries.why(store.conn, macs[0], decide=None, now=time.time())
        why_ms = (time.perf_counter() - started) * 1000
        store.close()

        old = Store(str(Path(tmp) / "old.db"))
        old.conn.execute("CREATE INDEX main.history_mac_action ON history (mac, ts, action)")
        old.conn.commit()
        _fill(old, args.decisions, macs)
        while macindex.post(old.conn, 10**9):  # out of the way: only the rows are timed below
            pass
        started = time.perf_counter()
        while tiers.move_recent(old.conn, 20_000):
            pass
        old_rows = time.perf_counter() - started
        old.close()
    found = report.streak.count if report.streak is not None else 0
    print(f"{args.decisions} decisions, {args.macs} MACs, a pass per {args.pass_size}:")
    per = _per_decision(posted, args.decisions)
    print(f"  MAC index pass            {per:6.2f} us/decision ({segments} segments)")
    print(f"  rows table                {_per_decision(rows, args.decisions):6.2f} us/decision")
    print(f"  rows table + MAC B-tree   {_per_decision(old_rows, args.decisions):6.2f} us/decision (before)")
    print(f"  nac why                   {why_ms:6.1f} ms ({found} decisions of one MAC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
