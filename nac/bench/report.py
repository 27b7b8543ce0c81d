"""What nac bench reports: the send loop's raw :class:`Tally` becomes a :class:`BenchResult`.

The loop (nac/bench/loop.py) only counts and records nanosecond latencies; here they become
per-code reply counts, throughput and nearest-rank latency percentiles in milliseconds, and
the JSON and text renderings `nac bench` prints.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import asdict, dataclass
from typing import Any, Final

__all__ = [
    "ACCESS_ACCEPT",
    "ACCESS_CHALLENGE",
    "ACCESS_REJECT",
    "CODE_NAMES",
    "OTHER",
    "BenchResult",
    "Tally",
    "summarize",
]

ACCESS_ACCEPT: Final = 2
ACCESS_REJECT: Final = 3
ACCESS_CHALLENGE: Final = 11
#: Reply codes counted by name; anything else is counted as "other".
CODE_NAMES: Final = {
    ACCESS_ACCEPT: "Access-Accept",
    ACCESS_REJECT: "Access-Reject",
    ACCESS_CHALLENGE: "Access-Challenge",
}
OTHER: Final = "other"


@dataclass(frozen=True, kw_only=True)
class Tally:
    """What the loop counted, before it becomes a :class:`BenchResult`."""

    sent: int
    codes: list[int]  # verified replies by code number
    timeouts: int
    bad: int
    late: int
    retransmits: int
    elapsed_ns: int
    wall_ns: int
    cpu: float
    latencies: array[int]


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


@dataclass(frozen=True)
class BenchResult:
    """What one run of nac bench measured.  Latencies are milliseconds, ``None`` with no reply."""

    host: str
    port: int
    window: int
    sockets: int
    #: Distinct requests sent (retransmissions are counted in ``retransmits``).
    sent: int
    #: Replies whose Response Authenticator verified; the sum of ``codes``.
    received: int
    #: Verified replies per code: "Access-Accept", "Access-Reject", "Access-Challenge", "other".
    codes: dict[str, int]
    #: Requests with no verified reply within ``timeout`` (after all retries).
    timeouts: int
    #: Replies to a request in flight that failed the Response Authenticator check (or whose
    #: Length lies); each ends its request, so ``sent == received + bad_authenticator + timeouts``.
    bad_authenticator: int
    #: Replies that answer no request in flight: duplicates, replies after their request timed
    #: out, runts.  Not counted anywhere else.
    late: int
    retransmits: int
    #: First send to the last send or verified reply, seconds.
    elapsed: float
    #: ``received / elapsed``.
    requests_per_second: float
    #: The whole run, seconds, including the wait for the last timeouts.
    wall_seconds: float
    latency_mean_ms: float | None
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    #: CPU seconds (user + system) this process spent in the run: near ``wall_seconds``
    #: means the load generator itself was the bottleneck.
    client_cpu_seconds: float
    #: The pace asked for (requests/s), ``None``: as fast as the window allows.
    rate: float | None = None

    @property
    def client_cpu_percent(self) -> float:
        """Client CPU time over the run's wall time, in percent of one core."""
        return 100.0 * self.client_cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (with ``client_cpu_percent`` added)."""
        d = asdict(self)
        d["codes"] = dict(self.codes)
        d["client_cpu_percent"] = round(self.client_cpu_percent, 1)
        return d

    def format_text(self) -> str:
        """A short aligned report for people."""

        def lat(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f} ms"

        codes = ", ".join(f"{name} {n}" for name, n in self.codes.items() if n) or "none"
        family = f"[{self.host}]" if ":" in self.host else self.host
        lines = [
            (
                "target",
                f"{family}:{self.port}  window {self.window}, {self.sockets} socket(s)"
                + (f", paced at {self.rate:,.0f} requests/s" if self.rate else ""),
            ),
            ("requests", f"{self.sent} sent, {self.received} answered in {self.elapsed:.3f} s"),
            ("throughput", f"{self.requests_per_second:,.0f} requests/s"),
            ("replies", codes),
            (
                "failures",
                f"{self.timeouts} timeouts, {self.bad_authenticator} bad authenticator, "
                f"{self.late} late, {self.retransmits} retransmits",
            ),
            (
                "latency",
                f"p50 {lat(self.latency_p50_ms)}  p90 {lat(self.latency_p90_ms)}  "
                f"p99 {lat(self.latency_p99_ms)}  max {lat(self.latency_max_ms)}",
            ),
            ("client cpu", f"{self.client_cpu_percent:.0f}% of one core"),
        ]
        width = max(len(k) for k, _ in lines)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)


def _percentile(sorted_ns: array[int], q: float) -> float | None:
    """Nearest-rank percentile in milliseconds."""
    n = len(sorted_ns)
    if not n:
        return None
    return _ms(sorted_ns[min(n - 1, max(0, math.ceil(q * n) - 1))])


def summarize(
    tally: Tally, *, host: str, port: int, window: int, sockets: int, rate: float | None
) -> BenchResult:
    """The run's figures from the loop's counts; the other arguments are echoed as given."""
    codes = dict.fromkeys((*CODE_NAMES.values(), OTHER), 0)
    for code, n in enumerate(tally.codes):
        if n:
            codes[CODE_NAMES.get(code, OTHER)] += n
    received = len(tally.latencies)
    elapsed = tally.elapsed_ns / 1e9
    ordered = array("q", sorted(tally.latencies))
    return BenchResult(
        host=host,
        port=port,
        window=window,
        sockets=sockets,
        sent=tally.sent,
        received=received,
        codes=codes,
        timeouts=tally.timeouts,
        bad_authenticator=tally.bad,
        late=tally.late,
        retransmits=tally.retransmits,
        elapsed=round(elapsed, 6),
        requests_per_second=round(received / elapsed, 1) if elapsed > 0 else 0.0,
        wall_seconds=round(tally.wall_ns / 1e9, 6),
        latency_mean_ms=_ms(sum(ordered) // received) if received else None,
        latency_p50_ms=_percentile(ordered, 0.50),
        latency_p90_ms=_percentile(ordered, 0.90),
        latency_p99_ms=_percentile(ordered, 0.99),
        latency_max_ms=_ms(ordered[-1]) if received else None,
        client_cpu_seconds=round(tally.cpu, 3),
        rate=rate,
    )
