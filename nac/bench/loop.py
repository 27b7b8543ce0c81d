"""nac bench's send/receive loop: :func:`run` keeps ``window`` MAB Access-Requests in flight.

Plain non-blocking UDP sockets and one ``poll`` loop.  Each request has a fresh random Request
Authenticator, so the password hiding and the Message-Authenticator are computed per request
and a server's duplicate cache (RFC 5080 §2.2.2) can never answer from memory.  Each reply's
Response Authenticator is checked (RFC 2865 §3) before it counts.

The hot loop is written for speed; the client's own CPU time is reported so a reader can
tell whether the generator, rather than the server, was the bottleneck.  The requests come
from nac/bench/request.py, the figures are worked out in nac/bench/report.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import time
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Final

from nac.bench.report import BenchResult, Tally, summarize
from nac.bench.request import (
    ACCESS_REQUEST,
    ZERO16,
    Template,
    attribute_numbers,
    default_macs,
    make_template,
    nas_port_for,
)
from nac.radius.crypto import HmacMd5

__all__ = ["DEFAULT_COUNT", "MAX_IN_FLIGHT_PER_SOCKET", "run"]

#: How many requests one socket (one source port, 256 identifiers) carries at once at most.
#: Identifiers are recycled first-in first-out, so the 256 - 192 spare ones keep a freed
#: identifier idle for a while before it is reused.
MAX_IN_FLIGHT_PER_SOCKET: Final = 192
DEFAULT_COUNT: Final = 10_000
_DEFAULT_MIX: Final = 660  # 11 OUIs x 6 spellings x 10
_RANDOM_CHUNK: Final = 16 * 4096
_SOCKET_BUFFER: Final = 4 << 20

_CODE_ID: Final = tuple(bytes((ACCESS_REQUEST, i)) for i in range(256))


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
    numbers = attribute_numbers()
    templates = [make_template(mac, nas_port_for(i), numbers) for i, mac in enumerate(mac_list)]

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

    return summarize(tally, host=host, port=port, window=window, sockets=n_socks, rate=rate)


_Entry = tuple[bytes, int, bytes]


def _loop(  # one flat hot loop, on purpose
    socks: list[socket.socket],
    secret: bytes,
    *,
    templates: list[Template],
    ma_header: bytes,
    count: int | None,
    duration: float | None,
    window: int,
    timeout: float,
    retries: int,
    rate: float | None = None,
) -> Tally:
    # Everything the loop touches is a local: attribute and global look-ups cost here.
    md5 = hashlib.md5
    secret_md5 = md5(secret)
    sign = HmacMd5(secret).digest
    from_bytes = int.from_bytes
    clock = time.perf_counter_ns
    urandom = os.urandom
    code_id = _CODE_ID
    zero16 = ZERO16
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
    return Tally(
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
