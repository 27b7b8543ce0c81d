"""Vendor-Specific attributes (RFC 2865 §5.26): a Vendor-Id, then the vendor's own
type-length-value sub-attributes.  Pure."""

from __future__ import annotations

from collections.abc import Iterable


def vendor_attribute(
    attributes: Iterable[tuple[int, bytes]], vendor_specific: int, wanted: tuple[int, int]
) -> bytes | None:
    """The first value of a vendor's attribute ``wanted`` = (vendor id, type): RFC 2865 §5.26's
    Vendor-Id, then type-length-value sub-attributes.  A malformed one is passed over."""
    vendor = wanted[0].to_bytes(4, "big")
    for code, value in attributes:
        if code == vendor_specific and value.startswith(vendor):
            found = sub_attributes(value[4:], wanted[1])
            if found:
                return found[0]
    return None


def sub_attributes(data: bytes, wanted: int) -> list[bytes]:
    """The values of every sub-attribute of type ``wanted`` in a Vendor-Specific's data after its
    Vendor-Id (RFC 2865 §5.26: type, length, value); the walk stops at a malformed one."""
    found, pos, end = [], 0, len(data)
    while pos + 2 <= end:
        kind, length = data[pos], data[pos + 1]
        if length < 2 or pos + length > end:
            break
        if kind == wanted:
            found.append(data[pos + 2 : pos + length])
        pos += length
    return found
