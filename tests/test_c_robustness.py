"""nac._udp and nac._speedups stay memory-safe whatever a Python caller does to them.

No packet reaches these cases today; each is a caller that runs Python code in the middle of a
C call (an ``__index__``, a finalizer) or hands over an absurd number.  Each must end in a
clean Python exception or the right answer, never a crash.  ``bash fuzz/sanitize.sh`` runs
this file on a build with AddressSanitizer, where a stray read or write is a report, not luck.
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Iterator

import pytest

from nac.errors import PacketError
from nac.radius.packet import Request
from nac.serve.server import RECV_SIZE

try:
    from nac import _speedups, _udp
except ImportError:
    pytest.fail("nac's C modules are not built: `pip install -e .` needs gcc and the Python headers")

PADS = _speedups.hmac_pads(b"testing123")


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def socks() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    server, nas, other = _socket(), _socket(), _socket()
    yield server, nas, other
    for sock in (server, nas, other):
        sock.close()


class _ClearingPort:
    """A port number whose ``__index__`` empties the list of replies being sent."""

    def __init__(self, replies: list[tuple[bytes, tuple[str, object]]], port: int) -> None:
        self.replies = replies
        self.port = port
        self.calls = 0

    def __index__(self) -> int:
        self.calls += 1
        self.replies.clear()
        gc.collect()  # the removed replies are freed now, not at some later allocation
        return self.port


def test_send_batch_sends_every_reply_when_an_index_empties_the_list(
    socks: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, nas, _ = socks
    host, port = nas.getsockname()
    clearing = _ClearingPort([], port)
    # Built fresh so that the list holds the only reference to each reply and its data.
    replies: list[tuple[bytes, tuple[str, object]]] = [(b"first", (host, clearing))]
    replies += [(bytes([i]) * (i + 1), (host, port)) for i in range(100)]  # past one sendmmsg (64)
    clearing.replies = replies
    expected = [b"first"] + [bytes([i]) * (i + 1) for i in range(100)]
    assert _udp.send_batch(server.fileno(), replies) == []  # type: ignore[arg-type]
    assert clearing.calls == 1
    assert replies == []
    assert [nas.recvfrom(200)[0] for _ in expected] == expected


def test_send_batch_refuses_data_resized_while_it_is_being_sent(
    socks: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    server, nas, _ = socks
    host, port = nas.getsockname()
    data = bytearray(b"reply")

    class Shrinking:
        def __index__(self) -> int:
            data.clear()  # the C side holds a view of it: BufferError, not a freed buffer
            return int(port)

    replies: list[object] = [(data, (host, port)), (b"x", (host, Shrinking()))]
    with pytest.raises(BufferError):
        _udp.send_batch(server.fileno(), replies)  # type: ignore[arg-type]
    assert data == bytearray(b"reply")


def test_send_batch_takes_only_a_list() -> None:
    with pytest.raises(TypeError, match="replies: list"):
        _udp.send_batch(0, ((b"x", ("127.0.0.1", 1)),))  # type: ignore[arg-type]


class _Receiver:
    """Cyclic garbage whose finalizer receives from ``sock`` with a 1-octet size: run by the
    collector in the middle of another recv_batch, which must keep its own buffer.  (CPython
    3.11 collects inside the allocation that crosses the threshold; from 3.12 it waits for the
    next bytecode, and these tests then check the calls one after the other.)"""

    def __init__(self, sock: socket.socket, seen: list[list[tuple[bytes, tuple[str, int]]]]) -> None:
        self.sock = sock
        self.seen = seen
        self.cycle = self

    def __del__(self) -> None:
        self.seen.append(_udp.recv_batch(self.sock.fileno(), 8, 1))


@pytest.fixture
def eager_collector() -> Iterator[None]:
    """The collector runs at (almost) every container allocation, as soon as it is enabled."""
    threshold = gc.get_threshold()
    gc.disable()
    gc.collect()
    yield
    gc.set_threshold(*threshold)
    gc.enable()


def test_recv_batch_keeps_its_buffer_when_a_finalizer_receives_mid_call(
    socks: tuple[socket.socket, socket.socket, socket.socket], eager_collector: None
) -> None:
    server, nas, other = socks
    sent = [bytes([i]) * 50 for i in range(130)]  # more than two recvmmsg calls' worth (64)
    for data in sent:
        nas.sendto(data, server.getsockname())
    nas.sendto(b"inner", other.getsockname())
    seen: list[list[tuple[bytes, tuple[str, int]]]] = []
    _Receiver(other, seen)  # garbage from here on, collected inside the call below
    gc.set_threshold(1)
    gc.enable()
    batch = _udp.recv_batch(server.fileno(), 256, RECV_SIZE)
    gc.disable()
    assert seen == [[(b"i", nas.getsockname())]]  # the finalizer ran, with its own 1-octet size
    assert [data for data, _ in batch] == sent
    assert {src for _, src in batch} == {nas.getsockname()}


def test_recv_batch_keeps_its_buffer_when_a_finalizer_receives_larger(
    socks: tuple[socket.socket, socket.socket, socket.socket], eager_collector: None
) -> None:
    # The other way round: the outer call's size is 1 and the finalizer's is the full size.
    server, nas, other = socks
    for i in range(100):
        nas.sendto(bytes([i]) * 3, server.getsockname())
    nas.sendto(b"inner" * 100, other.getsockname())
    seen: list[list[tuple[bytes, tuple[str, int]]]] = []

    class Large(_Receiver):
        def __del__(self) -> None:
            self.seen.append(_udp.recv_batch(self.sock.fileno(), 8, RECV_SIZE))

    Large(other, seen)
    gc.set_threshold(1)
    gc.enable()
    batch = _udp.recv_batch(server.fileno(), 256, 1)
    gc.disable()
    assert seen == [[(b"inner" * 100, nas.getsockname())]]
    assert [data for data, _ in batch] == [bytes([i]) for i in range(100)]


@pytest.mark.parametrize(
    ("limit", "size", "error"),
    [
        (10, RECV_SIZE + 10**30, OverflowError),
        (10**30, RECV_SIZE, OverflowError),
        (-1, RECV_SIZE, ValueError),
        (10, 65537, ValueError),
        ("10", RECV_SIZE, TypeError),
        (10, 1.5, TypeError),
    ],
)
def test_recv_batch_refuses_bad_numbers(limit: object, size: object, error: type[Exception]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(error):
        _udp.recv_batch(sock.fileno(), limit, size)  # type: ignore[arg-type]


def _signed_request() -> bytes:
    """An Access-Request with a Message-Authenticator at octet 20."""
    attrs = bytes([80, 18]) + bytes(16) + bytes([1, 7]) + b"alice"
    header = bytes([1, 7]) + (20 + len(attrs)).to_bytes(2, "big") + bytes(range(16))
    return header + attrs


@pytest.mark.parametrize(
    "offset",
    [sys.maxsize, sys.maxsize - 17, sys.maxsize - 1, -1, -sys.maxsize - 1, 19, 28, 0],
    ids=["max", "max-17", "max-1", "minus-one", "min", "in-header", "past-the-end", "zero"],
)
def test_message_authenticator_check_refuses_an_offset_outside_the_packet(offset: int) -> None:
    with pytest.raises(ValueError, match="no Message-Authenticator at that offset"):
        _speedups.message_authenticator_valid(PADS, _signed_request(), offset)


@pytest.mark.parametrize("offset", [2**63, -(2**63) - 1, 2**200])
def test_message_authenticator_check_refuses_an_offset_beyond_ssize_t(offset: int) -> None:
    with pytest.raises(OverflowError):
        _speedups.message_authenticator_valid(PADS, _signed_request(), offset)


def test_message_authenticator_check_reaches_the_last_possible_offset() -> None:
    data = _signed_request()
    last = len(data) - 18  # the attribute ends exactly at the end of the packet
    assert _speedups.message_authenticator_valid(PADS, data, last) is False
    with pytest.raises(ValueError, match="no Message-Authenticator"):
        _speedups.message_authenticator_valid(PADS, data, last + 1)


@pytest.mark.parametrize(
    ("code", "identifier", "error"),
    [
        (2**64, 1, OverflowError),
        (2, 2**64, OverflowError),
        (2**64, "x", OverflowError),  # the first error stands; the second is never tried
        ("x", 2**64, TypeError),
        (256, 1, ValueError),
        (2, -1, ValueError),
    ],
)
def test_sign_reply_refuses_bad_numbers(code: object, identifier: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        _speedups.sign_reply(PADS, b"s", code, identifier, bytes(16), b"")  # type: ignore[arg-type]


def test_sign_reply_refuses_attributes_past_the_packet_limit() -> None:
    with pytest.raises(ValueError, match="exceeds 4096"):
        _speedups.sign_reply(PADS, b"s", 2, 1, bytes(16), bytes(2**20))


def test_setup_refuses_an_error_type_that_is_not_an_exception() -> None:
    try:
        with pytest.raises(TypeError, match="exception"):
            _speedups.setup(Request, int)  # type: ignore[arg-type]
        with pytest.raises(PacketError):  # the refused call left the real error type in place
            _speedups.decode(b"short")
    finally:
        _speedups.setup(Request, PacketError)


def test_mac_parse_reads_any_str_subclass() -> None:
    class Text(str):
        pass

    assert _speedups.try_parse_mac(Text("00:10:a4:23:19:c0")) == 0x0010A42319C0
    assert _speedups.try_parse_mac(Text("00:10:a4:23:19:c\u20ac")) is None
