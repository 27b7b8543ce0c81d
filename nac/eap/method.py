"""What an EAP method is to the conversation: a start, then one step per EAP-Response."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Next:
    """Send an EAP-Request of the method's type with this Type-Data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    """The peer authenticated: who it is, and the MSK (RFC 3748 §7.10) for the Wi-Fi keys."""

    identity: str
    msk: bytes = field(repr=False)  # key material: never in a log line or a traceback


@dataclass(frozen=True, slots=True)
class Failed:
    """The peer did not authenticate; ``reason`` lands in history and in Reply-Message."""

    reason: str


Step = Next | Done | Failed


class Method(Protocol):
    name: str  # as history records it: "eap-tls", "peap", "ttls"
    eap_type: int

    def start(self) -> bytes:
        """Type-Data of the method's first EAP-Request."""
        ...

    def process(self, data: bytes) -> Step:
        """Type-Data of the peer's EAP-Response to the last request."""
        ...
