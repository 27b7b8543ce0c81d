"""One server on SQLite against one on PostgreSQL, and how long PostgreSQL takes to absorb an
outage's journal.

    python bench/pg_bench.py                        # 3 alternated rounds, then a 60 s outage
    python bench/pg_bench.py --rounds 5 --outage-seconds 30 --json

PostgreSQL is Debian's (initdb and pg_ctl in a temporary directory, a Unix socket only, its
durable defaults: fsync and synchronous_commit on), unpinned.  nac runs pinned to
``--server-cpu`` on its embedded defaults, or with ``--db postgresql://...`` and a journal, with
the reference policy (bench/compare.py) added through the same CLI; the load generator runs
on ``--client-cpu``, 128 requests in flight, ``--count`` requests a run.  The two servers
alternate, each run on a server started afresh.

The outage: PostgreSQL stopped, ``--outage-seconds`` of full load on the PostgreSQL-backed
server, PostgreSQL started again; printed: the decisions the journal held unshipped when
PostgreSQL came back (``nac_pg_history_unshipped``), the seconds until none was left, and the
rows PostgreSQL then held.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from compare import SECRET, _nac, _nac_env, bench, running, start_nac  # noqa: E402
from sustained import gauge  # noqa: E402

from nac.bench.load import run  # noqa: E402
from tests.pgserver import PgServer, bindir  # noqa: E402

PORT = 19822
METRICS = "127.0.0.1:19898"
#: The reference policy of bench/compare.py, as `nac rules add` arguments.
RULES = (
    ["--vendor", "huawei", "--action", "reject", "--reason", "Huawei devices are not admitted"],
    ["--oui", "00:10:A4", "--action", "quarantine", "--vlan", "666"],
)


def start_pg_nac(url: str, *, cpu: str, workdir: Path) -> Any:
    """nac serve on ``url`` with a journal in ``workdir``, metrics on, pinned to ``cpu``."""
    config = workdir / "nac.toml"
    config.write_text(
        f'[server]\ndb = "{url}"\njournal = "{workdir / "journal.db"}"\nnode = "bench"\n'
        f'[metrics]\nbind = "{METRICS}"\n'
        f'[[client]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "{SECRET}"\n'
    )
    return start_nac(port=PORT, cpu=cpu, workdir=workdir, config=config)


def _add_rules(url: str) -> None:
    for rule in RULES:
        subprocess.run(
            _nac("rules", "add", *rule, "--db", url), check=True, env=_nac_env(), stdout=subprocess.DEVNULL
        )


def _rate(server: Any, args: argparse.Namespace) -> float:
    with running(server):
        bench(server.port, count=20_000, window=128, cpu=args.client_cpu)  # warm-up
        return float(
            bench(server.port, count=args.count, window=128, cpu=args.client_cpu)["requests_per_second"]
        )


def _wait_shipped(within: float) -> float | None:
    """Seconds until nothing is left to ship (None: not within ``within``)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        left = gauge("nac_pg_history_unshipped", METRICS)
        if left == 0.0:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = bindir()
    if found is None:
        sys.exit("pg_bench.py: PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    pg = PgServer(found, settings="")
    pg.start()
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    try:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                rates["sqlite"].append(
                    _rate(start_nac(port=PORT, cpu=args.server_cpu, workdir=Path(tmp), config=None), args)
                )
            with tempfile.TemporaryDirectory() as tmp:
                url = pg.new_database()
                _add_rules(url)
                server = start_pg_nac(url, cpu=args.server_cpu, workdir=Path(tmp))
                rates["postgresql"].append(_rate(server, args))
            if not args.json:
                print(
                    f"sqlite {rates['sqlite'][-1]:,.0f}/s  postgresql {rates['postgresql'][-1]:,.0f}/s",
                    flush=True,
                )
        outage = _outage(pg, args)
    finally:
        pg.remove()
    summary = {
        "sqlite": rates["sqlite"],
        "postgresql": rates["postgresql"],
        "median_sqlite": statistics.median(rates["sqlite"]),
        "median_postgresql": statistics.median(rates["postgresql"]),
        **outage,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"median: sqlite {summary['median_sqlite']:,.0f}/s,"
            f" postgresql {summary['median_postgresql']:,.0f}/s"
            f" ({summary['median_postgresql'] / summary['median_sqlite']:.0%})\n"
            f"outage of {args.outage_seconds:.0f} s: {outage['outage_decisions']:,} decisions answered,"
            f" {outage['unshipped_at_return']:,.0f} unshipped when PostgreSQL returned,"
            f" all shipped {outage['absorb_seconds']} s later;"
            f" PostgreSQL holds {outage['rows_in_postgresql']:,}"
        )
    return 0


def _outage(pg: PgServer, args: argparse.Namespace) -> dict[str, Any]:
    import psycopg  # noqa: PLC0415 - the bench needs it only here

    url = pg.new_database()
    with tempfile.TemporaryDirectory() as tmp:
        _add_rules(url)
        with running(start_pg_nac(url, cpu=args.server_cpu, workdir=Path(tmp))):
            if args.client_cpu != "none":
                os.sched_setaffinity(0, {int(cpu) for cpu in args.client_cpu.split(",")})
            pg.stop()
            result = run(port=PORT, secret=SECRET.encode(), duration=args.outage_seconds, window=128)
            unshipped = gauge("nac_pg_history_unshipped", METRICS) or 0.0
            pg.start()
            absorb = _wait_shipped(within=1800)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM history").fetchone()
    return {
        "outage_decisions": result.received,
        "outage_rate": result.requests_per_second,
        "unshipped_at_return": unshipped,
        "absorb_seconds": None if absorb is None else round(absorb, 1),
        "rows_in_postgresql": int(row[0]) if row else 0,
    }


if __name__ == "__main__":
    sys.exit(main())
