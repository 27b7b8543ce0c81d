"""An Access-Request that waits for the user directory (LDAP): what the engine needs to answer
it once the answer comes (nac/admission/engine.py ``resume``), kept by the server meanwhile.
Pure values: the core asks nothing itself."""

from __future__ import annotations

from typing import NamedTuple

from nac.equipment.clients import Client
from nac.identity.query import DirectoryQuery
from nac.policy.decide import Decision
from nac.radius.packet import Request
from nac.registry.oui import VendorMatch


class EapRound(NamedTuple):
    """One EAP round's request and the vendor decision already made for its device, which
    stands whatever the directory says."""

    req: Request
    client: Client
    src: tuple[str, int]
    key: tuple[int, str, int, int]  # the duplicate cache's: a retransmission meanwhile waits
    mac: int
    decision: Decision
    match: VendorMatch | None
    profiled: str | None  # the manufacturer a device profile named, for history


class Paused(NamedTuple):
    """A round whose EAP conversation (``state``) waits for the answer to ``query``."""

    query: DirectoryQuery
    state: bytes
    round: EapRound
