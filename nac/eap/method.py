"""What an EAP method is to the conversation: a start, then one step per EAP-Response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nac.identity.query import DirectoryAnswer, DirectoryQuery


@dataclass(frozen=True, slots=True)
class Next:
    """Send an EAP-Request of the method's type with this Type-Data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    """The peer authenticated: who it is, and the MSK (RFC 3748 §7.10) for the Wi-Fi keys."""

    identity: str
    msk: bytes = field(repr=False)  # key material: never in a log line or a traceback
    #: What the directory said of the user (its entry and groups); None: nac's own users.
    directory: DirectoryAnswer | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The peer did not authenticate; ``reason`` lands in history and in Reply-Message."""

    reason: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """Ask the user directory before answering: the conversation waits (the server asks off
    the event loop) and goes on with ``resume(answer)``, which gives the next step."""

    query: DirectoryQuery
    resume: Callable[[DirectoryAnswer], Next | Done | Failed] = field(repr=False)


Step = Next | Done | Failed | Lookup


class Method(Protocol):
    name: str  # as history records it: "eap-tls", "peap", "ttls"
    eap_type: int

    def start(self) -> bytes:
        """Type-Data of the method's first EAP-Request."""
        ...

    def process(self, data: bytes) -> Step:
        """Type-Data of the peer's EAP-Response to the last request."""
        ...
