"""A killed server loses no decision it has answered (server.py: commit, then reply).

A NAS that holds an Access-Accept must find the decision in history even if the server is
killed (SIGKILL: no clean shutdown) a moment later.
"""

from __future__ import annotations

import selectors
import signal
import threading
import time

from nac.history import tiers
from tests.interop import SECRET, NacServer, mab_request, reply_signed, udp_socket

WINDOW = 32  # requests in flight, as a busy switch stack keeps them
STREAM_SECONDS = 2.0
KILL_AFTER = 1.0
REQUEST_TIMEOUT = 1.0  # an unanswered request is given up (and its id reused) after this
MIN_REPLIES = 300


def _stream_until_killed(server: NacServer) -> tuple[set[str], int]:
    """Keep WINDOW distinct MAB requests in flight for STREAM_SECONDS, SIGKILL the server after
    KILL_AFTER; return the MACs whose requests got a valid reply, and how many were sent."""
    killer = threading.Timer(KILL_AFTER, server.stop, args=(signal.SIGKILL,))
    replied: set[str] = set()
    in_flight: dict[int, tuple[str, bytes, float]] = {}  # identifier -> (mac, authenticator, sent at)
    free_ids = list(range(256))
    sent = 0
    with udp_socket(timeout=0) as sock, selectors.DefaultSelector() as selector:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        started = time.monotonic()
        killer.start()
        try:
            while (now := time.monotonic()) - started < STREAM_SECONDS:
                for identifier, (_, _, at) in list(in_flight.items()):
                    if now - at > REQUEST_TIMEOUT:
                        del in_flight[identifier]
                        free_ids.append(identifier)
                while len(in_flight) < WINDOW and free_ids:
                    identifier = free_ids.pop(0)
                    # 00:10:a4 (Xircom) plus a 24-bit counter: every request a new device.
                    mac = f"00:10:a4:{sent >> 16 & 0xFF:02x}:{sent >> 8 & 0xFF:02x}:{sent & 0xFF:02x}"
                    datagram, authenticator = mab_request(mac, identifier=identifier)
                    try:
                        sock.sendto(datagram, ("127.0.0.1", server.auth_port))
                    except OSError:  # ICMP port unreachable once the server is gone
                        free_ids.append(identifier)
                        break
                    in_flight[identifier] = (mac, authenticator, time.monotonic())
                    sent += 1
                if not selector.select(timeout=0.05):
                    continue
                while True:
                    try:
                        data = sock.recv(4096)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    pending = in_flight.get(data[1]) if len(data) >= 20 else None
                    # A late reply to an earlier use of this id does not verify: ignore it.
                    if pending is not None and reply_signed(data, pending[1], SECRET):
                        replied.add(pending[0])
                        del in_flight[data[1]]
                        free_ids.append(data[1])
        finally:
            killer.join(timeout=30)
    return replied, sent


def test_every_answered_request_has_its_history_row_after_sigkill(nac_server: NacServer) -> None:
    server = nac_server
    replied, sent = _stream_until_killed(server)

    assert server.returncode == -signal.SIGKILL, f"the server was not killed: {server.returncode}"
    assert len(replied) >= MIN_REPLIES, (
        f"only {len(replied)} of {sent} requests answered before the kill; stderr:\n{server.stderr()}"
    )
    conn = tiers.connect(str(server.db))
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        stored = {row[0] for row in conn.execute("SELECT mac FROM history")}
    finally:
        conn.close()
    assert integrity == [("ok",)]
    lost = sorted(replied - stored)
    assert not lost, f"{len(lost)} of {len(replied)} answered requests have no history row: {lost[:10]}"


def test_decisions_left_unindexed_by_a_kill_are_indexed_after_restart(nac_server: NacServer) -> None:
    """The recent tier (nac/history/tiers.py) is the part of history a kill can leave behind: the next
    start moves it into the MAC-indexed tier, and a clean stop leaves nothing in it."""
    replied, _ = _stream_until_killed(nac_server)
    assert len(replied) >= MIN_REPLIES
    nac_server.start()
    deadline = time.monotonic() + 30
    while True:
        conn = tiers.connect(str(nac_server.db))
        try:
            indexed = {row[0] for row in conn.execute("SELECT mac FROM main.history")}
        finally:
            conn.close()
        if replied <= indexed:
            break
        assert time.monotonic() < deadline, f"{len(replied - indexed)} answered decisions still unindexed"
        time.sleep(0.2)
    assert nac_server.stop() == 0
    conn = tiers.connect(str(nac_server.db))
    try:
        assert tiers.recent_backlog(conn) == 0
        assert conn.execute("SELECT COUNT(*) FROM recent.history_batches").fetchone() == (0,)  # collected
        visible = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM history").fetchone()
    finally:
        conn.close()
    assert visible[0] == visible[1] >= len(replied)  # each decision once
