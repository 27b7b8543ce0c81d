"""The SSID of an ArubaOS controller's request, which rides in Aruba-Essid-Name (vendor 14823,
attribute 5) while its Called-Station-Id, by default, is the controller's MAC alone.

In memory through the admission engine (a MAB request shaped as the controller sends it), and
once through a running `nac serve` with FreeRADIUS's radclient, whose own dictionary knows the
attribute.
"""

from __future__ import annotations

import pytest
from fakenas import FakeNas, attr, integer
from netaddr import IPNetwork

from nac.admission.engine import Engine
from nac.equipment.clients import Client
from nac.equipment.profiles import load_profiles
from nac.history.record import HistoryRecord
from nac.policy.decide import Defaults, Policy, Rule, ssid_of
from nac.radius.packet import Codes
from nac.radius.vsa import vendor_attribute
from nac.registry.oui import Registry, registry_from_manuf
from tests.interop import NacServerFactory, mab_attrs

ARUBA = 14823
ESSID_NAME = 5  # Aruba-Essid-Name
LOCATION_ID = 6  # Aruba-Location-Id
CISCO = 9
VENDOR_SPECIFIC = 26
CALLED_STATION_ID = 30
NAS_PORT_ID = 87
INTEL_MAC = "001b21aabbcc"  # ArubaOS: the MAC as User-Name and password, 12 hex digits
CONTROLLER = "000b86aabbcc"  # the controller's MAC, with no ":SSID"
T0 = 1_777_593_600.0

ON_CORP = f"{CONTROLLER}:corp"  # what history records for it, in RFC 3580's form
CORP_ONLY = Rule(id="corp-intel", kind="vendor", value="intel", action="reject", ssids=("corp",))


def vsa(vendor: int, *subs: tuple[int, bytes]) -> bytes:
    """One Vendor-Specific (RFC 2865 §5.26) holding ``subs``, built independently of nac."""
    body = vendor.to_bytes(4, "big") + b"".join(bytes((kind, len(v) + 2)) + v for kind, v in subs)
    return attr(VENDOR_SPECIFIC, body)


def essid(name: bytes) -> bytes:
    return vsa(ARUBA, (ESSID_NAME, name))


#: Aruba-Essid-Name "corp" whose length (6) runs one octet past its Vendor-Specific.
CUT_SHORT = attr(VENDOR_SPECIFIC, ARUBA.to_bytes(4, "big") + bytes((ESSID_NAME, 6)) + b"cor")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf("00:1B:21\tIntel\tIntel Corporate", source="test-manuf", date="2026-01")


@pytest.fixture
def engine(codes: Codes, registry: Registry) -> Engine:
    return Engine(codes=codes, policy=Policy((CORP_ONLY,), registry=registry, defaults=Defaults()))


@pytest.fixture(scope="module")
def controller() -> Client:
    profile = load_profiles()["aruba-controller"]
    return Client(
        name="mc7210",
        network=IPNetwork("192.0.2.0/24"),
        secret=b"s3cret-shared",
        profile=profile.name,
        mab=profile.mab,
        reply=profile.reply,
    )


def decide(
    engine: Engine, controller: Client, *extra: bytes, called: str | None = CONTROLLER
) -> HistoryRecord:
    """A MAB Access-Request as an ArubaOS controller sends it; returns what history records."""
    nas = FakeNas(engine.codes, secret=controller.secret)
    data = nas.mab(INTEL_MAC, called=called, nas_port_type=19, nas_port=0, nas_port_id=None, extra=extra)
    outcome = engine.handle(data, src=nas.src, port=1812, service="auth", client=controller, now=T0)
    assert outcome.record is not None
    return outcome.record


def test_essid_name_scopes_the_rule_and_lands_in_history(engine: Engine, controller: Client) -> None:
    record = decide(engine, controller, integer(61, 19), essid(b"corp"))
    assert (record.action, record.rule) == ("reject", "corp-intel")
    assert record.called_station_id == ON_CORP
    assert ssid_of(record.called_station_id) == "corp"  # what the helpdesk shows and filters on


def test_another_essid_name_does_not_apply_the_rule(engine: Engine, controller: Client) -> None:
    record = decide(engine, controller, essid(b"guest"))
    assert (record.action, record.rule) == ("accept", "default")
    assert ssid_of(record.called_station_id) == "guest"


def test_without_essid_name_nothing_changes(engine: Engine, controller: Client) -> None:
    record = decide(engine, controller)
    assert (record.rule, record.called_station_id) == ("default", CONTROLLER)
    # Another vendor's attribute 5 is not Aruba's.
    record = decide(engine, controller, vsa(CISCO, (ESSID_NAME, b"corp")))
    assert (record.rule, record.called_station_id) == ("default", CONTROLLER)


def test_called_station_id_with_its_own_ssid_wins(engine: Engine, controller: Client) -> None:
    record = decide(engine, controller, essid(b"corp"), called=f"{CONTROLLER}:guest")
    assert (record.rule, record.called_station_id) == ("default", f"{CONTROLLER}:guest")
    record = decide(engine, controller, essid(b"guest"), called=f"{CONTROLLER}:corp")
    assert (record.rule, record.called_station_id) == ("corp-intel", f"{CONTROLLER}:corp")


@pytest.mark.parametrize(
    ("extra", "called", "recorded", "rule"),
    [
        # The controller sends each Aruba attribute in its own Vendor-Specific, or several in one.
        ((vsa(ARUBA, (LOCATION_ID, b"ap-lobby")), essid(b"corp")), CONTROLLER, ON_CORP, "corp-intel"),
        ((vsa(ARUBA, (LOCATION_ID, b"ap-lobby"), (ESSID_NAME, b"corp")),), CONTROLLER, ON_CORP, "corp-intel"),
        # Called-Station-Id in another MAC spelling, and one that ends in ':' (an empty SSID).
        ((essid(b"corp"),), "00-0B-86-AA-BB-CC", "00-0B-86-AA-BB-CC:corp", "corp-intel"),
        ((essid(b"corp"),), f"{CONTROLLER}:", ON_CORP, "corp-intel"),
        # An SSID with a colon in it reads back whole.
        ((essid(b"corp:5g"),), CONTROLLER, f"{CONTROLLER}:corp:5g", "default"),
        # Called-Station-Id set to the AP's name: "ap-lobby:corp" would not read as an SSID, so
        # it is recorded as sent; and with no Called-Station-Id there is nothing to extend.
        ((essid(b"corp"),), "ap-lobby", "ap-lobby", "default"),
        ((essid(b"corp"),), None, None, "default"),
        # An empty Aruba-Essid-Name, and a Vendor-Specific cut short before it, are passed over.
        ((essid(b""),), CONTROLLER, CONTROLLER, "default"),
        ((CUT_SHORT,), CONTROLLER, CONTROLLER, "default"),
        ((attr(VENDOR_SPECIFIC, b"\x00\x00"),), CONTROLLER, CONTROLLER, "default"),
        # Aruba-Essid-Name's octets inside another attribute's value are not an attribute.
        ((attr(NAS_PORT_ID, essid(b"corp")), vsa(CISCO, (1, b"a=b"))), CONTROLLER, CONTROLLER, "default"),
    ],
)
def test_essid_name_shapes(
    engine: Engine,
    controller: Client,
    extra: tuple[bytes, ...],
    called: str | None,
    recorded: str | None,
    rule: str,
) -> None:
    record = decide(engine, controller, *extra, called=called)
    assert (record.called_station_id, record.rule) == (recorded, rule)


def test_the_rejection_before_the_policy_records_the_ssid_too(engine: Engine, controller: Client) -> None:
    """A refused request (here a wrong MAB password) still says on which SSID it came."""
    nas = FakeNas(engine.codes, secret=controller.secret)
    data = nas.mab(
        INTEL_MAC, password="not-the-mac", called=CONTROLLER, nas_port_type=19, extra=(essid(b"corp"),)
    )
    outcome = engine.handle(data, src=nas.src, port=1812, service="auth", client=controller, now=T0)
    assert outcome.record is not None
    assert outcome.record.rule != "corp-intel"
    assert outcome.record.called_station_id == ON_CORP


def test_vendor_attribute_reads_the_first_match(codes: Codes) -> None:
    attributes = [
        (CALLED_STATION_ID, b"x"),
        (VENDOR_SPECIFIC, ARUBA.to_bytes(4, "big") + bytes((LOCATION_ID, 4)) + b"ap"),
        (VENDOR_SPECIFIC, ARUBA.to_bytes(4, "big") + bytes((ESSID_NAME, 6)) + b"corp"),
        (VENDOR_SPECIFIC, ARUBA.to_bytes(4, "big") + bytes((ESSID_NAME, 7)) + b"guest"),
    ]
    assert codes.aruba_essid_name == (ARUBA, ESSID_NAME)  # resolved from dictionaries/, once
    assert vendor_attribute(attributes, codes.vendor_specific, codes.aruba_essid_name) == b"corp"
    assert vendor_attribute(attributes[:2], codes.vendor_specific, codes.aruba_essid_name) is None


# -- through a running server, with radclient ------------------------------------------------


def test_radclient_essid_name_decides_and_is_in_history(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(
        rules=[("--mac", INTEL_MAC, "--action", "reject", "--ssid", "corp", "--id", "corp-device")]
    )

    def send(name: str) -> str | None:
        extra = (
            f'Called-Station-Id = "{CONTROLLER}", NAS-Port-Type = Wireless-802.11, '
            f'Aruba-Essid-Name = "{name}"'
        )
        result = server.radclient(mab_attrs(INTEL_MAC, extra=extra))
        assert ("Aruba-Essid-Name", name) in {(a.name, a.value) for a in result.sent}
        return result.code

    assert send("corp") == "Access-Reject"
    assert send("guest") == "Access-Accept"
    [row] = server.history("--ssid", "corp")
    assert (row["rule"], row["action"], row["ssid"]) == ("corp-device", "reject", "corp")
    assert row["called_station_id"] == ON_CORP
    rows = server.history("--mac", INTEL_MAC)
    assert sorted(r["ssid"] for r in rows) == ["corp", "guest"]
