"""`nac serve`: assemble the server from configuration, and run it as one process or as a
parent with workers (`--workers N`) that share the ports with SO_REUSEPORT.

The parent loads the registry, dictionary and families once and forks; each worker opens its
own database connection and sockets and decides on its own.  SQLite serialises their history
commits (WAL, busy timeout), and the parent holds the database lock and the ports' claim, so
a second `nac serve` is refused whole.  The parent speaks to systemd and passes signals on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nac import dbfile, pg
from nac.admission.engine import Engine
from nac.config import Config
from nac.equipment.clients import ClientTable
from nac.equipment.reply import vlan_name_conflicts
from nac.errors import ConfigError, NacError
from nac.history.writer import HistoryWriter
from nac.policy.decide import Policy
from nac.profiling.sensor import SensorCodes
from nac.profiling.service import Profiler
from nac.radius.packet import SPEEDUPS, Codes
from nac.registry.families import Family
from nac.registry.oui import Registry
from nac.resources import load_active_registry, load_dictionary, load_families, open_store
from nac.serve.coa_jobs import CoaDispatcher
from nac.serve.observe import SyslogSink, sd_notify, watchdog_interval
from nac.serve.reload import PolicyPoller
from nac.serve.server import Server
from nac.store import Store, default_db_path

if TYPE_CHECKING:
    from nac.eap.config import EapConfig
    from nac.eap.eap import EapServer
    from nac.identity.config import LdapConfig
    from nac.identity.lookups import Lookups
    from nac.pg.node import PgNode

log = logging.getLogger("nac")

#: Seconds the parent waits for every worker to bind its sockets.
WORKER_START_TIMEOUT: Final = 60.0
#: A worker that dies is started again, but not more often than this (a crash loop must not
#: spin the CPU; systemd's Restart= covers the parent).
RESPAWN_INTERVAL: Final = 1.0


@dataclass
class Shared:
    """What the parent loads once and every worker inherits."""

    registry: Registry
    families: dict[str, Family]
    codes: Codes


def server_db(config: Config) -> str:
    """`--db`, else `[server] db`, else $NAC_DB, else ./nac.db (README); unlike the other
    commands, `nac serve` reads the packaged config only when --config names it.  With a
    PostgreSQL database, the server's journal: the SQLite file it decides and records from."""
    db = config.db or default_db_path()
    if pg.is_url(db):
        from nac.pg.node import DEFAULT_JOURNAL  # noqa: PLC0415 - only with PostgreSQL

        return config.journal or DEFAULT_JOURNAL
    return db


def pg_node(config: Config) -> PgNode | None:
    """The server's PostgreSQL side when its database is one (nac/pg/node.py), else None."""
    db = config.db or default_db_path()
    if not pg.is_url(db):
        if config.journal is not None:
            log.warning("--journal / [server] journal is used only with a postgresql:// database; ignored")
        return None
    if config.policy_watch is not None:
        raise ConfigError(
            "[policy] watch: not yet supported with a PostgreSQL database (it would change this"
            " server's copy of the rules only); import the file with `nac policy import --db URL`"
        )
    from nac.pg.node import PgNode  # noqa: PLC0415 - only with PostgreSQL

    clients = [client.name for client in config.clients]
    return PgNode(
        db, node=config.node, journal=server_db(config), clients=clients, retention=config.history_retention
    )


def run_server(server: Server, node: PgNode | None) -> None:
    """Serve until stopped, with the PostgreSQL threads (if any) running beside the loop."""
    if node is not None:
        server.metrics.gauges.update(node.gauges())
        server.metrics.totals.update(node.totals())
        node.start()
    try:
        asyncio.run(server.serve())
    finally:
        if node is not None:
            node.stop()


def warn_exposed(path: str) -> None:
    """One line per file of the database that group or others may read or write: it holds
    the 802.1X users' NT hashes (password equivalents) and every device's history."""
    for name, mode in dbfile.exposed(path):
        log.warning(
            "%s has mode %04o: other users may read or write it (802.1X password hashes, "
            "device history); chmod 600 it",
            name,
            mode,
        )


def load_shared(config: Config) -> Shared:
    store = open_store(server_db(config))  # creates and initialises a fresh database
    try:
        registry = load_active_registry(store)
    finally:
        store.close()
    log.info(
        "registry %s: %s",
        registry.snapshot.id,
        ", ".join(f"{k} {v}" for k, v in registry.snapshot.counts.items()),
    )
    return Shared(registry, load_families(), Codes.from_dictionary(load_dictionary()))


def eap_server(config: EapConfig | None, store: Store, ldap: LdapConfig | None = None) -> EapServer | None:
    """The server's EAP side, or None when `[eap]` is absent (802.1X requests are refused).
    Its modules load here, not at the top, so OpenSSL loads only when [eap] is set.  With
    ``ldap``, users not in nac's own table are looked up in the directory."""
    if config is None:
        return None
    from nac.eap import config as eap_config  # noqa: PLC0415
    from nac.eap.eap import EapServer  # noqa: PLC0415
    from nac.eap.groups import Authorizer  # noqa: PLC0415
    from nac.eap.keys import MppeCodes  # noqa: PLC0415
    from nac.eap.users import UserDirectory  # noqa: PLC0415

    if eap_config.is_lab_certificate(config.certificate):
        log.warning(
            "802.1X uses a `nac certs init` lab certificate (%s): fine for a lab, never for "
            "production; supplicants that trust it trust anyone holding its CA key",
            config.certificate,
        )
    authorize = Authorizer(store.conn, load_dictionary())
    settings = eap_config.settings(
        config, UserDirectory(store.conn), authorize, directory=ldap, authorize_directory=authorize.directory
    )
    return EapServer(settings, mppe=MppeCodes.from_dictionary(load_dictionary()))


def directory_lookups(config: Config, counters: Counter[str]) -> Lookups | None:
    """The threads that ask `[ldap]`'s directory, or None without it.  Built once: a reload
    that changes `[ldap]` takes effect at the next start."""
    if config.ldap is None or config.eap is None:
        return None
    from nac.identity.ldap import Directory  # noqa: PLC0415 (ldap3 only when configured)
    from nac.identity.lookups import Lookups  # noqa: PLC0415

    urls = ", ".join(config.ldap.urls)
    log.info("802.1X users not in nac's table are looked up in the directory at %s", urls)
    return Lookups(Directory(config.ldap), counters=counters, workers=config.ldap.pool_size, clock=time.time)


def build_server(config: Config, shared: Shared, configure: Callable[[], Config]) -> Server:
    store = open_store(server_db(config))
    policy = Policy(
        store.rules(), registry=shared.registry, defaults=store.defaults(), families=shared.families
    )
    engine = Engine(
        codes=shared.codes,
        policy=policy,
        duplicate_ttl=config.duplicate_ttl,
        eap=eap_server(config.eap, store, config.ldap),
    )
    log.info(
        "config %s; database %s; %d rules; %d clients",
        config.source,
        store.path,
        len(policy.rules),
        len(config.clients),
    )
    conflict = vlan_name_conflicts(policy, config.clients)
    if conflict is not None:
        log.warning("%s", conflict)
    if not SPEEDUPS:
        log.warning(
            "nac._speedups is not built (no C compiler when nac was installed): packets are "
            "decoded and signed in pure Python, with about 40% fewer requests/s"
        )
    counters: Counter[str] = Counter()
    history = HistoryWriter(
        store.conn,
        store.path,
        counters=counters,
        on_failure=config.on_history_failure,
        retention=config.history_retention,
        node=config.node,
    )
    policies = PolicyPoller(
        config,
        store=store,
        engine=engine,
        registry=shared.registry,
        families=shared.families,
        clients=ClientTable(config.clients),
        history=history,
        counters=counters,
        reload_config=configure,
        build_eap=lambda cfg: eap_server(cfg.eap, store, cfg.ldap),
    )
    # The clients in force when a job is sent: a reload may have changed their secrets.
    coa = CoaDispatcher(
        store=store,
        engine=engine,
        history=history,
        counters=counters,
        clients=lambda: policies.config.clients,
    )
    profiler = None
    if config.profiling is not None and config.profiling.enabled:
        engine.on_conflict = config.profiling.on_conflict
        engine.sensor = SensorCodes.from_dictionary(load_dictionary())
        profiler = Profiler(
            config.profiling,
            conn=store.conn,
            profiles=engine.profiles,
            policy=lambda: engine.policy,
            sources=[client.network for client in config.clients],
            counters=counters,
            on_queued=coa.dispatch,  # a changed profile's re-authorization goes out at once
        )
    return Server(
        store=store,
        engine=engine,
        policies=policies,
        history=history,
        coa=coa,
        counters=counters,
        profiler=profiler,
        directory=directory_lookups(config, counters),
        syslog=SyslogSink(config.syslog_address, facility=config.syslog_facility)
        if config.syslog_address
        else None,
    )


def serve(config: Config, configure: Callable[[], Config], *, workers: int = 1) -> None:
    if config.uses_test_client:
        log.warning(
            "a client uses FreeRADIUS's well-known test secret; "
            "configure [[client]] entries with real secrets before production use"
        )
    node = pg_node(config)
    if node is not None:
        node.start_up()  # PostgreSQL's rules into the journal, before anything reads them
    shared = load_shared(config)
    if workers <= 1:
        server = build_server(config, shared, configure)
        lock = take_database_lock(server.store.path)
        try:
            server.open()
            warn_exposed(server.store.path)
            try:
                run_server(server, node)
            finally:
                server.close_store()
        finally:
            os.close(lock)
        return
    _Parent(config, configure, shared, workers, node).run()


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


class _Parent:
    def __init__(
        self,
        config: Config,
        configure: Callable[[], Config],
        shared: Shared,
        workers: int,
        node: PgNode | None = None,
    ) -> None:
        self.config = config
        self.node = node  # its threads run in worker 0, as history's indexer does
        self.configure = configure
        self.shared = shared
        self.workers = workers
        self.children: dict[int, int] = {}  # pid -> worker number
        self.stopping = False
        self._signals: list[int] = []

    def run(self) -> None:
        path = open_store(server_db(self.config))
        db_path = path.path
        path.close()
        lock = take_database_lock(db_path)
        warn_exposed(db_path)
        claims = claim_ports(self.config.bind, (self.config.auth_port, self.config.acct_port))
        try:
            ready_r, ready_w = os.pipe()
            for number in range(self.workers):
                self._spawn(number, ready_w)
            self._await_ready(ready_r)
            log.info("%d workers ready", self.workers)
            sd_notify("READY=1")
            self._supervise(ready_w)
        finally:
            for sock in claims:
                sock.close()
            os.close(lock)

    def _spawn(self, number: int, ready_w: int) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = number
            return
        code = 0
        try:  # the worker: never returns into the parent's code
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)  # the parent's handlers are not the worker's
            logging.getLogger("nac").info("worker %d (pid %d) starting", number, os.getpid())
            server = build_server(self.config, self.shared, self.configure)
            server.open(worker=number)
            os.write(ready_w, b"r")
            run_server(server, self.node if number == 0 else None)
            server.close_store()
        except NacError as exc:
            log.error("worker %d: %s", number, exc)
            code = 1
        except BaseException:  # last-resort guard of a worker process
            log.exception("worker %d failed", number)
            code = 1
        finally:
            os._exit(code)

    def _await_ready(self, ready_r: int) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        seen = 0
        while seen < self.workers:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([ready_r], [], [], max(0.0, left))
            if not readable:
                self._stop_all()
                raise NacError(
                    f"only {seen} of {self.workers} workers started in {WORKER_START_TIMEOUT:.0f} s"
                )
            seen += len(os.read(ready_r, self.workers))
            for pid, status in self._reap():
                self._stop_all()
                raise NacError(
                    f"worker {self.children.get(pid, '?')} exited while starting (status {status})"
                )

    def _reap(self) -> list[tuple[int, int]]:
        out = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            out.append((pid, status))
        return out

    def _supervise(self, ready_w: int) -> None:
        def note(sig: int, _frame: Any) -> None:
            self._signals.append(sig)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, note)
        watchdog = watchdog_interval()
        last_spawn = 0.0
        while self.children:
            time.sleep(min(0.2, watchdog or 0.2))
            if watchdog:
                sd_notify("WATCHDOG=1")
            while self._signals:
                received = self._signals.pop(0)
                if received in (signal.SIGTERM, signal.SIGINT):
                    sd_notify("STOPPING=1")
                    self.stopping = True
                    self._forward(signal.SIGTERM)
                elif received == signal.SIGHUP:
                    sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
                    self._forward(signal.SIGHUP)
                    sd_notify("READY=1")
                elif received == signal.SIGUSR1:
                    self._forward(signal.SIGUSR1)
            for pid, status in self._reap():
                number = self.children.pop(pid, None)
                if number is None or self.stopping:
                    continue
                log.error("worker %d (pid %d) died (status %d); starting it again", number, pid, status)
                wait = last_spawn + RESPAWN_INTERVAL - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                last_spawn = time.monotonic()
                self._spawn(number, ready_w)
        log.info("all workers stopped")

    def _forward(self, sig: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop_all(self) -> None:
        self.stopping = True
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.children and time.monotonic() < deadline:
            for pid, _ in self._reap():
                self.children.pop(pid, None)
            time.sleep(0.05)
