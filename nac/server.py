"""The asyncio shell around the decision core: sockets in, core, history commit, sockets out.

Each socket is drained from a ``loop.add_reader`` callback (asyncio's DatagramProtocol reads one
datagram per loop turn; draining is ~3x faster), an IPv4 socket with one ``recvmmsg`` per 64
datagrams and its replies with ``sendmmsg`` (nac/_udp.c).  What one drain decided is written to history
in one transaction (group commit) and only then are its replies sent, so no NAS ever holds an
answer whose history row a crash could lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import gc
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nac import helpdesk, session_store
from nac import store as store_mod
from nac.admission import ACCT, AUTH, Engine, Outcome
from nac.clients import ClientTable
from nac.config import Config
from nac.dynauth import Answer, DynAuthClient, Target
from nac.equipment import coa
from nac.equipment.reply import vlan_name_conflicts
from nac.errors import NacError, PacketError
from nac.families import Family
from nac.guard import AFTER_VERIFICATION, DropLog, RateLimits, Unverified, screen
from nac.indexer import BACKLOG_HIGH, WAL_HARD, WAL_HIGH, WAL_TAIL, Copier, Indexer, WalIndex
from nac.observe import LatencyHistogram, Metrics, SyslogSink, sd_notify, watchdog_interval
from nac.oui import Registry
from nac.packet import ACCESS_REJECT
from nac.policy import Policy
from nac.profiling.sensor import SensorCodes
from nac.profiling.service import Profiler
from nac.records import HistoryRecord
from nac.resources import load_active_registry, load_dictionary
from nac.sessions import STALE_AFTER, SessionEvent
from nac.store import Store
from nac.watch import PolicyWatcher

if TYPE_CHECKING:
    from nac.eap.eap import EapServer  # OpenSSL is loaded only when 802.1X is on

try:  # recvmmsg/sendmmsg for IPv4 listeners (setup.py builds it where it can)
    from nac import _udp
except ImportError:  # pragma: no cover - an install without a C compiler
    _udp = None  # type: ignore[assignment]

log = logging.getLogger("nac.server")

#: Datagrams read per drain before the batch is committed and answered: bounds latency and
#: the time one socket can hold the loop.  After any stall the loop finds a queue, and each
#: batch of it is decided before the first of its replies leaves: 256 (~5 ms of decisions)
#: kept the queue from draining (paced 46,000-48,000/s, about 80 % of the peak: p99 median
#: about 18 ms in 8 runs against about 5.4 ms in 11 with 128; both vary widely on this
#: machine).  Fewer than 128 cost more in commits than they save (32: full load
#: 47,000-59,000/s against 61,000-65,500/s; bench/README.md).
MAX_BATCH: Final = 128
#: One more octet than a RADIUS packet may have, so an oversize datagram is seen as such.
RECV_SIZE: Final = 4097
#: Kernel receive buffer: absorbs a switch stack re-authenticating thousands of ports at once.
RCVBUF: Final = 8 * 1024 * 1024
HOUSEKEEPING_INTERVAL: Final = 60.0
#: Access-Rejects waiting out a reject_delay at once; past it they go out immediately.
DELAYED_MAX: Final = 10_000
#: Decisions kept in memory while the database cannot be written (on_history_failure = answer);
#: beyond this, replies are withheld as in the default mode.  ~1 KiB each.
BACKLOG_MAX: Final = 200_000
#: How long one history commit may wait for a lock (the CLI's writes take milliseconds); past
#: it the batch counts as failed instead of stalling the event loop.
HISTORY_BUSY_MS: Final = 250
#: Seconds a stopping server spends indexing the recent history tier (nac/indexer.py).
FLUSH_ON_STOP: Final = 10.0
#: Longest the event loop indexes per tick when the backlog is over BACKLOG_HIGH.
ASSIST_SECONDS: Final = 0.2
#: Seconds between two group commits while requests keep coming (see Server.flush): at most
#: what a decision waits for its commit besides the commit itself.
COMMIT_SPACING: Final = 0.0005
#: The interpreter's switch interval while the history threads run (CPython's default is 5 ms).
#: The event loop gives up the GIL at every system call, and the idle-priority indexer, which
#: runs Python between its SQLite calls, then keeps it until the loop has waited this long:
#: p99 at 30,000 requests/s paced was 12.6 ms with 5 ms (4.6-6.3 ms with no indexer thread
#: at all) and 8.1-8.8 ms with 0.5 ms; full-load throughput is unchanged (bench/README.md).
SWITCH_INTERVAL: Final = 0.0005
#: Decisions waiting when a commit is put off from which the sockets are left alone until it
#: (see drain): a sign of steady load.  Below it they stay watched, and each arrival lets the
#: event loop see that the commit is due; alone, the loop wakes for it only at epoll's next
#: millisecond.  At 10,000 requests/s paced a pause after every drain gave p50 1.2-1.4 ms
#: (0.46-0.48 without) for half the CPU; at 20,000/s this mark gave p50 1.3 ms and p99 4.4-5.1
#: ms, against 1.6 ms and 6.0-22 ms for a pause whenever 8 are waiting (15 s runs, alternated).
PAUSE_PENDING: Final = 8
#: A decided request: its outcome, the source address, the decision's microseconds, the socket
#: its reply leaves from.
_Pending = tuple[Outcome, tuple[str, int], int, socket.socket]
#: Indexed batches each group commit deletes from the recent tier, when the indexer has moved
#: some: a commit appends one, so collection keeps pace a few small rows at a time.
COLLECT_PER_COMMIT: Final = 4
#: Indexed batches the tick deletes besides (when no commits come to do it): about a millisecond.
COLLECT_CHUNK: Final = 100
#: How often queued Disconnect / re-authorize requests are picked up (the CLI waits on them).
JOB_POLL: Final = 0.25


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    service: str  # "auth" or "acct"
    port_id: int  # distinguishes receiving sockets in the duplicate cache key
    #: Read and answered in batches by nac._udp (IPv4, when built); else by the socket methods.
    batched: bool = False


class Server:
    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        engine: Engine,
        registry: Registry,
        families: Mapping[str, Family],
        clients: ClientTable,
        reload_config: Callable[[], Config] | None = None,
        build_eap: Callable[[Config], EapServer | None] | None = None,
        syslog: SyslogSink | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.registry = registry
        self.families = families
        self.clients = clients
        self.counters: Counter[str] = Counter()
        self.listeners: list[Listener] = []
        self._drop_log = DropLog()
        self._rules_version = store.rules_version()
        self._stopping: asyncio.Event | None = None
        self._legacy: set[str] = set()  # clients seen without Message-Authenticator
        self._registry_version = store.registry_version()
        self._next_housekeeping = 0.0
        self._unverified = Unverified()  # never a lock-out: see nac/guard.py
        self._dynauth: DynAuthClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pruner: threading.Thread | None = None
        self._collected_upto = 0  # recent batches through this id are collected (nac/store.py)
        self._wal_index: WalIndex | None = None  # the recent tier's; see close_store()
        self._wal_index_failed = False
        self._copier: Copier | None = None
        self._pending: list[_Pending] = []  # decided, waiting for their group commit
        self._flush_at: asyncio.TimerHandle | None = None
        self._watching = False  # the listeners' sockets are read from the event loop
        self._last_commit = 0.0
        self._backlog_rows: list[Sequence[object]] = []
        self._backlog_events: list[SessionEvent] = []
        self._backlog_since: float | None = None
        self._limits = RateLimits()  # per client rate_limit, spent by verified requests only
        self._delayed = 0  # Access-Rejects waiting out their reject_delay
        self._watcher = PolicyWatcher(config.policy_watch) if config.policy_watch else None
        self.profiler: Profiler | None = None
        if config.profiling is not None and config.profiling.enabled:
            engine.on_conflict = config.profiling.on_conflict
            engine.sensor = SensorCodes.from_dictionary(load_dictionary())
            self.profiler = Profiler(
                config.profiling,
                conn=store.conn,
                profiles=engine.profiles,
                policy=lambda: self.engine.policy,
                sources=[client.network for client in config.clients],
                counters=self.counters,
                on_queued=self.dispatch_jobs,
            )
        self._reload_config = reload_config
        self._build_eap = build_eap
        self._lock: int | None = None
        self.worker: int | None = None
        self.syslog = syslog
        self.latency = LatencyHistogram()
        self.metrics = Metrics(self.counters, self.latency)
        # Moves decisions from the recent history tier to the MAC-indexed one (nac/indexer.py).
        self.indexer = Indexer(store.path)
        self._unindexed = 0
        self.metrics.gauges.update(
            {
                # Decisions on disk and visible, waiting for the indexer (nac/indexer.py).
                "history_unindexed": lambda: float(self._unindexed),
                "history_indexer_failures": lambda: float(
                    self.indexer.failures
                    + self.indexer.checkpoint_failures
                    + (self._copier.failures if self._copier is not None else 0)
                ),
                # Decisions answered but not yet on disk (on_history_failure = "answer").
                "history_backlog": lambda: float(len(self._backlog_rows)),
                "history_backlog_seconds": lambda: (
                    time.monotonic() - self._backlog_since if self._backlog_since is not None else 0.0
                ),
                "eap_conversations": lambda: (
                    float(len(self.engine.eap)) if self.engine.eap is not None else 0.0
                ),
                "duplicate_cache_entries": lambda: float(self.engine.cached()),
                "unverified_sources": lambda: float(len(self._unverified)),
                "rules_version": lambda: float(self._rules_version),
            }
        )

    # -- sockets ---------------------------------------------------------------------------

    def open(self, *, worker: int | None = None) -> None:
        """Take the database's server lock, then bind every address on both ports.  A worker
        (``nac serve --workers``) leaves the lock to its parent and shares the ports."""
        self.worker = worker
        if worker is None:
            self._take_lock()
        default_bind = self.config.bind == ("0.0.0.0", "::")
        for address in self.config.bind:
            for service, port in ((AUTH, self.config.auth_port), (ACCT, self.config.acct_port)):
                try:
                    sock = _bind(address, port, reuse_port=worker is not None)
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

    def _recent_wal_index(self) -> WalIndex | None:
        """The recent tier's WAL-index reader, opened once (see WalIndex); None if it cannot be
        read, and then the file's size stands in (see _wal_long)."""
        if self._wal_index is None and not self._wal_index_failed:
            try:
                self._wal_index = WalIndex(store_mod.recent_path(self.store.path))
            except OSError as exc:
                self._wal_index_failed = True
                log.warning("cannot read the recent tier's WAL-index: %s", exc)
        return self._wal_index

    def close_store(self) -> None:
        """Close the database, then the WAL-index reader (never before: see WalIndex)."""
        self.store.close()
        if self._wal_index is not None:
            self._wal_index.close()
            self._wal_index = None

    def close(self) -> None:
        for listener in self.listeners:
            listener.sock.close()
        self.listeners.clear()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _take_lock(self) -> None:
        self._lock = take_database_lock(self.store.path)

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
        just before that commit (_flush_due).  At 30,000 requests/s paced, each wake-up had
        found 5 or 6 requests, and the wake-ups themselves (epoll, the event loop's turn, a
        timer) cost more than the decisions."""
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
                # the malformed.  Whatever may verify is still verified (nac/guard.py).
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

        A commit costs 20-50 µs however few rows it holds.  At a moderate rate each read of
        the sockets finds one or two requests, and a commit for each of them was most of the
        server's work (10,000 requests/s took the whole core); so commits are at least
        COMMIT_SPACING apart: what arrives meanwhile waits for the next one (at most that
        long), then goes in the same transaction.  A request after a quiet spell is committed
        at once, and under full load each read of the sockets takes longer than the spacing."""
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
        pending = rows or events or self._backlog_rows or self._backlog_events
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
        """Group-commit the batch (and any backlog); False if its replies must be withheld.

        When the database cannot be written (disk full, locked past the busy timeout),
        ``on_history_failure`` decides: "withhold" (fail closed, the default) sends no reply,
        so the NAS retries or fails over to the other server; "answer" (fail open) sends the
        decisions and keeps their rows in memory, written as soon as the database takes them.
        """
        counters = self.counters
        all_rows = self._backlog_rows + rows
        all_events = self._backlog_events + events
        upto = self.indexer.upto
        collect = (upto, COLLECT_PER_COMMIT) if upto > self._collected_upto else None
        try:
            collected = self.store.write_batch(all_rows, all_events, collect=collect)
        except sqlite3.Error as exc:
            counters["history_write_failures"] += 1
            failing_open = self.config.on_history_failure == "answer"
            if failing_open and len(all_rows) + len(all_events) <= BACKLOG_MAX:
                self._backlog_rows, self._backlog_events = all_rows, all_events
                if self._backlog_since is None:
                    self._backlog_since = time.monotonic()
                    log.error(
                        "history write failed (%s): answering anyway (on_history_failure = answer), "
                        "keeping decisions in memory until the database takes them",
                        exc,
                    )
                return True
            if failing_open:
                log.error("history backlog full (%d rows): withholding replies", len(all_rows))
            counters["dropped:history-write-failed"] += len(outcomes)
            self._drop_log("history-write-failed", "database", str(exc), time.time())
            for outcome, _, _, _ in outcomes:
                if outcome.key is not None:
                    self.engine.forget(outcome.key)
            return False
        if self._backlog_since is not None:
            log.warning(
                "history writable again: %d decisions kept in memory for %.1f s are now on disk",
                len(self._backlog_rows),
                time.monotonic() - self._backlog_since,
            )
            self._backlog_since = None
        self._backlog_rows, self._backlog_events = [], []
        if collect is not None and collected < COLLECT_PER_COMMIT:
            self._collected_upto = upto  # all caught up (but the newest batch)
        counters["history_rows"] += len(all_rows)
        counters["session_events"] += len(all_events)
        return True

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

    def poll_rules(self) -> None:
        """Apply rule changes made by the CLI (or another process) to this server's policy."""
        try:
            version = self.store.rules_version()
        except sqlite3.Error as exc:
            log.warning("cannot read the rules version: %s", exc)
            return
        if version == self._rules_version:
            return
        try:
            policy = Policy(
                self.store.rules(),
                registry=self.registry,
                defaults=self.store.defaults(),
                families=self.families,
            )
        except (NacError, sqlite3.Error) as exc:
            self.counters["rule_reload_failures"] += 1
            log.error(
                "rules changed (version %d) but cannot be applied: %s; keeping the old rules", version, exc
            )
            self._rules_version = version
            return
        self.engine.policy = policy
        self._rules_version = version
        self.counters["rule_reloads"] += 1
        log.info("rules reloaded: %d rules (version %d)", len(policy.rules), version)
        conflict = vlan_name_conflicts(policy, self.clients.clients)
        if conflict is not None:
            log.warning("%s", conflict)

    def poll_watch(self) -> None:
        """Import the watched policy file or directory when it changes ([policy] watch)."""
        assert self._watcher is not None
        try:
            self._watcher.poll(self.store, self.registry, self.families)
        except sqlite3.Error as exc:
            log.error("cannot import the watched policy: %s", exc)

    def poll_registry(self) -> None:
        """Swap in a registry that `nac oui import` wrote, with the policy compiled against it."""
        try:
            version = self.store.registry_version()
        except sqlite3.Error as exc:
            log.warning("cannot read the registry version: %s", exc)
            return
        if version == self._registry_version:
            return
        self._registry_version = version
        try:
            registry = load_active_registry(self.store)
            policy = Policy(
                self.store.rules(), registry=registry, defaults=self.store.defaults(), families=self.families
            )
        except (NacError, sqlite3.Error) as exc:
            self.counters["registry_reload_failures"] += 1
            log.error(
                "the registry changed but cannot be loaded: %s; keeping %s", exc, self.registry.snapshot.id
            )
            return
        self.registry = registry
        self.engine.policy = policy
        gc.freeze()  # the new registry too (see serve)
        self.counters["registry_reloads"] += 1
        log.info("registry reloaded: %s (%d entries)", registry.snapshot.id, len(registry))

    def reload(self) -> None:
        """SIGHUP / `systemctl reload nac`: clients, secrets and settings from the config file,
        rules and registry from the database.  An invalid config is refused; the old one stays."""
        if self.worker is None:
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            if self._reload_config is not None:
                try:
                    config = self._reload_config()
                except NacError as exc:
                    self.counters["config_reload_failures"] += 1
                    log.error("reload refused, keeping the running configuration: %s", exc)
                    return
                moved = [
                    name
                    for name in ("bind", "auth_port", "acct_port", "db")
                    if getattr(config, name) != getattr(self.config, name)
                ]
                if moved:
                    log.warning("%s changed: takes effect at the next restart", ", ".join(moved))
                    config = dataclasses.replace(
                        config, **{name: getattr(self.config, name) for name in moved}
                    )
                eap = self.engine.eap
                if self._build_eap is not None:
                    try:
                        # Certificates and keys are read again, so a renewed certificate is
                        # used from now on; conversations in progress start over.
                        eap = self._build_eap(config)
                    except (NacError, OSError, ValueError) as exc:
                        self.counters["config_reload_failures"] += 1
                        log.error("reload refused, keeping the running configuration: [eap]: %s", exc)
                        return
                self.clients = ClientTable(config.clients)
                self.engine.duplicate_ttl = config.duplicate_ttl
                self.engine.eap = eap
                self.config = config
                log.info("configuration reloaded from %s: %d clients", config.source, len(config.clients))
            self._rules_version = -1  # re-read the rules even if their version did not move
            self.poll_rules()
            self.poll_registry()
            self.counters["reloads"] += 1
        finally:
            if self.worker is None:
                sd_notify("READY=1")

    def dispatch_jobs(self) -> None:
        """Send the Disconnect / re-authorize requests that `nac disconnect` and `nac reauth`
        queued: this process holds the NAS secrets, the CLI does not."""
        try:
            jobs = session_store.take_pending(self.store.conn)
        except sqlite3.Error as exc:
            log.warning("cannot read queued dynamic authorization requests: %s", exc)
            return
        for job in jobs:
            task = asyncio.get_running_loop().create_task(self._run_job(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: dict[str, Any]) -> None:
        clients = {c.name: c for c in self.config.clients}
        client = clients.get(job["client"])
        kind = job["kind"]
        if client is None:
            answer = Answer("error")
            detail = f"client {job['client']} is no longer configured"
        else:
            if self._dynauth is None:
                self._dynauth = DynAuthClient()
            target = Target(
                nas_ip=job["nas_ip"],
                port=client.coa_port,
                secret=client.secret,
                client=client.name,
                session_id=job["session_id"],
                calling_station_id=job["calling_station_id"],
                user_name=job["user_name"],
                nas_identifier=job["nas_identifier"],
                called_station_id=job["called_station_id"],
                nas_port=job["nas_port"],
                audit_session_id=job["audit_session_id"],
            )
            sent = coa.plan(
                kind, reauth=client.reauth, bounce=client.bounce, disconnect=client.disconnect, job=job
            )
            answer = await self._dynauth.send(
                sent.code, target, now=time.time(), command=sent.command, session=client.coa_session
            )
            # A bounce or a port shutdown is not what `nac reauth` / `nac disconnect` said: say so.
            plain = sent.command in (None, coa.REAUTHENTICATE)
            detail = answer.detail if plain else f"{sent.command} {answer.detail}"
        now = time.time()
        self.counters[f"coa:{kind}:{answer.status}"] += 1
        log.info("%s %s on %s (%s): %s", kind, job["mac"], job["client"], job["nas_ip"], detail)
        record = HistoryRecord(
            now, job["mac"], None, None, None, kind, None, f"coa:{job['reason']}", f"{kind} {detail}",
            job["client"], job["nas_ip"], "coa", job["user_name"], job["calling_station_id"], None, None,
            None, None, job["nas_identifier"], f"{job['nas_ip']}:{client.coa_port if client else 0}", 1,
            0, self.engine.policy.snapshot_id,
        )  # fmt: skip
        try:
            session_store.finish(
                self.store.conn,
                job["job"],
                status=answer.status,
                attempts=answer.attempts,
                error_cause=answer.error_cause,
                detail=detail,
                now=now,
            )
            self.store.write_history([(*record, 0)])
        except sqlite3.Error as exc:
            log.error("cannot record the %s result for %s: %s", kind, job["mac"], exc)

    def housekeeping(self, now: float) -> None:
        """Once a minute: sessions whose Stop was lost become stale; history older than the
        configured retention is pruned (in a thread: it deletes in batches, and the event loop
        must not wait for it)."""
        retention = self.config.history_retention
        if retention is not None and (self._pruner is None or not self._pruner.is_alive()):
            self._pruner = threading.Thread(
                target=self._prune, args=(retention,), name="nac-retention", daemon=True
            )
            self._pruner.start()
        try:
            stale = session_store.expire_stale(self.store.conn, now=now, stale_after=STALE_AFTER)
        except sqlite3.Error as exc:
            log.warning("cannot expire stale sessions: %s", exc)
            return
        if stale:
            self.counters["sessions_stale"] += stale
            log.info("%d sessions had no accounting for %d h: marked stale", stale, STALE_AFTER // 3600)

    def _prune(self, retention: float) -> None:
        try:
            conn = store_mod.connect(self.store.path)
        except sqlite3.Error as exc:
            log.warning("history retention: %s", exc)
            return
        try:
            deleted = helpdesk.prune(conn, retention)
        except sqlite3.Error as exc:
            log.warning("history retention: %s", exc)
            return
        finally:
            conn.close()
        if deleted:
            log.info(
                "history retention: removed %d decisions older than %d days", deleted, retention // 86400
            )

    def tend_history(self) -> None:
        """Once per tick, for the two history tiers (nac/store.py) and the indexer's thread
        (nac/indexer.py): delete up to COLLECT_CHUNK batches it has copied and read the backlog.
        Past BACKLOG_HIGH, index here, at the event loop's priority, until the backlog is back
        under it or ASSIST_SECONDS have passed: the thread gets no core under load that never
        lets up, and then the server must slow down to what it can index.  Past WAL_HIGH or
        WAL_HARD, checkpoint the recent tier here (see indexer.WAL_HIGH)."""
        conn = self.store.conn
        indexer = self.indexer
        try:
            store_mod.collect_recent(conn, COLLECT_CHUNK)
            self._unindexed = store_mod.recent_backlog(conn)
            recent = store_mod.recent_path(self.store.path)
            if _wal_long(self._recent_wal_index(), recent):
                # The recent tier's alone: the thread has copied most of its frames already and
                # the event loop is its only writer, so this pass ends with every frame copied
                # and the next group commit rewinds the WAL.  Main's WAL is the thread's to
                # rewind (it writes main), or the loop's below when it indexes itself.
                conn.execute("PRAGMA recent.wal_checkpoint(PASSIVE)").fetchall()
                self.counters["history_wal_rewinds"] += 1
            behind = self._unindexed > BACKLOG_HIGH
            if not behind:
                indexer.hand_back()
                return
            if not indexer.loop_indexes:
                log.warning(
                    "history: %d decisions unindexed: the server indexes itself until it catches up",
                    self._unindexed,
                )
            indexer.take_over(within=0.2)
            self.counters["history_index_assists"] += 1
            until = time.monotonic() + ASSIST_SECONDS
            while self._unindexed > BACKLOG_HIGH and time.monotonic() < until:
                if not indexer.step(conn):
                    break
                self._unindexed = indexer.backlog
            indexer.checkpoint(conn)
        except sqlite3.Error as exc:
            log.warning("history tiers (event loop): %s", exc)

    def flush_index(self) -> None:
        """On stop: index what is left, for up to FLUSH_ON_STOP seconds (the rest waits for the
        next start; it is on disk and visible either way)."""
        try:
            moved = self.indexer.flush(self.store.conn, within=FLUSH_ON_STOP)
            while store_mod.collect_recent(self.store.conn, COLLECT_CHUNK * 10):
                pass
            left = store_mod.recent_backlog(self.store.conn)
        except sqlite3.Error as exc:
            log.warning("history indexer at stop: %s", exc)
            return
        if moved or left:
            log.info("history indexed at stop: %d decisions; %d left for the next start", moved, left)
        try:
            self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave short WALs behind
        except sqlite3.Error as exc:
            log.warning("final WAL checkpoint failed: %s", exc)

    def log_counters(self) -> None:
        """SIGUSR1: one line with every counter (requests, decisions, drops by reason)."""
        log.info("counters: %s", _format_counters(self.counters))

    async def serve(self, *, on_ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.log_counters)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.store.conn.execute("PRAGMA wal_autocheckpoint=0")  # the indexer's thread does it
        self.store.conn.execute(f"PRAGMA busy_timeout={HISTORY_BUSY_MS}")
        indexing = self.worker in (None, 0)  # one indexer per database, not one per worker
        switch_interval = sys.getswitchinterval()
        if indexing:
            # One thread per database, not per worker: it also checkpoints (nac/indexer.py).
            sys.setswitchinterval(SWITCH_INTERVAL)
            self.indexer.start()
            wal_index = self._recent_wal_index()
            if wal_index is not None:
                self._copier = Copier(store_mod.recent_path(self.store.path), wal_index.read)
                self._copier.start()
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
        # Everything loaded so far (the registry's ~60,000 objects, dictionaries, policy) lives
        # as long as the process: out of the collector's sight, a full collection takes
        # microseconds instead of ~14 ms in the middle of the request stream.
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
                if self._watcher is not None:
                    self.poll_watch()
                self.poll_rules()
                self.poll_registry()
                if self.profiler is not None:
                    self.profiler.poll()
                self.dispatch_jobs()
                if indexing:
                    self.tend_history()
                now = time.time()
                self.engine.expire(now)
                self._unverified.prune(now)
                self._limits.prune(now)
                self._drop_log.prune(now)
                if now >= self._next_housekeeping:
                    self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
                    self.housekeeping(now)
                if watchdog:
                    sd_notify("WATCHDOG=1")
        finally:
            if self.worker is None:
                sd_notify("STOPPING=1")
            for task in list(self._tasks):
                task.cancel()
            if self._dynauth is not None:
                self._dynauth.close()
            self._stopping.set()  # (also when serve() itself fails): nothing is read any more
            self._watch_sockets(False)
            if self.profiler is not None:
                self.profiler.close()
            self.flush()  # decisions waiting for their group commit: committed and answered
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self._copier is not None:
                self._copier.stop()
            if indexing:
                self.indexer.stop()
                sys.setswitchinterval(switch_interval)  # the thread is gone
                self.flush_index()
            self.close()
            if self.syslog is not None:
                self.syslog.close()
            log.info("stopped; %s", _format_counters(self.counters))


def _batched(sock: socket.socket) -> bool:
    """Whether ``sock`` is read and answered through nac._udp (IPv4, and the module built)."""
    return _udp is not None and sock.family == socket.AF_INET


def _wal_long(index: WalIndex | None, db_path: str) -> bool:
    """Whether the event loop should rewind the WAL of the database at ``db_path`` now (see
    indexer.WAL_HIGH); the file's size stands in when the WAL-index cannot be read."""
    held = index.read() if index is not None else None
    if held is None:
        return _file_size(db_path + "-wal") > WAL_HARD
    frames, uncopied = held
    return frames > WAL_HARD or (frames > WAL_HIGH and uncopied <= WAL_TAIL)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def take_database_lock(path: str) -> int:
    """One server per database: a second one would split the traffic and the history silently.
    The kernel drops the lock when the process dies, so a crash leaves none behind."""
    fd = os.open(f"{path}.serve-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise NacError(
            f"another nac serve (pid {holder}) is already using the database {path}; "
            "stop it first, or give this one its own --db"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def claim_ports(bind: Sequence[str], ports: Sequence[int]) -> list[socket.socket]:
    """Workers share their ports with SO_REUSEPORT, which would also let an unrelated second
    `nac serve --workers` join and silently take half the traffic.  An abstract unix socket
    named after each address and port (global to the network namespace, gone when the holder
    dies) makes a second one fail instead."""
    held: list[socket.socket] = []
    for address in bind:
        for port in ports:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(f"\0nac-serve/udp/{address}/{port}")
            except OSError:
                sock.close()
                for other in held:
                    other.close()
                raise NacError(
                    f"another nac serve is already listening on {address} port {port}/udp"
                ) from None
            held.append(sock)
    return held


def _bind(address: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            # One socket per family: IPv4 peers appear with their own addresses, not as ::ffff:.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except OSError:
            log.debug("cannot enlarge the receive buffer of %s:%d", address, port)
        if reuse_port:
            # Workers each bind the same ports; the kernel spreads datagrams by source address
            # and port, so a NAS's retransmission reaches the worker that holds its reply.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _format_counters(counters: Counter[str]) -> str:
    # Per-rule decision counters are for /metrics; the log line keeps to the totals.
    shown = sorted((k, v) for k, v in counters.items() if not k.startswith("decision:"))
    return ", ".join(f"{k}={v}" for k, v in shown) or "no traffic"
