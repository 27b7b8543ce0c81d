"""The server's profiling: a passive DHCP listener, profiles kept in memory and in the
database, and enforcement at once when a profile changes a device's decision.

The server owns one :class:`Profiler` when ``[profiling] dhcp_listen`` is set.  Datagrams are
parsed (nac/profiling/dhcp.py) and identified (nac/profiling/signatures.py) in the event loop:
a few microseconds each, never between a RADIUS request and its reply for long.  A profile
that changes is written at once and shared with the admission engine's MAC -> family map;
when it changes what the policy gives an active session, the session's NAS is told as
`nac rules add --apply now` would (Disconnect for a reject, re-authorize otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from netaddr import AddrFormatError, IPAddress, IPNetwork

from nac.errors import ConfigError, PacketError, PolicyError
from nac.policy.decide import Context, Policy
from nac.profiling import store
from nac.profiling.dhcp import DhcpInfo, parse
from nac.profiling.effect import ON_CONFLICT
from nac.profiling.signatures import Signature, identify, load_signatures
from nac.registry.mac import format_mac
from nac.sessions import store as session_store
from nac.tomlfile import Locator

log = logging.getLogger("nac.profiling")

#: Datagrams read per wake-up before the loop turns to RADIUS again.
READ_BATCH: Final = 64
#: Larger than any DHCP message parse() accepts, so a too-large one is seen whole and counted.
RECV_SIZE: Final = 2048


@dataclass(frozen=True, kw_only=True)
class ProfilingConfig:
    """``[profiling]``: off unless ``dhcp_listen`` names at least one address."""

    dhcp_listen: tuple[tuple[str, int], ...] = ()
    #: Networks relayed copies may come from; empty: the RADIUS clients' networks.  A forged
    #: DHCP message from elsewhere could otherwise brand any MAC with any manufacturer.
    #: "0.0.0.0/32" admits clients' own broadcasts, for a listener on their segment.
    dhcp_sources: tuple[IPNetwork, ...] = ()
    signatures: str | None = None  # an operator's file added to the shipped signatures
    on_conflict: str = "flag"
    #: "now": act on active sessions when a profile changes their decision; "next": at the
    #: device's next authentication only.
    apply: str = "now"
    loaded: tuple[Signature, ...] = field(default=(), repr=False, compare=False)

    @property
    def enabled(self) -> bool:
        return bool(self.dhcp_listen)


class Profiler:
    def __init__(
        self,
        config: ProfilingConfig,
        *,
        conn: sqlite3.Connection,
        profiles: dict[int, str | None],
        policy: Callable[[], Policy],
        sources: Sequence[IPNetwork],
        counters: Counter[str],
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.conn = conn
        self.profiles = profiles  # shared with the admission engine, updated in place
        self._policy = policy
        self._sources = tuple(config.dhcp_sources or sources)
        self.counters = counters
        #: Called when a Disconnect or re-authorize was queued: the server sends it at once
        #: instead of at its next poll of the queue.
        self._on_queued = on_queued
        self._sockets: list[socket.socket] = []
        self._version = 0
        self._logged: set[str] = set()
        store.ensure_schema(conn)

    # -- start and stop --------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.load()
        for host, port in self.config.dhcp_listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                raise ConfigError(
                    f"[profiling] dhcp_listen {host}:{port}: cannot listen ({exc.strerror}); port 67 needs"
                    " CAP_NET_BIND_SERVICE (the systemd unit grants it)"
                ) from None
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._drain, sock)
            self._sockets.append(sock)
            log.info("DHCP profiling on %s:%d (client messages are read, never answered)", host, port)

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()

    def addresses(self) -> list[str]:
        """Where the listener reads, as the server's ready line shows them."""
        return [f"dhcp {sock.getsockname()[0]}:{sock.getsockname()[1]}" for sock in self._sockets]

    # -- profiles shared between processes ---------------------------------------------------

    def load(self) -> None:
        """Every stored profile into the engine's map (at start)."""
        found, self._version = store.families_since(self.conn, 0)
        self.profiles.update(found)

    def poll(self) -> None:
        """Profiles other processes (workers, an earlier run) wrote since the last poll."""
        try:
            found, self._version = store.families_since(self.conn, self._version)
        except sqlite3.Error as exc:
            log.warning("cannot read profiles: %s", exc)
            return
        self.profiles.update(found)

    # -- datagrams -----------------------------------------------------------------------------

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.counters["dhcp:socket_errors"] += 1
                log.debug("DHCP socket: %s", exc)
                return
            self.received(data, addr[0])

    def received(self, data: bytes, source: str, *, now: float | None = None) -> None:
        """One relayed DHCP datagram from ``source``."""
        self.counters["dhcp:received"] += 1
        if not self._allowed(source):
            self._drop("unknown-source", source, "not a RADIUS client or dhcp_sources network")
            return
        try:
            info = parse(data)
        except PacketError as exc:
            self._drop(exc.reason, source, exc.detail)
            return
        self.observe(info, now=time.time() if now is None else now)

    def observe(self, info: DhcpInfo, *, now: float) -> None:
        """A parsed DHCP message: its fields into the MAC's profile."""
        self._update(info.mac, info.fields(), source="dhcp", now=now)

    def sensed(self, mac: str, fields: dict[str, str], *, now: float) -> None:
        """Device-sensor fields from an Accounting-Request for ``mac`` (canonical text)."""
        self.counters["sensor:received"] += 1
        self._update(int(mac.replace(":", ""), 16), fields, source="accounting", now=now)

    def _update(self, mac: int, fields: dict[str, str], *, source: str, now: float) -> None:
        identity = identify(fields, self.config.loaded)
        try:
            with self.conn:
                before, after = store.record(
                    self.conn, mac=mac, identity=identity, fields=fields, source=source, now=now
                )
        except sqlite3.Error as exc:
            self.counters["profile:store_failures"] += 1
            log.error("cannot store the profile of %s: %s", format_mac(mac), exc)
            return
        self.counters[f"{source}:profiled"] += 1
        if after is None or after is before:
            return
        old = before.family if before is not None else None
        self.profiles[mac] = after.family
        if after.family != old:
            self.counters["profile:changes"] += 1
            log.info(
                "profile %s: %s (was %s) from %s: %s",
                format_mac(mac),
                after.family or "undecided",
                old or "none",
                source,
                identity.summary() or "no signature matched",
            )
            if self.config.apply == "now":
                self._enforce(mac, old, after.family, now=now)

    def _enforce(self, mac: int, old: str | None, new: str | None, *, now: float) -> None:
        """Queue Disconnect / re-authorize for the device's active sessions whose decision
        the new profile changes; the server's job loop sends them."""
        policy = self._policy()
        mac_text = format_mac(mac)
        try:
            sessions = session_store.query(self.conn, mac=mac_text, active=True)
        except sqlite3.Error as exc:
            log.warning("cannot read the sessions of %s: %s", mac_text, exc)
            return
        for row in sessions:
            ctx = Context(row["client"], row["called_station_id"], None, None, now)
            before, _ = policy.decide(mac, ctx, old)
            after, _ = policy.decide(mac, ctx, new)
            if (before.action, before.vlan) == (after.action, after.vlan):
                continue
            kind = "disconnect" if after.action == "reject" else "reauth"
            try:
                ids = session_store.request_action(
                    self.conn,
                    mac=mac_text,
                    kind=kind,
                    reason=f"profile {new or 'undecided'}: {after.reason}",
                    requested_by="profiling",
                    now=now,
                    vlan_change=before.vlan != after.vlan,
                )
            except sqlite3.Error as exc:
                log.error("cannot queue a %s for %s: %s", kind, mac_text, exc)
                return
            self.counters[f"profile:enforced:{kind}"] += len(ids)
            if ids and self._on_queued is not None:
                self._on_queued()
            return  # request_action covers every active session of the MAC

    def _allowed(self, source: str) -> bool:
        try:
            address = IPAddress(source.partition("%")[0])
        except (ValueError, TypeError):
            return False
        if address.version == 6 and address.is_ipv4_mapped():
            address = address.ipv4()
        return any(address in network for network in self._sources)

    def _drop(self, reason: str, source: str, detail: str) -> None:
        self.counters[f"dhcp:dropped:{reason}"] += 1
        key = f"{reason} {source}"
        if key not in self._logged and len(self._logged) < 1024:
            self._logged.add(key)
            log.warning("DHCP datagram from %s dropped (%s): %s", source, reason, detail)


_KEYS: Final = {"dhcp_listen", "dhcp_sources", "signatures", "on_conflict", "apply"}


def parse_profiling(raw: object, loc: Locator) -> ProfilingConfig:
    """``[profiling]`` from the config file; errors name the file, line and setting."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{loc.where('profiling')}: must be a table")
    for key in sorted(set(raw) - _KEYS):
        raise ConfigError(f"{loc.where('profiling', key)}: unknown setting")
    listen = []
    for text in _strings(raw, "dhcp_listen", loc):
        host, _, port = text.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{loc.where('profiling', 'dhcp_listen')}: {text!r} is not ADDRESS:PORT")
        listen.append((host, int(port)))
    sources = []
    for text in _strings(raw, "dhcp_sources", loc):
        try:
            sources.append(IPNetwork(text))
        except (AddrFormatError, ValueError, TypeError):
            where = loc.where("profiling", "dhcp_sources")
            raise ConfigError(f"{where}: {text!r} is no address or CIDR") from None
    for key, allowed in (("on_conflict", ON_CONFLICT), ("apply", ("now", "next"))):
        if key in raw and raw[key] not in allowed:
            raise ConfigError(f"{loc.where('profiling', key)}: one of {', '.join(allowed)}")
    signatures = raw.get("signatures")
    if signatures is not None and (not isinstance(signatures, str) or not signatures):
        raise ConfigError(f"{loc.where('profiling', 'signatures')}: a file path")
    try:
        loaded = load_signatures(signatures)
    except (ConfigError, PolicyError) as exc:
        raise ConfigError(f"{loc.where('profiling', 'signatures')}: {exc}") from None
    return ProfilingConfig(
        dhcp_listen=tuple(listen),
        dhcp_sources=tuple(sources),
        signatures=signatures,
        on_conflict=raw.get("on_conflict", "flag"),
        apply=raw.get("apply", "now"),
        loaded=tuple(loaded),
    )


def _strings(raw: dict[str, object], key: str, loc: Locator) -> list[str]:
    value = raw.get(key, [])
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{loc.where('profiling', key)}: a list of strings")
    return list(value)
