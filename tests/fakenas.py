"""A fake NAS for in-memory tests: it builds signed requests and checks the replies.

It plays the switch's part the way aioquic's tests play the peer: requests are built with
``nac.packet.encode_request`` and ``nac.crypto`` (the client-side helpers that ``nac bench``
uses too), and replies are checked with an independent computation (``hashlib`` and
``hmac.new``), so a bug in nac's signing code cannot hide behind the same bug in the checker.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from nac.radius.crypto import HmacMd5, hide_password, request_authenticator, request_authenticator_valid
from nac.radius.packet import ACCESS_REQUEST, ACCOUNTING_REQUEST, STATUS_SERVER, Codes, encode_request

MA_TYPE = 80
PROXY_STATE = 33


def attr(kind: int, value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return bytes((kind, len(raw) + 2)) + raw


def integer(kind: int, value: int) -> bytes:
    return attr(kind, value.to_bytes(4, "big"))


def attributes(packet: bytes) -> list[tuple[int, bytes]]:
    """The attributes of a packet, split independently of nac.packet.decode."""
    length = struct.unpack_from("!H", packet, 2)[0]
    out: list[tuple[int, bytes]] = []
    pos = 20
    while pos < length:
        kind, size = packet[pos], packet[pos + 1]
        assert size >= 2, f"attribute at {pos} has length {size}"
        assert pos + size <= length, f"attribute at {pos} runs past the end"
        out.append((kind, packet[pos + 2 : pos + size]))
        pos += size
    return out


def values(packet: bytes, kind: int) -> list[bytes]:
    return [value for k, value in attributes(packet) if k == kind]


def hmac_md5(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, data, hashlib.md5).digest()


def zero_message_authenticator(packet: bytes) -> bytes:
    """The packet with the value of its (first) Message-Authenticator zeroed."""
    pos = 20
    while pos < len(packet):
        if packet[pos] == MA_TYPE:
            return packet[: pos + 2] + bytes(16) + packet[pos + 18 :]
        pos += packet[pos + 1]
    raise AssertionError("no Message-Authenticator")


@dataclass
class FakeNas:
    """One switch: its shared secret and source address, and a counter for identifiers."""

    codes: Codes
    secret: bytes = b"s3cret-shared"
    src: tuple[str, int] = ("192.0.2.10", 50000)
    nas_ip: str | None = "192.0.2.10"
    _next_id: int = field(default=0, repr=False)
    _auth_counter: int = field(default=0, repr=False)

    def next_id(self) -> int:
        self._next_id = (self._next_id + 1) % 256
        return self._next_id

    def fresh_authenticator(self) -> bytes:
        # Deterministic, distinct authenticators keep the tests reproducible.
        self._auth_counter += 1
        return hashlib.md5(b"fakenas" + self._auth_counter.to_bytes(4, "big")).digest()

    # -- Access-Request (MAB) ----------------------------------------------------------------

    def mab(
        self,
        mac: str,
        *,
        user: str | bytes | None = None,
        password: str | bytes | None = None,
        calling: str | bytes | None = None,
        called: str | None = "00-11-22-33-44-55:corp",
        chap: bool = False,
        chap_challenge: bytes | None = None,
        chap_secret: str | bytes | None = None,
        omit_password: bool = False,
        message_authenticator: bool = True,
        proxy_state: Sequence[bytes] = (),
        identifier: int | None = None,
        authenticator: bytes | None = None,
        secret: bytes | None = None,
        sign_secret: bytes | None = None,
        nas_port: int | None = 10101,
        nas_port_id: str | None = "GigabitEthernet1/0/1",
        nas_port_type: int | None = 15,
        extra: Sequence[bytes] = (),
        service_type: int | None = None,
    ) -> bytes:
        """A MAB Access-Request for ``mac`` as a switch sends it.

        User-Name, User-Password (or CHAP-Password) and Calling-Station-Id all default to
        ``mac`` as given (``omit_password`` sends neither User-Password nor CHAP, as some
        gear does); ``secret`` hides the password and ``sign_secret`` (default: the
        same) keys the Message-Authenticator.
        """
        codes = self.codes
        secret = self.secret if secret is None else secret
        sign_secret = secret if sign_secret is None else sign_secret
        identifier = self.next_id() if identifier is None else identifier
        authenticator = self.fresh_authenticator() if authenticator is None else authenticator
        user = mac if user is None else user
        calling = mac if calling is None else calling
        password = mac if password is None else password
        raw_password = password.encode() if isinstance(password, str) else password
        body = attr(codes.user_name, user)
        if chap:
            challenge = chap_challenge if chap_challenge is not None else authenticator
            chap_id = b"\x2a"
            chap_pw = mac if chap_secret is None else chap_secret
            raw_chap = chap_pw.encode() if isinstance(chap_pw, str) else chap_pw
            body += attr(codes.chap_password, chap_id + hashlib.md5(chap_id + raw_chap + challenge).digest())
            if chap_challenge is not None:
                body += attr(codes.chap_challenge, chap_challenge)
        elif not omit_password:
            body += attr(codes.user_password, hide_password(raw_password, secret, authenticator))
        if self.nas_ip is not None:
            body += attr(codes.nas_ip_address, bytes(int(o) for o in self.nas_ip.split(".")))
        if nas_port is not None:
            body += integer(codes.nas_port, nas_port)
        if nas_port_id is not None:
            body += attr(codes.nas_port_id, nas_port_id)
        if nas_port_type is not None:
            body += integer(codes.nas_port_type, nas_port_type)
        body += integer(codes.service_type, service_type or codes.service_type_call_check)
        if called is not None:
            body += attr(codes.called_station_id, called)
        body += attr(codes.calling_station_id, calling)
        body += b"".join(extra)
        body += b"".join(attr(codes.proxy_state, state) for state in proxy_state)
        key = HmacMd5(sign_secret) if message_authenticator else None
        return encode_request(ACCESS_REQUEST, identifier, authenticator, body, key=key)

    # -- Status-Server (RFC 5997) ------------------------------------------------------------

    def status_server(
        self,
        *,
        message_authenticator: bool = True,
        secret: bytes | None = None,
        identifier: int | None = None,
        proxy_state: Sequence[bytes] = (),
    ) -> bytes:
        secret = self.secret if secret is None else secret
        identifier = self.next_id() if identifier is None else identifier
        key = HmacMd5(secret) if message_authenticator else None
        body = attr(self.codes.nas_identifier, "fakenas")
        body += b"".join(attr(self.codes.proxy_state, state) for state in proxy_state)
        return encode_request(STATUS_SERVER, identifier, self.fresh_authenticator(), body, key=key)

    # -- Accounting-Request (RFC 2866) -------------------------------------------------------

    def accounting_request(
        self,
        mac: str = "00:10:a4:23:19:c0",
        *,
        status: int = 1,
        session_id: str = "0000002A",
        secret: bytes | None = None,
        identifier: int | None = None,
        message_authenticator: bool = False,
        ma_secret: bytes | None = None,
        proxy_state: Sequence[bytes] = (),
        extra: Sequence[bytes] = (),
    ) -> bytes:
        """An Accounting-Request whose authenticator is MD5 over the packet with 16 zero
        octets in its place plus the secret (RFC 2866 §3); ``extra`` are encoded attributes
        added at the end (device-sensor Vendor-Specifics, say)."""
        codes = self.codes
        secret = self.secret if secret is None else secret
        identifier = self.next_id() if identifier is None else identifier
        body = (
            integer(codes.acct_status_type, status)
            + attr(codes.acct_session_id, session_id)
            + attr(codes.user_name, mac)
            + attr(codes.calling_station_id, mac)
            + b"".join(attr(codes.proxy_state, state) for state in proxy_state)
            + b"".join(extra)
        )
        if message_authenticator:
            body = bytes((MA_TYPE, 18)) + bytes(16) + body
        header = struct.pack("!BBH", ACCOUNTING_REQUEST, identifier, 20 + len(body))
        if message_authenticator:
            # RFC 5176 §3.3 / FreeRADIUS: HMAC over the packet with a zero authenticator.
            ma = hmac_md5(secret if ma_secret is None else ma_secret, header + bytes(16) + body)
            body = body[:2] + ma + body[18:]
        return header + request_authenticator(header, body, secret) + body

    # -- replies -----------------------------------------------------------------------------

    def check_reply(
        self, request: bytes, reply: bytes, *, secret: bytes | None = None, ma_required: bool = True
    ) -> list[tuple[int, bytes]]:
        """Assert that ``reply`` answers ``request`` and is signed with the secret; return its
        attributes.  Computed with hashlib and hmac.new, not with nac's own helpers."""
        secret = self.secret if secret is None else secret
        assert len(reply) >= 20
        length = struct.unpack_from("!H", reply, 2)[0]
        assert length == len(reply), "reply Length field does not match the datagram"
        assert reply[1] == request[1], "reply identifier differs from the request's"
        req_auth = request[4:20]
        expected = hashlib.md5(reply[:4] + req_auth + reply[20:] + secret).digest()
        assert reply[4:20] == expected, "Response Authenticator does not verify"
        attrs = attributes(reply)
        if ma_required:
            assert attrs, "reply has no Message-Authenticator"
            assert attrs[0][0] == MA_TYPE, "Message-Authenticator is not the first attribute"
        if any(kind == MA_TYPE for kind, _ in attrs):
            signed = zero_message_authenticator(reply[:4] + req_auth + reply[20:])
            ma = next(value for kind, value in attrs if kind == MA_TYPE)
            assert ma == hmac_md5(secret, signed), "Message-Authenticator does not verify"
        return attrs


# -- the NAS's Dynamic Authorization Server (RFC 5176) -------------------------------------------


def das_answer(request: bytes, code: int, secret: bytes, error_cause: int | None = None) -> bytes:
    """An ACK or NAK (``code``) to ``request``, signed as RFC 5176 §2.3 says."""
    attrs = b"" if error_cause is None else bytes((101, 6)) + struct.pack("!I", error_cause)
    header = struct.pack("!BBH", code, request[1], 20 + len(attrs))
    auth = hashlib.md5(header + request[4:20] + attrs + secret).digest()
    return header + auth + attrs


#: The ACK to each request code: Disconnect-ACK, CoA-ACK.
ACK: Final = {40: 41, 43: 44}


class DasListener:
    """A NAS's Dynamic Authorization Server on ``address``:``port``: records every request and
    answers those signed with ``secret``: ``answer`` is a code, "ack" (the ACK matching the
    request), or None (never answers)."""

    def __init__(
        self,
        port: int,
        *,
        secret: bytes,
        address: str = "127.0.0.1",
        answer: int | str | None = "ack",
        error_cause: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.2)
        self.secret = secret
        self.answer = answer
        self.error_cause = error_cause
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.received.append(data)
            if self.answer is None or not request_authenticator_valid(data, self.secret):
                continue
            code = ACK[data[0]] if self.answer == "ack" else int(self.answer)
            self.sock.sendto(das_answer(data, code, self.secret, self.error_cause), addr)

    def wait(self, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
