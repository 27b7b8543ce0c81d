"""Tests for the load generator, against a tiny in-test RADIUS responder thread."""

from __future__ import annotations

import hmac
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nac.bench.load import BenchResult, build_request, default_macs, run
from nac.cli.main import app
from nac.radius.crypto import HmacMd5, response_authenticator, unhide_password
from tests.interop import subprocess_env

SECRET = b"testing123"

# One regular expression per spelling; every default MAC must match exactly one.
SPELLING_PATTERNS = {
    "00-10-A4-23-19-C0": re.compile(r"^[0-9A-F]{2}(-[0-9A-F]{2}){5}$"),
    "00:10:a4:23:19:c0": re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"),
    "0010a42319c0": re.compile(r"^[0-9a-f]{12}$"),
    "0010.a423.19c0": re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$"),
    "0010-a423-19c0": re.compile(r"^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$"),
    "0010a4-2319c0": re.compile(r"^[0-9a-f]{6}-[0-9a-f]{6}$"),
}


def _hex(mac: str) -> str:
    return re.sub(r"[^0-9a-fA-F]", "", mac).lower()


@dataclass
class Seen:
    """What the responder saw; checked by the tests after the run."""

    requests: int = 0
    authenticators: list[bytes] = field(default_factory=list)
    ids: set[tuple[int, int]] = field(default_factory=set)
    macs: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def check_request(data: bytes, secret: bytes) -> tuple[str | None, list[str]]:
    """Decode an Access-Request; return (MAC, problems)."""
    problems: list[str] = []
    if len(data) < 20 or data[0] != 1 or int.from_bytes(data[2:4], "big") != len(data):
        return None, ["bad header"]
    attrs: list[tuple[int, bytes]] = []
    i = 20
    while i < len(data):
        kind, length = data[i], data[i + 1]
        if length < 2 or i + length > len(data):
            return None, ["bad attribute length"]
        attrs.append((kind, data[i + 2 : i + length]))
        i += length
    if not attrs or attrs[0][0] != 80 or len(attrs[0][1]) != 16:
        problems.append("Message-Authenticator is not the first attribute")
    else:
        zeroed = data[:22] + bytes(16) + data[38:]
        if not hmac.compare_digest(HmacMd5(secret).digest(zeroed), attrs[0][1]):
            problems.append("Message-Authenticator does not verify")
    values = dict(attrs)
    if sorted(k for k, _ in attrs) != [1, 2, 4, 5, 6, 31, 61, 80]:
        problems.append(f"unexpected attribute set {[k for k, _ in attrs]}")
    user = values.get(1, b"")
    password = unhide_password(values.get(2, b""), secret, data[4:20])
    if password != user:
        problems.append(f"User-Password {password!r} does not un-hide to User-Name {user!r}")
    if values.get(31) != user:
        problems.append("Calling-Station-Id differs from User-Name")
    if values.get(6) != (10).to_bytes(4, "big"):
        problems.append("Service-Type is not Call-Check")
    if values.get(4) != bytes((127, 0, 0, 1)):
        problems.append("NAS-IP-Address is not 127.0.0.1")
    if values.get(61) != (15).to_bytes(4, "big"):
        problems.append("NAS-Port-Type is not Ethernet")
    if len(values.get(5, b"")) != 4:
        problems.append("NAS-Port missing")
    return user.decode(), problems


def accept(data: bytes, secret: bytes) -> bytes:
    """A correctly signed Access-Accept for ``data`` (Reply-Message included)."""
    attributes = bytes((18, 4)) + b"ok"
    header = bytes((2, data[1])) + (20 + len(attributes)).to_bytes(2, "big")
    return header + response_authenticator(header, data[4:20], attributes, secret) + attributes


@contextmanager
def responder(
    *,
    sign_with: bytes = SECRET,
    drop: Callable[[int, bytes], bool] = lambda n, auth: False,
    copies: int = 1,
    family: socket.AddressFamily = socket.AF_INET,
) -> Iterator[tuple[str, int, Seen]]:
    """A UDP thread answering every Access-Request with an Access-Accept.

    ``drop(n, authenticator)`` is asked for the n-th datagram (from 1) and drops it when true;
    ``copies`` sends each reply that many times.
    """
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)  # a window of 400 fits
    sock.bind((host, 0))
    sock.settimeout(0.02)
    port = sock.getsockname()[1]
    seen = Seen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            seen.requests += 1
            authenticator = data[4:20]
            seen.authenticators.append(authenticator)
            seen.ids.add((peer[1], data[1]))
            mac, problems = check_request(data, SECRET)
            seen.errors.extend(problems)
            if mac is not None:
                seen.macs.add(mac)
            if drop(seen.requests, authenticator):
                continue
            reply = accept(data, sign_with)
            for _ in range(copies):
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield host, port, seen
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def assert_adds_up(result: BenchResult) -> None:
    assert result.received == sum(result.codes.values())
    assert result.sent == result.received + result.bad_authenticator + result.timeouts


def test_all_accepted_and_well_formed() -> None:
    with responder() as (host, port, seen):
        result = run(host=host, port=port, secret=SECRET, count=600, window=32, timeout=1.0)
    assert not seen.errors, seen.errors[:5]
    assert result.sent == 600
    assert result.received == 600
    assert result.codes == {"Access-Accept": 600, "Access-Reject": 0, "Access-Challenge": 0, "other": 0}
    assert result.timeouts == result.bad_authenticator == result.late == 0
    assert_adds_up(result)
    # Every request had its own Request Authenticator: no duplicate cache could answer.
    assert seen.requests == 600
    assert len(set(seen.authenticators)) == 600
    assert result.requests_per_second > 0
    assert result.latency_p50_ms is not None
    assert result.latency_max_ms is not None
    assert 0 < result.latency_p50_ms <= result.latency_max_ms


def test_default_mix_is_sent_in_every_spelling() -> None:
    with responder() as (host, port, seen):
        run(host=host, port=port, secret=SECRET, count=660, window=64, timeout=1.0)
    assert not seen.errors
    assert seen.macs == set(default_macs(660))


def test_wrong_secret_replies_are_bad_authenticators() -> None:
    with responder(sign_with=b"not-the-secret") as (host, port, _):
        result = run(host=host, port=port, secret=SECRET, count=200, window=16, timeout=0.5)
    assert result.received == 0
    assert result.bad_authenticator == 200
    assert result.timeouts == 0
    assert result.codes["Access-Accept"] == 0
    assert result.latency_p50_ms is None
    assert_adds_up(result)


def test_every_tenth_dropped_times_out() -> None:
    with responder(drop=lambda n, _: n % 10 == 0) as (host, port, seen):
        result = run(host=host, port=port, secret=SECRET, count=300, window=20, timeout=0.15)
    assert seen.requests == 300
    assert result.timeouts == 30
    assert result.received == 270
    assert result.bad_authenticator == 0
    assert_adds_up(result)


def test_retransmission_repeats_the_request() -> None:
    first: set[bytes] = set()

    def drop_first_copy_of_every_tenth(n: int, auth: bytes) -> bool:
        if n % 10 == 0 and auth not in first:
            first.add(auth)
            return True
        return False

    with responder(drop=drop_first_copy_of_every_tenth) as (host, port, seen):
        result = run(host=host, port=port, secret=SECRET, count=100, window=10, timeout=0.1, retries=1)
    assert result.retransmits == len(first) > 0
    assert result.received == 100
    assert result.timeouts == 0
    # A retransmission is the same request: same authenticator, so the server may dedupe.
    assert len(seen.authenticators) == 100 + len(first)
    assert len(set(seen.authenticators)) == 100
    assert_adds_up(result)


def test_duplicate_replies_are_late_not_counted() -> None:
    with responder(copies=2) as (host, port, _):
        result = run(host=host, port=port, secret=SECRET, count=100, window=1, timeout=0.5)
    assert result.received == 100
    # The second copy comes for a request no longer in flight.
    assert result.late >= 90
    assert result.bad_authenticator == 0
    assert_adds_up(result)


def test_large_window_uses_several_sockets() -> None:
    with responder() as (host, port, seen):
        result = run(host=host, port=port, secret=SECRET, count=1000, window=400, timeout=1.0)
    assert result.sockets == 3
    assert result.received == 1000
    assert len({src for src, _ in seen.ids}) == 3
    assert not seen.errors


def test_duration_mode() -> None:
    with responder() as (host, port, _):
        result = run(host=host, port=port, secret=SECRET, duration=0.2, window=8, timeout=0.5)
    assert result.sent > 0
    assert result.received == result.sent
    assert 0.15 < result.elapsed < 1.0


def test_rate_paces_the_requests() -> None:
    """Open loop: 400 requests/s for 0.5 s is about 200 requests, spread out, not a burst."""
    with responder() as (host, port, _):
        result = run(host=host, port=port, secret=SECRET, duration=0.5, window=64, timeout=0.5, rate=400)
    assert result.rate == 400
    assert result.received == result.sent
    assert 170 <= result.sent <= 215, result.sent
    assert 0.4 < result.elapsed < 0.8
    assert "paced at 400 requests/s" in result.format_text()
    unpaced = None
    with responder() as (host, port, _):
        unpaced = run(host=host, port=port, secret=SECRET, duration=0.5, window=64, timeout=0.5)
    assert unpaced.sent > 2 * result.sent  # the window alone goes much faster


def test_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        ctx = responder(family=socket.AF_INET6)
        host, port, _ = ctx.__enter__()
    except OSError:
        pytest.skip("no ::1")
    try:
        result = run(host=host, port=port, secret=SECRET, count=50, window=8, timeout=0.5)
    finally:
        ctx.__exit__(None, None, None)
    assert result.received == 50
    assert "[::1]" in result.format_text()


def test_no_server_all_time_out() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))  # holds the port, reads nothing
    port = sock.getsockname()[1]
    try:
        result = run(port=port, secret=SECRET, count=20, window=20, timeout=0.1)
    finally:
        sock.close()
    assert result.timeouts == 20
    assert result.received == 0
    assert result.requests_per_second == 0


def test_default_macs_cover_all_spellings_and_families() -> None:
    macs = default_macs(66)
    assert macs == default_macs(66)  # deterministic
    assert len(set(macs)) == 66
    for pattern in SPELLING_PATTERNS.values():
        assert sum(1 for m in macs if pattern.match(m)) == 11
    assert all(sum(1 for p in SPELLING_PATTERNS.values() if p.match(m)) == 1 for m in macs)
    prefixes = {_hex(m)[:6] for m in macs}
    assert {"0010a4", "00e0fc", "286ed4", "3c22fb", "00000c", "001b21"} <= prefixes
    firsts = {int(_hex(m)[:2], 16) for m in macs}
    assert any(b & 0x02 for b in firsts)  # locally administered
    assert {_hex(m)[:2] for m in macs} >= {"02", "7a"}


def test_build_request_is_valid() -> None:
    auth = bytes(range(16))
    for mac in default_macs(12):
        packet = build_request(mac, SECRET, 7, auth)
        assert packet[1] == 7
        got, problems = check_request(packet, SECRET)
        assert got == mac
        assert not problems


def test_result_reports() -> None:
    with responder() as (host, port, _):
        result = run(host=host, port=port, secret=SECRET, count=10, window=4, timeout=0.5)
    d = json.loads(json.dumps(result.as_dict()))
    assert d["received"] == 10
    assert d["codes"]["Access-Accept"] == 10
    assert {"latency_p50_ms", "latency_p99_ms", "requests_per_second", "client_cpu_percent"} <= set(d)
    text = result.format_text()
    assert "requests/s" in text
    assert "p99" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 1, "duration": 1.0}, "not both"),
        ({"count": -1}, "count"),
        ({"window": 0}, "window"),
        ({"timeout": 0}, "timeout"),
        ({"macs": []}, "macs"),
        ({"rate": 0}, "rate"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(secret=SECRET, **kwargs)  # type: ignore[arg-type]


# -- the command line: `nac bench` and `python -m nac.bench` are one typer command ---------------

BENCH_OPTIONS = (
    *("--secret-file", "--secret", "--host", "--port", "--count", "--duration"),
    *("--window", "--timeout", "--retries", "--rate", "--json"),
)


def test_nac_bench_help_lists_every_option_from_typer() -> None:
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    assert "Example: nac bench --secret-file" in result.stdout
    for option in BENCH_OPTIONS:
        assert re.search(rf"{re.escape(option)}\b(?!-)", result.stdout), option


def test_nac_bench_reads_the_secret_file_and_prints_json(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    with responder() as (host, port, seen):
        result = CliRunner().invoke(
            app,
            [
                *("bench", "--secret-file", str(secret), "--host", host, "--port", str(port)),
                *("--count", "30", "--window", "4", "--retries", "1", "--json"),
            ],
        )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["sent"], report["received"], report["codes"]["Access-Accept"]) == (30, 30, 30)
    assert seen.requests == 30
    assert not seen.errors


def test_python_m_nac_bench_takes_the_same_options() -> None:
    """bench/compare.py's spelling: a test secret on the command line, JSON out."""
    with responder() as (_, port, seen):
        out = subprocess.run(
            [
                *(sys.executable, "-m", "nac.bench", "--port", str(port), "--secret", SECRET.decode()),
                *("--count", "20", "--window", "4", "--json"),
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["received"] == 20
    assert seen.requests == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "5"], "give the shared secret"),
        (["--secret", "x", "--secret-file", "/dev/null", "--count", "5"], "give the shared secret"),
        (["--secret-file", "/nonexistent/secret", "--count", "5"], "cannot read"),
        (["--secret-file", "/dev/null", "--count", "5"], "the secret is empty"),
        (["--secret", "x", "--count", "5", "--duration", "1"], "exclude each other"),
        (["--secret", "x", "--retries", "-1"], "--retries"),
    ],
)
def test_nac_bench_refuses_bad_options_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.output
