"""nac._udp: recvmmsg/sendmmsg batches give what a loop of recvfrom/sendto gives."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from nac.serve import server
from nac.serve.server import RECV_SIZE

try:
    from nac import _udp
except ImportError:  # the server still works on the socket methods, at fewer requests/s
    pytest.fail("nac._udp is not built: `pip install -e .` needs gcc and the Python headers")


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    server, nas1, nas2 = _socket(), _socket(), _socket()
    yield server, nas1, nas2
    for sock in (server, nas1, nas2):
        sock.close()


def test_recv_batch_returns_each_datagram_with_its_source(
    pair: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, nas1, nas2 = pair
    sent = []
    for i in range(150):  # more than one recvmmsg call's worth (64)
        nas = nas1 if i % 3 else nas2
        data = bytes([i]) * (20 + i)
        nas.sendto(data, server.getsockname())
        sent.append((data, nas.getsockname()))
    assert _udp.recv_batch(server.fileno(), 256, RECV_SIZE) == sent
    assert _udp.recv_batch(server.fileno(), 256, RECV_SIZE) == []  # nothing left, no blocking


def test_recv_batch_stops_at_the_limit(pair: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    server, nas, _ = pair
    for i in range(10):
        nas.sendto(bytes([i]), server.getsockname())
    first = _udp.recv_batch(server.fileno(), 4, RECV_SIZE)
    rest = _udp.recv_batch(server.fileno(), 256, RECV_SIZE)
    assert [d for d, _ in first + rest] == [bytes([i]) for i in range(10)]
    assert len(first) == 4


def test_recv_batch_cuts_a_datagram_to_the_size_as_recvfrom_does(
    pair: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, nas, _ = pair
    big = bytes(range(256)) * 20  # 5,120 octets: an oversize RADIUS packet
    nas.sendto(big, server.getsockname())
    nas.sendto(big, server.getsockname())
    [(data, _)] = _udp.recv_batch(server.fileno(), 1, RECV_SIZE)
    assert data == big[:RECV_SIZE]
    assert server.recvfrom(RECV_SIZE)[0] == data


def test_send_batch_sends_all_and_reports_the_refused_by_index(
    pair: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, nas1, nas2 = pair
    replies = [
        (b"one", nas1.getsockname()),
        (b"port zero", ("127.0.0.1", 0)),  # EINVAL
        (b"two", nas2.getsockname()),
        (b"broadcast", ("255.255.255.255", 1812)),  # EACCES without SO_BROADCAST
        (b"three", nas1.getsockname()),
    ]
    assert _udp.send_batch(server.fileno(), replies) == [(1, errno.EINVAL), (3, errno.EACCES)]
    assert nas1.recvfrom(100) == (b"one", server.getsockname())
    assert nas1.recvfrom(100) == (b"three", server.getsockname())
    assert nas2.recvfrom(100) == (b"two", server.getsockname())


def test_send_batch_of_many_replies(pair: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    server, nas, _ = pair
    replies = [(i.to_bytes(2, "big"), nas.getsockname()) for i in range(200)]
    assert _udp.send_batch(server.fileno(), replies) == []
    assert [nas.recvfrom(10)[0] for _ in range(200)] == [d for d, _ in replies]


@pytest.mark.parametrize(
    "replies",
    [
        [b"not a pair"],
        [(b"x", "127.0.0.1")],
        [(b"x", ("127.0.0.1", 70000))],
        [(b"x", ("::1", 1812))],
        [("text", ("127.0.0.1", 1812))],
    ],
)
def test_send_batch_refuses_malformed_replies(
    pair: tuple[socket.socket, socket.socket, socket.socket], replies: list[object]
) -> None:
    with pytest.raises((TypeError, OSError, OverflowError)):
        _udp.send_batch(pair[0].fileno(), replies)  # type: ignore[arg-type]


def test_bad_arguments_are_errors_not_crashes() -> None:
    with pytest.raises(ValueError, match="file descriptor"):
        _udp.recv_batch(-1, 10, RECV_SIZE)
    with pytest.raises(ValueError, match="size"):
        _udp.recv_batch(0, 10, 0)
    with pytest.raises(OSError, match="Bad file descriptor"):
        _udp.recv_batch(999_999, 10, RECV_SIZE)


def test_the_server_reads_ipv4_listeners_in_batches() -> None:
    assert server._udp is _udp
