"""Equipment profiles: MAB as each family of switch shapes it, in memory and through a running
server.  The two shapes that used to be refused for the wrong reason: a fixed MAB account
(Huawei/H3C `user-name-format fixed`: User-Name 'macauth', the MAC only in Calling-Station-Id)
and User-Name = the MAC with one fixed password (ArubaOS-Switch `mac-based password`)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from fakenas import FakeNas
from interop import NacServerFactory, exchange, parse_reply, udp_socket
from netaddr import IPNetwork

from nac.admission.engine import BAD_MAB_PASSWORD, NOT_MAB, Engine
from nac.config import load_config
from nac.equipment.clients import Client
from nac.equipment.profiles import SHIPPED, client_shape, load_profiles
from nac.errors import ConfigError
from nac.policy.decide import Defaults, Policy, Rule
from nac.radius.packet import Codes
from nac.registry.oui import Registry, registry_from_manuf

MANUF = "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD\n00:10:A4\tXircom\tXircom"
HUAWEI = "00e0fc123456"
LAPTOP = "0010a42319c0"
FIXED = "mab-Pa55"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "mab.secret"
    path.write_text(FIXED + "\n")
    return path


def client(nas: FakeNas, profile: str, secret_file: Path | None = None, **overrides: str) -> Client:
    if secret_file is not None:
        overrides.setdefault("mab_password_file", str(secret_file))
    shape = client_shape(load_profiles()[profile], overrides, where="test")
    return Client(
        name="sw1", network=IPNetwork("192.0.2.0/24"), secret=nas.secret, profile=profile, mab=shape
    )


def decide(
    codes: Codes, registry: Registry, sw: Client, nas: FakeNas, **request: object
) -> tuple[int, str, str]:
    rules = [Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", reason="ministry ban")]
    engine = Engine(codes=codes, policy=Policy(rules, registry=registry, defaults=Defaults()))
    mac = str(request.pop("mac"))
    outcome = engine.handle(
        nas.mab(mac, **request), src=nas.src, port=1812, service="auth", client=sw, now=1.8e9
    )  # type: ignore[arg-type]
    assert outcome.record is not None
    return outcome.reply[0], outcome.record.rule, outcome.record.reason


@pytest.mark.parametrize("profile", ["huawei", "h3c"])
def test_fixed_account_shape_decides_on_the_calling_station_id(
    codes: Codes, registry: Registry, secret_file: Path, profile: str
) -> None:
    nas = FakeNas(codes)
    sw = client(nas, profile, secret_file, mab_account="macauth")
    ban = decide(
        codes, registry, sw, nas, mac=HUAWEI, user="macauth", password=FIXED, calling="00-E0-FC-12-34-56"
    )
    assert ban[:2] == (3, "ban-huawei")
    assert "ministry ban" in ban[2]
    assert decide(codes, registry, sw, nas, mac=LAPTOP, user="macauth", password=FIXED, calling=LAPTOP)[
        :2
    ] == (2, "default")
    chap = decide(
        codes, registry, sw, nas, mac=LAPTOP, user="macauth", chap=True, chap_secret=FIXED, calling=LAPTOP
    )
    assert chap[:2] == (2, "default")
    wrong = decide(codes, registry, sw, nas, mac=LAPTOP, user="macauth", password="guess", calling=LAPTOP)
    assert wrong[:2] == (3, BAD_MAB_PASSWORD)
    other = decide(codes, registry, sw, nas, mac=LAPTOP, user="someone", password=FIXED, calling=LAPTOP)
    assert other[:2] == (3, NOT_MAB)
    assert f"profile {profile}" in other[2]
    assert "'macauth'" in other[2]


def test_fixed_account_shape_still_takes_the_default_mac_format(codes: Codes, registry: Registry) -> None:
    nas = FakeNas(codes)
    sw = client(nas, "huawei")  # user-name-format mac-address, Huawei's default
    assert decide(codes, registry, sw, nas, mac="00e0-fc12-3456")[:2] == (3, "ban-huawei")
    assert decide(codes, registry, sw, nas, mac="0010-a423-19c0")[:2] == (2, "default")


def test_fixed_password_with_the_mac_as_user_name(
    codes: Codes, registry: Registry, secret_file: Path
) -> None:
    nas = FakeNas(codes)
    sw = client(nas, "arubaos-switch", secret_file)
    assert decide(codes, registry, sw, nas, mac=HUAWEI, password=FIXED)[:2] == (3, "ban-huawei")
    assert decide(codes, registry, sw, nas, mac=LAPTOP, password=FIXED)[:2] == (2, "default")
    assert decide(codes, registry, sw, nas, mac=LAPTOP)[:2] == (2, "default")  # the MAC still does
    strict = client(nas, "arubaos-switch", secret_file, mab_password="fixed")
    assert decide(codes, registry, strict, nas, mac=LAPTOP)[:2] == (3, BAD_MAB_PASSWORD)


def test_generic_client_refuses_a_fixed_account_naming_its_profile(codes: Codes, registry: Registry) -> None:
    nas = FakeNas(codes)
    code, rule, reason = decide(
        codes,
        registry,
        client(nas, "generic"),
        nas,
        mac=LAPTOP,
        user="macauth",
        password=FIXED,
        calling=LAPTOP,
    )
    assert (code, rule) == (3, NOT_MAB)
    assert "profile generic" in reason
    assert "User-Name = the MAC" in reason


def test_password_none_profile_override_decides_without_one(codes: Codes, registry: Registry) -> None:
    nas = FakeNas(codes)
    sw = client(nas, "generic", mab_password="none")
    assert decide(codes, registry, sw, nas, mac=HUAWEI, omit_password=True)[:2] == (3, "ban-huawei")


@pytest.mark.parametrize("name", sorted(load_profiles()))
def test_every_shipped_profile_takes_its_documented_default_shape(
    codes: Codes, registry: Registry, name: str
) -> None:
    profile = load_profiles()[name]
    assert profile.title
    assert profile.docs
    nas = FakeNas(codes)
    sw = client(nas, name)
    assert decide(codes, registry, sw, nas, mac=HUAWEI)[:2] == (3, "ban-huawei")
    assert decide(codes, registry, sw, nas, mac=LAPTOP)[:2] == (2, "default")
    assert profile.reauth == {"cisco": "cisco", "hostapd": "disconnect"}.get(name, "rfc5176")


def test_shipped_file_parses_and_names_only_known_keys() -> None:
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    assert "generic" in data


@pytest.mark.parametrize(
    ("client_lines", "part"),
    [
        ('profile = "nokia-7750"', "unknown profile 'nokia-7750'"),
        ('profile = "huawei"\nmab_password = "fixed"', "needs mab_password_file"),
        (
            'profile = "huawei"\nmab_password_file = "/nonexistent/mab.secret"',
            "cannot read mab_password_file",
        ),
        ('mab_mac_from = "option-82"', "mac_from must be one of"),
        ('mab_password = "maybe"', "password must be one of"),
    ],
)
def test_client_profile_errors_name_the_file_and_setting(
    tmp_path: Path, client_lines: str, part: str
) -> None:
    config = tmp_path / "nac.toml"
    config.write_text(f'[[client]]\nname = "sw1"\naddress = "192.0.2.1"\nsecret = "s"\n{client_lines}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert part in str(caught.value)
    assert str(config) in str(caught.value)


def test_client_profile_sets_the_coa_spelling_unless_overridden(tmp_path: Path) -> None:
    config = tmp_path / "nac.toml"
    config.write_text(
        '[[client]]\nname = "a"\naddress = "192.0.2.1"\nsecret = "s"\nprofile = "cisco"\n'
        '[[client]]\nname = "b"\naddress = "192.0.2.2"\nsecret = "s"\nprofile = "cisco"\nreauth = "rfc5176"\n'
    )
    a, b = load_config(config).clients
    assert (a.profile, a.reauth, b.reauth) == ("cisco", "cisco", "rfc5176")


# -- through a running server -------------------------------------------------------------------


def test_running_server_bans_behind_a_fixed_account_switch(
    nac_server_factory: NacServerFactory, tmp_path: Path, codes: Codes
) -> None:
    secret = tmp_path / "macauth.secret"
    secret.write_text(FIXED + "\n")
    server = nac_server_factory(
        rules=[("--vendor", "huawei", "--action", "reject", "--reason", "ministry ban 2026-04")],
        extra_config=(
            '\n[[client]]\nname = "huawei-sw"\naddress = "127.0.0.3"\nsecret = "huawei-secret"\n'
            f'profile = "huawei"\nmab_account = "macauth"\nmab_password_file = "{secret}"\n'
        ),
    )
    nas = FakeNas(codes, secret=b"huawei-secret", src=("127.0.0.3", 0), nas_ip="127.0.0.3")
    answers = {}
    with udp_socket("127.0.0.3", timeout=2.0) as sock:
        for mac in (HUAWEI, LAPTOP):
            request = nas.mab(mac, user="macauth", password=FIXED, calling=mac.upper())
            reply = exchange(sock, request, server.auth_port)
            assert reply is not None, server.stderr()
            answers[mac] = parse_reply(reply).code
    assert answers == {HUAWEI: 3, LAPTOP: 2}
    row = server.history("--mac", HUAWEI, "--limit", "1")[0]
    assert (row["rule"], row["client"]) == ("reject-vendor-huawei", "huawei-sw")
    assert "ministry ban 2026-04" in row["reason"]
    shown = {
        c["name"]: c for c in json.loads(server.cli_ok("clients", "--config", str(server.config), "--json"))
    }
    assert shown["huawei-sw"]["profile"] == "huawei"
    assert shown["huawei-sw"]["requests"] == 2
    assert shown["huawei-sw"]["last_mab_shape"] == "User-Name 'macauth', the MAC in Calling-Station-Id"
    assert "Calling-Station-Id = the MAC with User-Name 'macauth'" in shown["huawei-sw"]["mab"]
    assert (shown["lab-switch"]["profile"], shown["lab-switch"]["requests"]) == ("generic", 0)
    assert "huawei-sw" in server.cli_ok("clients", "--config", str(server.config))


@pytest.mark.parametrize("name", sorted(load_profiles()))
def test_every_shipped_profile_has_its_accounting_answered_and_read(
    codes: Codes, registry: Registry, name: str
) -> None:
    nas = FakeNas(codes)
    sw = client(nas, name)
    engine = Engine(codes=codes, policy=Policy([], registry=registry, defaults=Defaults()))
    outcome = engine.handle(
        nas.accounting_request("00-10-A4-23-19-C0", session_id="0A00000A"),
        src=nas.src, port=1813, service="acct", client=sw, now=1.8e9,
    )  # fmt: skip
    assert outcome.reply[0] == 5  # Accounting-Response
    assert outcome.session is not None
    assert (outcome.session.mac, outcome.session.session_id, outcome.session.status) == (
        "00:10:a4:23:19:c0",
        "0A00000A",
        "start",
    )
