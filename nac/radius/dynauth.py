"""Dynamic Authorization (RFC 5176): Disconnect-Request and CoA-Request to a NAS.

The packet codec here is pure; :class:`DynAuthClient` is the asyncio part the server runs: one
UDP socket per address family, identifiers tracked per socket, retransmission with back-off
(RFC 5176 §2.3: a retransmission reuses the identifier and authenticator).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from nac.radius.crypto import ZERO_AUTHENTICATOR, HmacMd5, request_authenticator, response_authenticator
from nac.radius.packet import (
    COA_ACK,
    COA_NAK,
    COA_REQUEST,
    DEFAULT_SESSION,
    DISCONNECT_ACK,
    DISCONNECT_NAK,
    DISCONNECT_REQUEST,
    REAUTHENTICATE,
    attribute,
    encode_request,
)

log = logging.getLogger("nac.dynauth")

_ANSWERS: Final = {DISCONNECT_REQUEST: (DISCONNECT_ACK, DISCONNECT_NAK), COA_REQUEST: (COA_ACK, COA_NAK)}

# Attribute numbers (RFC 2865, 2866, 2869, 5176); the dictionary has the same names.
USER_NAME: Final = 1
NAS_IP_ADDRESS: Final = 4
NAS_PORT: Final = 5
SERVICE_TYPE: Final = 6
VENDOR_SPECIFIC: Final = 26
CALLED_STATION_ID: Final = 30
CALLING_STATION_ID: Final = 31
NAS_IDENTIFIER: Final = 32
ACCT_SESSION_ID: Final = 44
EVENT_TIMESTAMP: Final = 55
NAS_IPV6_ADDRESS: Final = 95
ERROR_CAUSE: Final = 101
AUTHORIZE_ONLY: Final = 17
CISCO: Final = 9
CISCO_AVPAIR: Final = 1

ERROR_CAUSES: Final = {
    201: "Residual-Session-Context-Removed",
    202: "Invalid-EAP-Packet",
    401: "Unsupported-Attribute",
    402: "Missing-Attribute",
    403: "NAS-Identification-Mismatch",
    404: "Invalid-Request",
    405: "Unsupported-Service",
    406: "Unsupported-Extension",
    407: "Invalid-Attribute-Value",
    501: "Administratively-Prohibited",
    502: "Request-Not-Routable",
    503: "Session-Context-Not-Found",
    504: "Session-Context-Not-Removable",
    505: "Other-Proxy-Processing-Error",
    506: "Resources-Unavailable",
    507: "Request-Initiated",
    508: "Multiple-Session-Selection-Unsupported",
}
_TEXT_CODES: Final = {
    "NAS-Identifier": NAS_IDENTIFIER,
    "User-Name": USER_NAME,
    "Calling-Station-Id": CALLING_STATION_ID,
    "Called-Station-Id": CALLED_STATION_ID,
    "Acct-Session-Id": ACCT_SESSION_ID,
}
#: Seconds to wait for each try: three tries over seven seconds (RFC 5080 §2.2.1 back-off).
RETRY_TIMEOUTS: Final = (1.0, 2.0, 4.0)


@dataclass(frozen=True, kw_only=True)
class Target:
    """One session on one NAS, as accounting described it."""

    nas_ip: str
    port: int
    secret: bytes = field(repr=False)  # logs and tracebacks show targets; never the secret
    client: str
    session_id: str | None = None
    calling_station_id: str | None = None
    user_name: str | None = None
    nas_identifier: str | None = None
    called_station_id: str | None = None
    nas_port: int | None = None
    audit_session_id: str | None = None


@dataclass(frozen=True)
class Answer:
    status: str  # "ack", "nak", "timeout", "error"
    code: int | None = None
    error_cause: int | None = None
    attempts: int = 0

    @property
    def detail(self) -> str:
        if self.error_cause is not None:
            name = ERROR_CAUSES.get(self.error_cause, "unknown")
            return f"{self.status}: Error-Cause {self.error_cause} {name}"
        return self.status


def build_request(
    code: int,
    identifier: int,
    target: Target,
    *,
    now: float,
    reauth_flavor: str = "rfc5176",
    command: str | None = None,
    session: Sequence[str] = DEFAULT_SESSION,
) -> bytes:
    """A Disconnect- or CoA-Request for ``target`` (RFC 5176 §3): the NAS and session
    identification attributes ``session`` names that the session has, Event-Timestamp,
    Message-Authenticator, and the zero-based authenticator.

    A CoA-Request carries Cisco's ``subscriber:command=COMMAND`` when ``command`` is given
    (or ``reauth_flavor`` is "cisco"), else Service-Type Authorize-Only."""
    attrs = b""
    for name in session:
        attrs += _identity(name, target)
    attrs += attribute(EVENT_TIMESTAMP, struct.pack("!I", int(now)))
    if code == COA_REQUEST:
        if command is None and reauth_flavor == "cisco":
            command = REAUTHENTICATE
        if command is not None:
            attrs += _cisco_avpair(f"subscriber:command={command}")
        else:
            # RFC 5176 §3.2: Service-Type Authorize-Only asks the NAS to re-authorize.
            attrs += attribute(SERVICE_TYPE, struct.pack("!I", AUTHORIZE_ONLY))
    # Message-Authenticator over the packet with a zero authenticator, then the authenticator
    # over the finished packet (RFC 5176 §2.3, §3.3).
    packet = encode_request(code, identifier, ZERO_AUTHENTICATOR, attrs, key=HmacMd5(target.secret))
    authenticator = request_authenticator(packet[:4], packet[20:], target.secret)
    return packet[:4] + authenticator + packet[20:]


def _cisco_avpair(text: str) -> bytes:
    return attribute(VENDOR_SPECIFIC, struct.pack("!I", CISCO) + attribute(CISCO_AVPAIR, text.encode()))


def _identity(name: str, target: Target) -> bytes:
    """One identifying attribute, or nothing when accounting did not tell us its value."""
    if name == "NAS-IP-Address":
        if ":" in target.nas_ip:
            return attribute(NAS_IPV6_ADDRESS, socket.inet_pton(socket.AF_INET6, target.nas_ip))
        return attribute(NAS_IP_ADDRESS, socket.inet_aton(target.nas_ip))
    if name == "NAS-Port":
        return b"" if target.nas_port is None else attribute(NAS_PORT, struct.pack("!I", target.nas_port))
    if name == "Cisco-Audit-Session-Id":
        if not target.audit_session_id:
            return b""
        return _cisco_avpair(f"audit-session-id={target.audit_session_id}")
    text = {
        "NAS-Identifier": target.nas_identifier,
        "User-Name": target.user_name,
        "Calling-Station-Id": target.calling_station_id,
        "Called-Station-Id": target.called_station_id,
        "Acct-Session-Id": target.session_id,
    }[name]
    return attribute(_TEXT_CODES[name], text.encode()) if text else b""


def parse_answer(data: bytes, request: bytes, secret: bytes) -> Answer | None:
    """The NAS's ACK or NAK, verified (RFC 5176 §2.3); None if it does not answer ``request``."""
    if len(data) < 20 or data[1] != request[1]:
        return None
    code, _, length = struct.unpack_from("!BBH", data)
    if length > len(data) or length < 20 or code not in _ANSWERS.get(request[0], ()):
        return None
    data = data[:length]
    expected = response_authenticator(data[:4], request[4:20], data[20:], secret)
    if not hmac.compare_digest(expected, data[4:20]):
        return None
    cause = None
    pos = 20
    while pos + 2 <= length:
        kind, size = data[pos], data[pos + 1]
        if size < 2:
            return None
        if kind == ERROR_CAUSE and size == 6:
            cause = struct.unpack_from("!I", data, pos + 2)[0]
        pos += size
    status = "ack" if code in (DISCONNECT_ACK, COA_ACK) else "nak"
    return Answer(status, code, cause)


class DynAuthClient:
    """Sends requests and waits for their answers without ever blocking the event loop."""

    def __init__(self, timeouts: Sequence[float] = RETRY_TIMEOUTS) -> None:
        self.timeouts = tuple(timeouts)
        self._socks: dict[int, socket.socket] = {}
        self._pending: dict[tuple[int, int], tuple[bytes, bytes, asyncio.Future[Answer]]] = {}
        self._next_id: dict[int, int] = {}

    def _socket(self, family: int) -> socket.socket:
        sock = self._socks.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable, family)
            self._socks[family] = sock
        return sock

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._socks.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()

    def _readable(self, family: int) -> None:
        sock = self._socks[family]
        while True:
            try:
                data, _ = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable and the like
                log.debug("dynamic authorization socket: %s", exc)
                return
            if len(data) < 20:
                continue
            entry = self._pending.get((family, data[1]))
            if entry is None:
                continue
            request, secret, future = entry
            answer = parse_answer(data, request, secret)
            if answer is not None and not future.done():
                future.set_result(answer)

    async def send(
        self,
        code: int,
        target: Target,
        *,
        now: float,
        reauth_flavor: str = "rfc5176",
        command: str | None = None,
        session: Sequence[str] = DEFAULT_SESSION,
    ) -> Answer:
        family = socket.AF_INET6 if ":" in target.nas_ip else socket.AF_INET
        sock = self._socket(family)
        identifier = self._free_id(family)
        request = build_request(
            code, identifier, target, now=now, reauth_flavor=reauth_flavor, command=command, session=session
        )
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[(family, identifier)] = (request, target.secret, future)
        try:
            for attempt, timeout in enumerate(self.timeouts, 1):
                try:
                    sock.sendto(request, (target.nas_ip, target.port))
                except OSError as exc:
                    log.warning("cannot send to %s (%s): %s", target.client, target.nas_ip, exc)
                    return Answer("error", attempts=attempt)
                try:
                    answer = await asyncio.wait_for(asyncio.shield(future), timeout)
                except TimeoutError:
                    continue
                return Answer(answer.status, answer.code, answer.error_cause, attempt)
            return Answer("timeout", attempts=len(self.timeouts))
        finally:
            del self._pending[(family, identifier)]

    def _free_id(self, family: int) -> int:
        start = self._next_id.get(family, 0)
        for step in range(256):
            identifier = (start + step) % 256
            if (family, identifier) not in self._pending:
                self._next_id[family] = (identifier + 1) % 256
                return identifier
        raise RuntimeError("256 dynamic authorization requests in flight on one socket")
