"""Shared fixtures: a real `nac serve` process per test (tests/interop.py has the helpers)."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from nac.radius.packet import Codes
from nac.resources import load_dictionary
from tests.interop import NacServer, NacServerFactory, start_server
from tests.pgserver import PgServer, require_bindir


@pytest.fixture(scope="session")
def codes() -> Codes:
    """The attribute numbers of our dictionaries, for tests that build or read packets."""
    return Codes.from_dictionary(load_dictionary())


@pytest.fixture
def nac_server_factory(tmp_path: Path) -> Iterator[NacServerFactory]:
    """Start `nac serve` processes, each in its own directory, with optional rules added first;
    stops each at the end (SIGTERM) and checks it exited cleanly, unless the test stopped it."""
    servers: list[NacServer] = []

    def start(
        *,
        rules: Iterable[Sequence[str]] = (),
        name: str = "server",
        extra_config: str = "",
        coa_port: int = 3799,
        server_settings: str = "",
        pure_python: bool = False,
    ) -> NacServer:
        server = start_server(
            tmp_path / f"{name}-{len(servers)}",
            rules=rules,
            extra_config=extra_config,
            coa_port=coa_port,
            server_settings=server_settings,
            pure_python=pure_python,
        )
        servers.append(server)
        return server

    yield start
    unclean: list[str] = []
    for server in servers:
        if server.returncode is not None:  # the test stopped (or killed) it on purpose
            continue
        code = server.stop(signal.SIGTERM)
        if code != 0:
            unclean.append(f"exit code {code}; stderr:\n{server.stderr()}")
    assert not unclean, "nac serve did not stop cleanly on SIGTERM: " + "\n".join(unclean)


@pytest.fixture
def nac_server(nac_server_factory: NacServerFactory) -> NacServer:
    """One running `nac serve` with no rules (the shipped policy: accept everything)."""
    return nac_server_factory()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """One real PostgreSQL cluster for the whole session (tests/pgserver.py); a test that stops
    it starts it again.  Skips without the binaries, except under CI."""
    server = PgServer(require_bindir())
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(pg: PgServer) -> str:
    """A fresh, empty database on the session's cluster."""
    return pg.new_database()
