"""The server process at its edges: garbage on the wire, IPv6, secrets, signals, bad config."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import (
    RELAXED_SECRET,
    SECRET,
    NacServer,
    exchange,
    free_udp_ports,
    mab_attrs,
    mab_request,
    parse_reply,
    radclient,
    require_radclient,
    subprocess_env,
    udp_socket,
)

# Each malformed datagram with the drop reason (counter label) it must produce.
MALFORMED = [
    pytest.param(b"\x01\x01\x00", "too-short", id="three-octets"),
    pytest.param(b"\x01\x01\x00\x13" + bytes(15), "too-short", id="nineteen-octets"),
    pytest.param(struct.pack("!BBH", 1, 2, 19) + bytes(16), "bad-length", id="length-under-20"),
    pytest.param(struct.pack("!BBH", 1, 3, 60) + bytes(16), "bad-length", id="length-past-datagram"),
    pytest.param(
        struct.pack("!BBH", 1, 4, 23) + bytes(16) + b"\x01\x00\x00", "bad-attribute", id="attr-length-0"
    ),
    pytest.param(
        struct.pack("!BBH", 1, 5, 24) + bytes(16) + b"\x01\x09ab", "bad-attribute", id="attr-overruns"
    ),
    pytest.param(struct.pack("!BBH", 1, 6, 4096) + bytes(4092) + b"x" * 10, "too-long", id="over-4096"),
    pytest.param(struct.pack("!BBH", 99, 7, 20) + bytes(16), "unexpected-code", id="unknown-code"),
]


@pytest.mark.parametrize(("datagram", "reason"), MALFORMED)
def test_malformed_datagram_is_dropped_counted_and_the_server_keeps_answering(
    nac_server: NacServer, datagram: bytes, reason: str
) -> None:
    with udp_socket(timeout=0.3) as sock:
        assert exchange(sock, datagram, nac_server.auth_port) is None
        request, _ = mab_request("3c22fb000001", identifier=9)
        reply = exchange(sock, request, nac_server.auth_port)
    assert reply is not None
    assert parse_reply(reply).code == 2
    assert nac_server.stop(signal.SIGTERM) == 0
    log = nac_server.stderr()
    assert f"dropped packet from lab-switch (127.0.0.1): {reason}" in log
    assert f"dropped:{reason}=1" in log


def test_secrets_never_appear_in_the_log(nac_server: NacServer) -> None:
    with udp_socket(timeout=0.3) as sock:
        for secret in ("not-the-secret", SECRET):
            request, _ = mab_request("00e0fc000001", secret=secret)
            exchange(sock, request, nac_server.auth_port)
    with udp_socket("127.0.0.2", timeout=0.3) as sock:
        request, _ = mab_request("00e0fc000002", secret=RELAXED_SECRET, message_authenticator=False)
        assert exchange(sock, request, nac_server.auth_port) is not None
    nac_server.stop(signal.SIGTERM)
    log = nac_server.stderr()
    assert "dropped:bad-message-authenticator=1" in log  # the wrong secret was seen...
    for secret in (SECRET, RELAXED_SECRET, "not-the-secret"):
        assert secret not in log  # ...and no secret was written


def test_sigusr1_logs_the_counters_and_the_server_goes_on(nac_server: NacServer) -> None:
    with udp_socket(timeout=1.0) as sock:
        request, _ = mab_request("3c22fb000002")
        assert exchange(sock, request, nac_server.auth_port) is not None
        assert nac_server.proc is not None
        nac_server.proc.send_signal(signal.SIGUSR1)
        assert nac_server.wait_for_log("counters: decision=1")
        request, _ = mab_request("3c22fb000003", identifier=2)
        assert exchange(sock, request, nac_server.auth_port) is not None


def test_legacy_client_without_message_authenticator_is_named_once(nac_server: NacServer) -> None:
    with udp_socket("127.0.0.2", timeout=1.0) as sock:
        for i in range(3):
            request, _ = mab_request(
                f"3c22fb00001{i}", secret=RELAXED_SECRET, identifier=i, message_authenticator=False
            )
            assert exchange(sock, request, nac_server.auth_port) is not None
    nac_server.stop(signal.SIGTERM)
    assert (
        nac_server.stderr().count("client legacy-switch sends Access-Requests without Message-Authenticator")
        == 1
    )


def test_serve_on_ipv6_answers_radclient(tmp_path: Path) -> None:
    require_radclient()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    auth_port, acct_port = free_udp_ports(2)
    stderr = (tmp_path / "serve.stderr").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nac", "serve", "--db", str(tmp_path / "nac.db"), "--bind", "::1",
         "--auth-port", str(auth_port), "--acct-port", str(acct_port)],
        stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path, env=subprocess_env(),
    )  # fmt: skip
    try:
        for _ in range(30):
            assert proc.poll() is None, (tmp_path / "serve.stderr").read_text()
            _code, out = radclient(mab_attrs("3c22fb000004"), "auth", SECRET, port=auth_port, host="[::1]")
            if "Received Access-Accept" in out:
                break
        else:
            pytest.fail("no Access-Accept over IPv6: " + (tmp_path / "serve.stderr").read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        stderr.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[server]\nauth_port = 70000\n", "nac.toml, line 2: [server] auth_port"),
        ("[[client]]\naddress = '10.0.0.0/33'\nsecret = 's'\n", "nac.toml, line 2: [[client]] #1 address"),
        ("[[client]]\naddress = '10.0.0.1'\n", "nac.toml, line 1: [[client]] #1: secret is required"),
        ("[server]\nbogus = 1\n", "nac.toml, line 2: [server] bogus: unknown setting"),
        ("[server\n", "nac.toml"),
    ],
)
def test_broken_config_refuses_to_start_naming_file_line_and_setting(
    tmp_path: Path, config: str, message: str
) -> None:
    path = tmp_path / "nac.toml"
    path.write_text(config)
    result = subprocess.run(
        [sys.executable, "-m", "nac", "serve", "--config", str(path), "--db", str(tmp_path / "nac.db")],
        capture_output=True, text=True, timeout=30, check=False, env=subprocess_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
