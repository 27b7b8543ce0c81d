"""DHCP client messages read for profiling, and signatures applied to them: in memory.

Every malformed class is a row; the well-formed messages are built the way the clients send
them (RFC 2131 §2 header, RFC 2132 options, RFC 3396 split options, RFC 4702 FQDN).
"""

from __future__ import annotations

import struct

import pytest

from nac.errors import PacketError, PolicyError
from nac.profiling.dhcp import COOKIE, MAX_SIZE, REASONS, parse
from nac.profiling.signatures import Signature, identify, load_signatures, parse_signatures

MAC = bytes.fromhex("dac0ffee0001")  # locally administered: a randomized phone MAC


def option(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def message(
    *options: bytes,
    op: int = 1,
    htype: int = 1,
    hlen: int = 6,
    mac: bytes = MAC,
    giaddr: bytes = bytes(4),
    cookie: bytes = COOKIE,
    end: bytes = b"\xff",
    file: bytes = bytes(128),
    sname: bytes = bytes(64),
) -> bytes:
    header = struct.pack("!BBBBIHH", op, htype, hlen, 0, 0x1234, 0, 0) + bytes(12) + giaddr
    header += mac.ljust(16, b"\x00") + sname + file
    return header + cookie + b"".join(options) + end


DISCOVER = option(53, b"\x01")
HUAWEI_DISCOVER = message(
    DISCOVER,
    option(55, bytes((1, 3, 6, 15, 26, 28, 51, 58, 59, 43))),
    option(60, b"HUAWEI:android:VOG-L29"),
    option(12, b"HUAWEI_P30_Pro-1a2b"),
    option(81, b"\x00\x00\x00HUAWEI_P30_Pro-1a2b"),
    giaddr=bytes((10, 1, 0, 1)),
)


def test_parse_reads_every_identifying_field() -> None:
    info = parse(HUAWEI_DISCOVER)
    assert info.mac == int.from_bytes(MAC, "big")
    assert info.message == "discover"
    assert info.relay == "10.1.0.1"
    assert info.vendor_class == "HUAWEI:android:VOG-L29"
    assert info.hostname == "HUAWEI_P30_Pro-1a2b"
    assert info.fqdn == "HUAWEI_P30_Pro-1a2b"
    assert info.fingerprint == "1,3,6,15,26,28,51,58,59,43"
    assert info.fields() == {
        "vendor_class": "HUAWEI:android:VOG-L29",
        "hostname": "HUAWEI_P30_Pro-1a2b",
        "fqdn": "HUAWEI_P30_Pro-1a2b",
        "fingerprint": "1,3,6,15,26,28,51,58,59,43",
    }


def test_split_option_is_joined_and_padding_skipped() -> None:
    data = message(DISCOVER, b"\x00\x00", option(60, b"HUAWEI:andr"), b"\x00", option(60, b"oid:ELE-L29"))
    assert parse(data).vendor_class == "HUAWEI:android:ELE-L29"


def test_overloaded_file_field_is_read() -> None:
    file = (option(12, b"in-the-file-field") + b"\xff").ljust(128, b"\x00")
    data = message(DISCOVER, option(52, b"\x01"), file=file)
    assert parse(data).hostname == "in-the-file-field"


def test_user_class_instances_and_plain_strings() -> None:
    rfc3004 = option(77, b"\x03abc\x02de")
    assert parse(message(DISCOVER, rfc3004)).user_class == "abc,de"
    windows = option(77, b"MSFT 5.0 corp")
    assert parse(message(DISCOVER, windows)).user_class == "MSFT 5.0 corp"


def test_fqdn_in_dns_wire_format() -> None:
    wire = b"\x04\x00\x00" + b"\x05phone\x07example\x03org\x00"
    assert parse(message(DISCOVER, option(81, wire))).fqdn == "phone.example.org"


def test_text_is_cleaned_for_logs_and_pages() -> None:
    data = message(DISCOVER, option(12, b"bad\x1b[31mname\x00junk"))
    assert parse(data).hostname == "bad\ufffd[31mname"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too-short"),
        (HUAWEI_DISCOVER[:240], "too-short"),
        (message(DISCOVER, option(12, b"x" * 200) * 7), "too-large"),
        (message(DISCOVER, op=2), "not-a-request"),
        (message(DISCOVER, htype=6), "not-ethernet"),
        (message(DISCOVER, hlen=8), "not-ethernet"),
        (message(DISCOVER, cookie=b"\x00\x00\x00\x00"), "not-dhcp"),
        (message(DISCOVER, b"\x0c\x10abc", end=b""), "option-overrun"),
        (message(DISCOVER, b"\x0c", end=b""), "option-overrun"),
        (message(DISCOVER, end=b""), "no-end"),
        (message(option(12, b"x")), "no-message-type"),
        (message(option(53, b"")), "bad-message-type"),
        (message(option(53, b"\x01\x01")), "bad-message-type"),
        (message(option(53, b"\x63")), "bad-message-type"),
        (message(option(53, b"\x02")), "not-from-client"),  # an OFFER
        (message(option(53, b"\x05")), "not-from-client"),  # an ACK
        (message(DISCOVER, mac=bytes(6)), "bad-mac"),
        (message(DISCOVER, mac=bytes.fromhex("01005e000001")), "bad-mac"),
    ],
)
def test_malformed_messages_are_refused_with_a_stable_reason(data: bytes, reason: str) -> None:
    assert reason in REASONS
    with pytest.raises(PacketError) as caught:
        parse(data)
    assert caught.value.reason == reason


def test_size_limit_is_the_ethernet_mtu() -> None:
    assert len(message(DISCOVER, option(12, b"x" * 200) * 7)) > MAX_SIZE


def test_every_truncation_of_a_message_is_refused_not_crashed() -> None:
    for cut in range(len(HUAWEI_DISCOVER)):
        with pytest.raises(PacketError):
            parse(HUAWEI_DISCOVER[:cut])


# -- signatures ----------------------------------------------------------------------------


def sig(family: str, field: str, pattern: str, strength: str) -> Signature:
    return Signature(family=family, field=field, pattern=pattern, strength=strength)


def test_shipped_strong_signature_identifies_a_huawei_phone() -> None:
    identity = identify(parse(HUAWEI_DISCOVER).fields(), load_signatures())
    assert identity.family == "huawei"
    assert not identity.ambiguous
    assert "vendor_class 'HUAWEI:android:VOG-L29'" in identity.summary()


def test_weak_signature_alone_decides_nothing() -> None:
    identity = identify({"hostname": "HUAWEI_P30"}, load_signatures())
    assert identity.family is None
    assert [e.family for e in identity.evidence] == ["huawei"]


def test_weak_signals_of_one_kind_do_not_support_each_other() -> None:
    weak = [sig("huawei", "hostname", "huawei*", "weak"), sig("huawei", "fqdn", "huawei*", "weak")]
    assert identify({"hostname": "huawei-1", "fqdn": "huawei-1.lan"}, weak).family is None


def test_weak_signals_of_two_kinds_decide_unless_another_family_matches() -> None:
    weak = [
        sig("huawei", "hostname", "huawei*", "weak"),
        sig("huawei", "fingerprint", "1,3,6,15,26,28,51,58,59,43", "weak"),
        sig("xiaomi", "vendor_class", "*mi*", "weak"),
    ]
    fields = {"hostname": "huawei-1", "fingerprint": "1,3,6,15,26,28,51,58,59,43"}
    assert identify(fields, weak).family == "huawei"
    assert identify({**fields, "vendor_class": "miui"}, weak).family is None


def test_strong_signatures_of_two_families_are_ambiguous() -> None:
    strong = [sig("huawei", "vendor_class", "x*", "strong"), sig("honor", "hostname", "y*", "strong")]
    identity = identify({"vendor_class": "x1", "hostname": "y1"}, strong)
    assert (identity.family, identity.ambiguous) == (None, True)


def test_android_default_vendor_class_names_no_manufacturer() -> None:
    assert identify({"vendor_class": "android-dhcp-13"}, load_signatures()).family is None


HEAD = '[[signature]]\nfamily = "huawei"\n'


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        (HEAD + 'field = "mac"\npattern = "x"\nstrength = "strong"', "field"),
        (HEAD + 'field = "hostname"\npattern = "x"\nstrength = "sure"', "strength"),
        (HEAD + 'field = "hostname"\npattern = "**"\nstrength = "weak"', "wildcards"),
        (HEAD + 'field = "hostname"\nstrength = "weak"', "missing pattern"),
        (HEAD + 'field = "hostname"\npattern = "x"\nstrength = "weak"\nx = "y"', "unknown"),
        ('[sig]\nfamily = "huawei"', "unknown table"),
        ("[[signature]\n", "sig.toml"),
    ],
)
def test_broken_signature_file_names_file_entry_and_setting(text: str, message_part: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_signatures(text, origin="sig.toml")
    assert message_part in str(caught.value)
    assert "sig.toml" in str(caught.value)


def test_apple_phone_is_known_by_fingerprint_and_name_together() -> None:
    fingerprint = "1,121,3,6,15,108,114,119,252"
    signatures = load_signatures()
    assert identify({"fingerprint": fingerprint, "hostname": "Alices-iPhone"}, signatures).family == "apple"
    assert identify({"fingerprint": fingerprint}, signatures).family is None
    assert identify({"fingerprint": fingerprint + ",95,44,46"}, signatures).family is None  # a Mac
