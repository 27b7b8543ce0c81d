"""Abuse on the wire: attribute bombs and floods are bounded, counted, and starve nobody."""

from __future__ import annotations

import os
import signal
import struct
import threading
import time

from tests.interop import (
    RELAXED_SECRET,
    NacServer,
    NacServerFactory,
    exchange,
    mab_request,
    parse_reply,
    udp_socket,
)


def test_attribute_bomb_is_dropped_and_counted(nac_server: NacServer) -> None:
    bomb_attrs = b"\x1a\x02" * 1500  # 1,500 empty Vendor-Specific attributes in one packet
    bomb = struct.pack("!BBH", 1, 1, 20 + len(bomb_attrs)) + bytes(16) + bomb_attrs
    with udp_socket(timeout=0.5) as sock:
        assert exchange(sock, bomb, nac_server.auth_port) is None
        request, _ = mab_request("3c22fb000001", identifier=2)
        assert exchange(sock, request, nac_server.auth_port) is not None
    assert nac_server.stop(signal.SIGTERM) == 0
    assert "dropped:too-many-attributes=1" in nac_server.stderr()


def _flood(port: int, stop: threading.Event, sent: list[int], source: str, secret: str) -> None:
    with udp_socket(source, timeout=0.01) as sock:
        i = 0
        while not stop.is_set():
            i += 1
            request, _ = mab_request(f"00e0fc{i % 65536:06x}", identifier=i % 256, secret=secret)
            sock.sendto(request, ("127.0.0.1", port))
            sent[0] += 1
            if i % 64 == 0:  # let the kernel breathe; the flood is still far above a NAS's rate
                time.sleep(0.001)


def test_wrong_secret_and_unknown_floods_do_not_starve_a_good_client(nac_server: NacServer) -> None:
    stop = threading.Event()
    wrong, unknown = [0], [0]
    floods = [
        threading.Thread(
            target=_flood, args=(nac_server.auth_port, stop, wrong, "127.0.0.1", "wrong-secret")
        ),
        threading.Thread(target=_flood, args=(nac_server.auth_port, stop, unknown, "127.0.0.3", "whatever")),
    ]
    for thread in floods:
        thread.start()
    answered = 0
    started = time.monotonic()
    try:
        time.sleep(0.3)
        with udp_socket("127.0.0.2", timeout=2.0) as sock:
            for i in range(200):
                request, _ = mab_request(
                    f"3c22fb{i:06x}", identifier=i % 256, secret=RELAXED_SECRET, message_authenticator=False
                )
                reply = exchange(sock, request, nac_server.auth_port)
                if reply is not None and parse_reply(reply).code == 2:
                    answered += 1
    finally:
        stop.set()
        for thread in floods:
            thread.join()
    elapsed = time.monotonic() - started
    assert answered == 200, f"{answered}/200 answered under a flood of {wrong[0] + unknown[0]} packets"
    assert wrong[0] > 1000
    assert unknown[0] > 1000
    assert nac_server.stop(signal.SIGTERM) == 0
    log = nac_server.stderr()
    # Flagged, never locked out: the wrong-secret flood comes from the lab switch's own address.
    assert "the 100th unverifiable packet this second" in log
    assert "dropped:throttled" not in log
    assert "dropped:unknown-client=" in log
    # One line per reason and source per interval, not one per packet.
    assert log.count("dropped packet from 127.0.0.3") <= 1 + int(elapsed // 10)


def _spoof(port: int, source: str, stop: threading.Event, sent: list[int], *, per_second: int) -> None:
    """Bursts of ``per_second`` forged datagrams a second from ``source``: random 20-octet
    headers and well-formed requests signed with the wrong secret, half each."""
    with udp_socket(source) as sock:
        while not stop.is_set():
            burst_started = time.monotonic()
            for i in range(per_second):
                if i % 2:
                    datagram = os.urandom(20)
                else:
                    datagram, _ = mab_request(f"00e0fc{i:06x}", identifier=i % 256, secret="forged")
                sock.sendto(datagram, ("127.0.0.1", port))
                sent[0] += 1
            stop.wait(max(0.0, 1.0 - (time.monotonic() - burst_started)))


def test_spoofed_garbage_from_a_nas_address_never_cuts_the_nas_off(nac_server: NacServer) -> None:
    stop = threading.Event()
    sent = [0]
    spoofer = threading.Thread(
        target=_spoof, args=(nac_server.auth_port, "127.0.0.1", stop, sent), kwargs={"per_second": 100}
    )
    spoofer.start()
    latencies: list[float] = []
    unanswered = 0
    try:
        time.sleep(0.2)  # the first burst is in: the source is past its budget
        with udp_socket("127.0.0.1", timeout=1.0) as sock:  # the NAS: same address, own port
            for i in range(300):  # about 3 s at up to 100 requests/s
                request, _ = mab_request(f"3c22fb01{i:04x}", identifier=i % 256)
                started = time.perf_counter()
                reply = exchange(sock, request, nac_server.auth_port)
                if reply is None or parse_reply(reply).code != 2:
                    unanswered += 1
                else:
                    latencies.append(time.perf_counter() - started)
                time.sleep(0.01)
    finally:
        stop.set()
        spoofer.join()
    assert sent[0] >= 300, sent  # three bursts or more arrived while the NAS was asking
    assert unanswered == 0, f"{unanswered}/300 unanswered"
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 0.010, f"p99 {p99 * 1000:.1f} ms"
    assert nac_server.stop(signal.SIGTERM) == 0
    log = nac_server.stderr()
    assert "the 100th unverifiable packet this second" in log  # the budget was crossed
    assert "dropped:bad-message-authenticator=" in log
    assert "dropped:throttled" not in log


PACED = '\n[[client]]\nname = "paced"\naddress = "127.0.0.5"\nsecret = "paced-secret"\nrate_limit = 20\n'


def test_forged_datagrams_do_not_spend_the_rate_limit(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(extra_config=PACED)
    with udp_socket("127.0.0.5", timeout=0.5) as sock:
        for i in range(200):  # ten seconds' allowance of forgeries, at once, from the NAS's address
            forged, _ = mab_request(f"00e0fc{i:06x}", identifier=i % 256, secret="forged")
            sock.sendto(forged if i % 2 else os.urandom(20), ("127.0.0.1", server.auth_port))
        time.sleep(0.2)
        for i in range(20):  # one second's allowance of real requests, at once
            request, _ = mab_request(f"3c22fb02{i:04x}", identifier=i, secret="paced-secret")
            sock.sendto(request, ("127.0.0.1", server.auth_port))
        answered = 0
        try:
            while True:
                sock.recvfrom(4096)
                answered += 1
        except TimeoutError:
            pass
    assert answered == 20
    assert server.stop(signal.SIGTERM) == 0
    log = server.stderr()
    assert "dropped:bad-message-authenticator=100" in log
    assert "dropped:rate-limited" not in log
