"""EAP methods driven in-process, one step at a time, where the RADIUS-level tests only reach
them through a running server and a real supplicant (which coverage does not follow)."""

from __future__ import annotations

import hashlib

import pytest

from nac.eap.md5 import CHALLENGE_LEN, TYPE_MD5, EapMd5
from nac.eap.method import Done, Failed

CHALLENGE = bytes(range(CHALLENGE_LEN))
PASSWORDS = {"bob": "s3cret"}


def _md5(identity: str = "bob", identifier: int = 7) -> EapMd5:
    return EapMd5(
        identity=identity,
        password=PASSWORDS.get,
        identifier=lambda: identifier,
        random=lambda n: CHALLENGE[:n],
        server_name="nac-test",
    )


def _answer(password: str, identifier: int = 7) -> bytes:
    return bytes((16,)) + hashlib.md5(bytes((identifier,)) + password.encode() + CHALLENGE).digest()


def test_md5_challenge_is_length_value_then_server_name() -> None:
    method = _md5()
    assert (method.name, method.eap_type) == ("eap-md5", TYPE_MD5)
    assert method.start() == bytes((CHALLENGE_LEN,)) + CHALLENGE + b"nac-test"


def test_md5_right_password_authenticates_without_keys() -> None:
    step = _md5().process(_answer("s3cret"))
    assert step == Done("bob", b"")


def test_md5_answer_is_bound_to_the_identifier_the_challenge_went_out_with() -> None:
    # The same password hashed under another EAP Identifier is a replay, not an answer.
    step = _md5(identifier=7).process(_answer("s3cret", identifier=8))
    assert isinstance(step, Failed)
    assert step.reason == "eap-md5: wrong password for 'bob'"


def test_md5_wrong_password_is_refused_by_name() -> None:
    step = _md5().process(_answer("guess"))
    assert step == Failed("eap-md5: wrong password for 'bob'")


def test_md5_user_not_enrolled_for_md5_is_refused_before_any_hashing() -> None:
    step = _md5(identity="carol").process(_answer("s3cret"))
    assert step == Failed("eap-md5: 'carol' is not enrolled for EAP-MD5")


@pytest.mark.parametrize(
    "data",
    [b"", bytes((15,)) + bytes(15), bytes((16,)) + bytes(15), bytes((17,)) + bytes(17)],
    ids=["empty", "short-value-size", "truncated-value", "wrong-value-size"],
)
def test_md5_malformed_response_is_refused(data: bytes) -> None:
    assert _md5().process(data) == Failed("eap-md5: malformed response")
