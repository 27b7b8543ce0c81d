"""NAS clients: who may ask, with which secret, and how strictly (per-client relaxations)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from netaddr import AddrFormatError, IPAddress, IPNetwork

from nac.equipment.coa import DEFAULT_SESSION
from nac.equipment.mab import MabShape
from nac.equipment.reply import ReplyShape
from nac.errors import ConfigError
from nac.radius.crypto import HmacMd5

#: Resolved source addresses kept; a spoofed-source flood must not grow memory without bound.
CLIENT_CACHE_MAX: Final = 65536
#: What an Access-Reject's Reply-Message tells the NAS (nac/admission/engine.py `reply_message`).
REPLY_MESSAGE_MODES: Final = ("reason", "generic", "none")


@dataclass(frozen=True, kw_only=True)
class Client:
    name: str
    network: IPNetwork
    secret: bytes = field(repr=False)
    require_message_authenticator: bool = True
    coa_port: int = 3799
    #: How to ask this NAS to re-authorize a session: RFC 5176 Service-Type Authorize-Only,
    #: or Cisco's `subscriber:command=reauthenticate` AV-pair.
    reauth: str = "rfc5176"
    #: A VLAN change of a wired MAB device alone on its port bounces the port ("cisco":
    #: `subscriber:command=bounce-host-port`) so it asks DHCP again; "none": re-authorize only.
    bounce: str = "none"
    #: An RFC 5176 Disconnect-Request, or Cisco's `disable-host-port` ("cisco-port-shutdown").
    disconnect: str = "rfc5176"
    #: The identifying attributes Disconnect and CoA requests carry, when the session has them.
    coa_session: tuple[str, ...] = DEFAULT_SESSION
    #: Requests per second this client may send (a token bucket with a burst of one second's
    #: worth); beyond it requests are dropped and counted, and the NAS retries.  None: no limit.
    rate_limit: float | None = None
    #: Seconds an Access-Reject waits before it is sent (FreeRADIUS `reject_delay`), to slow a
    #: device or attacker that retries in a loop.  The delayed replies are bounded in number.
    reject_delay: float = 0.0
    #: Offer EAP-MD5 (weak: no server authentication, no keys) to this client's devices.
    eap_md5: bool = False
    #: Reply-Message on refusals: "reason" (the vendor decision's reason; authentication
    #: failures only "authentication failed"), "generic" (only "access denied" or
    #: "authentication failed") or "none".  History keeps the full reason in every case.
    reply_message: str = "reason"
    #: Decide MAB requests with neither User-Password nor CHAP-Password on the MAC alone
    #: (some switches send Call-Check without one).  Off: they are refused.
    allow_mab_without_password: bool = False
    #: The equipment profile (nac/data/equipment.toml) and the MAB shape it gives this client,
    #: with the client's own overrides.
    profile: str = "generic"
    mab: MabShape = field(default_factory=MabShape)
    #: How this NAS takes a decision's VLAN (tunnel attributes, a role), from the profile.
    reply: ReplyShape = field(default_factory=ReplyShape)
    key: HmacMd5 = field(init=False, repr=False, compare=False)
    #: The engine refuses a VLAN name for this client: its equipment takes VLAN ids only.
    vlan_ids_only: bool = field(init=False, repr=False, compare=False)
    #: What an Access-Accept's or -Reject's body depends on besides the decision, in one
    #: string: the engine's body cache key, whose hash a string keeps (a tuple recomputes it).
    body_shape: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ConfigError(f"client {self.name}: the secret is empty")
        if self.reply_message not in REPLY_MESSAGE_MODES:
            modes = ", ".join(REPLY_MESSAGE_MODES)
            raise ConfigError(f"client {self.name}: reply_message must be one of {modes}")
        object.__setattr__(self, "key", HmacMd5(self.secret))
        object.__setattr__(self, "vlan_ids_only", self.reply.ids_only)
        object.__setattr__(self, "body_shape", repr((self.reply_message, *self.reply)))


class ClientTable:
    """Source address → client; the most specific network wins (longest prefix)."""

    def __init__(self, clients: Iterable[Client]) -> None:
        self.clients = tuple(clients)
        self._ordered = sorted(self.clients, key=lambda c: -c.network.prefixlen)
        self.delays_rejects = any(c.reject_delay for c in self.clients)
        self._cache: dict[str, Client | None] = {}

    def __len__(self) -> int:
        return len(self.clients)

    def lookup(self, address: str) -> Client | None:
        try:
            return self._cache[address]
        except KeyError:
            pass
        client = self._resolve(address)
        if len(self._cache) >= CLIENT_CACHE_MAX:
            self._cache.clear()
        self._cache[address] = client
        return client

    def _resolve(self, address: str) -> Client | None:
        try:
            ip = IPAddress(address.partition("%")[0])
        except (AddrFormatError, ValueError):
            return None
        if ip.version == 6 and ip.is_ipv4_mapped():
            ip = ip.ipv4()
        for client in self._ordered:
            if client.network.version == ip.version and ip in client.network:
                return client
        return None


def parse_network(text: str, *, where: str) -> IPNetwork:
    try:
        return IPNetwork(text)
    except (AddrFormatError, ValueError, TypeError):
        raise ConfigError(f"{where}: {text!r} is not an IP address or CIDR") from None
