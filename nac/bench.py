"""Load generator: MAB Access-Requests against a RADIUS server, like ``redis-benchmark``.

:func:`run` keeps ``window`` requests in flight over plain non-blocking UDP sockets and one
``poll`` loop, and returns a :class:`BenchResult` with throughput, per-code reply counts,
timeouts, replies that failed authentication and latency percentiles.

Every request is what a Cisco switch sends for MAC Authentication Bypass::

    Message-Authenticator (first; HMAC-MD5, RFC 3579 §3.2)
    User-Name = User-Password (hidden, RFC 2865 §5.2) = Calling-Station-Id = the MAC
    Service-Type = Call-Check, NAS-IP-Address = 127.0.0.1, NAS-Port-Type = Ethernet, NAS-Port

and each one has a fresh random Request Authenticator, so the password hiding and the
Message-Authenticator are computed per request and a server's duplicate cache (RFC 5080
§2.2.2) can never answer from memory.  Each reply's Response Authenticator is checked
(RFC 2865 §3) before it counts.

The attribute numbers come from the RADIUS dictionary by name, resolved once per process.
The hot loop is written for speed; the client's own CPU time is reported so a reader can
tell whether the generator, rather than the server, was the bottleneck.  Its command line is
nac/cli_bench.py's: `nac bench`, or `python -m nac.bench`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import select
import socket
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from nac.crypto import HmacMd5

__all__ = [
    "SPELLINGS",
    "BenchResult",
    "build_request",
    "default_macs",
    "format_mac",
    "run",
]

ACCESS_REQUEST: Final = 1
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

#: How many requests one socket (one source port, 256 identifiers) carries at once at most.
#: Identifiers are recycled first-in first-out, so the 256 - 192 spare ones keep a freed
#: identifier idle for a while before it is reused.
MAX_IN_FLIGHT_PER_SOCKET: Final = 192
DEFAULT_COUNT: Final = 10_000
_DEFAULT_MIX: Final = 660  # 11 OUIs x 6 spellings x 10
_RANDOM_CHUNK: Final = 16 * 4096
_SOCKET_BUFFER: Final = 4 << 20

_ZERO16: Final = bytes(16)
_CODE_ID: Final = tuple(bytes((ACCESS_REQUEST, i)) for i in range(256))

# --------------------------------------------------------------------------- MAC mix

#: The six ways switches spell a MAC in User-Name / Calling-Station-Id.
SPELLINGS: Final = (
    "ietf",  # 00-10-A4-23-19-C0  (RFC 3580 §3.21, Cisco Calling-Station-Id)
    "colon",  # 00:10:a4:23:19:c0
    "bare",  # 0010a42319c0       (Cisco MAB User-Name)
    "cisco",  # 0010.a423.19c0
    "huawei",  # 0010-a423-19c0
    "hp",  # 0010a4-2319c0       (HP/Aruba ProCurve)
)

# Eleven prefixes (prime, so i % 11 and i % 6 visit every OUI in every spelling).
# The first octet of a locally administered address has bit 0x02 set; the next two octets
# of those vary per MAC, like randomised ("private") Wi-Fi/phone addresses.
_OUIS: Final = (
    (0x00, 0x10, 0xA4),  # Xircom: the quarantine prefix of the reference policy (VLAN 666)
    (0x00, 0xE0, 0xFC),  # Huawei
    (0x3C, 0x22, 0xFB),  # Apple
    (0x28, 0x6E, 0xD4),  # Huawei
    (0x00, 0x00, 0x0C),  # Cisco
    (0x02, None, None),  # locally administered
    (0x00, 0x1B, 0x21),  # Intel
    (0x00, 0x18, 0x82),  # Huawei
    (0xF0, 0x18, 0x98),  # Apple
    (0x7A, None, None),  # locally administered (randomised MAC)
    (0xA4, 0xBB, 0x6D),  # Dell
)


def format_mac(octets: bytes, spelling: str) -> str:
    """Spell six octets the way ``spelling`` (one of :data:`SPELLINGS`) does."""
    if len(octets) != 6:
        raise ValueError("a MAC address is 6 octets")
    h = octets.hex()
    if spelling == "ietf":
        return "-".join(h[i : i + 2] for i in range(0, 12, 2)).upper()
    if spelling == "colon":
        return ":".join(h[i : i + 2] for i in range(0, 12, 2))
    if spelling == "bare":
        return h
    if spelling == "cisco":
        return f"{h[0:4]}.{h[4:8]}.{h[8:12]}"
    if spelling == "huawei":
        return f"{h[0:4]}-{h[4:8]}-{h[8:12]}"
    if spelling == "hp":
        return f"{h[0:6]}-{h[6:12]}"
    raise ValueError(f"unknown MAC spelling {spelling!r}")


def default_macs(n: int) -> list[str]:
    """``n`` distinct-looking MACs: a fixed mix of allowed, quarantined and banned prefixes.

    Deterministic.  Entry ``i`` uses prefix ``i % 11`` and spelling ``i % 6``, so any 66
    consecutive entries hold every prefix in every spelling; the low octets differ per entry.
    """
    macs: list[str] = []
    for i in range(n):
        first, second, third = _OUIS[i % len(_OUIS)]
        x = (i * 0x9E3779B97F4A7C15 + 0x2545F491) & 0xFFFFFFFFFFFF  # spread the bits
        octets = bytearray(x.to_bytes(6, "big"))
        octets[0] = first
        if second is not None and third is not None:
            octets[1] = second
            octets[2] = third
        macs.append(format_mac(bytes(octets), SPELLINGS[i % len(SPELLINGS)]))
    return macs


# --------------------------------------------------------------------------- packets


def _attr(kind: int, value: bytes) -> bytes:
    if not 0 < len(value) <= 253:
        raise ValueError(f"attribute {kind} value must be 1..253 octets, not {len(value)}")
    return bytes((kind, len(value) + 2)) + value


@dataclass(frozen=True, kw_only=True)
class _Numbers:
    """What a MAB request carries, by number: attribute types and the two named values."""

    user_name: int
    user_password: int
    calling_station_id: int
    service_type: int
    call_check: int  # Service-Type value
    nas_ip_address: int
    nas_port_type: int
    ethernet: int  # NAS-Port-Type value
    nas_port: int
    message_authenticator: int

    @property
    def ma_header(self) -> bytes:
        """Message-Authenticator's type and length (RFC 3579 §3.2: 16 octets of value)."""
        return bytes((self.message_authenticator, 18))


@functools.cache
def _numbers() -> _Numbers:
    """The numbers, by name from the RADIUS dictionary: once per process, before any request."""
    # The dictionary (and pyrad) only when requests are built: importing the module stays cheap.
    from nac.packet import Codes  # noqa: PLC0415
    from nac.resources import load_dictionary  # noqa: PLC0415

    codes = Codes.from_dictionary(load_dictionary())
    port_types = {name: number for number, name in codes.nas_port_type_names.items()}
    return _Numbers(
        user_name=codes.user_name,
        user_password=codes.user_password,
        calling_station_id=codes.calling_station_id,
        service_type=codes.service_type,
        call_check=codes.service_type_call_check,
        nas_ip_address=codes.nas_ip_address,
        nas_port_type=codes.nas_port_type,
        ethernet=port_types["Ethernet"],
        nas_port=codes.nas_port,
        message_authenticator=codes.message_authenticator,
    )


# A template: length field, User-Name + User-Password header, password blocks as ints, and
# the attributes after User-Password.
_Template = tuple[bytes, bytes, tuple[int, ...], bytes]


def _template(mac: str, nas_port: int, numbers: _Numbers) -> _Template:
    password = mac.encode()
    if not 0 < len(password) <= 128:
        raise ValueError(f"MAC {mac!r}: User-Password must be 1..128 octets")
    padded = password + bytes(-len(password) % 16)
    blocks = tuple(int.from_bytes(padded[i : i + 16], "big") for i in range(0, len(padded), 16))
    head = _attr(numbers.user_name, password) + bytes((numbers.user_password, len(padded) + 2))
    tail = b"".join(
        (
            _attr(numbers.calling_station_id, password),
            _attr(numbers.service_type, numbers.call_check.to_bytes(4, "big")),
            _attr(numbers.nas_ip_address, bytes((127, 0, 0, 1))),
            _attr(numbers.nas_port_type, numbers.ethernet.to_bytes(4, "big")),
            _attr(numbers.nas_port, nas_port.to_bytes(4, "big")),
        )
    )
    length = 20 + 18 + len(head) + len(padded) + len(tail)
    if length > 4096:
        raise ValueError("packet too long")
    return (length.to_bytes(2, "big"), head, blocks, tail)


def _nas_port(i: int) -> int:
    return 50101 + i % 48  # Cisco style ifIndex: GigabitEthernet1/0/1..48


def build_request(mac: str, secret: bytes, identifier: int, authenticator: bytes) -> bytes:
    """One MAB Access-Request exactly as :func:`run` sends it (for tests and tools)."""
    numbers = _numbers()
    length, head, blocks, tail = _template(mac, _nas_port(0), numbers)
    hidden = bytearray()
    last = authenticator
    for block in blocks:
        last = (block ^ int.from_bytes(hashlib.md5(secret + last).digest(), "big")).to_bytes(16, "big")
        hidden += last
    pre = bytes((ACCESS_REQUEST, identifier)) + length + authenticator + numbers.ma_header
    post = head + hidden + tail
    return pre + HmacMd5(secret).digest(pre + _ZERO16 + post) + post


# --------------------------------------------------------------------------- result


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


@dataclass(frozen=True)
class BenchResult:
    """What one :func:`run` measured.  Latencies are milliseconds, ``None`` with no reply."""

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


# --------------------------------------------------------------------------- the loop


def _open_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(family, kind, proto)
            socks.append(s)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):  # capped by the kernel; not fatal
                    s.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
            s.setblocking(False)
            s.connect(address)  # the kernel then drops datagrams from anyone else
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def run(
    *,
    host: str = "127.0.0.1",
    port: int = 1812,
    secret: bytes,
    count: int | None = None,
    duration: float | None = None,
    window: int = 128,
    macs: Sequence[str] | None = None,
    timeout: float = 2.0,
    retries: int = 0,
    rate: float | None = None,
) -> BenchResult:
    """Send MAB Access-Requests to ``host``:``port`` and measure the server.

    Exactly one of ``count`` (requests; default 10,000) and ``duration`` (seconds of
    sending) may be given.  ``window`` requests are kept in flight; with more than
    :data:`MAX_IN_FLIGHT_PER_SOCKET` several sockets (source ports) are used, since one
    socket has only 256 identifiers.  A request unanswered after ``timeout`` seconds is
    retransmitted unchanged (same identifier and authenticator, RFC 5080 §2.2.1) up to
    ``retries`` times, then counted as a timeout.  ``macs`` are used round-robin (default:
    :func:`default_macs`).  Replies are matched by socket and identifier and must carry the
    right Response Authenticator to count.

    ``rate`` paces the sending (open loop: request n leaves at n / rate seconds, or as soon as
    the window has room): the latency of a server at a given load, say 80 % of its peak, rather
    than at saturation, where it is mostly queueing.
    """
    if count is not None and duration is not None:
        raise ValueError("give count or duration, not both")
    if count is None and duration is None:
        count = DEFAULT_COUNT
    if count is not None and count < 0:
        raise ValueError("count must be >= 0")
    if duration is not None and not duration > 0:
        raise ValueError("duration must be > 0")
    if window < 1:
        raise ValueError("window must be >= 1")
    if not timeout > 0:
        raise ValueError("timeout must be > 0")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if rate is not None and not rate > 0:
        raise ValueError("rate must be > 0")
    if not secret:
        raise ValueError("the shared secret must not be empty")
    mac_list = list(macs) if macs is not None else default_macs(_DEFAULT_MIX)
    if not mac_list:
        raise ValueError("macs must not be empty")
    numbers = _numbers()
    templates = [_template(mac, _nas_port(i), numbers) for i, mac in enumerate(mac_list)]

    n_socks = -(-window // MAX_IN_FLIGHT_PER_SOCKET)
    socks = _open_sockets(host, port, n_socks)
    try:
        tally = _loop(
            socks,
            secret,
            templates=templates,
            ma_header=numbers.ma_header,
            count=count,
            duration=duration,
            window=window,
            timeout=timeout,
            retries=retries,
            rate=rate,
        )
    finally:
        for s in socks:
            s.close()

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
        sockets=n_socks,
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


_Entry = tuple[bytes, int, bytes]


@dataclass(frozen=True, kw_only=True)
class _Tally:
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


def _loop(  # one flat hot loop, on purpose
    socks: list[socket.socket],
    secret: bytes,
    *,
    templates: list[_Template],
    ma_header: bytes,
    count: int | None,
    duration: float | None,
    window: int,
    timeout: float,
    retries: int,
    rate: float | None = None,
) -> _Tally:
    # Everything the loop touches is a local: attribute and global look-ups cost here.
    md5 = hashlib.md5
    secret_md5 = md5(secret)
    sign = HmacMd5(secret).digest
    from_bytes = int.from_bytes
    clock = time.perf_counter_ns
    urandom = os.urandom
    code_id = _CODE_ID
    zero16 = _ZERO16
    n_templates = len(templates)

    sends = [s.send for s in socks]
    recvs = {s.fileno(): (s.recv, i << 8) for i, s in enumerate(socks)}
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    poll = poller.poll

    # A slot is (socket index << 8) | identifier.  Free slots are used first-in first-out,
    # interleaving sockets, so a slot is reused as late as possible and never in flight.
    free = deque((i << 8) | ident for ident in range(256) for i in range(len(socks)))
    popfree = free.popleft
    pushfree = free.append
    # In flight: slot -> (authenticator, first send ns, packet); retransmissions left apart.
    slots: list[_Entry | None] = [None] * (len(socks) << 8)
    tries = [0] * len(slots)
    # Deadlines in send order: (deadline ns, slot, entry); stale ones are skipped lazily.
    deadlines: deque[tuple[int, int, _Entry]] = deque()
    push_deadline = deadlines.append
    # The authenticator of the last request that timed out in each slot, to recognise
    # its reply if it comes late, after the slot was reused.
    stale: dict[int, bytes] = {}

    timeout_ns = int(timeout * 1e9)
    codes = [0] * 256
    latencies: array[int] = array("q")
    record = latencies.append
    sent = timeouts = bad = late = retransmits = 0
    in_flight = 0
    remaining = count if count is not None else -1  # -1: until the deadline
    rnd = b""
    rnd_at = len(rnd)
    t_index = 0

    cpu0 = time.process_time()
    start = clock()
    last_event = start
    stop_sending_at = start + int(duration * 1e9) if duration is not None else 0
    sending = remaining != 0
    # Pacing: request n is due at start + n * interval.  Under a millisecond to wait, spin on
    # poll(0): poll's timeout has millisecond resolution.
    interval_ns = int(1e9 / rate) if rate else 0
    next_due = start

    while True:
        # ---- fill the window
        if sending:
            while in_flight < window and remaining:
                if interval_ns:
                    if clock() < next_due:
                        break
                    next_due += interval_ns
                if rnd_at >= len(rnd):
                    rnd = urandom(_RANDOM_CHUNK)
                    rnd_at = 0
                auth = rnd[rnd_at : rnd_at + 16]
                rnd_at += 16
                length, head, blocks, tail = templates[t_index]
                t_index += 1
                if t_index == n_templates:
                    t_index = 0
                # User-Password, RFC 2865 §5.2: c(i) = p(i) xor MD5(S + c(i-1)), c(0) = RA
                h = secret_md5.copy()
                h.update(auth)
                hidden = (blocks[0] ^ from_bytes(h.digest())).to_bytes(16)
                if len(blocks) > 1:
                    last = hidden
                    for block in blocks[1:]:
                        h = secret_md5.copy()
                        h.update(last)
                        last = (block ^ from_bytes(h.digest())).to_bytes(16)
                        hidden += last
                slot = popfree()
                pre = code_id[slot & 0xFF] + length + auth + ma_header
                post = head + hidden + tail
                packet = pre + sign(pre + zero16 + post) + post
                now = clock()
                try:
                    sends[slot >> 8](packet)
                except (BlockingIOError, InterruptedError):
                    free.appendleft(slot)  # socket buffer full: wait for replies first
                    next_due -= interval_ns
                    break
                except OSError:
                    pass  # e.g. ICMP port unreachable reported late: it will time out
                entry = (auth, now, packet)
                slots[slot] = entry
                tries[slot] = retries
                push_deadline((now + timeout_ns, slot, entry))
                in_flight += 1
                sent += 1
                remaining -= 1
                last_event = now
            if not remaining or (duration is not None and clock() >= stop_sending_at):
                sending = False

        if not in_flight:
            if sending:
                continue
            break

        # ---- wait for replies, or until the oldest request times out
        while deadlines and slots[deadlines[0][1]] is not deadlines[0][2]:
            deadlines.popleft()  # answered
        now = clock()
        wait_ns = deadlines[0][0] - now if deadlines else timeout_ns
        if sending and duration is not None:
            wait_ns = min(wait_ns, stop_sending_at - now)
        if sending and interval_ns and in_flight < window:
            wait_ns = min(wait_ns, next_due - now)
            if wait_ns < 1_000_000:
                wait_ns = 0
        events = poll(max(0, -(-wait_ns // 1_000_000))) if wait_ns > 0 else poll(0)

        # ---- drain every readable socket
        for fd, _ in events:
            recv, base = recvs[fd]
            while True:
                try:
                    data = recv(4096)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # ICMP errors on a connected socket; the requests time out
                now = clock()
                n = len(data)
                if n < 20:
                    late += 1  # a runt answers no request
                    continue
                slot = base | data[1]
                pending = slots[slot]
                if pending is None:
                    late += 1
                    continue
                length_field = from_bytes(data[2:4])
                auth = pending[0]
                if (
                    length_field < 20
                    or length_field > n
                    or md5(data[:4] + auth + data[20:length_field] + secret).digest() != data[4:20]
                ):
                    old = stale.get(slot)
                    if (
                        old is not None
                        and 20 <= length_field <= n
                        and md5(data[:4] + old + data[20:length_field] + secret).digest() == data[4:20]
                    ):
                        late += 1  # the reply to an earlier, timed-out request
                        continue
                    bad += 1
                else:
                    codes[data[0]] += 1
                    record(now - pending[1])
                    last_event = now
                slots[slot] = None
                pushfree(slot)
                in_flight -= 1

        # ---- time out (or retransmit) the overdue
        now = clock()
        while deadlines:
            deadline, slot, entry = deadlines[0]
            if slots[slot] is not entry:
                deadlines.popleft()
                continue
            if deadline > now:
                break
            deadlines.popleft()
            if tries[slot] > 0:
                tries[slot] -= 1
                retransmits += 1
                with contextlib.suppress(OSError):
                    sends[slot >> 8](entry[2])
                push_deadline((now + timeout_ns, slot, entry))
                last_event = now
                continue
            timeouts += 1
            stale[slot] = entry[0]
            slots[slot] = None
            pushfree(slot)
            in_flight -= 1

    cpu = time.process_time() - cpu0
    wall_ns = clock() - start
    return _Tally(
        sent=sent,
        codes=codes,
        timeouts=timeouts,
        bad=bad,
        late=late,
        retransmits=retransmits,
        elapsed_ns=last_event - start,
        wall_ns=wall_ns,
        cpu=cpu,
        latencies=latencies,
    )


# --------------------------------------------------------------------------- python -m

if __name__ == "__main__":
    from nac.cli_bench import main

    main()
