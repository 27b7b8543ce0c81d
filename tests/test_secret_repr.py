"""Secrets stay out of every repr: logs, tracebacks and debuggers show these records."""

from __future__ import annotations

from netaddr import IPNetwork

from nac.config import Config
from nac.eap.eap import EapReply, EapSettings
from nac.eap.method import Done
from nac.equipment.clients import Client
from nac.radius.dynauth import Target

SECRET = b"Sup3r-s3cret-shared"
NT_HASH = bytes.fromhex("8846f7eaee8fb117ad06bdd830b7586c")
MSK = bytes(range(64))


def _hidden(text: str, *secrets: bytes) -> bool:
    return not any(s.decode("latin-1") in text or repr(s) in text or s.hex() in text for s in secrets)


def test_client_repr_hides_the_secret() -> None:
    client = Client(name="sw1", network=IPNetwork("192.0.2.0/24"), secret=SECRET)
    assert "sw1" in repr(client)
    assert _hidden(repr(client), SECRET)
    assert _hidden(repr(Config(clients=(client,))), SECRET)


def test_target_repr_hides_the_coa_secret() -> None:
    target = Target(nas_ip="192.0.2.1", port=3799, secret=SECRET, client="sw1", session_id="s1")
    assert "192.0.2.1" in repr(target)
    assert _hidden(repr(target), SECRET)


def test_eap_settings_repr_hides_the_nt_hashes() -> None:
    settings = EapSettings(methods=("peap",), users={"testuser": NT_HASH})
    assert _hidden(repr(settings), NT_HASH)


def test_eap_results_repr_hide_the_msk() -> None:
    done = Done(identity="testuser", msk=MSK)
    assert "testuser" in repr(done)
    assert _hidden(repr(done), MSK)
    reply = EapReply(
        kind="success",
        message=b"\x03\x01\x00\x04",
        state=None,
        method="peap",
        identity="testuser",
        msk=MSK,
        reason="",
    )
    assert "testuser" in repr(reply)
    assert "64 octets" in repr(reply)
    assert _hidden(repr(reply), MSK)
    assert reply.msk == MSK  # still there for the keys, only not shown
