"""nac.mac: the MAC spellings real gear sends (PROTOCOL.md, "MAB"), and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nac.errors import InvalidMacError
from nac.registry.mac import format_mac, is_multicast, is_randomized, parse_mac, try_parse_mac

MAC = 0x0010A42319C0

# Every spelling PROTOCOL.md lists, with the gear that sends it.
SPELLINGS = [
    ("00-10-A4-23-19-C0", "RFC 3580, H3C/Comware"),
    ("00:10:a4:23:19:c0", "colon, lower case"),
    ("0010a42319c0", "HPE/Aruba"),
    ("0010.a423.19c0", "Cisco, D-Link"),
    ("0010-a423-19c0", "Huawei switches"),
    ("0010a4-2319c0", "two halves"),
]


@pytest.mark.parametrize("case", ["upper", "lower"])
@pytest.mark.parametrize(("text", "gear"), SPELLINGS)
def test_parse_mac_accepts_every_spelling(text: str, gear: str, case: str) -> None:
    spelled = text.upper() if case == "upper" else text.lower()
    assert parse_mac(spelled) == MAC, gear
    assert try_parse_mac(spelled) == MAC, gear


INVALID = [
    ("", "empty"),
    ("00:10:a4:23:19", "five octets"),
    ("00-10-A4-23-19", "five octets, dashes"),
    ("00:10:a4:23:19:c0:00", "seven octets"),
    ("0:10:a4:23:19:c0", "one-digit group"),
    ("00:10:a4:23:19:c", "one-digit last group"),
    ("0:1:a4:23:19:c0", "several one-digit groups"),
    ("0010a42319c", "eleven digits"),
    ("0010a42319c00", "thirteen digits"),
    ("00:10:a4:23:19:c0x", "trailing junk"),
    ("00:10:a4:23:19:c0\n", "trailing newline"),
    ("00:10:a4:23:19:c0 ", "trailing space"),
    (" 00:10:a4:23:19:c0", "leading space"),
    ("00:10:a4:23:19:c0\x00", "trailing NUL"),
    ("00:10-a4:23:19:c0", "mixed separators, octets"),
    ("00-10-a4-23-19:c0", "mixed separators at the end"),
    ("0010.a423-19c0", "mixed separators, Cisco/Huawei"),
    ("0010-a423.19c0", "mixed separators, Huawei/Cisco"),
    ("0x0010a42319c0", "0x prefix"),
    ("0x10a42319c0", "0x prefix, 12 characters"),
    ("+010a42319c0", "sign that int() accepts"),
    ("-010a42319c0", "minus sign"),
    ("0010_a423_19c0", "underscores that int() accepts"),
    ("00_10_a4_23_19_c0", "underscore separators"),
    ("0010a423_19c0", "one underscore"),
    ("00.10.a4.23.19.c0", "dots between octets"),
    ("0010a4:2319c0", "halves with a colon"),
    ("0010a4.2319c0", "halves with a dot"),
    ("001:0a4:231:9c0", "groups of three"),
    ("g010a42319c0", "not hex"),
    ("00:10:a4:23:19:cg", "not hex at the end"),
    ("\u0660\u06600010a42319", "Arabic-Indic digits that int() accepts"),
    ("\uff10\uff10" + "10a42319c0", "full-width digits that int() accepts"),
    ("00:10:a4:23:19:c0/48", "a prefix length"),
    ("00 10 a4 23 19 c0", "spaces"),
]


@pytest.mark.parametrize(("text", "why"), INVALID)
def test_parse_mac_refuses_other_spellings(text: str, why: str) -> None:
    with pytest.raises(InvalidMacError):
        parse_mac(text)
    assert try_parse_mac(text) is None, why


def test_parse_mac_error_is_clear_and_a_value_error() -> None:
    with pytest.raises(ValueError, match="is not a MAC address") as info:
        parse_mac("00:10:a4:23:19")
    assert "00:10:a4:23:19" in str(info.value)


@pytest.mark.parametrize(
    ("mac", "text"),
    [
        (MAC, "00:10:a4:23:19:c0"),
        (0, "00:00:00:00:00:00"),
        (0xFFFFFFFFFFFF, "ff:ff:ff:ff:ff:ff"),
        (0x0A0B0C0D0E0F, "0a:0b:0c:0d:0e:0f"),
        (0x70B3D5001ABC, "70:b3:d5:00:1a:bc"),
    ],
)
def test_format_mac_is_canonical(mac: int, text: str) -> None:
    assert format_mac(mac) == text
    assert parse_mac(text) == mac


# Second hex digit of the first octet → (multicast, locally administered / randomized).
FIRST_OCTET_BITS = [
    ("0", False, False),
    ("1", True, False),
    ("2", False, True),
    ("3", True, True),
    ("4", False, False),
    ("5", True, False),
    ("6", False, True),
    ("7", True, True),
    ("8", False, False),
    ("9", True, False),
    ("A", False, True),
    ("B", True, True),
    ("C", False, False),
    ("D", True, False),
    ("E", False, True),
    ("F", True, True),
]


@pytest.mark.parametrize(("digit", "multicast", "randomized"), FIRST_OCTET_BITS)
def test_mac_bits_of_first_octet(digit: str, multicast: bool, randomized: bool) -> None:
    for first in "0", "7", "F":
        mac = parse_mac(f"{first}{digit}:10:A4:23:19:C0")
        assert is_multicast(mac) is multicast
        assert is_randomized(mac) is randomized


@pytest.mark.parametrize(
    "text", ["02:00:00:00:00:01", "da:a1:19:00:00:01", "06-10-A4-23-19-C0", "ae10.a423.19c0"]
)
def test_is_randomized_for_unicast_local_macs(text: str) -> None:
    mac = parse_mac(text)
    assert is_randomized(mac)
    assert not is_multicast(mac)


@pytest.mark.parametrize("text", ["00:10:a4:23:19:c0", "01:10:a4:23:19:c0", "ff:ff:ff:ff:ff:fe"])
def test_is_randomized_bit_is_only_the_ul_bit(text: str) -> None:
    # ff:.. has the U/L bit set too: the check is a bit test, not a table of digits.
    assert is_randomized(parse_mac(text)) is bool(int(text[:2], 16) & 2)


macs = st.integers(min_value=0, max_value=(1 << 48) - 1)


def _spellings(mac: int) -> list[str]:
    h = f"{mac:012x}"
    return [
        "-".join(h[i : i + 2] for i in range(0, 12, 2)).upper(),
        format_mac(mac),
        h,
        ".".join(h[i : i + 4] for i in range(0, 12, 4)),
        "-".join(h[i : i + 4] for i in range(0, 12, 4)),
        f"{h[:6]}-{h[6:]}",
    ]


@given(macs)
def test_parse_mac_round_trips_every_spelling(mac: int) -> None:
    for text in _spellings(mac):
        assert parse_mac(text) == mac
        assert parse_mac(text.upper()) == mac
    assert format_mac(parse_mac(format_mac(mac))) == format_mac(mac)


@given(st.text(max_size=20))
def test_try_parse_mac_agrees_with_parse_mac(text: str) -> None:
    try:
        expected: int | None = parse_mac(text)
    except InvalidMacError:
        expected = None
    assert try_parse_mac(text) == expected
    if expected is not None:
        assert 0 <= expected < 1 << 48
