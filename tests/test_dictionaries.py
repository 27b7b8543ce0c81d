"""Tests of the RADIUS dictionaries in dictionaries/.

The root file dictionaries/dictionary is loaded with pyrad, the way the
server loads it, and the codes, types, flags and named values of the
attributes the server uses are checked against the RFCs.  The files are
also parsed here directly, to check that every file is reachable from the
root file and that no name is defined twice with different numbers (pyrad
silently lets the last definition win).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pyrad import packet, tools
from pyrad.dictionary import Dictionary

DICT_DIR = Path(__file__).parent.parent / "dictionaries"
ROOT = DICT_DIR / "dictionary"

# Vendor-Ids (SMI Network Management Private Enterprise Codes)
MICROSOFT = 311
CISCO = 9
ARUBA = 14823

# (name, code, data type, vendor id; 0 for a standard attribute)
ATTRIBUTES = [
    # RFC 2865
    ("User-Name", 1, "string", 0),
    ("User-Password", 2, "string", 0),
    ("CHAP-Password", 3, "octets", 0),
    ("NAS-IP-Address", 4, "ipaddr", 0),
    ("NAS-Port", 5, "integer", 0),
    ("Service-Type", 6, "integer", 0),
    ("Filter-Id", 11, "string", 0),
    ("Reply-Message", 18, "string", 0),
    ("State", 24, "octets", 0),
    ("Class", 25, "octets", 0),
    ("Vendor-Specific", 26, "octets", 0),
    ("Session-Timeout", 27, "integer", 0),
    ("Idle-Timeout", 28, "integer", 0),
    ("Termination-Action", 29, "integer", 0),
    ("Called-Station-Id", 30, "string", 0),
    ("Calling-Station-Id", 31, "string", 0),
    ("NAS-Identifier", 32, "string", 0),
    ("Proxy-State", 33, "octets", 0),
    ("CHAP-Challenge", 60, "octets", 0),
    ("NAS-Port-Type", 61, "integer", 0),
    ("Port-Limit", 62, "integer", 0),
    ("Login-LAT-Port", 63, "string", 0),
    # RFC 2866
    ("Acct-Status-Type", 40, "integer", 0),
    ("Acct-Delay-Time", 41, "integer", 0),
    ("Acct-Input-Octets", 42, "integer", 0),
    ("Acct-Output-Octets", 43, "integer", 0),
    ("Acct-Session-Id", 44, "string", 0),
    ("Acct-Authentic", 45, "integer", 0),
    ("Acct-Session-Time", 46, "integer", 0),
    ("Acct-Input-Packets", 47, "integer", 0),
    ("Acct-Output-Packets", 48, "integer", 0),
    ("Acct-Terminate-Cause", 49, "integer", 0),
    ("Acct-Multi-Session-Id", 50, "string", 0),
    ("Acct-Link-Count", 51, "integer", 0),
    # RFC 2869
    ("Acct-Input-Gigawords", 52, "integer", 0),
    ("Acct-Output-Gigawords", 53, "integer", 0),
    ("Event-Timestamp", 55, "date", 0),
    ("Connect-Info", 77, "string", 0),
    ("EAP-Message", 79, "octets", 0),
    ("Message-Authenticator", 80, "octets", 0),
    ("Acct-Interim-Interval", 85, "integer", 0),
    ("NAS-Port-Id", 87, "string", 0),
    ("Framed-Pool", 88, "string", 0),
    # RFC 4675
    ("Egress-VLANID", 56, "integer", 0),
    ("Ingress-Filters", 57, "integer", 0),
    ("Egress-VLAN-Name", 58, "string", 0),
    ("User-Priority-Table", 59, "octets", 0),
    # RFC 2868
    ("Tunnel-Type", 64, "integer", 0),
    ("Tunnel-Medium-Type", 65, "integer", 0),
    ("Tunnel-Client-Endpoint", 66, "string", 0),
    ("Tunnel-Server-Endpoint", 67, "string", 0),
    ("Tunnel-Password", 69, "string", 0),
    ("Tunnel-Private-Group-Id", 81, "string", 0),
    ("Tunnel-Assignment-Id", 82, "string", 0),
    ("Tunnel-Preference", 83, "integer", 0),
    ("Tunnel-Client-Auth-Id", 90, "string", 0),
    ("Tunnel-Server-Auth-Id", 91, "string", 0),
    # RFC 3162
    ("NAS-IPv6-Address", 95, "ipv6addr", 0),
    ("Framed-Interface-Id", 96, "ifid", 0),
    ("Framed-IPv6-Prefix", 97, "ipv6prefix", 0),
    ("Login-IPv6-Host", 98, "ipv6addr", 0),
    ("Framed-IPv6-Route", 99, "string", 0),
    ("Framed-IPv6-Pool", 100, "string", 0),
    # RFC 5176
    ("Error-Cause", 101, "integer", 0),
    # Microsoft, RFC 2548
    ("MS-CHAP-Response", 1, "octets", MICROSOFT),
    ("MS-CHAP-Error", 2, "octets", MICROSOFT),
    ("MS-MPPE-Encryption-Policy", 7, "integer", MICROSOFT),
    ("MS-MPPE-Encryption-Types", 8, "integer", MICROSOFT),
    ("MS-CHAP-Domain", 10, "octets", MICROSOFT),
    ("MS-CHAP-Challenge", 11, "octets", MICROSOFT),
    ("MS-CHAP-MPPE-Keys", 12, "octets", MICROSOFT),
    ("MS-MPPE-Send-Key", 16, "octets", MICROSOFT),
    ("MS-MPPE-Recv-Key", 17, "octets", MICROSOFT),
    ("MS-CHAP2-Response", 25, "octets", MICROSOFT),
    ("MS-CHAP2-Success", 26, "octets", MICROSOFT),
    # Cisco
    ("Cisco-AVPair", 1, "string", CISCO),
    ("Cisco-NAS-Port", 2, "string", CISCO),
    # Aruba
    ("Aruba-User-Role", 1, "string", ARUBA),
    ("Aruba-User-Vlan", 2, "integer", ARUBA),
    ("Aruba-Priv-Admin-User", 3, "integer", ARUBA),
    ("Aruba-Admin-Role", 4, "string", ARUBA),
    ("Aruba-Essid-Name", 5, "string", ARUBA),
    ("Aruba-Location-Id", 6, "string", ARUBA),
    ("Aruba-Port-Identifier", 7, "string", ARUBA),
    ("Aruba-MMS-User-Template", 8, "string", ARUBA),
    ("Aruba-Named-User-Vlan", 9, "string", ARUBA),
    ("Aruba-AP-Group", 10, "string", ARUBA),
    ("Aruba-Framed-IPv6-Address", 11, "string", ARUBA),
    ("Aruba-Device-Type", 12, "string", ARUBA),
]

# (name, has_tag, encrypt) of the attributes with flags; all other
# attributes of ATTRIBUTES have none
FLAGS = {
    "User-Password": (False, 1),
    "Tunnel-Type": (True, 0),
    "Tunnel-Medium-Type": (True, 0),
    "Tunnel-Client-Endpoint": (True, 0),
    "Tunnel-Server-Endpoint": (True, 0),
    "Tunnel-Password": (True, 2),
    "Tunnel-Private-Group-Id": (True, 0),
    "Tunnel-Assignment-Id": (True, 0),
    "Tunnel-Preference": (True, 0),
    "Tunnel-Client-Auth-Id": (True, 0),
    "Tunnel-Server-Auth-Id": (True, 0),
    "MS-CHAP-MPPE-Keys": (False, 1),
    "MS-MPPE-Send-Key": (False, 2),
    "MS-MPPE-Recv-Key": (False, 2),
}

# (attribute, value name, number)
VALUES = [
    ("Service-Type", "Login-User", 1),
    ("Service-Type", "Framed-User", 2),
    ("Service-Type", "Administrative-User", 6),
    ("Service-Type", "NAS-Prompt-User", 7),
    ("Service-Type", "Authenticate-Only", 8),
    ("Service-Type", "Call-Check", 10),
    ("Service-Type", "Callback-Administrative", 11),
    ("Service-Type", "Voice", 12),
    ("Service-Type", "Fax", 13),
    ("Service-Type", "Authorize-Only", 17),
    ("Termination-Action", "Default", 0),
    ("Termination-Action", "RADIUS-Request", 1),
    ("NAS-Port-Type", "Async", 0),
    ("NAS-Port-Type", "Virtual", 5),
    ("NAS-Port-Type", "Ethernet", 15),
    ("NAS-Port-Type", "Wireless-Other", 18),
    ("NAS-Port-Type", "Wireless-802.11", 19),
    ("NAS-Port-Type", "Token-Ring", 20),
    ("NAS-Port-Type", "FDDI", 21),
    ("NAS-Port-Type", "PPPoA", 30),
    ("NAS-Port-Type", "PPPoEoQinQ", 34),
    ("NAS-Port-Type", "xPON", 35),
    ("NAS-Port-Type", "WiMAX-WVS", 43),
    ("Acct-Status-Type", "Start", 1),
    ("Acct-Status-Type", "Stop", 2),
    ("Acct-Status-Type", "Interim-Update", 3),
    ("Acct-Status-Type", "Accounting-On", 7),
    ("Acct-Status-Type", "Accounting-Off", 8),
    ("Acct-Authentic", "RADIUS", 1),
    ("Acct-Terminate-Cause", "User-Request", 1),
    ("Acct-Terminate-Cause", "Lost-Carrier", 2),
    ("Acct-Terminate-Cause", "Idle-Timeout", 4),
    ("Acct-Terminate-Cause", "Session-Timeout", 5),
    ("Acct-Terminate-Cause", "Admin-Reset", 6),
    ("Acct-Terminate-Cause", "Host-Request", 18),
    ("Acct-Terminate-Cause", "Supplicant-Restart", 19),
    ("Acct-Terminate-Cause", "Reauthentication-Failure", 20),
    ("Acct-Terminate-Cause", "Port-Reinitialized", 21),
    ("Acct-Terminate-Cause", "Port-Administratively-Disabled", 22),
    ("Tunnel-Type", "PPTP", 1),
    ("Tunnel-Type", "L2TP", 3),
    ("Tunnel-Type", "VLAN", 13),
    ("Tunnel-Medium-Type", "IPv4", 1),
    ("Tunnel-Medium-Type", "IPv6", 2),
    ("Tunnel-Medium-Type", "IEEE-802", 6),
    ("Ingress-Filters", "Enabled", 1),
    ("Ingress-Filters", "Disabled", 2),
    ("Error-Cause", "Residual-Session-Context-Removed", 201),
    ("Error-Cause", "Invalid-EAP-Packet", 202),
    ("Error-Cause", "Unsupported-Attribute", 401),
    ("Error-Cause", "Missing-Attribute", 402),
    ("Error-Cause", "NAS-Identification-Mismatch", 403),
    ("Error-Cause", "Invalid-Request", 404),
    ("Error-Cause", "Unsupported-Service", 405),
    ("Error-Cause", "Unsupported-Extension", 406),
    ("Error-Cause", "Invalid-Attribute-Value", 407),
    ("Error-Cause", "Administratively-Prohibited", 501),
    ("Error-Cause", "Request-Not-Routable", 502),
    ("Error-Cause", "Session-Context-Not-Found", 503),
    ("Error-Cause", "Session-Context-Not-Removable", 504),
    ("Error-Cause", "Other-Proxy-Processing-Error", 505),
    ("Error-Cause", "Resources-Unavailable", 506),
    ("Error-Cause", "Request-Initiated", 507),
    ("Error-Cause", "Multiple-Session-Selection-Unsupported", 508),
    ("MS-MPPE-Encryption-Policy", "Encryption-Allowed", 1),
    ("MS-MPPE-Encryption-Policy", "Encryption-Required", 2),
]

VENDORS = [("Microsoft", MICROSOFT), ("Cisco", CISCO), ("Aruba", ARUBA)]

# parse_files results: (name, (vendor id, code), where) of an ATTRIBUTE and
# (attribute, name, number, where) of a VALUE
Attr = tuple[str, tuple[int, int], str]
Value = tuple[str, str, int, str]


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return Dictionary(str(ROOT))


def parse_files(path: Path, seen: list[Path] | None = None) -> tuple[list[Path], list[Attr], list[Value]]:
    """Parse a dictionary file and its includes like pyrad does.

    Returns (files, attributes, values): the resolved paths of the files
    read, a list of (name, (vendor, code), file) for each ATTRIBUTE and a
    list of (attribute, name, number, file) for each VALUE.
    """
    if seen is None:
        seen = []
    path = path.resolve()
    assert path not in seen, f"recursive include of {path}"
    seen.append(path)
    files: list[Path] = [path]
    attributes: list[Attr] = []
    values: list[Value] = []
    vendor_ids: dict[str, int] = {}
    vendor: int | None = None
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        where = f"{path.name}:{lineno}"
        keyword = tokens[0].upper()
        if keyword == "$INCLUDE":
            # relative to the directory of the including file
            sub = parse_files(path.parent / tokens[1], seen)
            files += sub[0]
            attributes += sub[1]
            values += sub[2]
        elif keyword == "VENDOR":
            vendor_ids[tokens[1]] = int(tokens[2], 0)
        elif keyword == "BEGIN-VENDOR":
            assert vendor is None, f"{where}: nested BEGIN-VENDOR"
            assert tokens[1] in vendor_ids, f"{where}: VENDOR not defined"
            vendor = vendor_ids[tokens[1]]
        elif keyword == "END-VENDOR":
            assert vendor == vendor_ids.get(tokens[1]), f"{where}: END-VENDOR"
            vendor = None
        elif keyword == "ATTRIBUTE":
            assert len(tokens) in (4, 5), f"{where}: {line}"
            attributes.append((tokens[1], (vendor or 0, int(tokens[2], 0)), where))
        elif keyword == "VALUE":
            assert len(tokens) == 4, f"{where}: {line}"
            values.append((tokens[1], tokens[2], int(tokens[3], 0), where))
        else:
            pytest.fail(f"{where}: unknown keyword {tokens[0]}")
    assert vendor is None, f"{path.name}: BEGIN-VENDOR without END-VENDOR"
    seen.pop()
    return files, attributes, values


def test_root_loads_without_warnings_or_skipped_attributes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyrad"):
        dictionary = Dictionary(str(ROOT))
    assert caplog.records == []
    assert dictionary.skipped_attributes == set()
    assert len(dictionary) > 100


@pytest.mark.parametrize(("name", "vendor_id"), VENDORS)
def test_vendor(dictionary: Dictionary, name: str, vendor_id: int) -> None:
    assert dictionary.vendors.GetForward(name) == vendor_id


@pytest.mark.parametrize(("name", "code", "datatype", "vendor_id"), ATTRIBUTES)
def test_attribute(dictionary: Dictionary, name: str, code: int, datatype: str, vendor_id: int) -> None:
    attr = dictionary[name]
    assert attr.code == code
    assert attr.type == datatype
    assert dictionary.vendors.GetForward(attr.vendor) == vendor_id
    key = (vendor_id, code) if vendor_id else code
    assert dictionary.attrindex.GetForward(name) == key
    assert dictionary.attrindex.GetBackward(key) == name
    assert (attr.has_tag, attr.encrypt) == FLAGS.get(name, (False, 0))


@pytest.mark.parametrize(("attribute", "name", "number"), VALUES)
def test_value(dictionary: Dictionary, attribute: str, name: str, number: int) -> None:
    attr = dictionary[attribute]
    encoded = tools.EncodeAttr(attr.type, number)
    assert attr.values.GetForward(name) == encoded
    assert attr.values.GetBackward(encoded) == name


def test_spelling_of_tunnel_private_group_id(dictionary: Dictionary) -> None:
    assert "Tunnel-Private-Group-Id" in dictionary
    assert "Tunnel-Private-Group-ID" not in dictionary


def test_every_file_is_reachable_from_root() -> None:
    files, _, _ = parse_files(ROOT)
    assert len(files) == len(set(files)), "a file is included twice"
    # the dictionary files, as installed by pyproject.toml's package-data
    present = {p.resolve() for p in [ROOT, *DICT_DIR.glob("dictionary.*")] if p.is_file()}
    assert present - set(files) == set(), "not included from the root file"
    assert set(files) - present == set()


def test_no_conflicting_definitions() -> None:
    _, attributes, values = parse_files(ROOT)
    by_name: dict[str, tuple[tuple[int, int], str]] = {}
    by_key: dict[tuple[int, int], tuple[str, str]] = {}
    for name, key, where in attributes:
        assert by_name.setdefault(name, (key, where))[0] == key, (
            f"{name} defined as {key} at {where} and as {by_name[name][0]} at {by_name[name][1]}"
        )
        assert by_key.setdefault(key, (name, where))[0] == name, (
            f"{key} named {name} at {where} and {by_key[key][0]} at {by_key[key][1]}"
        )
    value_by_name: dict[tuple[str, str], int] = {}
    value_by_number: dict[tuple[str, int], str] = {}
    for attribute, name, number, where in values:
        assert attribute in by_name, f"{where}: VALUE of unknown {attribute}"
        assert value_by_name.setdefault((attribute, name), number) == number, (
            f"{where}: {attribute} {name} defined with two numbers"
        )
        assert value_by_number.setdefault((attribute, number), name) == name, (
            f"{where}: {attribute} {number} has two names"
        )


def test_each_rfc_file_names_its_rfc_in_the_header() -> None:
    for path in sorted(DICT_DIR.glob("dictionary.rfc*")):
        number = path.name.removeprefix("dictionary.rfc")
        header: list[str] = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
        assert f"RFC {number}" in "\n".join(header), path.name


def test_tagged_and_encrypted_attributes_round_trip(dictionary: Dictionary) -> None:
    secret = b"testing123"
    request = packet.AuthPacket(dict=dictionary, secret=secret, User_Name="alice")
    request.RequestPacket()

    reply = request.CreateReply()
    reply["Tunnel-Type:1"] = "VLAN"
    reply["Tunnel-Medium-Type:1"] = "IEEE-802"
    reply["Tunnel-Private-Group-Id:1"] = "100"
    reply["Session-Timeout"] = 3600
    reply["Termination-Action"] = "RADIUS-Request"
    reply["MS-MPPE-Send-Key"] = bytes(range(32))
    reply["MS-MPPE-Recv-Key"] = bytes(range(32, 64))
    reply["Cisco-AVPair"] = "device-traffic-class=voice"
    reply["Aruba-User-Role"] = "staff"
    raw = reply.ReplyPacket()

    # Tunnel-Type, tag 1, VLAN (RFC 2868 section 3.1, RFC 3580)
    assert bytes([64, 6, 1, 0, 0, 13]) in raw
    # Tunnel-Medium-Type, tag 1, IEEE-802
    assert bytes([65, 6, 1, 0, 0, 6]) in raw
    # Tunnel-Private-Group-Id, tag 1, "100"
    assert bytes([81, 6, 1]) + b"100" in raw
    # Vendor-Specific, Cisco, Cisco-AVPair
    avpair = b"device-traffic-class=voice"
    assert (bytes([26, 8 + len(avpair), 0, 0, 0, 9, 1, 2 + len(avpair)]) + avpair) in raw

    decoded = request.CreateReply(packet=raw)
    decoded.request_authenticator = request.authenticator
    assert request.VerifyReply(decoded, raw)
    assert decoded["Tunnel-Type:1"] == ["VLAN"]
    assert decoded["Tunnel-Medium-Type:1"] == ["IEEE-802"]
    assert decoded["Tunnel-Private-Group-Id:1"] == ["100"]
    assert decoded["Session-Timeout"] == [3600]
    assert decoded["Termination-Action"] == ["RADIUS-Request"]
    assert decoded["MS-MPPE-Send-Key"] == [bytes(range(32))]
    assert decoded["MS-MPPE-Recv-Key"] == [bytes(range(32, 64))]
    assert decoded["Cisco-AVPair"] == ["device-traffic-class=voice"]
    assert decoded["Aruba-User-Role"] == ["staff"]
