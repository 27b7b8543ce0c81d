"""Abuse on the wire: attribute bombs and floods are bounded, counted, and starve nobody."""

from __future__ import annotations

import signal
import struct
import threading
import time

from tests.interop import (
    RELAXED_SECRET,
    NacServer,
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
    assert "sent 100 unverifiable packets in a second: ignoring it for 5 s" in log
    assert "dropped:throttled=" in log
    assert "dropped:unknown-client=" in log
    # One line per reason and source per interval, not one per packet.
    assert log.count("dropped packet from 127.0.0.3") <= 1 + int(elapsed // 10)
