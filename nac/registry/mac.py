"""Strict MAC address parsing and formatting.

Only the spellings that real gear sends are accepted (RFC 3580 §3.20, Cisco, HPE, Huawei, H3C, D-Link):
``00-10-A4-23-19-C0`` (RFC 3580, H3C), ``00:10:a4:23:19:c0``, ``0010a42319c0`` (HPE/Aruba),
``0010.a423.19c0`` (Cisco), ``0010-a423-19c0`` (Huawei), ``0010a4-2319c0``.  Anything else —
five octets, one-digit groups, eleven digits, trailing junk, mixed separators — is refused:
netaddr's parser accepts ``00:11:22:33:44:5``, so it is not used here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from nac.errors import InvalidMacError

try:  # the C twin of try_parse_mac (setup.py builds it when it can)
    from nac import _speedups
except ImportError:  # pragma: no cover - an install without a C compiler
    _speedups = None  # type: ignore[assignment]

MAC_BITS: Final = 48
_H: Final = "[0-9A-Fa-f]"
_MAC_RE: Final = re.compile(
    rf"{_H}{{2}}([:-]){_H}{{2}}(?:\1{_H}{{2}}){{4}}"  # 00:10:a4:23:19:c0, 00-10-A4-23-19-C0
    rf"|{_H}{{12}}"  # 0010a42319c0
    rf"|{_H}{{4}}([.-]){_H}{{4}}\2{_H}{{4}}"  # 0010.a423.19c0, 0010-a423-19c0
    rf"|{_H}{{6}}-{_H}{{6}}"  # 0010a4-2319c0
)
_SEPARATORS: Final = str.maketrans("", "", ":-.")
#: I/G bit of the first octet (a MAC is written most significant octet first).
MULTICAST_BIT: Final = 1 << 40
#: U/L bit of the first octet.
LOCAL_BIT: Final = 1 << 41


def parse_mac(text: str) -> int:
    """Return the MAC in ``text`` as a 48-bit integer, or raise :class:`InvalidMacError`."""
    if _MAC_RE.fullmatch(text) is None:
        raise InvalidMacError(
            f"{text!r} is not a MAC address "
            "(expected 12 hex digits, e.g. 00:10:a4:23:19:c0, 00-10-A4-23-19-C0, "
            "0010a42319c0, 0010.a423.19c0, 0010-a423-19c0 or 0010a4-2319c0)"
        )
    return int(text.translate(_SEPARATORS), 16)


def try_parse_mac_py(text: str) -> int | None:
    """Like :func:`parse_mac` but ``None`` for anything that is not a MAC (hot path).
    :func:`try_parse_mac` is its C twin when nac._speedups is built."""
    if _MAC_RE.fullmatch(text) is None:
        return None
    return int(text.translate(_SEPARATORS), 16)


try_parse_mac: Final[Callable[[str], int | None]] = (
    _speedups.try_parse_mac if _speedups is not None else try_parse_mac_py
)


def format_mac(mac: int) -> str:
    """The canonical spelling nac stores and prints: lower case, colon separated."""
    return mac.to_bytes(6, "big").hex(":")


def is_multicast(mac: int) -> bool:
    """I/G bit of the first octet: a group address, never a station's own (IEEE 802 §8.2)."""
    return bool(mac & MULTICAST_BIT)


def is_randomized(mac: int) -> bool:
    """U/L bit set: locally administered, as randomized Wi-Fi MACs are; it names no vendor."""
    return bool(mac & LOCAL_BIT)
