"""Load generator: MAB Access-Requests against a RADIUS server, like ``redis-benchmark``.

:func:`run` keeps ``window`` requests in flight and returns a :class:`BenchResult` with
throughput, per-code reply counts, timeouts, replies that failed authentication and latency
percentiles.  This module is the generator's one public face; its three parts are

- nac/bench/request.py: the MAC mix and the MAB Access-Request built from each MAC;
- nac/bench/loop.py: the send/receive loop, :func:`run`;
- nac/bench/report.py: the loop's counts turned into a :class:`BenchResult`, and its renderings.

Its command line is nac/cli/bench.py's: `nac bench`, or `python -m nac.bench`.
"""

from __future__ import annotations

from nac.bench.loop import DEFAULT_COUNT, MAX_IN_FLIGHT_PER_SOCKET, run
from nac.bench.report import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    CODE_NAMES,
    OTHER,
    BenchResult,
)
from nac.bench.request import ACCESS_REQUEST, SPELLINGS, build_request, default_macs, format_mac

__all__ = [
    "ACCESS_ACCEPT",
    "ACCESS_CHALLENGE",
    "ACCESS_REJECT",
    "ACCESS_REQUEST",
    "CODE_NAMES",
    "DEFAULT_COUNT",
    "MAX_IN_FLIGHT_PER_SOCKET",
    "OTHER",
    "SPELLINGS",
    "BenchResult",
    "build_request",
    "default_macs",
    "format_mac",
    "run",
]
