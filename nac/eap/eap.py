"""EAP (RFC 3748) as a RADIUS server runs it (RFC 3579): the packet codec, and conversations
keyed by the State attribute, with the limits that keep a flood from exhausting memory.

No I/O and no clock: the caller passes ``now``; randomness (State values, challenges) comes
from an injected function, ``os.urandom`` unless a test passes its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from OpenSSL import SSL

from nac.eap.keys import MppeCodes
from nac.eap.limits import ConversationIndex
from nac.eap.md5 import TYPE_MD5, EapMd5
from nac.eap.method import Done, Failed, Lookup, Method, Next, Step
from nac.eap.peap import Peap
from nac.eap.profiles import Authorization
from nac.eap.tls import EapTls
from nac.eap.ttls import Ttls
from nac.identity.query import DirectoryAnswer, DirectoryQuery

CODE_REQUEST: Final = 1
CODE_RESPONSE: Final = 2
CODE_SUCCESS: Final = 3
CODE_FAILURE: Final = 4
TYPE_IDENTITY: Final = 1
TYPE_NOTIFICATION: Final = 2
TYPE_NAK: Final = 3
TYPE_TLS: Final = 13
TYPE_TTLS: Final = 21
TYPE_PEAP: Final = 25
#: Method names as `[eap] methods` spells them, and their EAP types (IANA EAP registry).
METHOD_TYPES: Final = {"tls": TYPE_TLS, "peap": TYPE_PEAP, "ttls": TYPE_TTLS}

#: Conversations in progress at once: FreeRADIUS's eap `max_sessions` default is 4096.  Each
#: holds one TLS connection (~30-70 KiB with its buffers) and at most MAX_CONVERSATION_OCTETS
#: of input, so the table stays within a few hundred MiB however fast new ones arrive.  The
#: last line: nac/eap/limits.py bounds each station and each wired port well below it.
MAX_CONVERSATIONS: Final = 4096
#: Seconds a conversation may take from its first request: FreeRADIUS's `timer_expire = 60`.
CONVERSATION_LIFETIME: Final = 60.0
#: EAP round trips per conversation: hostapd's EAP_MAX_AUTH_ROUNDS_SHORT is 50.  EAP-TLS with
#: a 4 KiB chain takes ~8, PEAP-MSCHAPv2 ~10.
MAX_ROUNDS: Final = 50
#: Octets of EAP a peer may send in one conversation: a 64 KiB TLS message (tls.py) and change.
MAX_CONVERSATION_OCTETS: Final = 96 * 1024
#: Octets of a State value: unguessable, so a conversation cannot be hijacked by guessing.
STATE_LEN: Final = 16
_HEADER_LEN: Final = 4


class EapError(Exception):
    """The EAP packet itself is malformed."""


class EapPacket(NamedTuple):
    code: int
    identifier: int
    type: int | None  # None for Success and Failure
    data: bytes  # Type-Data


def decode_eap(raw: bytes) -> EapPacket:
    """RFC 3748 §4: Code, Identifier, Length (which must match), Type, Type-Data."""
    if len(raw) < _HEADER_LEN:
        raise EapError(f"EAP packet of {len(raw)} octets")
    code, identifier = raw[0], raw[1]
    length = int.from_bytes(raw[2:4], "big")
    if length != len(raw):  # RFC 3579 §3.1: the reassembled EAP-Messages are one packet
        raise EapError(f"EAP Length {length} but {len(raw)} octets")
    if code in (CODE_SUCCESS, CODE_FAILURE):
        return EapPacket(code, identifier, None, b"")
    if code not in (CODE_REQUEST, CODE_RESPONSE) or length < 5:
        raise EapError(f"EAP code {code} with length {length}")
    return EapPacket(code, identifier, raw[4], raw[5:])


def encode_eap(code: int, identifier: int, eap_type: int | None = None, data: bytes = b"") -> bytes:
    if eap_type is None:
        return bytes((code, identifier)) + _HEADER_LEN.to_bytes(2, "big")
    return bytes((code, identifier)) + (5 + len(data)).to_bytes(2, "big") + bytes((eap_type,)) + data


@dataclass(frozen=True, kw_only=True)
class EapSettings:
    """What the methods need, built once by nac/eap/config.py (which reads the files)."""

    methods: tuple[str, ...]  # in the server's order of preference
    tls_context: SSL.Context | None = None  # requires a client certificate (EAP-TLS)
    tunnel_context: SSL.Context | None = None  # server certificate only (PEAP, TTLS)
    #: name -> NT hash (password-equivalent for MS-CHAPv2: kept out of repr)
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    #: name -> password of users enrolled for EAP-MD5 (None: not enrolled); EAP-MD5 is offered
    #: only to clients with `eap_md5 = true` and only when this is set.
    md5_passwords: Callable[[str], str | None] | None = None
    #: name -> the user's groups and profile (nac/eap/groups.py); None: no profiles.
    authorize: Callable[[str], Authorization | None] | None = None
    #: An LDAP directory is configured: users not in ``users`` are looked up there (TTLS-PAP
    #: binds as the user; EAP-TLS looks up the certificate's ``tls_identity``).
    directory: bool = False
    tls_identity: str = "cn"  # "cn", "san_email" or "san_upn" (nac/eap/tls.py)
    #: (what the directory said, name) -> the profile of its groups (nac/eap/groups.py).
    authorize_directory: Callable[[DirectoryAnswer, str], Authorization | None] | None = None
    server_name: str = "nac"


class EapReply(NamedTuple):
    #: "challenge", "success" or "failure"; "lookup": ask the directory ``query``, then call
    #: :meth:`EapServer.resume`; "busy": a request while the conversation waits for it.
    kind: str
    message: bytes  # the EAP packet for the EAP-Message attributes
    state: bytes | None  # for a challenge
    method: str  # "eap" until a method is chosen, then "eap-tls", "peap", "ttls"
    identity: str | None  # the authenticated identity (success), else the EAP identity
    msk: bytes | None
    reason: str
    query: DirectoryQuery | None = None  # for a lookup
    directory: DirectoryAnswer | None = None  # a success the directory vouched for


    def __repr__(self) -> str:  # the MSK is key material: never in a log line or a traceback
        msk = "None" if self.msk is None else f"<{len(self.msk)} octets>"
        return (
            f"EapReply(kind={self.kind!r}, message={self.message!r}, state={self.state!r}, "
            f"method={self.method!r}, identity={self.identity!r}, msk={msk}, reason={self.reason!r}, "
            f"query={self.query!r}, directory={self.directory!r})"
        )


class _Conversation:
    __slots__ = (
        "allow_md5",
        "created",
        "identifier",
        "identity",
        "lookup",
        "mac",
        "method",
        "nak_allowed",
        "octets",
        "port",
        "rounds",
    )

    def __init__(self, *, mac: int, port: str | None, created: float, identity: str) -> None:
        self.mac = mac
        self.port = port  # the wired NAS port (nac/eap/limits.py), if the request named one
        self.created = created
        self.identity = identity
        self.identifier = 0
        self.rounds = 0
        self.octets = 0
        self.method: Method | None = None
        self.lookup: Lookup | None = None  # the directory question the conversation waits on
        self.nak_allowed = True
        self.allow_md5 = False


class EapServer:
    """All conversations in progress; :meth:`step` takes one EAP-Response and answers it."""

    def __init__(
        self, settings: EapSettings, *, mppe: MppeCodes, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.settings = settings
        self.mppe = mppe  # how the Access-Accept carries the MSK (nac/eap/keys.py)
        self.random = random
        self._conversations: dict[bytes, _Conversation] = {}  # insertion order = expiry order
        self.limits = ConversationIndex()  # who holds them; the server drains its counts

    def __len__(self) -> int:
        return len(self._conversations)

    def expire(self, now: float) -> int:
        table = self._conversations
        stale = []
        for state, conv in table.items():
            if conv.created + CONVERSATION_LIFETIME > now:
                break
            stale.append(state)
        for state in stale:
            self._end(state)
        return len(stale)

    def discard(self, state: bytes) -> None:
        """End a conversation that the policy refused mid-way."""
        self._end(state)

    def _end(self, state: bytes) -> None:
        conv = self._conversations.pop(state, None)
        if conv is not None:
            self.limits.remove(state, mac=conv.mac, port=conv.port)

    def step(
        self,
        message: bytes,
        *,
        state: bytes | None,
        mac: int,
        now: float,
        allow_md5: bool = False,
        port: str | None = None,
    ) -> EapReply:
        """``message`` is the reassembled EAP-Message; ``state`` the request's State, if any;
        ``port`` the wired NAS port it came from (:func:`nac.eap.limits.port_key`)."""
        self.expire(now)
        try:
            packet = decode_eap(message) if message else None
        except EapError as exc:
            return _failure(0, "eap", None, f"malformed EAP: {exc}")
        if state is None:
            return self._begin(packet, mac, port, now, allow_md5)
        conv = self._conversations.get(state)
        if conv is None:
            ident = packet.identifier if packet is not None else 0
            return _failure(ident, "eap", None, "unknown or expired EAP conversation (State)")
        if conv.lookup is not None:
            name = conv.method.name if conv.method is not None else "eap"
            return EapReply("busy", b"", state, name, conv.identity, None, "waiting for the directory")
        reply = self._continue(conv, state, packet, message, mac)
        if reply.kind not in ("challenge", "lookup"):
            self._end(state)
        return reply

    def resume(self, state: bytes, answer: DirectoryAnswer, *, now: float) -> EapReply:
        """Go on with the conversation that asked the directory (a "lookup" reply)."""
        self.expire(now)
        conv = self._conversations.get(state)
        lookup = conv.lookup if conv is not None else None
        if conv is None or lookup is None or conv.method is None:
            return _failure(0, "eap", None, "EAP conversation expired while the directory answered")
        conv.lookup = None
        step = lookup.resume(answer)
        reply = self._answer(conv, conv.method, step, state, conv.identifier)
        if reply.kind != "challenge":
            self._end(state)
        return reply

    def _begin(
        self, packet: EapPacket | None, mac: int, port: str | None, now: float, allow_md5: bool
    ) -> EapReply:
        if packet is None:
            # RFC 3579 §2.1: an empty EAP-Message is EAP-Start; ask who the peer is.
            return EapReply(
                "challenge", encode_eap(CODE_REQUEST, 0, TYPE_IDENTITY), None, "eap", None, None, ""
            )
        if packet.code != CODE_RESPONSE or packet.type != TYPE_IDENTITY:
            return _failure(
                packet.identifier, "eap", None, "the first EAP packet is not an Identity response"
            )
        identity = packet.data.decode(errors="replace")
        if not self.settings.methods:
            return _failure(packet.identifier, "eap", identity, "no EAP method is enabled")
        admission = self.limits.admit(
            mac=mac, port=port, total=len(self._conversations), cap=MAX_CONVERSATIONS, now=now
        )
        if admission.refused is not None:
            return _failure(packet.identifier, "eap", identity, admission.refused)
        if admission.replaces is not None:
            self._end(admission.replaces)  # the station started over (nac/eap/limits.py)
        conv = _Conversation(mac=mac, port=port, created=now, identity=identity)
        conv.allow_md5 = allow_md5 and self.settings.md5_passwords is not None
        state = self.random(STATE_LEN)
        while state in self._conversations:
            state = self.random(STATE_LEN)
        conv.identifier = packet.identifier
        self._conversations[state] = conv
        self.limits.add(state, mac=mac, port=port)
        return self._start_method(conv, self.settings.methods[0], state)

    def _continue(
        self, conv: _Conversation, state: bytes, packet: EapPacket | None, message: bytes, mac: int
    ) -> EapReply:
        name = conv.method.name if conv.method is not None else "eap"
        if packet is None or packet.code != CODE_RESPONSE:
            return _failure(conv.identifier, name, conv.identity, "expected an EAP-Response")
        if mac != conv.mac:
            return _failure(
                packet.identifier, name, conv.identity, "Calling-Station-Id changed mid-conversation"
            )
        conv.rounds += 1
        conv.octets += len(message)
        if conv.rounds > MAX_ROUNDS:
            return _failure(packet.identifier, name, conv.identity, f"more than {MAX_ROUNDS} EAP rounds")
        if conv.octets > MAX_CONVERSATION_OCTETS:
            return _failure(packet.identifier, name, conv.identity, "EAP conversation too large")
        if packet.identifier != conv.identifier:
            # RFC 3748 §4.1 would discard it; the NAS matches responses to requests, so a
            # mismatch here is a confused or hostile peer: end the conversation.
            return _failure(
                packet.identifier, name, conv.identity, "EAP Identifier does not match the request"
            )
        if packet.type == TYPE_NAK:
            return self._nak(conv, packet, state)
        method = conv.method
        if method is None or packet.type != method.eap_type:
            return _failure(packet.identifier, name, conv.identity, f"EAP type {packet.type} is not {name}")
        conv.nak_allowed = False
        return self._answer(conv, method, method.process(packet.data), state, packet.identifier)

    def _answer(
        self, conv: _Conversation, method: Method, step: Step, state: bytes, identifier: int
    ) -> EapReply:
        if isinstance(step, Next):
            return self._request(conv, method, step.data, state)
        if isinstance(step, Done):
            success = encode_eap(CODE_SUCCESS, identifier)
            return EapReply(
                "success", success, None, method.name, step.identity, step.msk, "", None, step.directory
            )
        if isinstance(step, Lookup):
            conv.lookup = step
            return EapReply("lookup", b"", state, method.name, conv.identity, None, "", step.query)
        assert isinstance(step, Failed)
        return _failure(identifier, method.name, conv.identity, step.reason)

    def _nak(self, conv: _Conversation, packet: EapPacket, state: bytes) -> EapReply:
        """RFC 3748 §5.3.1: a Nak answers a method's first request, listing what the peer wants."""
        if not conv.nak_allowed:
            return _failure(packet.identifier, "eap", conv.identity, "EAP Nak after the method began")
        conv.nak_allowed = False
        wanted = {t: n for n, t in METHOD_TYPES.items() if n in self.settings.methods}
        if conv.allow_md5:
            wanted[TYPE_MD5] = "md5"  # only on the peer's request, never proposed first
        for eap_type in packet.data:
            if eap_type in wanted:
                return self._start_method(conv, wanted[eap_type], state)
        offered = ", ".join(str(t) for t in packet.data) or "none"
        return _failure(
            packet.identifier, "eap", conv.identity, f"no common EAP method (the peer wants {offered})"
        )

    def _start_method(self, conv: _Conversation, name: str, state: bytes) -> EapReply:
        method = self._make_md5(conv) if name == "md5" else self._make(name)
        conv.method = method
        return self._request(conv, method, method.start(), state)

    def _request(self, conv: _Conversation, method: Method, data: bytes, state: bytes) -> EapReply:
        conv.identifier = (conv.identifier + 1) & 0xFF
        message = encode_eap(CODE_REQUEST, conv.identifier, method.eap_type, data)
        return EapReply("challenge", message, state, method.name, conv.identity, None, "")

    def _make_md5(self, conv: _Conversation) -> Method:
        passwords = self.settings.md5_passwords
        assert passwords is not None  # conv.allow_md5 requires it
        return EapMd5(
            identity=conv.identity,
            password=passwords,
            identifier=lambda: conv.identifier,
            random=self.random,
            server_name=self.settings.server_name,
        )

    def _make(self, name: str) -> Method:
        settings = self.settings
        if name == "tls" and settings.tls_context is not None:
            lookup = settings.tls_identity if settings.directory else None
            return EapTls(settings.tls_context, users=settings.users, directory=lookup)
        if name == "peap" and settings.tunnel_context is not None:
            return Peap(
                settings.tunnel_context,
                users=settings.users,
                random=self.random,
                server_name=settings.server_name,
            )
        if name == "ttls" and settings.tunnel_context is not None:
            return Ttls(settings.tunnel_context, users=settings.users, directory=settings.directory)
        raise ValueError(f"EAP method {name!r} is not configured")


def _failure(identifier: int, method: str, identity: str | None, reason: str) -> EapReply:
    return EapReply("failure", encode_eap(CODE_FAILURE, identifier), None, method, identity, None, reason)
