"""The asyncio shell around the decision core: sockets in, core, history commit, sockets out.

Each socket is drained from a ``loop.add_reader`` callback (asyncio's DatagramProtocol reads one
datagram per loop turn), an IPv4 socket with one ``recvmmsg`` per 64 datagrams and its replies
with ``sendmmsg`` (nac/_udp.c); bench/README.md has the figures.  What one drain decided is
written to history in one transaction (group commit) and only then are its replies sent, so no
NAS ever holds an answer whose history row a crash could lose.  The jobs that are not sockets
have their own owners, called from serve's loop: nac/serve/reload.py, nac/serve/coa_jobs.py, nac/history/.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from nac.admission.engine import ACCT, AUTH, Engine, Outcome
from nac.config import Config
from nac.equipment.clients import ClientTable
from nac.errors import NacError, PacketError
from nac.history.writer import HistoryWriter
from nac.identity.lookups import Lookups
from nac.profiling.service import Profiler
from nac.radius.accounting import SessionEvent
from nac.radius.packet import ACCESS_REJECT
from nac.registry.oui import Registry
from nac.serve.coa_jobs import JOB_POLL, CoaDispatcher
from nac.serve.directory import DirectoryRounds
from nac.serve.guard import AFTER_VERIFICATION, DropLog, RateLimits, Unverified, screen
from nac.serve.observe import (
    LatencyHistogram,
    Metrics,
    SyslogSink,
    format_counters,
    sd_notify,
    watchdog_interval,
)
from nac.serve.reload import PolicyPoller
from nac.serve.sockets import bind_udp
from nac.sessions import store as session_store
from nac.store import Store

try:  # recvmmsg/sendmmsg for IPv4 listeners (setup.py builds it where it can)
    from nac import _udp
except ImportError:  # pragma: no cover - an install without a C compiler
    _udp = None  # type: ignore[assignment]

log = logging.getLogger("nac.server")

#: Datagrams read per drain before the batch is committed and answered: bounds latency and
#: the time one socket can hold the loop (every reply in a batch waits for the whole batch);
#: fewer cost more in commits than they save (bench/README.md, "The batch a queue is decided in").
MAX_BATCH: Final = 128
#: One more octet than a RADIUS packet may have, so an oversize datagram is seen as such.
RECV_SIZE: Final = 4097
HOUSEKEEPING_INTERVAL: Final = 60.0
#: Access-Rejects waiting out a reject_delay at once; past it they go out immediately.
DELAYED_MAX: Final = 10_000
#: Seconds between two group commits while requests keep coming (see Server.flush): at most
#: what a decision waits for its commit besides the commit itself.
COMMIT_SPACING: Final = 0.0005
#: Decisions waiting when a commit is put off from which the sockets are left alone until it
#: (see drain): a sign of steady load.  Below it they stay watched, and each arrival lets the
#: event loop see that the commit is due; alone, the loop wakes for it only at epoll's next
#: millisecond.  The mark trades CPU for latency at moderate rates (bench/README.md).
PAUSE_PENDING: Final = 8
#: A decided request: its outcome, the source address, the decision's microseconds, the socket
#: its reply leaves from.
_Pending = tuple[Outcome, tuple[str, int], int, socket.socket]


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    service: str  # "auth" or "acct"
    port_id: int  # distinguishes receiving sockets in the duplicate cache key
    #: Read and answered in batches by nac._udp (IPv4, when built); else by the socket methods.
    batched: bool = False


class Server:
    """The shell: sockets, the group commit, signals and the loop's tick.  nac/serve/run.py builds it
    and hands it the owners of the rest (build_server)."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        policies: PolicyPoller,
        history: HistoryWriter,
        coa: CoaDispatcher,
        counters: Counter[str],
        profiler: Profiler | None = None,
        syslog: SyslogSink | None = None,
        directory: Lookups | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        #: Owns the configuration, clients and registry in force (a reload replaces them).
        self.policies = policies
        self.history = history
        self.coa = coa  # queued Disconnect / re-authorize jobs
        self.profiler = profiler
        self.syslog = syslog
        self.counters = counters
        self.listeners: list[Listener] = []
        self._drop_log = DropLog()
        #: EAP rounds that wait for `[ldap]`: asked off the loop, decided when it answers.
        self.directory = DirectoryRounds(
            directory, engine=engine, counters=counters, drop_log=self._drop_log, decided=self._decided
        )
        self._stopping: asyncio.Event | None = None
        self._legacy: set[str] = set()  # clients seen without Message-Authenticator
        self._next_housekeeping = 0.0
        self._unverified = Unverified()  # never a lock-out: see nac/serve/guard.py
        self._pending: list[_Pending] = []  # decided, waiting for their group commit
        self._flush_at: asyncio.TimerHandle | None = None
        self._watching = False  # the listeners' sockets are read from the event loop
        self._last_commit = 0.0
        self._limits = RateLimits()  # per client rate_limit, spent by verified requests only
        self._delayed = 0  # Access-Rejects waiting out their reject_delay
        self.worker: int | None = None
        self.latency = LatencyHistogram()
        self.metrics = Metrics(self.counters, self.latency)
        self.metrics.gauges.update(self.history.gauges)
        self.metrics.gauges.update(
            {
                "eap_conversations": lambda: (
                    float(len(self.engine.eap)) if self.engine.eap is not None else 0.0
                ),
                "duplicate_cache_entries": lambda: float(self.engine.cached()),
                "unverified_sources": lambda: float(len(self._unverified)),
                "rules_version": lambda: float(self.policies.rules_version),
                "ldap_waiting": lambda: float(self.directory.waiting),
            }
        )

    @property
    def config(self) -> Config:
        return self.policies.config

    @property
    def clients(self) -> ClientTable:
        return self.policies.clients

    @property
    def registry(self) -> Registry:
        return self.policies.registry

    # -- sockets ---------------------------------------------------------------------------

    def open(self, *, worker: int | None = None) -> None:
        """Bind every address on both ports (nac/serve/run.py holds the database's server lock).  A
        worker (``nac serve --workers``) shares the ports with its siblings."""
        self.worker = worker
        default_bind = self.config.bind == ("0.0.0.0", "::")
        for address in self.config.bind:
            for service, port in ((AUTH, self.config.auth_port), (ACCT, self.config.acct_port)):
                try:
                    sock = bind_udp(address, port, reuse_port=worker is not None)
                except OSError as exc:
                    if (
                        default_bind
                        and address == "::"
                        and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
                    ):
                        log.warning("IPv6 is not available here; serving IPv4 only")
                        break
                    self.close()
                    raise NacError(f"cannot listen on {address} port {port}/udp: {exc.strerror}") from None
                self.listeners.append(Listener(sock, service, len(self.listeners), _batched(sock)))

    def close_store(self) -> None:
        """Close the database, then what history keeps open beside it."""
        self.store.close()
        self.history.close()

    def close(self) -> None:
        for listener in self.listeners:
            listener.sock.close()
        self.listeners.clear()

    def addresses(self) -> list[str]:
        out = []
        for listener in self.listeners:
            host, port = listener.sock.getsockname()[:2]
            out.append(
                f"{listener.service} {host}:{port}"
                if ":" not in host
                else f"{listener.service} [{host}]:{port}"
            )
        if self.profiler is not None:
            out += self.profiler.addresses()
        return out

    # -- the request path ------------------------------------------------------------------

    def drain(self, listener: Listener) -> None:
        """Read what is waiting, decide it, commit its history, then send the replies.

        While requests keep coming, commits are at least COMMIT_SPACING apart (see flush): when
        a drain puts the commit off with PAUSE_PENDING or more decisions waiting, the sockets
        are not watched until then, and what arrives meanwhile is read and decided in one go
        just before that commit (_flush_due).  Under steady load each wake-up finds only a few
        requests, and the wake-ups themselves (epoll, the event loop's turn, a timer) cost more
        than the decisions (bench/README.md)."""
        if self._decide_waiting(listener):
            self._schedule_flush()

    def _decide_waiting(self, listener: Listener) -> bool:
        """Read up to MAX_BATCH datagrams from ``listener`` and decide them into the pending
        group commit; whether any was decided."""
        sock = listener.sock
        engine = self.engine
        lookup = self.clients.lookup
        counters = self.counters
        clock = time.perf_counter
        now = time.time()
        outcomes: list[_Pending] = []
        unverified = self._unverified
        limits = self._limits
        if listener.batched:
            try:
                batch = _udp.recv_batch(sock.fileno(), MAX_BATCH, RECV_SIZE)
            except OSError as exc:  # e.g. an ICMP error queued on the socket; the loop calls again
                counters["socket_errors"] += 1
                log.debug("recvmmsg: %s", exc)
                return False
        else:
            batch = self._receive(sock)
        counters["received"] += len(batch)
        for data, addr in batch:
            started = clock()
            client = lookup(addr[0])
            if client is None:
                counters["dropped:unknown-client"] += 1
                self._drop_log("unknown-client", addr[0], "not a configured client", now)
                continue
            if unverified.windows and unverified.over(addr[0], now):
                # Past its budget of unverifiable datagrams: the header first, no crypto for
                # the malformed.  Whatever may verify is still verified (nac/serve/guard.py).
                reason = screen(data, listener.service)
                if reason is not None:
                    counters[f"dropped:{reason}"] += 1
                    self._unverifiable(reason, "", addr[0], client.name, now)
                    continue
            rate = client.rate_limit
            if rate is not None and not limits.allows(client.name, rate, now):
                counters["dropped:rate-limited"] += 1
                self._drop_log("rate-limited", client.name, f"over {rate:g} verified requests/s", now)
                continue
            try:
                outcome = engine.handle(
                    data, src=addr, port=listener.port_id, service=listener.service, client=client, now=now
                )
            except PacketError as exc:
                counters[f"dropped:{exc.reason}"] += 1
                if exc.reason in AFTER_VERIFICATION:
                    self._drop_log(exc.reason, f"{client.name} ({addr[0]})", exc.detail, now)
                else:
                    self._unverifiable(exc.reason, exc.detail, addr[0], client.name, now)
                continue
            except Exception:  # last-resort guard: a bug must not stop the server
                counters["internal_errors"] += 1
                log.exception("internal error on a packet from %s (%s); dropped", client.name, addr[0])
                continue
            if outcome.error is not None:
                counters["internal_errors"] += 1
                log.error(
                    "internal error while deciding for %s; answered Access-Reject (fail closed)",
                    client.name,
                    exc_info=outcome.error,
                )
            counters[outcome.kind] += 1
            if rate is not None and outcome.kind != "duplicate":  # a resend costs a lookup
                limits.spend(client.name, rate, now)
            if not outcome.reply:  # waits for the directory; a retransmission meanwhile: nothing
                if outcome.lookup is not None:
                    self.directory.ask(outcome.lookup, addr, sock, started)
                continue
            record = outcome.record
            if record is not None and not record.message_authenticator and client.name not in self._legacy:
                self._legacy.add(client.name)
                log.warning(
                    "client %s sends Access-Requests without Message-Authenticator; "
                    "it is not ready for BlastRADIUS enforcement (require_message_authenticator = false)",
                    client.name,
                )
            outcomes.append((outcome, addr, int((clock() - started) * 1e6), sock))
        if not outcomes:
            return False
        if self._pending:
            self._pending += outcomes
        else:
            self._pending = outcomes
        return True

    def _decided(self, pending: _Pending) -> None:
        """A decision made after the read (the directory answered): into the group commit."""
        self._pending.append(pending)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        pending = self._pending
        if self._flush_at is not None and len(pending) < MAX_BATCH:
            return  # the scheduled flush commits these too
        wait = self._last_commit + COMMIT_SPACING - time.monotonic()
        if wait <= 0 or len(pending) >= MAX_BATCH:
            self.flush()
        else:
            self._flush_at = asyncio.get_running_loop().call_later(wait, self._flush_due)
            if len(pending) >= PAUSE_PENDING:
                self._watch_sockets(False)

    def _flush_due(self) -> None:
        """The spacing is over: decide what arrived while the sockets were not watched, then
        commit and answer it all together."""
        self._flush_at = None
        for listener in self.listeners:
            if len(self._pending) >= MAX_BATCH:
                break  # the rest is read when the sockets are watched again
            self._decide_waiting(listener)
        self.flush()

    def _watch_sockets(self, on: bool) -> None:
        """Start or stop reading the listeners from the event loop (never after the stop)."""
        stopping = self._stopping
        if stopping is None or on == self._watching or (on and stopping.is_set()):
            return  # (None: serve() has not started; tests drive drain() and flush() by hand)
        loop = asyncio.get_running_loop()
        for listener in self.listeners:
            if on:
                loop.add_reader(listener.sock.fileno(), self.drain, listener)
            else:
                loop.remove_reader(listener.sock.fileno())
        self._watching = on

    def _receive(self, sock: socket.socket) -> list[tuple[bytes, tuple[str, int]]]:
        """Up to MAX_BATCH datagrams with the socket's own recvfrom (IPv6, or no nac._udp)."""
        batch = []
        recv = sock.recvfrom
        for _ in range(MAX_BATCH):
            try:
                batch.append(recv(RECV_SIZE))
            except BlockingIOError:
                break
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                self.counters["socket_errors"] += 1
                log.debug("recvfrom: %s", exc)
        return batch

    def flush(self) -> None:
        """Commit the decisions waiting for their group commit, then send their replies.

        A commit costs about the same however few rows it holds, and at a moderate rate a
        commit per read of the sockets was most of the server's work (bench/README.md); so
        commits are at least COMMIT_SPACING apart: what arrives meanwhile waits for the next
        one (at most that long), then goes in the same transaction.  A request after a quiet
        spell is committed at once, and under full load each read takes longer than that."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        self._watch_sockets(True)
        outcomes, self._pending = self._pending, []
        if not outcomes:
            return
        rows: list[Sequence[object]] = [
            (*o.record, latency) for o, _, latency, _ in outcomes if o.record is not None
        ]
        events = [o.session for o, _, _, _ in outcomes if o.session is not None]
        pending = rows or events or self.history.pending
        if pending:
            committed = self._commit(rows, events, outcomes)
            self._last_commit = time.monotonic()
            if not committed:
                return
        delaying = self.clients.delays_rejects
        replies: list[tuple[bytes, tuple[str, int]]] = []
        sending = outcomes[0][3]
        for outcome, addr, _, sock in outcomes:
            if delaying and outcome.reply[0] == ACCESS_REJECT:
                client = self.clients.lookup(addr[0])
                if client is not None and client.reject_delay and self._delayed < DELAYED_MAX:
                    self._delay(sock, outcome.reply, addr, client.reject_delay)
                    continue
            if sock is not sending:  # replies leave from the socket their request came to
                self._send(sending, replies)
                sending, replies = sock, []
            replies.append((outcome.reply, addr))
        self._send(sending, replies)
        self._account(outcomes)

    def _send(self, sock: socket.socket, replies: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Send replies from one socket: one sendmmsg per 64 on IPv4 with nac._udp."""
        if not replies:
            return
        counters = self.counters
        fd = sock.fileno()
        if fd >= 0 and _batched(sock):
            for index, code in _udp.send_batch(fd, replies):
                counters["send_errors"] += 1
                log.warning("cannot send a reply to %s: %s", replies[index][1][0], os.strerror(code))
            return
        for reply, addr in replies:
            try:
                sock.sendto(reply, addr)
            except OSError as exc:
                counters["send_errors"] += 1
                log.warning("cannot send a reply to %s: %s", addr[0], exc)

    def _commit(
        self,
        rows: list[Sequence[object]],
        events: list[SessionEvent],
        outcomes: list[_Pending],
    ) -> bool:
        """Group-commit the batch; False if its replies must be withheld (the history writer
        decides, by on_history_failure), and then the requests count as dropped and are
        forgotten, so their retransmissions are decided again."""
        if self.history.commit(rows, events):
            return True
        self.counters["dropped:history-write-failed"] += len(outcomes)
        self._drop_log("history-write-failed", "database", self.history.error or "", time.time())
        for outcome, _, _, _ in outcomes:
            if outcome.key is not None:
                self.engine.forget(outcome.key)
        return False

    def _account(self, outcomes: list[_Pending]) -> None:
        """After the replies are out: metrics, and decisions to syslog."""
        counters = self.counters
        records = []
        latencies = []
        for outcome, _, latency, _ in outcomes:
            record = outcome.record
            if record is not None:
                records.append(record)
                latencies.append(latency)
                counters[f"decision:{record.action}\x1f{record.rule}\x1f{record.client}"] += 1
        self.latency.observe_many(latencies)
        if self.syslog is not None and records:
            self.syslog.send(records)
        if self.profiler is not None:
            for outcome, _, _, _ in outcomes:
                if outcome.sensed is not None and outcome.session is not None and outcome.session.mac:
                    self.profiler.sensed(outcome.session.mac, outcome.sensed, now=outcome.session.ts)
        eap = self.engine.eap
        if eap is not None and eap.limits.pending:
            # EAP conversations a station replaced or a full port or table refused (rare).
            counts, notices = eap.limits.drain()
            counters.update(counts)
            for notice in notices:
                log.log(logging.WARNING if notice.severity == "warning" else logging.INFO, "%s", notice.text)

    def _delay(self, sock: socket.socket, reply: bytes, addr: tuple[str, int], delay: float) -> None:
        """Send an Access-Reject later (reject_delay); at most DELAYED_MAX wait at once, so a
        flood of rejects cannot pile up timers: past that they are sent at once."""
        self._delayed += 1

        def send() -> None:
            self._delayed -= 1
            try:
                sock.sendto(reply, addr)
            except OSError as exc:
                self.counters["send_errors"] += 1
                log.debug("cannot send a delayed reply to %s: %s", addr[0], exc)

        asyncio.get_running_loop().call_later(delay, send)
        self.counters["rejects_delayed"] += 1

    def _unverifiable(self, reason: str, detail: str, address: str, name: str, now: float) -> None:
        """Count a datagram that failed decoding or verification against its source's budget
        and log it (rate-limited).  Crossing the budget is logged once, never a lock-out: the
        address may be forged, and its NAS's verified requests are answered all the same."""
        self._drop_log(reason, f"{name} ({address})", detail, now)
        if self._unverified.count(address, now) == self._unverified.budget:
            self.counters["unverified_floods"] += 1
            self._drop_log(
                "unverified-flood",
                f"{name} ({address})",
                f"the {self._unverified.budget}th unverifiable packet this second (a wrong secret, "
                "or a forged source address): malformed ones are now dropped before any crypto; "
                "requests that verify are still answered",
                now,
            )

    # -- background duties -----------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP / `systemctl reload nac`: the poller re-reads the configuration, rules and
        registry (nac/serve/reload.py); systemd is told while it does."""
        if self.worker is None:
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            self.policies.reload()
        finally:
            if self.worker is None:
                sd_notify("READY=1")

    def tick(self) -> None:
        """The duties of every turn of serve's loop: each owner does its own work."""
        self.policies.poll()
        if self.profiler is not None:
            self.profiler.poll()
        self.coa.dispatch()
        now = time.time()
        self.history.tick(now)
        self.engine.expire(now)
        self._unverified.prune(now)
        self._limits.prune(now)
        self._drop_log.prune(now)
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
            session_store.housekeeping(self.store.conn, self.counters, now=now)

    def log_counters(self) -> None:
        """SIGUSR1: one line with every counter (requests, decisions, drops by reason)."""
        log.info("counters: %s", format_counters(self.counters))

    async def serve(self, *, on_ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.log_counters)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        indexing = self.worker in (None, 0)  # one indexer per database, not one per worker
        self.history.start(indexing=indexing)
        self._watch_sockets(True)
        if self.profiler is not None:
            if indexing:  # one DHCP listener per database, as one indexer: worker 0's
                self.profiler.start(loop)
            else:
                self.profiler.load()
        if self.config.metrics_bind is not None:
            # Each worker counts its own share of the traffic: worker N serves its metrics on
            # the configured port + N, so Prometheus scrapes them all (one target per worker).
            host, _, port = self.config.metrics_bind.rpartition(":")
            bind = f"{host}:{int(port) + (self.worker or 0)}"
            self.metrics.start(bind)
            log.info("metrics at http://%s/metrics", bind)
        # Everything loaded so far (the registry, dictionaries, policy) lives as long as the
        # process: out of the collector's sight, a full collection no longer stalls the
        # request stream (bench/README.md).
        gc.collect()
        gc.freeze()
        log.info("ready: %s", ", ".join(self.addresses()))
        if self.worker is None:
            sd_notify("READY=1")
        if on_ready is not None:
            on_ready()
        watchdog = watchdog_interval()
        tick = min(self.config.rules_poll, JOB_POLL, watchdog or JOB_POLL)
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=tick)
                self.tick()
                if watchdog:
                    sd_notify("WATCHDOG=1")
        finally:
            if self.worker is None:
                sd_notify("STOPPING=1")
            self.coa.close()
            self.directory.close()
            self._stopping.set()  # (also when serve() itself fails): nothing is read any more
            self._watch_sockets(False)
            if self.profiler is not None:
                self.profiler.close()
            self.flush()  # decisions waiting for their group commit: committed and answered
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.history.stop()
            self.close()
            if self.syslog is not None:
                self.syslog.close()
            log.info("stopped; %s", format_counters(self.counters))


def _batched(sock: socket.socket) -> bool:
    """Whether ``sock`` is read and answered through nac._udp (IPv4, and the module built)."""
    return _udp is not None and sock.family == socket.AF_INET
