"""How long nac's directory client takes to check a password and to find an entry, over
ldap:// and ldaps://, against a real OpenLDAP started for the run (tests/slapd.py).

    python bench/ldap_bench.py                  # 300 checks one at a time, 1,000 on 4 threads
    python bench/ldap_bench.py --count 1000 --threads 8

Printed per scheme and kind ("bind": a TTLS-PAP password check, the service account's search
then a bind as the user; "entry": an EAP-TLS certificate's entry and groups): the median and
99th percentile of one check at a time, and the checks per second the pool gives on
``--threads`` threads.  Needs Debian's slapd (``apt-get install slapd ldap-utils``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nac.identity.config import LdapConfig  # noqa: E402
from nac.identity.ldap import Directory  # noqa: E402
from nac.identity.query import DirectoryQuery  # noqa: E402
from tests.slapd import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USERS, Slapd  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="checks one at a time, per kind")
    parser.add_argument("--threads", type=int, default=4, help="threads (and pool size) for the rate")
    parser.add_argument("--user", default="carol", help="a user of tests/slapd.py's tree")
    args = parser.parse_args()
    slapd = Slapd(Path(tempfile.mkdtemp(prefix="nac-ldap-bench-")))
    try:
        schemes = {"ldap": {}, "ldaps": {"urls": (slapd.ldaps_url,), "ca_file": str(slapd.pki / "ca.pem")}}
        for scheme, extra in schemes.items():
            settings: dict[str, object] = {
                "urls": (slapd.url,),
                "base": PEOPLE,
                "bind_dn": SERVICE_DN,
                "bind_password": SERVICE_PASSWORD,
                "group_base": GROUPS,
                "pool_size": args.threads,
                **extra,
            }
            directory = Directory(LdapConfig(**settings))  # type: ignore[arg-type]
            try:
                for kind in ("bind", "entry"):
                    query = DirectoryQuery(kind=kind, user=args.user, password=USERS[args.user][0])
                    if not directory.answer(query).ok:
                        sys.exit(f"ldap_bench.py: {scheme} {kind} for {args.user} failed")
                    took = []
                    for _ in range(args.count):
                        started = time.perf_counter()
                        directory.answer(query)
                        took.append(time.perf_counter() - started)
                    took.sort()
                    many = args.count * 3
                    with ThreadPoolExecutor(args.threads) as pool:
                        started = time.perf_counter()
                        list(pool.map(directory.answer, [query] * many))
                        rate = many / (time.perf_counter() - started)
                    print(
                        f"{scheme:5} {kind:5}  median {statistics.median(took) * 1000:6.2f} ms"
                        f"  p99 {took[int(len(took) * 0.99) - 1] * 1000:6.2f} ms"
                        f"  {args.threads} threads: {rate:,.0f}/s",
                        flush=True,
                    )
            finally:
                directory.close()
    finally:
        slapd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
