"""Reply shapes: how a decision's VLAN reaches each kind of equipment in an Access-Accept
(RFC 3580 tagged or untagged, a role or ACL name, VLAN ids only), in memory, by config and
through a running server (radclient decodes the tags)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakenas import FakeNas, attr, attributes, values
from interop import NacServerFactory, exchange, mab_request, parse_reply, udp_socket
from netaddr import IPNetwork

from nac.admission.engine import Engine, Outcome
from nac.config import load_config
from nac.equipment.clients import Client
from nac.equipment.profiles import load_profiles, parse_profiles
from nac.equipment.reply import (
    ROLES,
    VLAN_FORMS,
    VLAN_NAME_REFUSED,
    ReplyShape,
    vlan_body,
    vlan_name_conflicts,
)
from nac.errors import ConfigError
from nac.policy.decide import Defaults, Policy, Rule
from nac.radius.crypto import HmacMd5
from nac.radius.packet import ACCESS_REQUEST, Codes, encode_request
from nac.registry.oui import Registry, registry_from_manuf
from nac.resources import load_dictionary

MANUF = "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD\n00:10:A4\tXircom\tXircom"
HUAWEI = "00e0fc123456"  # quarantined to VLAN 100
XIRCOM = "0010a42319c0"  # accepted onto the VLAN named "staff"
OTHER = "001b21aabbcc"  # no rule: accepted, no VLAN
ACCEPT, REJECT = 2, 3
MESSAGE_AUTHENTICATOR, REPLY_MESSAGE, FILTER_ID, VENDOR_SPECIFIC = 80, 18, 11, 26
TUNNEL_TYPE, TUNNEL_MEDIUM_TYPE, TUNNEL_PRIVATE_GROUP_ID = 64, 65, 81
RULES = (
    Rule(id="q-huawei", kind="vendor", value="huawei", action="quarantine", vlan="100", reason="iot"),
    Rule(id="staff-xircom", kind="oui", value="00:10:A4", action="accept", vlan="staff"),
)
#: RFC 3580 §3.31 / RFC 2868 §3.1-3.2: Tunnel-Type VLAN (13) and Tunnel-Medium-Type IEEE-802 (6),
#: each a tag octet (0) and a 3-octet value.
TUNNEL = [(TUNNEL_TYPE, bytes.fromhex("0000000d")), (TUNNEL_MEDIUM_TYPE, bytes.fromhex("00000006"))]


def aruba_role(name: bytes) -> tuple[int, bytes]:
    """Vendor-Specific, vendor 14823 (0x39e7), Aruba-User-Role (1)."""
    return VENDOR_SPECIFIC, bytes.fromhex("000039e7") + bytes((1, len(name) + 2)) + name


def cisco_avpair(text: bytes) -> tuple[int, bytes]:
    """Vendor-Specific, vendor 9, Cisco-AVPair (1)."""
    return VENDOR_SPECIFIC, bytes.fromhex("00000009") + bytes((1, len(text) + 2)) + text


#: Each shape, and the attributes a VLAN 100 quarantine gets (before its Reply-Message).
SHAPES = [
    (ReplyShape(), [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"\x00100")]),
    (ReplyShape(vlan="rfc3580-untagged"), [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"100")]),
    (ReplyShape(vlan="none", role="Aruba-User-Role"), [aruba_role(b"100")]),
    (
        ReplyShape(role="Aruba-User-Role"),
        [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"\x00100"), aruba_role(b"100")],
    ),
    (
        ReplyShape(vlan="rfc3580-untagged", role="Filter-Id"),
        [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"100"), (FILTER_ID, b"100")],
    ),
    (ReplyShape(vlan="none", role="Filter-Id"), [(FILTER_ID, b"100")]),
    (
        ReplyShape(role="Cisco-AVPair"),
        [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"\x00100"), cisco_avpair(b"ACS:CiscoSecure-Defined-ACL=100")],
    ),
    (ReplyShape(vlan_names=False), [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"\x00100")]),
]
SHAPE_IDS = [shape.describe() for shape, _ in SHAPES]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


def engine_for(codes: Codes, registry: Registry, **defaults: object) -> Engine:
    policy = Policy(RULES, registry=registry, defaults=Defaults(**defaults))  # type: ignore[arg-type]
    return Engine(codes=codes, policy=policy)


def client(nas: FakeNas, shape: ReplyShape, *, name: str = "sw1", profile: str = "generic") -> Client:
    return Client(
        name=name, network=IPNetwork("192.0.2.0/24"), secret=nas.secret, profile=profile, reply=shape
    )


def mab(engine: Engine, nas: FakeNas, sw: Client, mac: str) -> Outcome:
    data = nas.mab(mac)
    outcome = engine.handle(data, src=nas.src, port=1812, service="auth", client=sw, now=1.8e9)
    nas.check_reply(data, outcome.reply)  # signed, Message-Authenticator first
    return outcome


def vlan_attributes(reply: bytes) -> list[tuple[int, bytes]]:
    """The reply's attributes but Message-Authenticator (first) and Reply-Message (last)."""
    found = attributes(reply)
    assert found[0][0] == MESSAGE_AUTHENTICATOR
    return [a for a in found[1:] if a[0] != REPLY_MESSAGE]


# -- the attributes of each shape ---------------------------------------------------------------


@pytest.mark.parametrize(("shape", "expected"), SHAPES, ids=SHAPE_IDS)
def test_quarantine_accept_carries_exactly_the_shapes_attributes(
    codes: Codes, registry: Registry, shape: ReplyShape, expected: list[tuple[int, bytes]]
) -> None:
    nas = FakeNas(codes)
    outcome = mab(engine_for(codes, registry), nas, client(nas, shape), HUAWEI)
    assert outcome.reply[0] == ACCEPT
    found = attributes(outcome.reply)
    assert found[1:-1] == expected  # in this order, between Message-Authenticator and the message
    assert found[-1] == (REPLY_MESSAGE, b"iot (rule q-huawei)")


@pytest.mark.parametrize(("shape", "expected"), SHAPES, ids=SHAPE_IDS)
def test_session_timeout_follows_the_vlan_attributes_in_every_shape(
    codes: Codes, registry: Registry, shape: ReplyShape, expected: list[tuple[int, bytes]]
) -> None:
    nas = FakeNas(codes)
    engine = engine_for(codes, registry, quarantine_session_timeout=3600)
    found = vlan_attributes(mab(engine, nas, client(nas, shape), HUAWEI).reply)
    session_timeout = (27, (3600).to_bytes(4, "big"))
    termination_action = (29, (1).to_bytes(4, "big"))  # RADIUS-Request (RFC 2865 §5.29)
    assert found == [*expected, session_timeout, termination_action]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (ReplyShape(), [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"\x00staff")]),
        (ReplyShape(vlan="rfc3580-untagged"), [*TUNNEL, (TUNNEL_PRIVATE_GROUP_ID, b"staff")]),
        (ReplyShape(vlan="none", role="Aruba-User-Role"), [aruba_role(b"staff")]),
        (ReplyShape(vlan="none", role="Cisco-AVPair"), [cisco_avpair(b"ACS:CiscoSecure-Defined-ACL=staff")]),
    ],
)
def test_accept_with_a_vlan_name_carries_it_and_no_message(
    codes: Codes, registry: Registry, shape: ReplyShape, expected: list[tuple[int, bytes]]
) -> None:
    nas = FakeNas(codes)
    outcome = mab(engine_for(codes, registry), nas, client(nas, shape), XIRCOM)
    assert outcome.reply[0] == ACCEPT
    assert attributes(outcome.reply)[1:] == expected


@pytest.mark.parametrize(("shape", "expected"), SHAPES, ids=SHAPE_IDS)
def test_accept_without_a_vlan_carries_neither_vlan_nor_role(
    codes: Codes, registry: Registry, shape: ReplyShape, expected: list[tuple[int, bytes]]
) -> None:
    nas = FakeNas(codes)
    outcome = mab(engine_for(codes, registry), nas, client(nas, shape), OTHER)
    assert outcome.reply[0] == ACCEPT
    assert [kind for kind, _ in attributes(outcome.reply)] == [MESSAGE_AUTHENTICATOR]


def test_one_engine_answers_each_client_in_its_own_shape(codes: Codes, registry: Registry) -> None:
    """The body cache is keyed by the client's shape: interleaved clients never get another's."""
    nas = FakeNas(codes)
    engine = engine_for(codes, registry)
    clients = [client(nas, shape, name=f"sw{i}") for i, (shape, _) in enumerate(SHAPES)]
    for _ in range(2):
        for sw, (_, expected) in zip(clients, SHAPES, strict=True):
            assert vlan_attributes(mab(engine, nas, sw, HUAWEI).reply) == expected


def test_every_role_attribute_resolves_by_its_dictionary_name(codes: Codes) -> None:
    for role in ROLES[1:]:
        body = vlan_body(codes, ReplyShape(vlan="none", role=role), "guest")
        assert body.endswith(b"guest")
        assert body[0] in (FILTER_ID, VENDOR_SPECIFIC)
    assert codes.role_attributes == {
        "Aruba-User-Role": (14823, 1),
        "Filter-Id": (0, 11),
        "Cisco-AVPair": (9, 1),
    }


# -- VLAN ids only --------------------------------------------------------------------------------


def test_ids_only_equipment_refuses_a_vlan_name_and_says_why(codes: Codes, registry: Registry) -> None:
    nas = FakeNas(codes)
    sw = client(nas, ReplyShape(vlan_names=False), name="ap1", profile="hostapd")
    engine = engine_for(codes, registry)
    refused = mab(engine, nas, sw, XIRCOM)
    assert refused.reply[0] == REJECT
    assert not values(refused.reply, TUNNEL_PRIVATE_GROUP_ID)
    assert refused.record is not None
    assert (refused.record.action, refused.record.rule, refused.record.vlan) == (
        "reject",
        VLAN_NAME_REFUSED,
        None,
    )
    reason = refused.record.reason
    assert "'staff'" in reason
    assert "staff-xircom" in reason
    assert "client ap1 (profile hostapd)" in reason
    assert "VLAN ids only" in reason
    assert values(refused.reply, REPLY_MESSAGE) == [f"{reason} (rule {VLAN_NAME_REFUSED})".encode()]
    # A VLAN id still goes through, and so does an accept without a VLAN.
    assert vlan_attributes(mab(engine, nas, sw, HUAWEI).reply)[-1] == (TUNNEL_PRIVATE_GROUP_ID, b"\x00100")
    assert mab(engine, nas, sw, OTHER).reply[0] == ACCEPT


def test_role_only_equipment_takes_vlan_names_whatever_vlan_names_says(
    codes: Codes, registry: Registry
) -> None:
    nas = FakeNas(codes)
    sw = client(nas, ReplyShape(vlan="none", vlan_names=False, role="Aruba-User-Role"))
    outcome = mab(engine_for(codes, registry), nas, sw, XIRCOM)
    assert outcome.reply[0] == ACCEPT
    assert attributes(outcome.reply)[1:] == [aruba_role(b"staff")]


def test_ids_only_equipment_refuses_a_vlan_name_before_any_eap_round(
    codes: Codes, registry: Registry, tmp_path: Path
) -> None:
    pytest.importorskip("OpenSSL")
    from nac.eap.certs import init as certs_init  # OpenSSL only here
    from nac.eap.config import EapConfig, settings
    from nac.eap.eap import EapServer, encode_eap
    from nac.eap.keys import MppeCodes

    certs_init(tmp_path / "lab")
    config = EapConfig(
        certificate=str(tmp_path / "lab" / "server.pem"),
        private_key=str(tmp_path / "lab" / "server.key"),
        ca_certificates=str(tmp_path / "lab" / "ca.pem"),
        methods=("tls",),
    )
    eap = EapServer(settings(config, {}), mppe=MppeCodes.from_dictionary(load_dictionary()))
    engine = Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=Defaults()), eap=eap)
    nas = FakeNas(codes)
    sw = client(nas, ReplyShape(vlan_names=False), name="ap1", profile="hostapd")
    body = attr(1, "client.nac.lab") + attr(31, "00-10-A4-23-19-C0") + attr(79, encode_eap(2, 7, 1, b"x"))
    data = encode_request(ACCESS_REQUEST, 1, bytes(16), body, key=HmacMd5(nas.secret))
    outcome = engine.handle(data, src=nas.src, port=1812, service="auth", client=sw, now=1.8e9)
    assert outcome.reply[0] == REJECT
    assert values(outcome.reply, 79) == [bytes((4, 7, 0, 4))]  # EAP-Failure
    assert outcome.record is not None
    assert outcome.record.rule == VLAN_NAME_REFUSED
    assert len(eap) == 0  # no conversation was started


def test_conflicts_name_the_vlans_rules_and_clients(codes: Codes, registry: Registry) -> None:
    nas = FakeNas(codes)
    strict = client(nas, ReplyShape(vlan_names=False), name="ap1", profile="hostapd")
    loose = client(nas, ReplyShape(), name="sw1")
    policy = Policy(RULES, registry=registry, defaults=Defaults(quarantine_vlan="jail"))
    warning = vlan_name_conflicts(policy, [loose, strict])
    assert warning is not None
    assert "'jail' (the default quarantine_vlan)" in warning
    assert "'staff' (rule staff-xircom)" in warning
    assert "ap1 (profile hostapd)" in warning
    assert "sw1" not in warning
    assert "'100'" not in warning
    assert vlan_name_conflicts(policy, [loose]) is None
    assert vlan_name_conflicts(Policy(RULES[:1], registry=registry, defaults=Defaults()), [strict]) is None


# -- profiles and configuration -------------------------------------------------------------------


def test_shipped_profiles_send_rfc3580_tagged_and_hostapd_takes_ids_only() -> None:
    profiles = load_profiles()
    assert profiles["hostapd"].reply == ReplyShape(vlan_names=False)
    for name, profile in profiles.items():
        if name != "hostapd":
            assert profile.reply == ReplyShape(), name
        assert profile.reply.vlan in VLAN_FORMS
        assert profile.reply.role in ROLES


def test_operator_profile_sets_a_reply_shape() -> None:
    text = '[aruba-roles]\ntitle = "x"\nreply.vlan = "none"\nreply.role = "Aruba-User-Role"\n'
    profile = parse_profiles(text, origin="site.toml")["aruba-roles"]
    assert profile.reply == ReplyShape(vlan="none", role="Aruba-User-Role")


@pytest.mark.parametrize(
    ("table", "part"),
    [
        ('reply.vlan = "802.1q"', "[bad] reply: vlan must be one of rfc3580, rfc3580-untagged, none"),
        ('reply.role = "Juniper-Switching-Filter"', "role must be one of"),
        ('reply.vlan_names = "no"', "vlan_names must be true or false"),
        ('reply.vlan = "none"', 'vlan "none" needs a role'),
        ("reply.tag = 1", "[bad] reply: unknown setting(s) tag"),
        ('reply = "rfc3580"', "reply is a table"),
    ],
)
def test_profile_reply_errors_name_the_file_and_profile(table: str, part: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profiles(f'[bad]\ntitle = "x"\n{table}\n', origin="site.toml")
    assert part in str(caught.value)
    assert "site.toml" in str(caught.value)


def test_client_overrides_its_profiles_reply_shape(tmp_path: Path) -> None:
    config = tmp_path / "nac.toml"
    config.write_text(
        '[[client]]\nname = "a"\naddress = "192.0.2.1"\nsecret = "s"\nprofile = "hostapd"\n'
        '[[client]]\nname = "b"\naddress = "192.0.2.2"\nsecret = "s"\nprofile = "hostapd"\n'
        'reply_vlan_names = true\nreply_vlan = "rfc3580-untagged"\n'
        '[[client]]\nname = "c"\naddress = "192.0.2.3"\nsecret = "s"\nprofile = "aruba-controller"\n'
        'reply_vlan = "none"\nreply_role = "Aruba-User-Role"\n'
    )
    a, b, c = load_config(config).clients
    assert (a.reply, a.vlan_ids_only) == (ReplyShape(vlan_names=False), True)
    assert (b.reply, b.vlan_ids_only) == (ReplyShape(vlan="rfc3580-untagged"), False)
    assert (c.reply, c.vlan_ids_only) == (ReplyShape(vlan="none", role="Aruba-User-Role"), False)
    assert len({a.body_shape, b.body_shape, c.body_shape}) == 3


@pytest.mark.parametrize(
    ("lines", "setting", "part"),
    [
        ('reply_vlan = "tagged"', "reply_vlan", "vlan must be one of"),
        ('reply_vlan = "none"', "reply_vlan", 'vlan "none" needs a role'),
        ('reply_role = "Filter-ID"', "reply_role", "role must be one of"),
        ("reply_vlan_names = 0", "reply_vlan_names", "vlan_names must be true or false"),
        ('reply_vlans = "none"', "reply_vlans", "unknown setting"),
    ],
)
def test_client_reply_errors_name_the_file_line_and_setting(
    tmp_path: Path, lines: str, setting: str, part: str
) -> None:
    config = tmp_path / "nac.toml"
    config.write_text(f'[[client]]\nname = "sw1"\naddress = "192.0.2.1"\nsecret = "s"\n{lines}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert part in message
    assert str(config) in message
    assert setting in message
    assert "line 5" in message  # the setting's line


# -- through a running server ---------------------------------------------------------------------


def test_running_server_answers_each_client_in_its_shape(
    nac_server_factory: NacServerFactory, tmp_path: Path, codes: Codes
) -> None:
    """radclient (FreeRADIUS's decoder) reads the lab switch's reply: the shipped `generic`
    profile replaced by an operator's file; a Python NAS at 127.0.0.3 is an ids-only AP."""
    equipment = tmp_path / "equipment.toml"
    equipment.write_text(
        '[generic]\ntitle = "older switches"\nreply.vlan = "rfc3580-untagged"\nreply.role = "Cisco-AVPair"\n'
    )
    server = nac_server_factory(
        rules=[
            ("--vendor", "huawei", "--action", "quarantine", "--vlan", "100", "--id", "q-huawei"),
            ("--oui", "00:10:A4", "--action", "accept", "--vlan", "staff", "--id", "staff-xircom"),
        ],
        server_settings=f'equipment = "{equipment}"\n',
        extra_config=(
            '\n[[client]]\nname = "ap1"\naddress = "127.0.0.3"\nsecret = "ap-secret"\nprofile = "hostapd"\n'
        ),
    )
    result = server.radclient(
        'User-Name = "00e0fc123456", User-Password = "00e0fc123456", '
        'Calling-Station-Id = "00-E0-FC-12-34-56", Message-Authenticator = 0x00'
    )
    assert result.code == "Access-Accept", result.stdout
    # radclient shows a tag (":0") on every Tunnel- attribute, tagged on the wire or not; that it
    # reads "100" shows FreeRADIUS takes the untagged form.  The octets are checked below.
    tunnel = {a.name: a.value for a in result.reply if a.name.startswith("Tunnel-")}
    assert tunnel == {
        "Tunnel-Type": "VLAN",
        "Tunnel-Medium-Type": "IEEE-802",
        "Tunnel-Private-Group-Id": "100",
    }
    assert result.values("Cisco-AVPair") == ["ACS:CiscoSecure-Defined-ACL=100"]
    with udp_socket("127.0.0.1", timeout=2.0) as sock:
        untagged = exchange(sock, mab_request(HUAWEI)[0], server.auth_port)
    assert untagged is not None
    assert vlan_attributes(untagged) == [
        *TUNNEL,
        (TUNNEL_PRIVATE_GROUP_ID, b"100"),
        cisco_avpair(b"ACS:CiscoSecure-Defined-ACL=100"),
    ]

    nas = FakeNas(codes, secret=b"ap-secret", src=("127.0.0.3", 0), nas_ip="127.0.0.3")
    with udp_socket("127.0.0.3", timeout=2.0) as sock:
        quarantined = exchange(sock, nas.mab(HUAWEI), server.auth_port)
        named = exchange(sock, nas.mab(XIRCOM), server.auth_port)
    assert quarantined is not None, server.stderr()
    assert named is not None, server.stderr()
    assert parse_reply(quarantined).code == ACCEPT
    assert values(quarantined, TUNNEL_PRIVATE_GROUP_ID) == [b"\x00100"]  # hostapd: tagged, an id
    assert not values(quarantined, VENDOR_SPECIFIC)
    assert parse_reply(named).code == REJECT
    row = server.history("--mac", XIRCOM, "--limit", "1")[0]
    assert (row["rule"], row["client"], row["action"]) == (VLAN_NAME_REFUSED, "ap1", "reject")
    assert "'staff'" in row["reason"]
    assert server.wait_for_log("cannot be sent to ap1 (profile hostapd)")
    late = ("--mac", OTHER, "--action", "quarantine", "--vlan", "guestnet", "--id", "late")
    server.cli_ok("rules", "add", *late)
    assert server.wait_for_log("'guestnet' (rule late)")  # warned again when the rules change
    shown = {
        c["name"]: c for c in json.loads(server.cli_ok("clients", "--config", str(server.config), "--json"))
    }
    assert shown["ap1"]["reply"] == "RFC 3580 VLAN (tag 0, VLAN ids only)"
    assert shown["lab-switch"]["reply"] == (
        "RFC 3580 VLAN (Tunnel-Private-Group-Id untagged) + Cisco-AVPair = the VLAN's name"
    )
