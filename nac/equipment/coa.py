"""How each family of NAS takes a Disconnect or a re-authorization (RFC 5176), and which
attributes it needs to find the session: the profile's `coa` table, decided per job.  Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from nac.errors import ConfigError
from nac.radius.packet import COA_REQUEST, DISCONNECT_REQUEST

# What a profile without `session` sends, and Cisco's re-authorization command.
from nac.radius.packet import DEFAULT_SESSION as DEFAULT_SESSION  # noqa: PLC0414 - re-exported
from nac.radius.packet import REAUTHENTICATE as REAUTHENTICATE  # noqa: PLC0414 - re-exported
from nac.registry.mac import format_mac, try_parse_mac

#: How a re-authorization is spelled: RFC 5176 §3.1 Service-Type Authorize-Only, Cisco's
#: `subscriber:command=reauthenticate` AV-pair, or a Disconnect-Request for a NAS that takes no
#: CoA-Request (the device authenticates again and gets the new decision).
REAUTH: Final = ("rfc5176", "cisco", "disconnect")
#: How a port bounce is spelled: Cisco's `subscriber:command=bounce-host-port`, or none.
BOUNCE: Final = ("none", "cisco")
#: How a device is put off the network: an RFC 5176 Disconnect-Request, or Cisco's
#: `subscriber:command=disable-host-port` CoA (the port stays shut until an operator opens it).
DISCONNECT: Final = ("rfc5176", "cisco-port-shutdown")
#: The identifying attributes a request may carry (RFC 5176 §3: NAS identification, then
#: session identification), in the order they are written.  "NAS-IP-Address" stands for
#: NAS-IPv6-Address when the NAS is reached over IPv6; "Cisco-Audit-Session-Id" is the
#: Cisco-AVPair "audit-session-id=..." that the session's accounting carried.
SESSION_ATTRIBUTES: Final = (
    "NAS-IP-Address",
    "NAS-Identifier",
    "User-Name",
    "Calling-Station-Id",
    "Called-Station-Id",
    "NAS-Port",
    "Acct-Session-Id",
    "Cisco-Audit-Session-Id",
)
#: Cisco AV-pair commands (Cisco IOS-XE "RADIUS Change of Authorization": CoA Request commands).
BOUNCE_HOST_PORT: Final = "bounce-host-port"
DISABLE_HOST_PORT: Final = "disable-host-port"


class Plan(NamedTuple):
    """What to send for one queued job: a Disconnect-Request (40) or a CoA-Request (43), and
    the Cisco command it carries (None: the RFC 5176 spelling)."""

    code: int
    command: str | None


def check_session(value: Any, *, where: str) -> tuple[str, ...]:
    """A `session` list: known names, none twice, at least one that identifies a session."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: session is a list of attribute names")
    unknown = [v for v in value if v not in SESSION_ATTRIBUTES]
    if unknown:
        raise ConfigError(
            f"{where}: session: unknown {', '.join(unknown)} (known: {', '.join(SESSION_ATTRIBUTES)})"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: session names an attribute twice")
    if not set(value) - {"NAS-IP-Address", "NAS-Identifier"}:
        # RFC 5176 §3: the NAS must be able to tell which session; NAS identification alone
        # names every session on it.
        raise ConfigError(f"{where}: session needs a session identification attribute, not only the NAS's")
    return tuple(name for name in SESSION_ATTRIBUTES if name in value)


def wants_bounce(job: Mapping[str, Any]) -> bool:
    """Whether a re-authorization should bounce the port instead: a VLAN change, on a wired
    port, for a MAB device, alone on its port.

    A MAB device (a printer, a camera) has no supplicant to notice a re-authorization, so it
    keeps its old address in the new VLAN; a link flap makes it ask DHCP again (Cisco calls the
    bounce a last resort for exactly this case).  The flap cuts every host on the port, so a port
    with another active session (a phone with a PC behind it), or an unknown port, gets the
    re-authorization (as Cisco ISE does).  Wireless sessions (RFC 3580 §3.20: Called-Station-Id
    ends in ":SSID") have no port to bounce.
    """
    if not job.get("vlan_change"):
        return False
    called = job.get("called_station_id") or ""
    if try_parse_mac(called) is None and called:
        return False  # "MAC:SSID": wireless
    user = job.get("user_name")
    user_mac = try_parse_mac(user) if user else None
    if user_mac is None or format_mac(user_mac) != job.get("mac"):
        # 802.1X (or unknown): a supplicant renews its address after re-authentication.
        return False
    if job.get("nas_port") is None and job.get("nas_port_id") is None:
        return False
    return int(job.get("port_sessions") or 0) == 1


def plan(kind: str, *, reauth: str, bounce: str, disconnect: str, job: Mapping[str, Any]) -> Plan:
    """The request for a queued "disconnect" or "reauth" job under a client's spelling."""
    if kind == "disconnect":
        if disconnect == "cisco-port-shutdown":
            return Plan(COA_REQUEST, DISABLE_HOST_PORT)
        return Plan(DISCONNECT_REQUEST, None)
    if reauth == "disconnect":
        return Plan(DISCONNECT_REQUEST, None)
    if bounce == "cisco" and wants_bounce(job):
        return Plan(COA_REQUEST, BOUNCE_HOST_PORT)
    return Plan(COA_REQUEST, REAUTHENTICATE if reauth == "cisco" else None)
