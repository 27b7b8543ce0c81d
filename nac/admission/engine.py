"""The decision core: bytes in, reply bytes and a history record out.  No I/O, no clock.

``Engine.handle(data, src=..., port=..., client=..., now=...)`` decodes and verifies a request
(BlastRADIUS rules, RFC 5080 duplicate cache), identifies the device for MAB, asks the policy,
and encodes the reply (whose parts nac/admission/replies.py builds).  A :class:`~nac.errors.PacketError`
means "drop this datagram"; any other exception while deciding becomes an Access-Reject (fail
closed).
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Final, TypeAlias

from nac.admission.eaprounds import EapRounds
from nac.admission.replies import (
    BAD_MAB_PASSWORD,
    INTERNAL_ERROR,
    NO_MAB_PASSWORD,
    NOT_A_MAC,
    NOT_MAB,
    REPLY_OVERHEAD,
    accounting_reply,
    decision_body,
    status_reply,
    trimmed_body,
)
from nac.admission.replies import REPLY_CODE as _REPLY_CODE
from nac.admission.replies import Outcome as Outcome  # noqa: PLC0414 - nac/serve/server.py reads it here
from nac.admission.replies import reply_message as reply_message  # noqa: PLC0414 - tests read it here
from nac.equipment.clients import Client
from nac.equipment.mab import read_mac
from nac.equipment.reply import refuse_vlan_name
from nac.equipment.ssid import CalledStation
from nac.errors import PacketError
from nac.history.record import HistoryRecord
from nac.policy.decide import Context, Decision, Policy
from nac.profiling.effect import apply_profile
from nac.profiling.sensor import SensorCodes
from nac.radius.crypto import chap_matches, hidden_password_is, unhide_password
from nac.radius.packet import (
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    MAX_PACKET,
    STATUS_SERVER,
    Codes,
    Request,
    decode,
    encode_reply,
    message_authenticator_valid,
)
from nac.registry.mac import format_mac, try_parse_mac
from nac.registry.oui import VendorMatch

if TYPE_CHECKING:  # OpenSSL is imported only when 802.1X is configured
    from nac.eap.eap import EapServer

AUTH: Final = "auth"
ACCT: Final = "acct"
#: RFC 5080 §2.2.2 and FreeRADIUS `cleanup_delay = 5`: long enough for a NAS's retransmissions.
DUPLICATE_TTL: Final = 5.0
DUPLICATE_TTL_MAX: Final = 30.0
#: At 40,000 requests/s for 5 s about 200,000 entries are live; beyond this the oldest go first.
DUPLICATE_CACHE_MAX: Final = 500_000
#: NAS-IP-Address values kept formatted; a spoofed spread of them only empties the memo.
NAS_IP_CACHE_MAX: Final = 4096


#: Builds a NamedTuple from a tuple of all its fields, without the Python-level __new__.
_new: Final = tuple.__new__


#: A cached reply: (expires, request, reply).  A plain tuple of immutable values, not a
#: NamedTuple: the collector stops tracking such a tuple the first time it sees it, while a
#: tuple subclass stays tracked for as long as it lives, and every full collection walks it.
#: At full load the cache holds duplicate_ttl's worth of replies, and a full collection over
#: them as NamedTuples took twenty times as long (bench/README.md, "Garbage collection").
_Cached: TypeAlias = tuple[float, bytes, bytes]


class Engine(EapRounds):
    """Verifies, decides and answers; holds the policy and the duplicate cache."""

    def __init__(
        self,
        *,
        codes: Codes,
        policy: Policy,
        duplicate_ttl: float = DUPLICATE_TTL,
        eap: EapServer | None = None,
    ) -> None:
        if not 0 < duplicate_ttl <= DUPLICATE_TTL_MAX:
            raise ValueError(f"duplicate_ttl must be in (0, {DUPLICATE_TTL_MAX}] seconds")
        self.codes = codes
        self.eap = eap  # 802.1X conversations; None: EAP requests are refused
        self.policy = policy  # replaced whole when rules change (one reference swap)
        self.duplicate_ttl = duplicate_ttl
        self._cache: dict[tuple[int, str, int, int], _Cached] = {}
        self._bodies: dict[tuple[Decision, int | None, str], bytes] = {}
        self._nas_ips: dict[bytes, str] = {}  # NAS-IP-Address octets -> dotted quad
        #: Requests waiting for the directory (nac/admission/waiting.py): key -> the request.
        self._waiting: dict[tuple[int, str, int, int], bytes] = {}
        #: Called-Station-Id, with the SSID of Aruba-Essid-Name when the NAS put none in it.
        self.called = CalledStation(codes)
        self._authorize_only = codes.service_type_authorize_only.to_bytes(4, "big")
        #: MAC -> the manufacturer family its DHCP profile names (None: signals seen, nothing
        #: decided); kept current by nac/profiling.  Empty: profiling is off, no lookup made.
        self.profiles: dict[int, str | None] = {}
        #: What a profile that contradicts the MAC's registry entry does: "flag" (say so in
        #: history, decide as usual), "quarantine" or "reject".
        self.on_conflict = "flag"
        #: Where device-sensor data rides in accounting; None: profiling is off, none is read.
        self.sensor: SensorCodes | None = None

    # -- duplicates (RFC 5080 §2.2.2) ------------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop cached replies older than the TTL; returns how many were dropped."""
        cache = self._cache
        stale: list[tuple[int, str, int, int]] = []
        for key, entry in cache.items():  # insertion order is expiry order
            if entry[0] > now and len(cache) - len(stale) <= DUPLICATE_CACHE_MAX:
                break
            stale.append(key)
        for key in stale:
            del cache[key]
        return len(stale)

    def cached(self) -> int:
        """Replies in the duplicate cache now."""
        return len(self._cache)

    def forget(self, key: tuple[int, str, int, int]) -> None:
        """Drop a cached reply that was never sent (its history write failed)."""
        self._cache.pop(key, None)

    def _remember(self, key: tuple[int, str, int, int], req: Request, reply: bytes, now: float) -> None:
        cache = self._cache
        cache.pop(key, None)  # re-insert at the end, keeping insertion order = expiry order
        cache[key] = (now + self.duplicate_ttl, req.data, reply)

    # -- the request path ------------------------------------------------------------------

    def handle(
        self, data: bytes, *, src: tuple[str, int], port: int, service: str, client: Client, now: float
    ) -> Outcome:
        """One datagram from ``client``; ``port`` names the receiving socket, ``service`` is
        ``"auth"`` or ``"acct"``.  Raises :class:`PacketError` when it must be dropped."""
        req = decode(data)
        key = (port, src[0], src[1], req.identifier)
        cached = self._cache.get(key)
        if cached is not None and cached[1] == req.data and cached[0] > now:
            return Outcome(cached[2], None, "duplicate")
        if self._waiting and self._waiting.get(key) == req.data:
            # A retransmission while the directory is asked: no second question, and the one
            # answer goes out (then from the cache) once it comes.
            return Outcome(b"", None, "waiting")
        code = req.code
        if code == STATUS_SERVER:
            return status_reply(self.codes, req, client, access=service == AUTH)
        if code == ACCESS_REQUEST and service == AUTH:
            self._verify_access_request(req, client)
            outcome = self._decide(req, client, src, now, key)
        elif code == ACCOUNTING_REQUEST and service == ACCT:
            outcome = accounting_reply(
                self.codes, self.sensor, req, client, key, nas_ip=self._nas_ip, host=src[0], now=now
            )
        else:
            raise PacketError("unexpected-code", f"code {code} on the {service} port")
        if outcome.reply:  # (a request waiting for the directory has none yet)
            self._remember(key, req, outcome.reply, now)
        return outcome

    def _verify_access_request(self, req: Request, client: Client) -> None:
        """BlastRADIUS (CVE-2024-3596) rules, as FreeRADIUS 3.2.5+ applies them."""
        if req.ma_offset >= 0:
            if not message_authenticator_valid(req, client.key):
                # RFC 3579 §3.2: an invalid Message-Authenticator is silently discarded.
                raise PacketError("bad-message-authenticator", "wrong secret or altered packet")
            return
        if client.require_message_authenticator:
            raise PacketError("missing-message-authenticator", "required for this client")
        if req.proxy_state:
            # FreeRADIUS `limit_proxy_state`: the BlastRADIUS attack vector.
            raise PacketError("proxy-state-without-message-authenticator")
        if self.codes.eap_message in req.first:
            raise PacketError("eap-without-message-authenticator", "RFC 3579 §3.2")

    def _decide(
        self, req: Request, client: Client, src: tuple[str, int], now: float, key: tuple[int, str, int, int]
    ) -> Outcome:
        attrs = req.first
        proxy_state = req.proxy_state
        error: BaseException | None = None
        try:
            if self.eap is not None and self.codes.eap_message in attrs:
                return self._decide_eap(req, attrs, client, src, now, key, self.eap)
            decision, record = self._decide_mab(req, attrs, client, src, now)
        except Exception as exc:  # fail closed: one of the two catch-all guards
            error = exc
            decision = INTERNAL_ERROR
            record = self._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=now,
                mac=None,
                decision=decision,
                match=None,
                method="mab",
            )
        body = self._body(decision, client)
        if REPLY_OVERHEAD + len(body) + len(proxy_state) > MAX_PACKET:
            body = trimmed_body(self.codes, decision, client, proxy_state)
        reply = encode_reply(
            _REPLY_CODE[decision.action],
            req,
            body,
            key=client.key,
            secret=client.secret,
            proxy_state=proxy_state,
        )
        # Every field of Outcome, in order (a short tuple would lack the last ones).
        return _new(Outcome, (reply, record, "decision", key, error, None, None, None))

    def _decide_mab(
        self, req: Request, attrs: dict[int, bytes], client: Client, src: tuple[str, int], now: float
    ) -> tuple[Decision, HistoryRecord]:
        codes = self.codes
        user = attrs.get(codes.user_name)
        calling = attrs.get(codes.calling_station_id)
        if codes.eap_message in attrs:
            decision = Decision("reject", None, NOT_MAB, "802.1X (EAP) is not enabled on this server")
            return decision, self._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=now,
                mac=None,
                decision=decision,
                match=None,
                method="eap",
            )
        shape = client.mab
        read = read_mac(user, calling, shape)
        mac = read.mac
        if mac is None:
            # What the client's profile expects, for the helpdesk: a switch configured for
            # another shape (a fixed account, say) shows up here, not as a ban.
            expected = f"client {client.name} (profile {client.profile}) sends {shape.describe()}"
            reason = f"{read.reason}; {expected}"
            decision = Decision("reject", None, NOT_MAB if read.refusal == "not-mab" else NOT_A_MAC, reason)
            return decision, self._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=now,
                mac=None,
                decision=decision,
                match=None,
                method="mab",
            )
        if (
            codes.user_password not in attrs
            and codes.chap_password not in attrs
            and not client.allow_mab_without_password
            and shape.check != "none"
            and attrs.get(codes.service_type) != self._authorize_only
        ):
            # No credential at all.  RFC 5176 §3.1: the Authorize-Only request that follows a
            # re-authorize CoA carries none by design, so it is decided on the MAC.
            reason = "MAB request without User-Password or CHAP-Password (allow_mab_without_password is off)"
            decision = Decision("reject", None, NO_MAB_PASSWORD, reason)
            return decision, self._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=now,
                mac=mac,
                decision=decision,
                match=None,
                method="mab",
            )
        spelled = user if read.from_user else calling
        if not self._password_matches(req, attrs, client, spelled or b"", mac):
            expected = "the fixed MAB password" if shape.check == "fixed" else "the MAC"
            reason = f"MAB password does not match {expected} (or the NAS's secret is wrong)"
            decision = Decision("reject", None, BAD_MAB_PASSWORD, reason)
            return decision, self._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=now,
                mac=mac,
                decision=decision,
                match=None,
                method="mab",
            )
        decision, match, profiled = self._policy_decide(mac, req, client, "mab", now)
        return decision, self._record(
            req,
            attrs=attrs,
            client=client,
            src=src,
            now=now,
            mac=mac,
            decision=decision,
            match=match,
            method="mab",
            vendor=profiled,
        )

    def _policy_decide(
        self, mac: int, req: Request, client: Client, method: str, now: float
    ) -> tuple[Decision, VendorMatch | None, str | None]:
        """The policy's decision, the registry entry, and the manufacturer named by the
        device's profile when the decision rests on it (for history's vendor column)."""
        policy = self.policy
        family = self.profiles.get(mac) if self.profiles else None
        profiled = None
        if not policy.contextual and family is None:
            decision, match = policy.decide(mac)
        else:
            # Some rule is scoped or time-limited, or the device is profiled.
            codes = self.codes
            attrs = req.first
            ctx = Context(
                client.name,
                self.called.text(req),
                _port_type(codes, attrs.get(codes.nas_port_type)),
                method,
                now,
            )
            decision, match = policy.decide(mac, ctx, family)
            if family is not None:
                decision, profiled = apply_profile(
                    policy, decision, match, mac=mac, family=family, on_conflict=self.on_conflict
                )
        if client.vlan_ids_only and decision.vlan is not None:
            decision = refuse_vlan_name(decision, client=client.name, profile=client.profile)
        return decision, match, profiled

    def _password_matches(
        self, req: Request, attrs: dict[int, bytes], client: Client, spelled: bytes, mac: int
    ) -> bool:
        """MAB sends the MAC as the password (PAP) or CHAP secret, spelled as the attribute the
        MAC came from (``spelled``), or a fixed password the client's profile names; some
        gear sends neither."""
        codes = self.codes
        shape = client.mab
        if shape.check == "none":
            return True
        by_mac = shape.check != "fixed"
        fixed = shape.fixed if shape.check != "mac" else None
        hidden = attrs.get(codes.user_password)
        if hidden is not None:
            secret, authenticator = client.secret, req.authenticator
            if by_mac and hidden_password_is(hidden, secret, authenticator, spelled):
                return True
            if fixed is not None and hidden_password_is(hidden, secret, authenticator, fixed):
                return True
            if not by_mac:
                return False
            password = unhide_password(hidden, secret, authenticator)
            return password is not None and try_parse_mac(password.decode("latin-1")) == mac
        chap = attrs.get(codes.chap_password)
        if chap is not None:
            challenge = attrs.get(codes.chap_challenge, req.authenticator)
            return (by_mac and chap_matches(chap, challenge, spelled)) or (
                fixed is not None and chap_matches(chap, challenge, fixed)
            )
        return True

    def _body(self, decision: Decision, client: Client) -> bytes:
        timeout = self.policy.defaults.quarantine_session_timeout if decision.action == "quarantine" else None
        key = (decision, timeout, client.body_shape)  # the reply message mode and shape
        body = self._bodies.get(key)
        if body is None:
            body = decision_body(self.codes, decision, client, timeout)
            if len(self._bodies) > 4096:  # rule sets change; keep the memo bounded
                self._bodies.clear()
            self._bodies[key] = body
        return body

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
    ) -> HistoryRecord:
        codes = self.codes
        nas_port = attrs.get(codes.nas_port)
        port_type = attrs.get(codes.nas_port_type)
        prefix = bits = None
        if match is not None:
            vendor = match.organization
            prefix = match.prefix_text
            bits = match.prefix_bits
        host = src[0]
        # Positional, in HistoryRecord's field order, each field named beside it: by keyword the
        # record cost a tenth of the full-load rate (bench/README.md); a test holds every field
        # to the request by name.
        return _new(HistoryRecord, (
            now,  # ts
            format_mac(mac) if mac is not None else None,  # mac
            vendor,  # vendor
            prefix,  # prefix
            bits,  # prefix_bits
            decision.action,  # action
            decision.vlan,  # vlan
            decision.rule,  # rule
            decision.reason,  # reason
            client.name,  # client
            self._nas_ip(attrs, host),  # nas_ip
            method,  # method
            _text(attrs.get(codes.user_name)),  # user_name
            _text(attrs.get(codes.calling_station_id)),  # calling_station_id
            (  # called_station_id
                self.called.text(req)
                if codes.vendor_specific in attrs
                else _text(attrs.get(codes.called_station_id))
            ),
            # nas_port
            int.from_bytes(nas_port, "big") if nas_port is not None and len(nas_port) == 4 else None,
            _text(attrs.get(codes.nas_port_id)),  # nas_port_id
            _port_type(codes, port_type),  # nas_port_type
            _text(attrs.get(codes.nas_identifier)),  # nas_identifier
            f"{host}:{src[1]}" if ":" not in host else f"[{host}]:{src[1]}",  # src
            1 if req.ma_offset >= 0 else 0,  # message_authenticator
            _REPLY_CODE[decision.action],  # reply
            self.policy.snapshot_id,  # snapshot
        ))  # fmt: skip

    def _nas_ip(self, attrs: dict[int, bytes], host: str) -> str:
        raw = attrs.get(self.codes.nas_ip_address)
        if raw is not None and len(raw) == 4:
            # A deployment has a few hundred NAS addresses at most: each is formatted once, not
            # on every request.
            text = self._nas_ips.get(raw)
            if text is None:
                if len(self._nas_ips) >= NAS_IP_CACHE_MAX:
                    self._nas_ips.clear()
                text = self._nas_ips[raw] = f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
            return text
        raw6 = attrs.get(self.codes.nas_ipv6_address)
        if raw6 is not None and len(raw6) == 16:
            return str(IPv6Address(raw6))
        return host


def _port_type(codes: Codes, raw: bytes | None) -> str | None:
    if raw is None:
        return None
    number = int.from_bytes(raw, "big")
    return codes.nas_port_type_names.get(number, str(number))


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value is not None else None
