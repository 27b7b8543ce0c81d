"""Device-sensor data in RADIUS accounting: what the switch saw of the device, pure.

Cisco's Device Sensor (IOS/IOS-XE ``device-sensor accounting``) adds Cisco-AVPair values to
Accounting-Requests: ``dhcp-option=``, ``lldp-tlv=`` and ``cdp-tlv=``, each followed by one
TLV in binary, a 2-octet type and a 2-octet length (Cisco, "Device Sensor", IOS-XE Security
Configuration Guide).  The DHCP options map to the same fields as nac's own DHCP listener
reads, so the same signatures apply; LLDP's system description (TLV 6) and CDP's platform
(TLV 6) become ``lldp_description`` and ``cdp_platform``.  Aruba's Aruba-Device-Type (its
controllers' own classification) becomes ``device_type``.

Malformed values are skipped, not fatal: accounting is answered whatever its extras say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from nac.profiling.dhcp import (
    CLIENT_FQDN,
    HOST_NAME,
    MAX_TEXT,
    PARAMETER_LIST,
    USER_CLASS,
    VENDOR_CLASS,
    text_field,
)
from nac.radius.vsa import sub_attributes

if TYPE_CHECKING:
    from pyrad.dictionary import Dictionary

#: Device Sensor caps one TLV at 1,024 octets (Cisco's documented limit).
TLV_MAX: Final = 1024
_DHCP_FIELDS: Final = {
    HOST_NAME: "hostname",
    VENDOR_CLASS: "vendor_class",
    USER_CLASS: "user_class",
    CLIENT_FQDN: "fqdn",
}
LLDP_SYSTEM_DESCRIPTION: Final = 6  # IEEE 802.1AB §8.5.8
CDP_PLATFORM: Final = 6  # Cisco CDP TLV 0x0006, Platform


def sensor_fields(avpairs: Iterable[bytes], device_types: Iterable[bytes] = ()) -> dict[str, str]:
    """Identifying fields from Cisco-AVPair values (and Aruba-Device-Type values)."""
    fields: dict[str, str] = {}
    for raw in avpairs:
        name, sep, value = raw.partition(b"=")
        if not sep:
            continue
        tlv = _tlv(value)
        if tlv is None:
            continue
        kind, data = tlv
        if name == b"dhcp-option":
            if kind == PARAMETER_LIST and data:
                fields["fingerprint"] = ",".join(str(code) for code in data)
            elif kind in _DHCP_FIELDS:
                text = _value(kind, data)
                if text:
                    fields[_DHCP_FIELDS[kind]] = text
        elif name == b"lldp-tlv" and kind == LLDP_SYSTEM_DESCRIPTION:
            text = text_field(data)
            if text:
                fields["lldp_description"] = text
        elif name == b"cdp-tlv" and kind == CDP_PLATFORM:
            text = text_field(data)
            if text:
                fields["cdp_platform"] = text
    for raw in device_types:
        text = text_field(raw)
        if text:
            fields["device_type"] = text[:MAX_TEXT]
    return fields


def _tlv(value: bytes) -> tuple[int, bytes] | None:
    if len(value) < 4:
        return None
    kind = int.from_bytes(value[0:2], "big")
    length = int.from_bytes(value[2:4], "big")
    if length > TLV_MAX or 4 + length > len(value):
        return None
    return kind, value[4 : 4 + length]


def _value(kind: int, data: bytes) -> str | None:
    if kind == CLIENT_FQDN:  # flags and two rcodes first (RFC 4702), then an ASCII name
        return text_field(data[3:]) if len(data) > 3 else None
    return text_field(data)


@dataclass(frozen=True, kw_only=True)
class SensorCodes:
    """Where device-sensor data rides: Vendor-Specific (26) with these vendors and types,
    resolved by name from the dictionary."""

    vendor_specific: int
    cisco: int
    cisco_avpair: int
    aruba: int
    aruba_device_type: int

    @classmethod
    def from_dictionary(cls, dictionary: Dictionary) -> SensorCodes:
        def vsa(name: str) -> tuple[int, int]:
            attribute = dictionary.attributes[name]
            return int(dictionary.vendors.GetForward(attribute.vendor)), int(attribute.code)

        cisco, avpair = vsa("Cisco-AVPair")
        aruba, device_type = vsa("Aruba-Device-Type")
        return cls(
            vendor_specific=int(dictionary.attributes["Vendor-Specific"].code),
            cisco=cisco,
            cisco_avpair=avpair,
            aruba=aruba,
            aruba_device_type=device_type,
        )

    def fields(self, attributes: Iterable[tuple[int, bytes]]) -> dict[str, str]:
        """The identifying fields in a request's attributes (none: an empty dict)."""
        avpairs: list[bytes] = []
        device_types: list[bytes] = []
        for kind, value in attributes:
            if kind != self.vendor_specific or len(value) < 6:
                continue
            vendor = int.from_bytes(value[:4], "big")
            if vendor == self.cisco:
                avpairs += sub_attributes(value[4:], self.cisco_avpair)
            elif vendor == self.aruba:
                device_types += sub_attributes(value[4:], self.aruba_device_type)
        return sensor_fields(avpairs, device_types) if avpairs or device_types else {}
