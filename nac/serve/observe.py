"""What operators watch: logs (text or JSON lines), decisions to syslog (RFC 5424), Prometheus
metrics, and systemd notifications.  All of it sits beside the request path, never in it: the
server hands finished batches here after their replies are sent.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from nac.config import FACILITIES, parse_syslog_address
from nac.errors import ConfigError
from nac.history.record import COLUMNS, HistoryRecord

log = logging.getLogger("nac.observe")

#: Latency buckets in microseconds, from a hot cache hit to a slow disk.
LATENCY_BUCKETS_US: Final = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000)
_SEVERITY: Final = {"reject": 4, "quarantine": 5, "accept": 6}  # warning, notice, informational
_SYSLOG_MAX: Final = 2048  # RFC 5424 §6.1: receivers must take 480 octets, should take 2048


# -- logs ---------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(*, fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# -- decisions to syslog (RFC 5424) -------------------------------------------------------


class SyslogSink:
    """Sends one RFC 5424 message per decision over UDP or a unix datagram socket.

    Structured data carries the decision's fields (SD-ID ``nac@32473``, the IANA example
    enterprise number), so a SIEM can parse them without a grok pattern.  Sending never blocks;
    a message the socket will not take is counted and dropped.
    """

    def __init__(self, address: str, *, facility: str = "local0", app: str = "nac") -> None:
        if facility not in FACILITIES:
            raise ConfigError(f"syslog facility {facility!r}: one of {', '.join(FACILITIES)}")
        self.family, self.address = parse_syslog_address(address)
        self.facility = FACILITIES[facility]
        self.hostname = socket.gethostname() or "-"
        self.app = app
        self.procid = str(os.getpid())
        self.sent = 0
        self.dropped = 0
        self._sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def close(self) -> None:
        self._sock.close()

    def format(self, record: HistoryRecord) -> bytes:
        pri = self.facility * 8 + _SEVERITY.get(record.action, 6)
        stamp = (
            datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        )
        params = " ".join(
            f'{name}="{_sd_escape(value)}"'
            for name, value in zip(COLUMNS, record, strict=True)
            if value is not None and name != "ts"
        )
        vendor = record.vendor or "no vendor"
        text = f"{record.action} {record.mac or '-'} ({vendor}): {record.reason} [rule {record.rule}]"
        line = (
            f"<{pri}>1 {stamp} {self.hostname} {self.app} {self.procid} decision [nac@32473 {params}] {text}"
        )
        return line.encode()[:_SYSLOG_MAX]

    def send(self, records: Iterable[HistoryRecord]) -> None:
        for record in records:
            try:
                self._sock.sendto(self.format(record), self.address)
                self.sent += 1
            except OSError:
                self.dropped += 1


def _sd_escape(value: object) -> str:
    """RFC 5424 §6.3.3: '"', '\\' and ']' are escaped in PARAM-VALUE."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


# -- metrics ------------------------------------------------------------------------------


class LatencyHistogram:
    """Cumulative-bucket histogram kept as plain ints (no lock: one event-loop thread writes)."""

    def __init__(self, buckets: Sequence[int] = LATENCY_BUCKETS_US) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total_us = 0
        self.n = 0

    def observe_many(self, values_us: Sequence[int]) -> None:
        buckets = self.buckets
        counts = self.counts
        bucket = bisect.bisect_left
        for value in values_us:
            counts[bucket(buckets, value)] += 1
        self.total_us += sum(values_us)
        self.n += len(values_us)


class Metrics:
    """Prometheus exposition of the server's counters, read at scrape time (nothing is added
    to the request path; prometheus_client's own counters take a lock per increment)."""

    def __init__(self, counters: Counter[str], latency: LatencyHistogram) -> None:
        self.counters = counters
        self.latency = latency
        #: Gauges read at scrape time: name -> a function giving the current value.
        self.gauges: dict[str, Callable[[], float]] = {}
        #: Counters their owners keep (threads beside the event loop), read at scrape time.
        self.totals: dict[str, Callable[[], float]] = {}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415 - only when metrics are on
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        counters = dict(self.counters)
        requests = CounterMetricFamily("nac_requests", "Datagrams received", labels=[])
        requests.add_metric([], counters.get("received", 0))
        yield requests
        handled = CounterMetricFamily("nac_handled", "Datagrams answered, by kind", labels=["kind"])
        for kind in ("decision", "duplicate", "status", "accounting"):
            handled.add_metric([kind], counters.get(kind, 0))
        yield handled
        drops = CounterMetricFamily("nac_dropped", "Datagrams dropped, by reason", labels=["reason"])
        for key, value in counters.items():
            if key.startswith("dropped:"):
                drops.add_metric([key[8:]], value)
        yield drops
        decisions = CounterMetricFamily(
            "nac_decisions", "Decisions by action, rule and client", labels=["action", "rule", "client"]
        )
        for key, value in counters.items():
            if key.startswith("decision:"):
                action, rule, client = key[9:].split("\x1f")
                decisions.add_metric([action, rule, client], value)
        yield decisions
        errors = CounterMetricFamily(
            "nac_internal_errors", "Internal errors (answered fail-closed or dropped)"
        )
        errors.add_metric([], counters.get("internal_errors", 0))
        yield errors
        writes = CounterMetricFamily("nac_history_rows", "History rows committed")
        writes.add_metric([], counters.get("history_rows", 0))
        yield writes
        failures = CounterMetricFamily("nac_history_write_failures", "History batches that failed to commit")
        failures.add_metric([], counters.get("history_write_failures", 0))
        yield failures
        hist = HistogramMetricFamily(
            "nac_decision_latency_seconds", "Time from reading a request to its decision", labels=[]
        )
        cumulative = 0
        buckets = []
        for bound, count in zip(self.latency.buckets, self.latency.counts, strict=False):
            cumulative += count
            buckets.append((str(bound / 1e6), cumulative))
        buckets.append(("+Inf", cumulative + self.latency.counts[-1]))
        hist.add_metric([], buckets, self.latency.total_us / 1e6)
        yield hist
        coa = CounterMetricFamily(
            "nac_dynamic_authorization",
            "Disconnect / CoA requests by kind and result",
            labels=["kind", "result"],
        )
        for key, value in counters.items():
            if key.startswith("coa:"):
                _, kind, result = key.split(":", 2)
                coa.add_metric([kind, result], value)
        yield coa
        eap = CounterMetricFamily(
            "nac_eap_conversations_limited",
            "EAP conversations a station's new one replaced, or a full port or table refused",
            labels=["outcome", "bound"],
        )
        for key, value in counters.items():
            if key.startswith("eap:"):
                _, outcome, limit = key.split(":", 2)
                eap.add_metric([outcome, limit], value)
        yield eap
        ldap = CounterMetricFamily("nac_ldap_requests", "Questions to the directory", labels=["kind"])
        ldap_failures = CounterMetricFamily(
            "nac_ldap_failures", "Directory questions that failed (fail closed)", labels=["reason"]
        )
        for key, value in counters.items():
            if key.startswith("ldap_requests:"):
                ldap.add_metric([key[14:]], value)
            elif key.startswith("ldap_failures:"):
                ldap_failures.add_metric([key[14:]], value)
        yield ldap
        yield ldap_failures
        for name, level in self.gauges.items():
            gauge = GaugeMetricFamily(f"nac_{name}", name.replace("_", " "))
            gauge.add_metric([], level())
            yield gauge
        for name, total in self.totals.items():
            counter = CounterMetricFamily(f"nac_{name}", name.replace("_", " "))
            counter.add_metric([], total())
            yield counter

    def start(self, bind: str) -> None:
        from prometheus_client import start_http_server  # noqa: PLC0415
        from prometheus_client.registry import CollectorRegistry  # noqa: PLC0415

        host, _, port = bind.rpartition(":")
        registry = CollectorRegistry()
        registry.register(self)
        start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)


# -- systemd ------------------------------------------------------------------------------


def sd_notify(state: str) -> bool:
    """Tell systemd our state (READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1) when it asked
    for it by setting $NOTIFY_SOCKET (sd_notify(3)); otherwise do nothing."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", state.partition("=")[0], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (from $WATCHDOG_USEC), if the watchdog is on for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def format_counters(counters: Counter[str]) -> str:
    """Every counter on one log line (SIGUSR1, and at stop); the per-rule decision counters are
    for /metrics, the line keeps to the totals."""
    shown = sorted((k, v) for k, v in counters.items() if not k.startswith("decision:"))
    return ", ".join(f"{k}={v}" for k, v in shown) or "no traffic"
