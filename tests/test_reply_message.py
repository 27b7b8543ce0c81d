"""What an Access-Reject's Reply-Message tells the NAS, per client `reply_message`: the vendor
decision's reason (switch logs show it), never a user name or a method's or TLS's detail; the
history record keeps the full reason in every mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakenas import FakeNas, values
from netaddr import IPNetwork

from nac.admission.engine import Engine, Outcome, reply_message
from nac.config import load_config
from nac.equipment.clients import Client
from nac.errors import ConfigError
from nac.policy.decide import Decision, Defaults, Policy, Rule
from nac.radius.packet import Codes
from nac.registry.oui import registry_from_manuf
from nac.resources import load_dictionary

ACCESS_ACCEPT, ACCESS_REJECT, REPLY_MESSAGE = 2, 3, 18
NOW = 1_800_000_000.0
ALLOWED = "00:10:a4:23:19:c0"
BANNED = "00:e0:fc:12:34:56"
QUARANTINED = "00:1b:21:aa:bb:cc"
MANUF = (
    "00:10:A4\tXircom\tXircom\n"
    "00:E0:FC\tHuawei\tHUAWEI TECHNOLOGIES CO.,LTD\n"
    "00:1B:21\tIntel\tIntel Corporate"
)
RULES = (
    Rule(id="ban-huawei", kind="vendor", value="huawei", action="reject", reason="ministry ban"),
    Rule(id="quarantine-intel", kind="vendor", value="intel", action="quarantine", vlan="666", reason="old"),
)


@pytest.fixture(scope="module")
def codes() -> Codes:
    return Codes.from_dictionary(load_dictionary())


@pytest.fixture
def engine(codes: Codes) -> Engine:
    registry = registry_from_manuf(MANUF, source="test", date="2026-01")
    return Engine(codes=codes, policy=Policy(RULES, registry=registry, defaults=Defaults()))


def send(engine: Engine, nas: FakeNas, data: bytes, mode: str) -> Outcome:
    client = Client(name="sw1", network=IPNetwork("192.0.2.0/24"), secret=nas.secret, reply_message=mode)
    return engine.handle(data, src=nas.src, port=1812, service="auth", client=client, now=NOW)


def messages(outcome: Outcome) -> list[str]:
    return [m.decode() for m in values(outcome.reply, REPLY_MESSAGE)]


# (mab() keyword arguments, expected Reply-Messages by mode, text only history may hold)
CASES: list[tuple[str, dict[str, Any], dict[str, list[str]], str | None]] = [
    (
        "vendor-ban",
        {"mac": BANNED},
        {"reason": ["ministry ban (rule ban-huawei)"], "generic": ["access denied"], "none": []},
        None,
    ),
    (
        "quarantine",  # an Access-Accept: "generic" says nothing rather than "access denied"
        {"mac": QUARANTINED},
        {"reason": ["old (rule quarantine-intel)"], "generic": [], "none": []},
        None,
    ),
    (
        "wrong-mab-password",
        {"mac": ALLOWED, "password": "hunter2"},
        {"reason": ["authentication failed"], "generic": ["authentication failed"], "none": []},
        "MAB password does not match",
    ),
    (
        "user-name-not-a-mac",
        {"mac": ALLOWED, "user": "testuser"},
        {"reason": ["authentication failed"], "generic": ["authentication failed"], "none": []},
        "'testuser'",
    ),
    (
        "no-password",
        {"mac": ALLOWED, "omit_password": True},
        {"reason": ["authentication failed"], "generic": ["authentication failed"], "none": []},
        "without User-Password",
    ),
]


@pytest.mark.parametrize("mode", ["reason", "generic", "none"])
@pytest.mark.parametrize(
    ("request_args", "expected", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_reply_message_by_mode_and_history_keeps_the_reason(
    engine: Engine,
    codes: Codes,
    mode: str,
    request_args: dict[str, Any],
    expected: dict[str, list[str]],
    detail: str | None,
) -> None:
    nas = FakeNas(codes)
    request = nas.mab(**request_args)
    outcome = send(engine, nas, request, mode)
    nas.check_reply(request, outcome.reply)
    assert messages(outcome) == expected[mode]
    record = outcome.record
    assert record is not None
    if detail is not None:
        assert detail in record.reason  # the full reason stays in history, whatever the NAS is told
        assert not any(detail in m for m in messages(outcome))


@pytest.mark.parametrize("mode", ["reason", "generic"])
def test_authentication_failure_reasons_never_reach_the_nas(mode: str) -> None:
    # The EAP methods' reasons, as nac/eap writes them: a user name, TLS's own words.
    for reason in ("peap: wrong password for 'testuser'", "eap-tls: TLS: certificate verify failed"):
        decision = Decision("reject", None, "builtin:eap-failure", reason)
        assert reply_message(decision, mode) == "authentication failed"


def test_accept_has_no_reply_message_in_any_mode() -> None:
    decision = Decision("accept", None, "default", "allowed")
    assert {reply_message(decision, m) for m in ("reason", "generic", "none")} == {None}


def test_client_reply_message_setting_loads_and_defaults_to_reason(tmp_path: Path) -> None:
    path = tmp_path / "nac.toml"
    path.write_text(
        '[[client]]\nname = "a"\naddress = "10.0.0.1"\nsecret = "s"\n\n'
        '[[client]]\nname = "b"\naddress = "10.0.0.2"\nsecret = "s"\nreply_message = "none"\n'
        "allow_mab_without_password = true\n"
    )
    a, b = load_config(path).clients
    assert (a.reply_message, a.allow_mab_without_password) == ("reason", False)
    assert (b.reply_message, b.allow_mab_without_password) == ("none", True)


def test_client_refuses_an_unknown_reply_message_mode() -> None:
    with pytest.raises(ConfigError, match="reply_message"):
        Client(name="sw1", network=IPNetwork("192.0.2.0/24"), secret=b"s", reply_message="verbose")
