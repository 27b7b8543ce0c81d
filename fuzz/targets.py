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

try:
    import atheris
except ImportError:  # the regression tests replay crashes without the fuzzer
    atheris = None

with atheris.instrument_imports() if atheris is not None else contextlib.nullcontext():
    from netaddr import IPNetwork

    from nac.admission.engine import Engine
    from nac.equipment.clients import Client
    from nac.errors import InvalidMacError, PacketError, PolicyError
    from nac.policy.decide import Defaults, Policy
    from nac.policy.file import parse_policy
    from nac.profiling.dhcp import parse as parse_dhcp
    from nac.profiling.sensor import sensor_fields
    from nac.profiling.signatures import identify, load_signatures
    from nac.radius.packet import Codes, decode, decode_py
    from nac.registry.mac import parse_mac, try_parse_mac, try_parse_mac_py
    from nac.registry.oui import parse_prefix
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
    """Differential: the C decoder (nac._speedups, when built) and its Python twin agree, on
    the Request or on the PacketError's reason and detail."""
    try:
        expected: object = tuple(decode_py(data))
    except PacketError as exc:
        expected = (exc.reason, exc.detail)
    try:
        got: object = tuple(decode(data))
    except PacketError as exc:
        got = (exc.reason, exc.detail)
    assert got == expected, (got, expected)


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
        assert try_parse_mac(text) is None
        assert try_parse_mac_py(text) is None
        return
    assert try_parse_mac(text) == mac == try_parse_mac_py(text)  # the C twin agrees
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


_EAP: tuple[Engine, Client] | None = None
_PORT = 0


def _eap_engine() -> tuple[Engine, Client]:
    """An engine with EAP-TLS, PEAP and TTLS on, from a throwaway lab PKI (built once)."""
    global _EAP  # noqa: PLW0603 - built once per fuzzing process
    if _EAP is None:
        import tempfile  # noqa: PLC0415

        from nac.eap.certs import init as certs_init  # noqa: PLC0415
        from nac.eap.config import EapConfig, settings  # noqa: PLC0415
        from nac.eap.eap import EapServer  # noqa: PLC0415
        from nac.eap.keys import MppeCodes  # noqa: PLC0415
        from nac.eap.mschapv2 import nt_hash  # noqa: PLC0415

        pki = tempfile.mkdtemp(prefix="nac-fuzz-pki-")
        certs_init(__import__("pathlib").Path(pki))
        config = EapConfig(
            certificate=f"{pki}/server.pem",
            private_key=f"{pki}/server.key",
            ca_certificates=f"{pki}/ca.pem",
            methods=("tls", "peap", "ttls"),
        )
        dictionary = load_dictionary()
        server = EapServer(
            settings(config, {"alice": nt_hash("pw")}), mppe=MppeCodes.from_dictionary(dictionary)
        )
        engine = Engine(
            codes=Codes.from_dictionary(dictionary),
            policy=Policy([], registry=load_registry(), defaults=Defaults()),
            eap=server,
        )
        client = Client(name="fuzz", network=IPNetwork("127.0.0.1/32"), secret=b"testing123")
        _EAP = (engine, client)
    return _EAP


def _eap_request(engine: Engine, client: Client, message: bytes, state: bytes | None, ident: int) -> bytes:
    from nac.radius.packet import attribute, encode_request, split_attribute  # noqa: PLC0415

    codes = engine.codes
    attrs = (
        attribute(codes.user_name, b"fuzz")
        + attribute(codes.calling_station_id, b"00-10-A4-23-19-C0")
        + split_attribute(codes.eap_message, message)
    )
    if state is not None:
        attrs += attribute(codes.state, state)
    return encode_request(1, ident, bytes(16), attrs, key=client.key)


def fuzz_eap(data: bytes) -> None:
    """An EAP conversation's second round (after Identity) carrying fuzzed EAP-TLS/PEAP/TTLS
    data: the TLS record and fragment handling.  Reply or PacketError, never an internal error."""
    engine, client = _eap_engine()
    global _PORT  # noqa: PLW0603 - a fresh source port each run: no duplicate-cache hits
    _PORT = _PORT % 60000 + 1
    src = ("127.0.0.1", _PORT)
    identity = b"\x02\x01\x00\x0a\x01alice"  # EAP-Response/Identity, 10 octets
    first = engine.handle(
        _eap_request(engine, client, identity, None, 1), src=src, port=0, service="auth",
        client=client, now=0.0,
    )  # fmt: skip
    assert first.error is None, first.error
    state = next((v for k, v in _attributes(first.reply) if k == engine.codes.state), None)
    challenge = b"".join(v for k, v in _attributes(first.reply) if k == engine.codes.eap_message)
    if state is None or len(challenge) < 2 or not data:
        if state is not None:
            engine.eap.discard(state)  # type: ignore[union-attr]  # one conversation per run
        return
    method = (13, 25, 21)[data[0] % 3]  # EAP-TLS, PEAP, TTLS
    body = bytes([method]) + data[1:2000]
    message = bytes([2, challenge[1]]) + (4 + len(body)).to_bytes(2, "big") + body
    try:
        second = engine.handle(
            _eap_request(engine, client, message, state, 2), src=src, port=0, service="auth",
            client=client, now=0.0,
        )  # fmt: skip
    except PacketError:
        engine.eap.discard(state)  # type: ignore[union-attr]
        return
    assert second.error is None, second.error
    engine.eap.discard(state)  # type: ignore[union-attr]  # no conversation outlives its run


_SIGNATURES = load_signatures()


def fuzz_dhcp(data: bytes) -> None:
    """A relayed DHCP copy: parsed or refused with PacketError; what it yields identifies (or
    not) without error; device-sensor values of any bytes give fields or nothing."""
    try:
        info = parse_dhcp(data)
    except PacketError:
        pass
    else:
        fields = info.fields()
        assert all(isinstance(v, str) and v.isprintable() for v in fields.values()), fields
        identify(fields, _SIGNATURES)
    split = data.split(b"\x00\x00", 2)
    fields = sensor_fields([b"dhcp-option=" + part for part in split], [data[:64]])
    assert all(isinstance(v, str) for v in fields.values()), fields


def _attributes(packet: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 20
    while pos + 2 <= len(packet):
        out.append((packet[pos], packet[pos + 2 : pos + packet[pos + 1]]))
        pos += packet[pos + 1]
    return out


TARGETS: dict[str, Callable[[bytes], None]] = {
    "eap": fuzz_eap,
    "decode": fuzz_decode,
    "handle": fuzz_handle,
    "mac": fuzz_mac,
    "prefix": fuzz_prefix,
    "policy": fuzz_policy,
    "dhcp": fuzz_dhcp,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: {sys.argv[0]} ({'|'.join(TARGETS)}) [libFuzzer flags] [corpus dir]")
    target = TARGETS[sys.argv.pop(1)]
    if atheris is None:
        raise SystemExit("pip install atheris")
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
