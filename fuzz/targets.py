"""Coverage-guided fuzz targets (atheris) for the parts that read what the network or an
operator hands us.  Each target's contract: the input is accepted, or refused with the error
type that says "bad input"; anything else is a bug.

    python fuzz/targets.py decode -max_total_time=600 fuzz/corpus/decode
    (or: bash fuzz/run.sh decode 600)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from netaddr import IPNetwork

    from nac.admission import Engine
    from nac.clients import Client
    from nac.errors import InvalidMacError, PacketError, PolicyError
    from nac.mac import parse_mac
    from nac.oui import parse_prefix
    from nac.packet import Codes, decode
    from nac.policy import Defaults, Policy
    from nac.policyfile import parse_policy
    from nac.resources import load_dictionary, load_registry

_ENGINE: Engine | None = None
_CLIENT = Client(
    name="fuzz", network=IPNetwork("127.0.0.1/32"), secret=b"testing123", require_message_authenticator=False
)


def _engine() -> Engine:
    global _ENGINE  # noqa: PLW0603 - built once per fuzzing process
    if _ENGINE is None:
        registry = load_registry()
        _ENGINE = Engine(
            codes=Codes.from_dictionary(load_dictionary()),
            policy=Policy([], registry=registry, defaults=Defaults()),
        )
    return _ENGINE


def fuzz_decode(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode(data)


def fuzz_handle(data: bytes) -> None:
    """The whole request path on one datagram from a relaxed client: reply or PacketError."""
    try:
        outcome = _engine().handle(
            data, src=("127.0.0.1", 1), port=0, service="auth", client=_CLIENT, now=0.0
        )
    except PacketError:
        return
    assert outcome.error is None, outcome.error  # a fail-closed internal error is still a bug
    assert 20 <= len(outcome.reply) <= 4096


def fuzz_mac(data: bytes) -> None:
    text = data.decode("latin-1")
    try:
        mac = parse_mac(text)
    except InvalidMacError:
        return
    assert 0 <= mac < 2**48
    digits = [c for c in text if c not in ":-."]
    assert len(digits) == 12


def fuzz_prefix(data: bytes) -> None:
    try:
        prefix, bits = parse_prefix(data.decode("latin-1"))
    except (ValueError, PolicyError):
        return
    assert bits in (24, 28, 36)
    assert 0 <= prefix < 2**bits


def fuzz_policy(data: bytes) -> None:
    with contextlib.suppress(PolicyError):
        parse_policy(data.decode("utf-8", "replace"), origin="fuzz.toml")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decode": fuzz_decode,
    "handle": fuzz_handle,
    "mac": fuzz_mac,
    "prefix": fuzz_prefix,
    "policy": fuzz_policy,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: {sys.argv[0]} ({'|'.join(TARGETS)}) [libFuzzer flags] [corpus dir]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
