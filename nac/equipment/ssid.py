"""The SSID a wireless NAS names beside Called-Station-Id, folded into it.  Pure.

RFC 3580 §3.20 puts the SSID in Called-Station-Id as ``AP-MAC:SSID``; ArubaOS controllers (and
Instant APs) by default send their own MAC alone there and the SSID in Aruba-Essid-Name
(vendor 14823, attribute 5).  The SSID is joined into RFC 3580's form rather than kept in a
field of its own because every reader already takes it from that form: scoped rules
(``ssid_of``), history, the helpdesk, and simulations that replay history.
"""

from __future__ import annotations

from typing import Final

from nac.policy.decide import ssid_of
from nac.radius.packet import Codes, Request
from nac.radius.vsa import vendor_attribute

#: (Called-Station-Id, Aruba-Essid-Name) pairs kept joined: a site's controllers times its SSIDs.
CACHE_MAX: Final = 4096


class CalledStation:
    """Reads a request's Called-Station-Id, with the SSID from Aruba-Essid-Name when it has none."""

    def __init__(self, codes: Codes) -> None:
        self.codes = codes
        self._aruba = codes.aruba_essid_name[0].to_bytes(4, "big")
        self._joined: dict[tuple[bytes, bytes], str] = {}

    def text(self, req: Request) -> str | None:
        codes = self.codes
        attrs = req.first
        raw = attrs.get(codes.called_station_id)
        if raw is None:
            return None
        # Cisco switches send Cisco-AVPair in every request: a substring search of the packet
        # for Aruba's vendor id passes over them before any attribute is looked into.
        if codes.vendor_specific in attrs and self._aruba in req.data:
            essid = vendor_attribute(req.attributes, codes.vendor_specific, codes.aruba_essid_name)
            if essid:
                key = (raw, essid)
                text = self._joined.get(key)
                if text is None:
                    if len(self._joined) >= CACHE_MAX:
                        self._joined.clear()
                    called, ssid = raw.decode(errors="replace"), essid.decode(errors="replace")
                    text = self._joined[key] = with_ssid(called, ssid)
                return text
        return raw.decode(errors="replace")


def with_ssid(called: str, ssid: str) -> str:
    """``called`` with ``ssid`` as its SSID, unless it names one itself (which wins) or is not
    a MAC that RFC 3580's form can extend (an AP's name, say): then as sent."""
    own = ssid_of(called)
    if own:
        return called
    joined = f"{called}{ssid}" if own == "" else f"{called}:{ssid}"  # "": it ends in ':'
    return joined if ssid_of(joined) == ssid else called
