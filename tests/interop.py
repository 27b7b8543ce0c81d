"""Helpers for tests that run `nac serve` as a process and talk to it over UDP.

The peers here are ones we did not write (FreeRADIUS's `radclient`) or small Python clients for
what radclient cannot do (choose its source address, retransmit an identical datagram).
Every subprocess and every socket wait is bounded by a timeout, so a hung server fails a test
instead of hanging the suite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import pytest

from nac.radius.crypto import HmacMd5, hide_password, random_authenticator
from nac.radius.packet import ACCESS_REQUEST, STATUS_SERVER, encode_request

REPO: Final = Path(__file__).resolve().parent.parent
SECRET: Final = "testing123"
#: The client at 127.0.0.2: old gear that sends no Message-Authenticator.
RELAXED_ADDRESS: Final = "127.0.0.2"
RELAXED_SECRET: Final = "legacy-secret"
#: An address on the loopback that no [[client]] entry covers.
UNKNOWN_ADDRESS: Final = "127.0.0.3"
#: Another developer may run FreeRADIUS here (radiusd -X with its test ports).
RESERVED_PORTS: Final = frozenset({18120, 18121})
READY_TIMEOUT: Final = 15.0
READY_POLL: Final = 0.05
STOP_TIMEOUT: Final = 15.0
CLI_TIMEOUT: Final = 60.0
#: CONTRACT.md: a rule change applies within 2 seconds; allow scheduling slack on top.
RULE_CHANGE_DEADLINE: Final = 2.5

# RADIUS attribute numbers (RFC 2865, RFC 2869, RFC 3579) used to build requests by hand.
USER_NAME: Final = 1
USER_PASSWORD: Final = 2
REPLY_MESSAGE: Final = 18
PROXY_STATE: Final = 33
CALLING_STATION_ID: Final = 31
MESSAGE_AUTHENTICATOR: Final = 80

CONFIG_TEMPLATE: Final = """\
[server]
bind = "127.0.0.1"
auth_port = {auth_port}
acct_port = {acct_port}
{server_settings}
[[client]]
name = "lab-switch"
address = "127.0.0.1"
secret = "{secret}"
coa_port = {coa_port}

[[client]]
name = "legacy-switch"
address = "{relaxed_address}/32"
secret = "{relaxed_secret}"
require_message_authenticator = false
"""


# -- radclient ----------------------------------------------------------------------------


def require_radclient() -> str:
    """radclient's path; skip when it is missing, except under CI where it must be installed."""
    path = shutil.which("radclient")
    if path is None:
        reason = "radclient (Debian package freeradius-utils) is not on PATH"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI is set and CI installs it", pytrace=False)
        pytest.skip(reason)
    return path


class Attribute(NamedTuple):
    name: str
    value: str  # quotes removed from strings; octets as radclient prints them (0x...)
    tag: int | None = None


@dataclass(frozen=True)
class RadclientResult:
    returncode: int
    stdout: str
    sent: list[Attribute]
    code: str | None  # the reply's code name, e.g. "Access-Accept"; None when nothing came back
    reply: list[Attribute]

    def values(self, name: str) -> list[str]:
        return [a.value for a in self.reply if a.name == name]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None


_SENT_RE: Final = re.compile(r"^Sent (\S+) Id \d+ ")
_RECEIVED_RE: Final = re.compile(r"^Received (\S+) Id \d+ ")
_ATTR_RE: Final = re.compile(r"^\s+([A-Za-z0-9-]+)(?::(\d+))? = (.*)$")


def parse_radclient(stdout: str, returncode: int = 0) -> RadclientResult:
    """Split `radclient -x` output into the attributes sent and the reply's code and attributes
    (radclient prints attributes in wire order, one per tab-indented line)."""
    sent: list[Attribute] = []
    reply: list[Attribute] = []
    code: str | None = None
    section: list[Attribute] | None = None
    for line in stdout.splitlines():
        if m := _SENT_RE.match(line):
            section = sent
        elif m := _RECEIVED_RE.match(line):
            code = m[1]
            section = reply
        elif (m := _ATTR_RE.match(line)) and section is not None:
            value = m[3]
            if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            section.append(Attribute(m[1], value, int(m[2]) if m[2] is not None else None))
        else:
            section = None
    return RadclientResult(returncode, stdout, sent, code, reply)


def radclient(
    attrs: str,
    code: str = "auth",
    secret: str = SECRET,
    *,
    port: int,
    retries: int = 1,
    timeout: float = 1,
    host: str = "127.0.0.1",
) -> tuple[int, str]:
    """Send one request with `radclient -x`; ``attrs`` is radclient's "A = v, B = w" syntax.

    Returns radclient's exit code (non-zero for no reply, and also for an Access-Reject, which
    radclient did not "expect") and its output, for :func:`parse_radclient`.
    """
    binary = require_radclient()
    proc = subprocess.run(
        [binary, "-x", "-r", str(retries), "-t", str(timeout), f"{host}:{port}", code, secret],
        input=attrs,
        capture_output=True,
        text=True,
        timeout=retries * timeout + 10,
        check=False,
    )
    return proc.returncode, proc.stdout


def mab_attrs(mac: str, *, message_authenticator: bool = True, extra: str = "") -> str:
    """A switch's MAB request in radclient syntax: the MAC as User-Name, password and
    Calling-Station-Id (PROTOCOL.md, "MAB")."""
    parts = [f'User-Name = "{mac}"', f'User-Password = "{mac}"', f'Calling-Station-Id = "{mac}"']
    if message_authenticator:
        parts.append("Message-Authenticator = 0x00")
    if extra:
        parts.append(extra)
    return ", ".join(parts)


# -- RADIUS from Python -------------------------------------------------------------------


def attribute(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value) + 2)) + value


def mab_request(
    mac: str,
    *,
    secret: str = SECRET,
    identifier: int = 1,
    authenticator: bytes | None = None,
    message_authenticator: bool = True,
    proxy_states: Sequence[bytes] = (),
) -> tuple[bytes, bytes]:
    """An Access-Request as a MAB switch sends it; returns (datagram, request authenticator)."""
    authenticator = authenticator or random_authenticator()
    raw = mac.encode()
    body = (
        attribute(USER_NAME, raw)
        + attribute(USER_PASSWORD, hide_password(raw, secret.encode(), authenticator))
        + attribute(CALLING_STATION_ID, raw)
        + b"".join(attribute(PROXY_STATE, p) for p in proxy_states)
    )
    key = HmacMd5(secret.encode()) if message_authenticator else None
    return encode_request(ACCESS_REQUEST, identifier, authenticator, body, key=key), authenticator


def status_server(*, secret: str = SECRET, identifier: int = 0) -> bytes:
    """Status-Server with Message-Authenticator, as RFC 5997 requires."""
    return encode_request(
        STATUS_SERVER, identifier, random_authenticator(), b"", key=HmacMd5(secret.encode())
    )


class Reply(NamedTuple):
    code: int
    identifier: int
    attributes: list[tuple[int, bytes]]
    data: bytes


def parse_reply(data: bytes) -> Reply:
    attrs: list[tuple[int, bytes]] = []
    pos = 20
    while pos < len(data):
        attrs.append((data[pos], data[pos + 2 : pos + data[pos + 1]]))
        pos += data[pos + 1]
    return Reply(data[0], data[1], attrs, data)


def reply_signed(reply: bytes, request_authenticator: bytes, secret: str) -> bool:
    """Whether ``reply`` answers the request with ``request_authenticator`` (RFC 2865 §3)."""
    expected = hashlib.md5(reply[:4] + request_authenticator + reply[20:] + secret.encode()).digest()
    return hmac.compare_digest(expected, reply[4:20])


def udp_socket(source: str = "127.0.0.1", timeout: float = 1.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    return sock


def exchange(sock: socket.socket, data: bytes, port: int, host: str = "127.0.0.1") -> bytes | None:
    """Send one datagram and wait (the socket's timeout) for one reply; None if none came."""
    sock.sendto(data, (host, port))
    try:
        reply, _ = sock.recvfrom(4096)
    except TimeoutError:
        return None
    return reply


def free_udp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel says are free now (a race remains; the server start retries on it)."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.bind((host, 0))
            port = sock.getsockname()[1]
            if port not in RESERVED_PORTS:
                ports.append(port)
    finally:
        for sock in socks:
            sock.close()
    return ports


# -- the server process -------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("NAC_DB", None)
    return env


#: `python -m nac` with nac._speedups and nac._udp unimportable: the pure-Python request path.
PURE_PYTHON = (
    "import sys; sys.modules['nac._speedups'] = None; sys.modules['nac._udp'] = None; "
    "from nac.entry import main; main()"
)


@dataclass
class NacServer:
    """One `nac serve` process with its own config, database and free ports."""

    workdir: Path
    auth_port: int
    acct_port: int
    db: Path
    config: Path
    stderr_path: Path
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    _stderr_file: Any = field(default=None, repr=False)
    #: Run with the C modules refused at import (as on a machine without a C compiler).
    pure_python: bool = False

    # -- the CLI against the same database --------------------------------------------------

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`python -m nac ARGS --db DB`, as an operator runs it while the server runs."""
        return subprocess.run(
            [sys.executable, "-m", "nac", *args, "--db", str(self.db)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env=subprocess_env(),
            check=False,
        )

    def cli_ok(self, *args: str) -> str:
        proc = self.cli(*args)
        assert proc.returncode == 0, f"nac {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        return proc.stdout

    def history(self, *args: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.cli_ok("history", "--json", *args))
        return rows

    def radclient(
        self, attrs: str, code: str = "auth", secret: str = SECRET, *, port: int | None = None, **kw: Any
    ) -> RadclientResult:
        """radclient against this server (the auth port, or the acct port for ``acct``), parsed."""
        if port is None:
            port = self.acct_port if code == "acct" else self.auth_port
        returncode, stdout = radclient(attrs, code, secret, port=port, **kw)
        return parse_radclient(stdout, returncode)

    # -- the process ------------------------------------------------------------------------

    def start(self) -> None:
        self._stderr_file = self.stderr_path.open("ab")
        launcher = [sys.executable, "-c", PURE_PYTHON] if self.pure_python else [sys.executable, "-m", "nac"]
        self.proc = subprocess.Popen(
            [
                *launcher,
                "serve",
                "--config",
                str(self.config),
                "--db",
                str(self.db),
                "--bind",
                "127.0.0.1",
                "--auth-port",
                str(self.auth_port),
                "--acct-port",
                str(self.acct_port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr_file,
            cwd=self.workdir,
            env=subprocess_env(),
        )
        self.returncode = None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Poll with Status-Server every 50 ms; False if the process exited first."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with udp_socket(timeout=READY_POLL) as sock:
            identifier = 0
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                identifier = (identifier + 1) % 256
                if exchange(sock, status_server(identifier=identifier), self.auth_port) is not None:
                    return True
        pytest.fail(f"nac serve did not answer Status-Server within {timeout} s; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it; returns its exit code (negative: killed by a signal)."""
        if self.proc is None:
            raise RuntimeError("the server was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"nac serve ignored signal {sig} for {STOP_TIMEOUT} s; stderr:\n{self.stderr()}")
        self.returncode = self.proc.returncode
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        return self.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, text: str, timeout: float = 3.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return True
            time.sleep(READY_POLL)
        return text in self.stderr()


#: The `nac_server_factory` fixture: ``factory(rules=[("--vendor", "x", "--action", "reject")])``.
NacServerFactory = Callable[..., NacServer]


def start_server(
    workdir: Path,
    *,
    rules: Iterable[Sequence[str]] = (),
    extra_config: str = "",
    coa_port: int = 3799,
    server_settings: str = "",
    attempts: int = 3,
    pure_python: bool = False,
) -> NacServer:
    """Write a config, add ``rules`` (each `nac rules add` arguments) and start `nac serve`.

    Free ports are only free when looked at; if another process takes one before the server
    binds it, the start is retried on new ports.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "nac.db"
    rules = list(rules)
    for attempt in range(attempts):
        auth_port, acct_port = free_udp_ports(2)
        config = workdir / "nac.toml"
        config.write_text(
            CONFIG_TEMPLATE.format(
                auth_port=auth_port,
                acct_port=acct_port,
                secret=SECRET,
                relaxed_address=RELAXED_ADDRESS,
                relaxed_secret=RELAXED_SECRET,
                coa_port=coa_port,
                server_settings=server_settings,
            )
            + extra_config
        )
        server = NacServer(
            workdir=workdir,
            auth_port=auth_port,
            acct_port=acct_port,
            db=db,
            config=config,
            stderr_path=workdir / f"nac-serve-{attempt}.stderr",
            pure_python=pure_python,
        )
        if attempt == 0:
            for rule in rules:
                server.cli_ok("rules", "add", *rule)
        server.start()
        if server.wait_ready():
            return server
        server.stop()
        if "cannot listen" not in server.stderr():
            break
    pytest.fail(f"nac serve exited before it was ready ({server.returncode}); stderr:\n{server.stderr()}")


def wait_for_decision(check: Any, expected: Any, deadline: float = RULE_CHANGE_DEADLINE) -> Any:
    """Call ``check()`` until it returns ``expected`` or ``deadline`` seconds pass; the last value."""
    end = time.monotonic() + deadline
    value = check()
    while value != expected and time.monotonic() < end:
        time.sleep(0.1)
        value = check()
    return value
