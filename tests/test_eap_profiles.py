"""Authorization profiles of 802.1X users and groups: checked when they are defined (a clear
error, exit 2, nothing stored), encoded as the dictionary says, stored with the users, and
applied by the engine only where the vendor policy accepts the device."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fakenas import FakeNas, values
from netaddr import IPNetwork
from pyrad.dictionary import Dictionary
from typer.testing import CliRunner

from nac.admission.authz import user_profile
from nac.admission.engine import Engine
from nac.cli.main import app
from nac.eap.config import EapConfig, settings
from nac.eap.eap import EapServer
from nac.eap.groups import Authorizer, add_group, list_groups, remove_group, set_user, try_user, user_rows
from nac.eap.keys import MppeCodes
from nac.eap.profiles import Authorization, Profile, check_profile, encode_attributes, merge
from nac.eap.users import add_user, remove_user
from nac.equipment.clients import Client
from nac.equipment.reply import VLAN_NAME_REFUSED, ReplyShape
from nac.errors import NacError, PolicyError
from nac.policy.decide import Decision, Defaults, Policy
from nac.radius.packet import Codes
from nac.registry.oui import Registry
from nac.resources import load_dictionary
from nac.store import Store, upgrade
from tests import test_eap_radius as eap_radius
from tests.test_eap_radius import codes, pki, registry

__all__ = ["codes", "pki", "registry"]  # module-scoped fixtures shared with test_eap_radius.py

FILTER_ID, SESSION_TIMEOUT, TERMINATION_ACTION, VENDOR_SPECIFIC = 11, 27, 29, 26
CISCO, ARUBA = 9, 14823


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return load_dictionary()


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    store = Store(tmp_path / "nac.db")
    return store.conn


# -- checked at definition time ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (Profile(vlan="0"), "group g: VLAN id 0 is outside 1-4094"),
        (Profile(vlan="4095"), "group g: VLAN id 4095 is outside 1-4094"),
        (Profile(vlan="staff vlan"), "is neither an id 1-4094 nor a name"),
        (
            Profile(attributes=(("Foo-Bar", "1"),)),
            "group g: unknown attribute 'Foo-Bar' (not in nac's RADIUS",
        ),
        (
            Profile(attributes=(("Session-Timeout", "an hour"),)),
            "Session-Timeout='an hour' is not a valid integer",
        ),
        (Profile(attributes=(("Termination-Action", "Sometimes"),)), "or one of Default, RADIUS-Request"),
        (Profile(attributes=(("Tunnel-Private-Group-Id", "100"),)), "set by nac itself (use --vlan)"),
        (Profile(attributes=(("EAP-Message", "x"),)), "attribute EAP-Message is set by nac itself"),
        (Profile(attributes=(("MS-MPPE-Recv-Key", "x"),)), "is set by nac itself"),
        (Profile(attributes=(("Filter-Id", ""),)), "an empty string"),
        (Profile(attributes=(("Cisco-AVPair", "x" * 248),)), "longer than one attribute holds"),
        (Profile(attributes=(("Framed-IP-Address", "not an address"),)), "is not a valid ipaddr"),
    ],
)
def test_a_bad_profile_is_refused_with_what_is_wrong(
    dictionary: Dictionary, profile: Profile, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        check_profile(dictionary, profile, where="group g")
    assert message in str(caught.value)


def test_attributes_are_encoded_as_the_dictionary_says(dictionary: Dictionary) -> None:
    pairs = (
        ("Filter-Id", "staff-acl"),
        ("Session-Timeout", "3600"),
        ("Termination-Action", "RADIUS-Request"),  # a named value
        ("Cisco-AVPair", "url-redirect-acl=GUEST"),
        ("Aruba-User-Role", "guest"),
    )
    body = encode_attributes(dictionary, pairs, where="group g")
    cisco = b"url-redirect-acl=GUEST"
    assert body == (
        bytes((FILTER_ID, 11)) + b"staff-acl"
        + bytes((SESSION_TIMEOUT, 6)) + (3600).to_bytes(4, "big")
        + bytes((TERMINATION_ACTION, 6)) + (1).to_bytes(4, "big")
        + bytes((VENDOR_SPECIFIC, 8 + len(cisco))) + CISCO.to_bytes(4, "big")
        + bytes((1, 2 + len(cisco))) + cisco
        + bytes((VENDOR_SPECIFIC, 13)) + ARUBA.to_bytes(4, "big") + bytes((1, 7)) + b"guest"
    )  # fmt: skip


def test_merge_takes_the_user_first_then_its_groups_in_order() -> None:
    mine = Profile(attributes=(("Filter-Id", "alice"),))
    staff = Profile(
        vlan="100", attributes=(("Filter-Id", "staff"), ("Cisco-AVPair", "a"), ("Cisco-AVPair", "b"))
    )
    lab = Profile(vlan="200", attributes=(("Cisco-AVPair", "c"), ("Session-Timeout", "60")))
    merged = merge([mine, staff, lab])
    assert merged.vlan == "100"
    # Each name from the first profile that sets it: both of staff's AV-pairs, none of lab's.
    assert merged.attributes == (
        ("Filter-Id", "alice"),
        ("Cisco-AVPair", "a"),
        ("Cisco-AVPair", "b"),
        ("Session-Timeout", "60"),
    )


# -- stored with the users ---------------------------------------------------------------------


def test_a_refused_group_is_not_stored(conn: sqlite3.Connection, dictionary: Dictionary) -> None:
    with pytest.raises(PolicyError):
        add_group(conn, dictionary, "staff", Profile(vlan="100", attributes=(("Nope", "1"),)))
    assert list_groups(conn) == []


def test_groups_and_users_resolve_to_one_authorization(
    conn: sqlite3.Connection, dictionary: Dictionary
) -> None:
    add_group(conn, dictionary, "staff", Profile(vlan="100", attributes=(("Filter-Id", "staff"),)))
    add_group(conn, dictionary, "empty", Profile())
    add_user(conn, "alice", "pw")
    add_user(conn, "bob", "pw")
    add_user(conn, "carol", "pw")
    set_user(conn, dictionary, "alice", groups=["staff"])
    set_user(conn, dictionary, "bob", groups=["empty", "staff"], profile=Profile(vlan="300"))
    set_user(conn, dictionary, "carol", groups=["empty"])
    authorize = Authorizer(conn, dictionary)
    alice = authorize("alice")
    assert alice is not None
    assert alice.describe() == "user alice, group staff: profile staff (VLAN 100, Filter-Id=staff)"
    assert alice.body == bytes((FILTER_ID, 7)) + b"staff"
    bob = authorize("bob")
    assert bob is not None
    assert bob.describe() == "user bob, groups empty, staff: profile bob+staff (VLAN 300, Filter-Id=staff)"
    carol = authorize("carol")
    assert carol is not None
    assert carol.describe() == "user carol, group empty: no profile"
    assert authorize("dave") is None  # no groups, no profile: the reply is the vendor decision's
    # A change is read at the next authentication, not at the server's next start.
    add_group(conn, dictionary, "staff", Profile(vlan="110"))
    assert authorize("alice") == alice._replace(profile="staff", settings=Profile(vlan="110"), body=b"")
    assert [(r["name"], r["groups"], r["profile"]) for r in user_rows(conn)] == [
        ("alice", ["staff"], None),
        ("bob", ["empty", "staff"], "VLAN 300"),
        ("carol", ["empty"], None),
    ]


def test_a_group_with_members_is_not_removed_and_a_removed_user_leaves_its_groups(
    conn: sqlite3.Connection, dictionary: Dictionary
) -> None:
    add_group(conn, dictionary, "staff", Profile(vlan="100"))
    add_user(conn, "alice", "pw")
    set_user(conn, dictionary, "alice", groups=["staff"])
    with pytest.raises(NacError, match=r"group staff has members \(alice\)"):
        remove_group(conn, "staff")
    with pytest.raises(NacError, match="no group 'ghost'"):
        set_user(conn, dictionary, "alice", groups=["ghost"])
    remove_user(conn, "alice")
    remove_group(conn, "staff")
    assert list_groups(conn) == []
    with pytest.raises(NacError, match="no group 'staff'"):
        remove_group(conn, "staff")


def test_try_user_says_whether_the_password_is_right_and_what_applies(
    conn: sqlite3.Connection, dictionary: Dictionary
) -> None:
    add_group(conn, dictionary, "staff", Profile(vlan="100"))
    add_user(conn, "alice", "correct horse")
    set_user(conn, dictionary, "alice", groups=["staff"])
    right = try_user(conn, dictionary, "alice", "correct horse")
    assert right == {
        "user": "alice",
        "authenticated": True,
        "source": "users",
        "groups": ["staff"],
        "profile": "staff",
        "vlan": "100",
        "attributes": [],
        "reply": "VLAN 100",
    }
    assert try_user(conn, dictionary, "alice", "wrong")["authenticated"] is False
    with pytest.raises(NacError, match="no user 'bob'"):
        try_user(conn, dictionary, "bob", "x")


def test_an_older_database_gets_the_tables_on_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store(path).close()
    with sqlite3.connect(path) as old:
        for table in ("eap_groups", "eap_user_groups", "eap_user_profiles"):
            old.execute(f"DROP TABLE {table}")
    changes = upgrade(str(path))
    for table in ("eap_groups", "eap_user_groups", "eap_user_profiles"):
        assert f"added table {table}" in changes


# -- the vendor decision first -----------------------------------------------------------------

ACCEPT = Decision("accept", None, "default", "no rule matched; the policy's default is accept")
STAFF = Authorization(
    user="alice",
    source="users",
    groups=("staff",),
    profile="staff",
    settings=Profile(vlan="100", attributes=(("Filter-Id", "staff"),)),
    body=bytes((FILTER_ID, 7)) + b"staff",
)


def _client(*, vlan_names: bool = True) -> Client:
    return Client(
        name="ap1",
        network=IPNetwork("192.0.2.0/24"),
        secret=b"s",
        profile="hostapd",
        reply=ReplyShape(vlan_names=vlan_names),
    )


def test_an_accepted_device_gets_the_users_profile() -> None:
    sent, noted, extra = user_profile(ACCEPT, _client(), {"alice": STAFF}.get, "alice")
    assert sent == ACCEPT._replace(vlan="100")  # the reason stays the vendor decision's
    assert noted.vlan == "100"
    assert (
        noted.reason == f"{ACCEPT.reason}; user alice, group staff: profile staff (VLAN 100, Filter-Id=staff)"
    )
    assert extra == STAFF.body


def test_a_quarantine_is_not_overridden_by_the_users_profile() -> None:
    quarantine = Decision("quarantine", "666", "quarantine-intel", "Intel is quarantined")
    sent, noted, extra = user_profile(quarantine, _client(), {"alice": STAFF}.get, "alice")
    assert (sent, extra) == (quarantine, b"")  # Reply-Message comes from this: no user named
    assert noted.vlan == "666"
    assert noted.reason.endswith(
        "profile staff (VLAN 100, Filter-Id=staff), not applied: quarantine by rule quarantine-intel"
    )


def test_an_accept_rules_vlan_stands_against_the_profiles() -> None:
    rule = Decision("accept", "20", "printers", "printers VLAN")
    sent, noted, extra = user_profile(rule, _client(), {"alice": STAFF}.get, "alice")
    assert sent.vlan == "20"
    assert "VLAN 20 of rule printers kept" in noted.reason
    assert extra == STAFF.body


def test_a_vlan_name_for_ids_only_equipment_is_refused() -> None:
    named = STAFF._replace(settings=Profile(vlan="staff"))
    sent, noted, extra = user_profile(ACCEPT, _client(vlan_names=False), {"alice": named}.get, "alice")
    assert (sent.action, sent.rule, extra) == ("reject", VLAN_NAME_REFUSED, b"")
    assert "user alice" in noted.reason


def test_no_profile_leaves_the_decision_alone() -> None:
    assert user_profile(ACCEPT, _client(), None, "alice") == (ACCEPT, ACCEPT, b"")
    assert user_profile(ACCEPT, _client(), {}.get, "alice") == (ACCEPT, ACCEPT, b"")


# -- the CLI: a clear error and a non-zero exit --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["groups", "add", "g", "--vlan", "5000"], "group g: VLAN id 5000 is outside 1-4094"),
        (["groups", "add", "g", "--attr", "Foo-Bar=1"], "group g: unknown attribute 'Foo-Bar'"),
        (["groups", "add", "g", "--attr", "Filter-Id"], "--attr 'Filter-Id': expected NAME=VALUE"),
        (["groups", "add", "bad name"], "group names are 1 to 64"),
        (["users", "add", "alice", "--vlan", "0"], "user alice: VLAN id 0 is outside 1-4094"),
        (["users", "set", "alice"], "nothing to change"),
    ],
)
def test_cli_refuses_a_bad_profile_with_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    db = str(tmp_path / "nac.db")
    result = CliRunner().invoke(app, [*args, "--db", db], input="pw\n")
    assert result.exit_code == 2, result.output
    assert message in result.output
    listed = CliRunner().invoke(app, ["users", "list", "--json", "--db", db])
    assert listed.output.strip() in ("[]", "")  # `users add` with a bad VLAN stored no user


def test_cli_users_test_exits_1_on_a_wrong_password(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "nac.db")]
    runner = CliRunner()
    assert runner.invoke(app, ["groups", "add", "staff", "--vlan", "100", *db]).exit_code == 0
    assert runner.invoke(app, ["users", "add", "alice", "--group", "staff", *db], input="pw\n").exit_code == 0
    ok = runner.invoke(app, ["users", "test", "alice", *db], input="pw\n")
    assert ok.exit_code == 0, ok.output
    assert "groups: staff" in ok.output
    assert "profile: staff (VLAN 100)" in ok.output
    wrong = runner.invoke(app, ["users", "test", "alice", *db], input="nope\n")
    assert wrong.exit_code == 1
    assert "WRONG PASSWORD" in wrong.output


# -- the engine, over a whole EAP-TLS conversation ----------------------------------------------


def _tls_engine(pki: Path, registry: Registry, codes: Codes, authz: Authorization) -> Engine:
    lab = pki / "lab"
    config = EapConfig(
        certificate=str(lab / "server.pem"),
        private_key=str(lab / "server.key"),
        ca_certificates=str(lab / "ca.pem"),
        methods=("tls",),
    )
    eap = EapServer(
        settings(config, {}, {authz.user: authz}.get), mppe=MppeCodes.from_dictionary(load_dictionary())
    )
    return Engine(
        codes=codes, policy=Policy(eap_radius.RULES, registry=registry, defaults=Defaults()), eap=eap
    )


def test_engine_sends_the_profile_with_the_keys(pki: Path, registry: Registry, codes: Codes) -> None:
    authz = STAFF._replace(user="client.nac.lab")
    engine = _tls_engine(pki, registry, codes, authz)
    nas = FakeNas(codes)
    peer = eap_radius.TlsPeer(eap_radius.client_context(pki))
    outcome, _ = eap_radius.converse(engine, nas, lambda _t, data: peer.respond(data))
    assert outcome.reply[0] == eap_radius.ACCESS_ACCEPT
    assert values(outcome.reply, eap_radius.TUNNEL_PRIVATE_GROUP_ID) == [b"\x00100"]
    assert values(outcome.reply, FILTER_ID) == [b"staff"]
    assert len(values(outcome.reply, VENDOR_SPECIFIC)) == 2  # MS-MPPE-Send-Key and -Recv-Key
    assert outcome.record is not None
    assert (outcome.record.vlan, outcome.record.user_name) == ("100", "client.nac.lab")
    assert "user client.nac.lab, group staff: profile staff" in outcome.record.reason
    # Quarantined: the quarantine VLAN, none of the profile.
    peer = eap_radius.TlsPeer(eap_radius.client_context(pki))
    outcome, _ = eap_radius.converse(
        engine, nas, lambda _t, data: peer.respond(data), mac=eap_radius.QUARANTINED
    )
    assert values(outcome.reply, eap_radius.TUNNEL_PRIVATE_GROUP_ID) == [b"\x00666"]
    assert values(outcome.reply, FILTER_ID) == []


def test_engine_refuses_a_profiles_vlan_name_to_ids_only_equipment(
    pki: Path, registry: Registry, codes: Codes, monkeypatch: pytest.MonkeyPatch
) -> None:
    authz = STAFF._replace(user="client.nac.lab", settings=Profile(vlan="staff"))
    engine = _tls_engine(pki, registry, codes, authz)
    nas = FakeNas(codes)
    strict = Client(
        name="ap1", network=IPNetwork("192.0.2.0/24"), secret=nas.secret, reply=ReplyShape(vlan_names=False)
    )
    monkeypatch.setattr(eap_radius, "client", lambda _nas: strict)
    peer = eap_radius.TlsPeer(eap_radius.client_context(pki))
    outcome, _ = eap_radius.converse(engine, nas, lambda _t, data: peer.respond(data))
    assert outcome.reply[0] == eap_radius.ACCESS_REJECT
    assert eap_radius.eap_of(outcome.reply)[0] == 4  # EAP-Failure, not the method's Success
    assert values(outcome.reply, VENDOR_SPECIFIC) == []  # no keys in a refusal
    assert outcome.record is not None
    assert outcome.record.rule == VLAN_NAME_REFUSED
