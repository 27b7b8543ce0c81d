"""The server's UDP sockets: one per address and service, opened before the event loop runs."""

from __future__ import annotations

import logging
import socket
from typing import Final

log = logging.getLogger("nac.server")

#: Kernel receive buffer: absorbs a switch stack re-authenticating thousands of ports at once.
RCVBUF: Final = 8 * 1024 * 1024


def bind_udp(address: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking UDP socket on ``address``:``port`` (``reuse_port``: workers share it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            # One socket per family: IPv4 peers appear with their own addresses, not as ::ffff:.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except OSError:
            log.debug("cannot enlarge the receive buffer of %s:%d", address, port)
        if reuse_port:
            # Workers each bind the same ports; the kernel spreads datagrams by source address
            # and port, so a NAS's retransmission reaches the worker that holds its reply.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
