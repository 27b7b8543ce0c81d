"""Per-client pacing: a rate limit that drops the excess, and a reject delay that is bounded."""

from __future__ import annotations

import signal
import time

from tests.interop import NacServerFactory, exchange, mab_request, parse_reply, udp_socket

LEGACY = '\n[[client]]\nname = "paced"\naddress = "127.0.0.5"\nsecret = "paced-secret"\n'


def test_rate_limit_drops_the_excess_and_counts_it(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(extra_config=LEGACY + "rate_limit = 20\n")
    answered = 0
    with udp_socket("127.0.0.5", timeout=0.5) as sock:
        for i in range(100):  # at once: far above 20 a second
            request, _ = mab_request(f"3c22fb0002{i:02x}", identifier=i, secret="paced-secret")
            sock.sendto(request, ("127.0.0.1", server.auth_port))
        try:
            while True:
                sock.recvfrom(4096)
                answered += 1
        except TimeoutError:
            pass
    assert 18 <= answered <= 30, answered  # a one-second burst, plus what refilled meanwhile
    assert server.stop(signal.SIGTERM) == 0
    assert "dropped:rate-limited=" in server.stderr()


def test_reject_delay_holds_rejects_only(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(
        rules=[("--vendor", "huawei", "--action", "reject")], extra_config=LEGACY + "reject_delay = 1.0\n"
    )
    with udp_socket("127.0.0.5", timeout=3.0) as sock:
        request, _ = mab_request("3c22fb000301", identifier=1, secret="paced-secret")
        started = time.monotonic()
        reply = exchange(sock, request, server.auth_port)
        accept_time = time.monotonic() - started
        assert reply is not None
        assert parse_reply(reply).code == 2
        request, _ = mab_request("00e0fc000301", identifier=2, secret="paced-secret")
        started = time.monotonic()
        reply = exchange(sock, request, server.auth_port)
        reject_time = time.monotonic() - started
        assert reply is not None
        assert parse_reply(reply).code == 3
    assert accept_time < 0.5
    assert reject_time >= 0.9
