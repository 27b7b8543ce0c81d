"""Who holds the EAP conversations in progress: at most a few per station and per NAS port,
so that one supplicant (or one port full of spoofed MACs) cannot fill the whole table.

A real supplicant runs one conversation at a time, and starting again (EAPOL-Start, a new
EAP-Identity) abandons the one before: hostapd keeps one EAP state machine per station, and
FreeRADIUS's eap `dedup_key = "%{Calling-Station-Id}"` deletes a station's older session as
soon as a new one begins.  So a new conversation from a station at its limit replaces that
station's oldest; a wired port at its limit refuses newcomers; the table's own cap
(FreeRADIUS's `max_sessions`) stays as the last line.

No I/O and no clock: ``now`` is passed in.  What the limits did is counted and summarised in
rate-limited notices that the server drains, logs and adds to its counters.
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address
from typing import Final, NamedTuple, TypeVar

from nac.registry.mac import format_mac

#: Conversations one Calling-Station-Id may hold.  One is what a supplicant uses; the second
#: lets a NAS that gives up on a slow answer and sends the Identity again as a new request
#: (RFC 5080 §2.2.2: new Identifier, so not a duplicate) carry on with whichever reply it got.
MAX_PER_STATION: Final = 2
#: Conversations one wired NAS port may hold.  IEEE 802.1X authenticates a port; a switch in
#: multi-domain mode puts a phone and a PC on it, in multi-auth mode a few hosts behind a
#: phone or a small switch.  Eight starting at once after a power cut still fit; beyond that a
#: port is someone minting MACs, and refusing them keeps the rest of the network authenticating.
MAX_PER_PORT: Final = 8
#: RFC 2865 §5.41 NAS-Port-Type Ethernet, which RFC 3580 §3.16 gives for IEEE 802 wired ports.
#: Only there is a NAS port one physical port: an 802.11 association is its own virtual port,
#: and a wireless controller sends one NAS-Port for every station it serves.
NAS_PORT_TYPE_ETHERNET: Final = 15
#: One notice per kind per interval, with a count of those folded into it, like the server's
#: dropped-packet lines: a flood of thousands a second still logs a line every ten seconds.
NOTICE_INTERVAL: Final = 10.0

REPLACED: Final = "eap:replaced:station"
REFUSED_PORT: Final = "eap:refused:port"
REFUSED_TABLE: Final = "eap:refused:table"

_K = TypeVar("_K", int, str)


class Admission(NamedTuple):
    """May a conversation start: the State of the station's conversation it replaces (if any),
    or why it is refused (the reason an Access-Reject gives)."""

    replaces: bytes | None
    refused: str | None


class Notice(NamedTuple):
    severity: str  # "info" or "warning", for the server's log
    text: str


def port_key(
    *,
    nas: str,
    nas_identifier: bytes | None,
    nas_ip: bytes | None,
    nas_port: bytes | None,
    nas_port_id: bytes | None,
    port_type: bytes | None,
) -> str | None:
    """One wired NAS port, as the log names it; None when the request names no wired port.

    ``nas`` is the client's name and address; NAS-Identifier or NAS-IP-Address tells the
    NASes behind one client (a subnet of switches, a proxy) apart."""
    if port_type is None or int.from_bytes(port_type, "big") != NAS_PORT_TYPE_ETHERNET:
        return None
    if nas_port is None and nas_port_id is None:
        return None
    name = nas
    if nas_identifier is not None:
        name += " " + _text(nas_identifier)
    elif nas_ip is not None and len(nas_ip) == 4:
        name += " " + str(IPv4Address(nas_ip))
    number = str(int.from_bytes(nas_port, "big")) if nas_port is not None else ""
    if nas_port_id is None:
        return f"{name} port {number}"
    return f"{name} port {_text(nas_port_id)}" + (f" ({number})" if number else "")


class ConversationIndex:
    """The States each station and each wired NAS port holds, oldest first.

    :class:`~nac.eap.eap.EapServer` asks :meth:`admit` before it starts a conversation and
    tells :meth:`add` and :meth:`remove` when one starts and ends; both maps hold only live
    conversations, so they stay within the table's own cap."""

    def __init__(self) -> None:
        self._stations: dict[int, list[bytes]] = {}
        self._ports: dict[str, list[bytes]] = {}
        #: REPLACED, REFUSED_PORT, REFUSED_TABLE: counts since the last :meth:`drain`.
        self.counters: Counter[str] = Counter()
        self._notices: list[Notice] = []
        self._noticed: dict[str, tuple[float, int]] = {}  # kind -> (last notice, folded since)

    def on_station(self, mac: int) -> int:
        """Conversations the station ``mac`` holds now."""
        return len(self._stations.get(mac, ()))

    def on_port(self, port: str) -> int:
        """Conversations the wired port ``port`` holds now."""
        return len(self._ports.get(port, ()))

    def admit(self, *, mac: int, port: str | None, total: int, cap: int, now: float) -> Admission:
        """Whether the station ``mac`` on ``port`` may start a conversation, with ``total`` in
        progress against a table ``cap``.  Counts and notes what it decides.

        A station at its own limit, or one that starts over on a full port or in a full table,
        gives up its oldest conversation (on that port, for a full port): a supplicant that
        restarts is never refused because of conversations it has itself abandoned."""
        mine = self._stations.get(mac, [])
        replaces = mine[0] if len(mine) >= MAX_PER_STATION else None
        if port is not None:
            on_port = self._ports.get(port, [])
            if len(on_port) - (replaces in on_port) >= MAX_PER_PORT:
                replaces = next((state for state in mine if state in on_port), None)
                if replaces is None:
                    self._note(
                        REFUSED_PORT,
                        "warning",
                        f"EAP: refused a conversation from {format_mac(mac)}: {port} already "
                        f"has {len(on_port)} in progress (limit {MAX_PER_PORT})",
                        now,
                    )
                    return Admission(replaces=None, refused="too many EAP conversations on this NAS port")
        if replaces is None and total >= cap:
            if not mine:
                self._note(
                    REFUSED_TABLE,
                    "warning",
                    f"EAP: refused a conversation from {format_mac(mac)}: {total} in progress, "
                    f"the server's limit",
                    now,
                )
                return Admission(replaces=None, refused="too many EAP conversations in progress")
            replaces = mine[0]
        if replaces is not None:
            self._note(
                REPLACED,
                "info",
                f"EAP: {format_mac(mac)} started over; an earlier conversation of its own was "
                f"dropped (limit {MAX_PER_STATION} a station, {MAX_PER_PORT} a wired port)",
                now,
            )
        return Admission(replaces=replaces, refused=None)

    def add(self, state: bytes, *, mac: int, port: str | None) -> None:
        self._stations.setdefault(mac, []).append(state)
        if port is not None:
            self._ports.setdefault(port, []).append(state)

    def remove(self, state: bytes, *, mac: int, port: str | None) -> None:
        _take(self._stations, mac, state)
        if port is not None:
            _take(self._ports, port, state)

    @property
    def pending(self) -> bool:
        """Whether there is anything for :meth:`drain`."""
        return bool(self.counters or self._notices)

    def drain(self) -> tuple[Counter[str], list[Notice]]:
        """The counts and notices since the last call, for the server to count and log."""
        counts, notices = self.counters, self._notices
        self.counters, self._notices = Counter(), []
        return counts, notices

    def _note(self, kind: str, severity: str, text: str, now: float) -> None:
        self.counters[kind] += 1
        last = self._noticed.get(kind)
        if last is not None and now - last[0] < NOTICE_INTERVAL:
            self._noticed[kind] = (last[0], last[1] + 1)
            return
        if last is not None and last[1]:
            text += f" ({last[1]} more since the last line)"
        self._notices.append(Notice(severity=severity, text=text))
        self._noticed[kind] = (now, 0)


def _take(index: dict[_K, list[bytes]], key: _K, state: bytes) -> None:
    held = index.get(key)
    if held is None or state not in held:
        return
    held.remove(state)
    if not held:
        del index[key]


def _text(raw: bytes) -> str:
    # Text from the NAS goes into log lines: control characters are shown escaped.
    text = raw.decode(errors="replace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
