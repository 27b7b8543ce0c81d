"""What the decision core answers: the :class:`Outcome` of a datagram, the reply code for each
decision, the refusals nac decides itself and what the NAS is told of them, the reply bodies
(VLAN, Session-Timeout, Reply-Message), and the answers to Status-Server, Accounting-Request
and EAP rounds.  Pure: no I/O, no clock.

nac/admission/engine.py decides; it calls these off its MAB hot path (a body is built once per
decision and client shape, then memoized) or in place of its own code for the other answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from nac.admission.waiting import Paused
from nac.equipment.clients import Client
from nac.equipment.reply import vlan_body
from nac.errors import PacketError
from nac.history.record import HistoryRecord
from nac.policy.decide import Decision
from nac.profiling.sensor import SensorCodes
from nac.radius.accounting import SessionEvent
from nac.radius.crypto import request_authenticator_valid
from nac.radius.packet import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    ACCOUNTING_RESPONSE,
    MAX_PACKET,
    Codes,
    Request,
    encode_reply,
    message_authenticator_valid,
)

NOT_A_MAC: Final = "builtin:invalid-mac"
NOT_MAB: Final = "builtin:not-mab"
BAD_MAB_PASSWORD: Final = "builtin:mab-password"  # noqa: S105 (a rule id)
NO_MAB_PASSWORD: Final = "builtin:mab-no-password"  # noqa: S105 (a rule id)
STATUS_REPLY_MESSAGE: Final = "nac is alive"
EAP_FAILED: Final = "builtin:eap-failure"
NO_STATION_MAC: Final = "builtin:no-calling-station-id"
#: The fail-closed decision.
INTERNAL_ERROR: Final = Decision("reject", None, "builtin:internal-error", "internal error")
#: Refusals that tell the NAS only AUTHENTICATION_FAILED: their reasons name users and carry
#: TLS and method details (FreeRADIUS says nothing of a wrong password).  History keeps them.
AUTHENTICATION_FAILURES: Final = frozenset(
    {NOT_A_MAC, NOT_MAB, BAD_MAB_PASSWORD, NO_MAB_PASSWORD, EAP_FAILED, NO_STATION_MAC}
)
AUTHENTICATION_FAILED: Final = "authentication failed"
ACCESS_DENIED: Final = "access denied"

#: Header and the Message-Authenticator that every Access-* reply starts with.
REPLY_OVERHEAD: Final = 20 + 18
REPLY_CODE: Final = {"accept": ACCESS_ACCEPT, "quarantine": ACCESS_ACCEPT, "reject": ACCESS_REJECT}


class Outcome(NamedTuple):
    """What the server does with one datagram: send ``reply`` after ``record`` is committed."""

    reply: bytes
    record: HistoryRecord | None
    #: "decision", "duplicate", "status", "accounting"; with no reply yet, "lookup" (ask the
    #: directory, see ``lookup``) or "waiting" (a request already waiting for it: nothing to send)
    kind: str
    key: tuple[int, str, int, int] | None = None  # duplicate-cache key, to forget on failure
    error: BaseException | None = None  # an internal error that was answered fail-closed
    session: SessionEvent | None = None  # what an Accounting-Request says of a session
    #: Device-sensor fields in an Accounting-Request (nac/profiling/sensor.py), for profiling.
    sensed: dict[str, str] | None = None
    #: An EAP round that waits for the directory: the server asks, then Engine.resume answers.
    lookup: Paused | None = None


def reply_message(decision: Decision, mode: str) -> str | None:
    """The Reply-Message of a refusal, by the client's `reply_message` setting: switches log
    it and some show it to users, so it never names a user or carries method or TLS detail."""
    if decision.action == "accept" or mode == "none":
        return None
    if decision.rule in AUTHENTICATION_FAILURES:
        return AUTHENTICATION_FAILED
    if mode == "generic":
        return ACCESS_DENIED if decision.action == "reject" else None
    return f"{decision.reason} (rule {decision.rule})"  # the vendor decision, as switch logs show it


def decision_body(codes: Codes, decision: Decision, client: Client, timeout: int | None) -> bytes:
    """The attributes of the reply to ``decision`` for ``client``'s equipment: its VLAN, the
    quarantine's Session-Timeout (``timeout``), and the Reply-Message."""
    body = b""
    if decision.vlan is not None:
        body += vlan_body(codes, client.reply, decision.vlan)
    if timeout is not None:
        body += codes.session_timeout_attributes(timeout)
    message = reply_message(decision, client.reply_message)
    if message is not None:
        body += codes.reply_message_attributes(message)
    return body


def trimmed_body(codes: Codes, decision: Decision, client: Client, proxy_state: bytes) -> bytes:
    """The body of a reply whose request, at the size limit, is full of Proxy-State: no room
    for our Reply-Message, so only the VLAN attributes (if any) stay, or nothing fits."""
    body = vlan_body(codes, client.reply, decision.vlan) if decision.vlan is not None else b""
    if REPLY_OVERHEAD + len(body) + len(proxy_state) > MAX_PACKET:
        raise PacketError("reply-too-large", "Proxy-State leaves no room for the reply")
    return body


def status_reply(codes: Codes, req: Request, client: Client, *, access: bool) -> Outcome:
    """RFC 5997: Message-Authenticator required; never cached, answered every time.  On the
    authentication port (``access``) an Access-Accept, on the accounting port an
    Accounting-Response."""
    if req.ma_offset < 0:
        raise PacketError("missing-message-authenticator", "Status-Server (RFC 5997 §3)")
    if not message_authenticator_valid(req, client.key):
        raise PacketError("bad-message-authenticator", "Status-Server")
    # RFC 2865 §5.33: Proxy-State comes back unchanged and in order, as FreeRADIUS does, so
    # a proxy between a switch and nac can match the answer to its health check.
    proxy_state = req.proxy_state
    if access:
        body = codes.reply_message_attributes(STATUS_REPLY_MESSAGE)
        if REPLY_OVERHEAD + len(body) + len(proxy_state) > MAX_PACKET:
            body = b""  # the Reply-Message is optional; the request's Proxy-States always fit
        reply = encode_reply(
            ACCESS_ACCEPT, req, body, key=client.key, secret=client.secret, proxy_state=proxy_state
        )
    else:
        reply = encode_reply(
            ACCOUNTING_RESPONSE, req, b"", key=client.key, secret=client.secret, proxy_state=proxy_state
        )
    return Outcome(reply, None, "status")


def eap_reply(
    code: int,
    req: Request,
    body: bytes,
    client: Client,
    record: HistoryRecord | None,
    key: tuple[int, str, int, int],
    kind: str = "decision",
) -> Outcome:
    """One EAP round's answer (Access-Challenge, -Accept or -Reject), refused whole when the
    request's Proxy-State leaves no room for it: EAP-Message cannot be trimmed."""
    if REPLY_OVERHEAD + len(body) + len(req.proxy_state) > MAX_PACKET:
        raise PacketError("reply-too-large", "Proxy-State leaves no room for the EAP reply")
    reply = encode_reply(code, req, body, key=client.key, secret=client.secret, proxy_state=req.proxy_state)
    return Outcome(reply, record, kind, key)


def accounting_reply(
    codes: Codes,
    sensor: SensorCodes | None,
    req: Request,
    client: Client,
    key: tuple[int, str, int, int],
    *,
    nas_ip: Callable[[dict[int, bytes], str], str],
    host: str,
    now: float,
) -> Outcome:
    """An Accounting-Request (RFC 2866 §3) from ``client``, verified, answered with an
    Accounting-Response and read for what it says of the session and, with profiling on
    (``sensor``), of the device.  ``nas_ip`` names the NAS from its attributes or ``host``."""
    if not request_authenticator_valid(req.data, client.secret):
        raise PacketError("bad-authenticator", "wrong secret or altered packet")
    if req.ma_offset >= 0 and not message_authenticator_valid(req, client.key):
        raise PacketError("bad-message-authenticator", "wrong secret or altered packet")
    reply = encode_reply(
        ACCOUNTING_RESPONSE,
        req,
        b"",
        key=client.key,
        secret=client.secret,
        proxy_state=req.proxy_state,
        message_authenticator=False,
    )
    event = codes.accounting.event(
        req.first, client=client.name, nas_ip=nas_ip(req.first, host), now=now, attributes=req.attributes
    )
    sensed = sensor.fields(req.attributes) if sensor is not None else None
    return Outcome(reply, None, "accounting", key, None, event, sensed or None)
