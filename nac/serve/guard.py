"""What traffic that fails verification may cost: bounded per-source tables, clock injected.

A UDP source address proves nothing: anyone on the path can forge a NAS's.  So nothing here
ever stops nac from answering a packet that verifies.  Every datagram from a configured
client's address is decoded and verified, at most one decode and two MD5-family digests over at
most 4096 octets, about what receiving it costs.  A per-source cap on verification attempts
was rejected: before verification a forged packet and the NAS's own look alike, so a cap spent
by forgeries is the lock-out again at a higher threshold.  What is bounded instead:

- work: past UNVERIFIED_BUDGET failures a second, a source's datagrams first get the checks that
  need neither decoding nor crypto (:func:`screen`), so malformed ones are dropped for a few
  comparisons, with no exception and no detail formatted;
- memory: every table here is bounded in size and pruned by age (:meth:`prune`);
- logs: one line per reason and source per interval, and at most LOG_SOURCES sources named per
  reason per interval (a spread of forged sources is summed up in one line);
- the per-client ``rate_limit``: only verified requests spend it (:class:`RateLimits`).
"""

from __future__ import annotations

import logging
from typing import Final

from nac.admission.engine import AUTH
from nac.radius.packet import ACCESS_REQUEST, ACCOUNTING_REQUEST, MAX_PACKET, MIN_PACKET, STATUS_SERVER

log = logging.getLogger("nac.server")

#: Unverifiable datagrams (wrong secret, bad authenticator, malformed) from one source in one
#: second past which it is flagged and screened (see the module's docstring).  A NAS with the
#: right secret sends none, however busy.
UNVERIFIED_BUDGET: Final = 100
#: Sources tracked at once; past it the oldest window goes (a forged spread only under-counts).
SOURCES_MAX: Final = 4096
#: At most one log line per reason and source in this many seconds (floods must not flood logs).
LOG_INTERVAL: Final = 10.0
#: Sources named per reason per interval; the rest are summed up in one line.
LOG_SOURCES: Final = 20
LOG_KEYS_MAX: Final = 10_000
#: Drop reasons raised after a request verified (nac/admission/engine.py): not the source's fault.
AFTER_VERIFICATION: Final = frozenset({"reply-too-large"})
#: The codes each port serves; anything else is dropped (FreeRADIUS does the same).
SERVED: Final = {
    AUTH: frozenset({ACCESS_REQUEST, STATUS_SERVER}),
    "acct": frozenset({ACCOUNTING_REQUEST, STATUS_SERVER}),
}


def screen(data: bytes, service: str) -> str | None:
    """The drop reason that the header alone gives (RFC 2865 §3 lengths, the port's codes), or
    None: the checks that need no decoding and no crypto, with the reasons decode() uses."""
    size = len(data)
    if size < MIN_PACKET:
        return "too-short"
    if size > MAX_PACKET:
        return "too-long"
    length = data[2] << 8 | data[3]
    if length < MIN_PACKET or length > size:
        return "bad-length"
    if data[0] not in SERVED[service]:
        return "unexpected-code"
    return None


class Unverified:
    """Per source: unverifiable datagrams in the current second (a fixed one-second window)."""

    def __init__(self, budget: int = UNVERIFIED_BUDGET, max_sources: int = SOURCES_MAX) -> None:
        self.budget = budget
        self.max_sources = max_sources
        #: source -> [second, count]; insertion order is age order (a new window re-inserts).
        self.windows: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def over(self, source: str, now: float) -> bool:
        """Whether ``source`` has spent its budget in this second."""
        window = self.windows.get(source)
        return window is not None and window[1] >= self.budget and window[0] == int(now)

    def count(self, source: str, now: float) -> int:
        """Count one unverifiable datagram from ``source``; how many it sent this second."""
        second = int(now)
        windows = self.windows
        window = windows.get(source)
        if window is not None and window[0] == second:
            window[1] += 1
            return window[1]
        if window is not None:
            del windows[source]
        elif len(windows) >= self.max_sources:
            del windows[next(iter(windows))]
        windows[source] = [second, 1]
        return 1

    def prune(self, now: float) -> int:
        """Forget windows from earlier seconds; how many were forgotten."""
        second = int(now)
        windows = self.windows
        stale = []
        for source, window in windows.items():
            if window[0] >= second:
                break
            stale.append(source)
        for source in stale:
            del windows[source]
        return len(stale)


class RateLimits:
    """A token bucket per client: ``rate`` tokens a second, at most one second's worth.

    :meth:`allows` only looks; :meth:`spend` takes a token once a request has verified, so
    datagrams that fail verification (forged ones included) never use up a NAS's allowance.
    An empty bucket drops what comes without verifying it: it can only have been emptied by
    verified requests."""

    def __init__(self) -> None:
        self.buckets: dict[str, list[float]] = {}  # client -> [tokens, last refill]

    def __len__(self) -> int:
        return len(self.buckets)

    def allows(self, name: str, rate: float, now: float) -> bool:
        bucket = self.buckets.get(name)
        if bucket is None:
            return True  # a full bucket; created on the first spend
        bucket[0] = min(rate, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        return bucket[0] >= 1.0

    def spend(self, name: str, rate: float, now: float) -> None:
        bucket = self.buckets.get(name)
        if bucket is None:
            self.buckets[name] = [rate - 1.0, now]
        else:
            bucket[0] -= 1.0

    def prune(self, now: float) -> int:
        """Forget buckets idle for a second or more: they have refilled to full, which is what
        a missing bucket means, so nothing changes but the table's size."""
        stale = [name for name, bucket in self.buckets.items() if now - bucket[1] >= 1.0]
        for name in stale:
            del self.buckets[name]
        return len(stale)


class DropLog:
    """Logs each (reason, source) once per interval, with how many were suppressed, and names
    at most ``sources`` sources per reason per interval: a flood from forged addresses, each
    one new, gets one line for all the others instead of one each."""

    def __init__(self, interval: float = LOG_INTERVAL, sources: int = LOG_SOURCES) -> None:
        self.interval = interval
        self.sources = sources
        #: (reason, source) -> [logged at, suppressed since]; insertion order is age order.
        self.lines: dict[tuple[str, str], list[float]] = {}
        #: reason -> [interval start, sources named, datagrams from sources not named].
        self.reasons: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self.lines) + len(self.reasons)

    def __call__(self, reason: str, source: str, detail: str, now: float) -> None:
        key = (reason, source)
        lines = self.lines
        last = lines.get(key)
        if last is not None and now - last[0] < self.interval:
            last[1] += 1
            return
        tally = self.reasons.get(reason)
        if tally is None or now - tally[0] >= self.interval:
            if tally is not None:
                self._unnamed(reason, tally)
            tally = self.reasons[reason] = [now, 0, 0]
        if tally[1] >= self.sources:
            tally[2] += 1
            return
        tally[1] += 1
        suppressed = f" ({last[1]:.0f} more since the last line)" if last and last[1] else ""
        log.warning(
            "dropped packet from %s: %s%s%s", source, reason, f": {detail}" if detail else "", suppressed
        )
        if last is not None:
            del lines[key]
        elif len(lines) >= LOG_KEYS_MAX:
            del lines[next(iter(lines))]
        lines[key] = [now, 0]

    def prune(self, now: float) -> int:
        """Forget lines older than the interval, logging what each suppressed since, and
        report the datagrams of sources that were not named; how many lines were forgotten."""
        lines = self.lines
        stale = []
        for key, (logged, _) in lines.items():
            if now - logged < self.interval:
                break
            stale.append(key)
        for key in stale:
            suppressed = lines.pop(key)[1]
            if suppressed:
                log.warning(
                    "dropped %.0f more packets from %s: %s in the %.0f s after the last line",
                    suppressed,
                    key[1],
                    key[0],
                    self.interval,
                )
        for reason, tally in list(self.reasons.items()):
            if now - tally[0] >= self.interval:
                self._unnamed(reason, tally)
                del self.reasons[reason]
        return len(stale)

    def _unnamed(self, reason: str, tally: list[float]) -> None:
        if tally[2]:
            log.warning(
                "dropped %.0f more packets: %s, from sources past the %d named in %.0f s",
                tally[2],
                reason,
                self.sources,
                self.interval,
            )
