"""802.1X rounds in the decision core (nac/admission/engine.py's Engine takes them as a base):
the vendor policy on the station's MAC first, then one EAP round, paused while the user
directory is asked (nac/admission/waiting.py) and finished by :meth:`EapRounds.resume`.  No I/O.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Protocol

from nac.admission.authz import user_profile
from nac.admission.replies import EAP_FAILED, INTERNAL_ERROR, NO_STATION_MAC, Outcome, eap_reply
from nac.admission.replies import REPLY_CODE as _REPLY_CODE
from nac.admission.waiting import EapRound, Paused
from nac.eap.keys import mppe_attributes
from nac.eap.limits import port_key
from nac.equipment.clients import Client
from nac.errors import PacketError
from nac.history.record import HistoryRecord
from nac.policy.decide import Decision
from nac.radius.packet import ACCESS_CHALLENGE, ACCESS_REJECT, Codes, Request, attribute, split_attribute
from nac.registry.mac import try_parse_mac
from nac.registry.oui import VendorMatch

if TYPE_CHECKING:  # OpenSSL is imported only when 802.1X is configured
    from nac.eap.eap import EapReply, EapServer
    from nac.identity.query import DirectoryAnswer


class _Engine(Protocol):
    """What these rounds use of the Engine they are part of."""

    codes: Codes
    eap: EapServer | None
    _waiting: dict[tuple[int, str, int, int], bytes]

    def _policy_decide(
        self, mac: int, req: Request, client: Client, method: str, now: float
    ) -> tuple[Decision, VendorMatch | None, str | None]: ...
    def _body(self, decision: Decision, client: Client) -> bytes: ...
    def _remember(self, key: tuple[int, str, int, int], req: Request, reply: bytes, now: float) -> None: ...
    def _record(
        self,
        req: Request,
        *,
        attrs: dict[int, bytes],
        client: Client,
        src: tuple[str, int],
        now: float,
        mac: int | None,
        decision: Decision,
        match: VendorMatch | None,
        method: str,
        vendor: str | None = None,
    ) -> HistoryRecord: ...
    def _eap_answer(self, rnd: EapRound, step: EapReply, eap: EapServer, now: float) -> Outcome: ...


class EapRounds:
    def _decide_eap(
        self: _Engine,
        req: Request,
        attrs: dict[int, bytes],
        client: Client,
        src: tuple[str, int],
        now: float,
        key: tuple[int, str, int, int],
        eap: EapServer,
    ) -> Outcome:
        """802.1X (RFC 3579): the vendor policy on the station's MAC first, on every round, so
        a banned manufacturer is refused before any TLS work; then one EAP round."""
        codes = self.codes
        message = b"".join(value for kind, value in req.attributes if kind == codes.eap_message)
        state = attrs.get(codes.state)
        calling = attrs.get(codes.calling_station_id)
        mac = try_parse_mac(calling.decode("latin-1")) if calling is not None else None
        match = None
        profiled = None
        if mac is None:
            reason = "802.1X request without a MAC address in Calling-Station-Id"
            decision = Decision("reject", None, NO_STATION_MAC, reason)
        else:
            decision, match, profiled = self._policy_decide(mac, req, client, "dot1x", now)
        if mac is None or decision.action == "reject":
            if state is not None:
                eap.discard(state)
            failure = bytes((4, message[1] if len(message) > 1 else 0, 0, 4))  # EAP-Failure
            reply_eap = split_attribute(codes.eap_message, failure)
            body = reply_eap + self._body(decision, client)
            record = self._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=now,
                mac=mac,
                decision=decision,
                match=match,
                method="eap",
                vendor=profiled,
            )
            return eap_reply(ACCESS_REJECT, req, body, client, record, key)
        # A few conversations per wired port (nac/eap/limits.py): from the first round only.
        port = None
        if state is None:
            port = port_key(
                nas=f"{client.name} ({src[0]})",
                nas_identifier=attrs.get(codes.nas_identifier),
                nas_ip=attrs.get(codes.nas_ip_address),
                nas_port=attrs.get(codes.nas_port),
                nas_port_id=attrs.get(codes.nas_port_id),
                port_type=attrs.get(codes.nas_port_type),
            )
        step = eap.step(message, state=state, mac=mac, now=now, allow_md5=client.eap_md5, port=port)
        rnd = EapRound(req, client, src, key, mac, decision, match, profiled)
        if step.query is not None and step.state is not None:  # ask the directory first
            self._waiting[key] = req.data
            return Outcome(b"", None, "lookup", key, None, None, None, Paused(step.query, step.state, rnd))
        if step.kind == "busy":  # a new request while this conversation waits for it: dropped
            return Outcome(b"", None, "waiting")
        return self._eap_answer(rnd, step, eap, now)

    def resume(self: _Engine, paused: Paused, answer: DirectoryAnswer, *, now: float) -> Outcome:
        """Answer a request that waited for the directory, as :meth:`handle` would have; its
        retransmissions then get this reply from the duplicate cache.  Raises PacketError as
        handle does."""
        rnd = paused.round
        req, client, key = rnd.req, rnd.client, rnd.key
        self._waiting.pop(key, None)
        try:
            assert self.eap is not None  # (it asked)
            outcome = self._eap_answer(rnd, self.eap.resume(paused.state, answer, now=now), self.eap, now)
        except PacketError:
            raise
        except Exception as exc:  # fail closed, as _decide does
            record = self._record(
                req, attrs=req.first, client=client, src=rnd.src, now=now, mac=rnd.mac,
                decision=INTERNAL_ERROR, match=rnd.match, method="eap",
            )  # fmt: skip
            failure = bytes((4, req.first.get(self.codes.eap_message, b"\0\0")[1], 0, 4))
            body = split_attribute(self.codes.eap_message, failure) + self._body(INTERNAL_ERROR, client)
            outcome = eap_reply(ACCESS_REJECT, req, body, client, record, key)._replace(error=exc)
        self._remember(key, req, outcome.reply, now)
        return outcome

    def _eap_answer(self: _Engine, rnd: EapRound, step: EapReply, eap: EapServer, now: float) -> Outcome:
        """The reply to one EAP round: a challenge, or the decision with the user's profile."""
        req, client, src, key, mac, decision, match, profiled = rnd
        codes = self.codes
        attrs = req.first
        reply_eap = split_attribute(codes.eap_message, step.message)
        if step.kind == "challenge":
            body = reply_eap + (attribute(codes.state, step.state) if step.state is not None else b"")
            return eap_reply(ACCESS_CHALLENGE, req, body, client, None, key, kind="challenge")
        if step.kind == "success" and step.msk is not None:
            # EAP-MD5 derives no keys (an empty MSK): then there are no MPPE keys to send.
            keys = (
                mppe_attributes(
                    eap.mppe,
                    step.msk,
                    salts=eap.random(4),
                    secret=client.secret,
                    authenticator=req.authenticator,
                )
                if step.msk
                else b""
            )
            # The user's profile, only where the vendor decision admits the device (authz.py);
            # for a user the directory vouched for, the profile of its directory groups.
            authorize = eap.settings.authorize
            by_directory = eap.settings.authorize_directory
            if step.directory is not None and by_directory is not None:
                authorize = partial(by_directory, step.directory)
            decision, noted, extra = user_profile(decision, client, authorize, step.identity)
            if decision.action == "reject":  # its VLAN is a name this client's equipment cannot take
                keys = extra = b""
                reply_eap = split_attribute(codes.eap_message, bytes((4, step.message[1], 0, 4)))
            body = reply_eap + keys + self._body(decision, client) + extra
        else:
            reason = step.reason or "EAP authentication failed"
            decision = noted = Decision("reject", None, EAP_FAILED, reason)
            body = reply_eap + self._body(decision, client)
        record = self._record(
            req, attrs=attrs, client=client, src=src, now=now, mac=mac, decision=noted, match=match,
            method=step.method, vendor=profiled,
        )  # fmt: skip
        if step.identity is not None:
            record = record._replace(user_name=step.identity)  # who authenticated, not the outer name
        return eap_reply(_REPLY_CODE[decision.action], req, body, client, record, key)
