"""Sessions from accounting (RFC 2866): which device is on which port of which NAS, now.

Pure: an Accounting-Request's attributes become a :class:`SessionEvent`; the store applies
events to the sessions table in the same transaction as history, before the
Accounting-Response leaves (a NAS that got its response never resends what we lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from pyrad.dictionary import Dictionary

from nac.radius.vsa import sub_attributes
from nac.registry.mac import format_mac, try_parse_mac

#: A session with no accounting for this long has lost its Stop (NAS rebooted without
#: Accounting-On, a packet lost): it is marked stale, not active.  Interim updates usually
#: come every 5-15 minutes; a day without one is a lost session.
STALE_AFTER: Final = 24 * 3600.0
#: Cisco's session identity inside Cisco-AVPair; lower case as every Cisco NAS sends it.
AUDIT_SESSION_ID: Final = b"audit-session-id="
_STATUS: Final = {1: "start", 2: "stop", 3: "interim", 7: "accounting-on", 8: "accounting-off"}


class SessionEvent(NamedTuple):
    ts: float
    status: str  # start, interim, stop, accounting-on, accounting-off, or the number
    client: str
    nas_ip: str
    nas_identifier: str | None
    session_id: str | None
    mac: str | None
    user_name: str | None
    nas_port: int | None
    nas_port_id: str | None
    called_station_id: str | None
    calling_station_id: str | None
    framed_ip: str | None
    vlan: str | None
    session_time: int | None
    input_octets: int | None
    output_octets: int | None
    input_packets: int | None
    output_packets: int | None
    terminate_cause: str | None
    #: Cisco's Audit-Session-Id (Cisco-AVPair "audit-session-id=..."): what a Catalyst matches a
    #: CoA against first.
    audit_session_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class AccountingCodes:
    """Attribute numbers accounting uses, resolved by name from the dictionary."""

    status_type: int
    session_id: int
    session_time: int
    input_octets: int
    output_octets: int
    input_gigawords: int
    output_gigawords: int
    input_packets: int
    output_packets: int
    terminate_cause: int
    framed_ip: int
    tunnel_private_group_id: int
    user_name: int
    calling_station_id: int
    called_station_id: int
    nas_identifier: int
    nas_port: int
    nas_port_id: int
    vendor_specific: int
    cisco: int
    cisco_avpair: int
    terminate_causes: dict[int, str]

    @classmethod
    def from_dictionary(cls, dictionary: Dictionary) -> AccountingCodes:
        def code(name: str) -> int:
            return int(dictionary[name].code)

        causes = dictionary["Acct-Terminate-Cause"].values.forward
        return cls(
            status_type=code("Acct-Status-Type"),
            session_id=code("Acct-Session-Id"),
            session_time=code("Acct-Session-Time"),
            input_octets=code("Acct-Input-Octets"),
            output_octets=code("Acct-Output-Octets"),
            input_gigawords=code("Acct-Input-Gigawords"),
            output_gigawords=code("Acct-Output-Gigawords"),
            input_packets=code("Acct-Input-Packets"),
            output_packets=code("Acct-Output-Packets"),
            terminate_cause=code("Acct-Terminate-Cause"),
            framed_ip=code("Framed-IP-Address"),
            tunnel_private_group_id=code("Tunnel-Private-Group-Id"),
            user_name=code("User-Name"),
            calling_station_id=code("Calling-Station-Id"),
            called_station_id=code("Called-Station-Id"),
            nas_identifier=code("NAS-Identifier"),
            nas_port=code("NAS-Port"),
            nas_port_id=code("NAS-Port-Id"),
            vendor_specific=code("Vendor-Specific"),
            cisco=int(dictionary.vendors.GetForward(dictionary.attributes["Cisco-AVPair"].vendor)),
            cisco_avpair=code("Cisco-AVPair"),
            terminate_causes={int.from_bytes(v, "big"): k for k, v in causes.items()},
        )

    def event(
        self,
        attrs: dict[int, bytes],
        *,
        client: str,
        nas_ip: str,
        now: float,
        attributes: Iterable[tuple[int, bytes]] = (),
    ) -> SessionEvent:
        """The event an Accounting-Request describes: ``attrs`` holds the first of each
        attribute, ``attributes`` all of them (Vendor-Specific ones repeat)."""
        status_raw = _int(attrs.get(self.status_type))
        status = _STATUS.get(status_raw, str(status_raw)) if status_raw is not None else "unknown"
        calling = _text(attrs.get(self.calling_station_id))
        mac = try_parse_mac(calling) if calling is not None else None
        user = _text(attrs.get(self.user_name))
        if mac is None and user is not None:
            mac = try_parse_mac(user)  # MAB sessions carry the MAC as the user too
        cause = _int(attrs.get(self.terminate_cause))
        framed = attrs.get(self.framed_ip)
        vlan = attrs.get(self.tunnel_private_group_id)
        if vlan is not None and vlan[:1] and vlan[0] <= 0x1F:
            vlan = vlan[1:]  # RFC 2868 §3.6: a leading octet of 0x00-0x1F is the tag
        audit = self._audit_session_id(attributes) if self.vendor_specific in attrs else None
        return SessionEvent(
            ts=now,
            status=status,
            client=client,
            nas_ip=nas_ip,
            nas_identifier=_text(attrs.get(self.nas_identifier)),
            session_id=_text(attrs.get(self.session_id)),
            mac=format_mac(mac) if mac is not None else None,
            user_name=user,
            nas_port=_int(attrs.get(self.nas_port)),
            nas_port_id=_text(attrs.get(self.nas_port_id)),
            called_station_id=_text(attrs.get(self.called_station_id)),
            calling_station_id=calling,
            framed_ip=".".join(str(b) for b in framed) if framed is not None and len(framed) == 4 else None,
            vlan=vlan.decode(errors="replace") if vlan else None,
            session_time=_int(attrs.get(self.session_time)),
            input_octets=_octets(attrs.get(self.input_octets), attrs.get(self.input_gigawords)),
            output_octets=_octets(attrs.get(self.output_octets), attrs.get(self.output_gigawords)),
            input_packets=_int(attrs.get(self.input_packets)),
            output_packets=_int(attrs.get(self.output_packets)),
            terminate_cause=self.terminate_causes.get(cause, str(cause)) if cause is not None else None,
            audit_session_id=audit,
        )

    def _audit_session_id(self, attributes: Iterable[tuple[int, bytes]]) -> str | None:
        """The value of a Cisco-AVPair "audit-session-id=..."."""
        for kind, value in attributes:
            if kind != self.vendor_specific or int.from_bytes(value[:4], "big") != self.cisco:
                continue
            for pair in sub_attributes(value[4:], self.cisco_avpair):
                if pair.startswith(AUDIT_SESSION_ID):
                    return pair[len(AUDIT_SESSION_ID) :].decode(errors="replace") or None
        return None


def _int(raw: bytes | None) -> int | None:
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None


def _octets(low: bytes | None, high: bytes | None) -> int | None:
    """Acct-*-Octets with its Gigawords (RFC 2869 §5.1): the counters wrap at 2**32."""
    value = _int(low)
    if value is None:
        return None
    return value + ((_int(high) or 0) << 32)


def _text(raw: bytes | None) -> str | None:
    return raw.decode(errors="replace") if raw is not None else None
