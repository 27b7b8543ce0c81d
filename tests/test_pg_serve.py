"""Two `nac serve` processes on one real PostgreSQL (tests/pgserver.py), each with its own
journal and node: a rule added with the CLI on PostgreSQL is enforced by both within a
second (radclient MAB), audited once; while PostgreSQL is down both keep answering with
their last rules (and one restarted then starts on its journal's), and a rule added after it
returns reaches both.  The servers start once for the module; the tests run in order."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from nac.pg.link import BACKOFF_MAX
from nac.store import Store
from tests.interop import (
    CONFIG_TEMPLATE,
    RELAXED_ADDRESS,
    RELAXED_SECRET,
    SECRET,
    NacServer,
    free_udp_ports,
    mab_attrs,
    require_radclient,
)
from tests.pgserver import PgServer

HUAWEI_MAC = "00e0fc112233"  # 00:E0:FC is Huawei Technologies
XIRCOM_MAC = "0010a42319c0"  # 00:10:A4 is Xircom
#: The issue's promise: a rule change reaches every server within a second.
WITHIN: Final = 1.0
#: After PostgreSQL returns: the follower's next retry (backoff) plus the copy and a tick.
AFTER_OUTAGE: Final = BACKOFF_MAX + 3.0


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server(workdir: Path, url: str, node: str, *, coa_port: int = 3799) -> NacServer:
    workdir.mkdir(parents=True)
    auth_port, acct_port = free_udp_ports(2)
    metrics = _free_tcp_port()
    config = workdir / "nac.toml"
    settings = f'node = "{node}"\njournal = "{workdir / "journal.db"}"\n'
    config.write_text(
        CONFIG_TEMPLATE.format(
            auth_port=auth_port,
            acct_port=acct_port,
            secret=SECRET,
            relaxed_address=RELAXED_ADDRESS,
            relaxed_secret=RELAXED_SECRET,
            coa_port=coa_port,
            server_settings=settings,
        )
        + f'\n[metrics]\nbind = "127.0.0.1:{metrics}"\n'
    )
    server = NacServer(
        workdir=workdir,
        auth_port=auth_port,
        acct_port=acct_port,
        db=url,  # type: ignore[arg-type]  # --db takes a URL as well as a path
        config=config,
        stderr_path=workdir / "nac-serve.stderr",
    )
    server.metrics_port = metrics  # type: ignore[attr-defined]
    server.start()
    assert server.wait_ready(), server.stderr()
    return server


def _metric(server: NacServer, name: str) -> float:
    port = server.metrics_port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found[1])


def _code(server: NacServer, mac: str) -> str | None:
    return server.radclient(mab_attrs(mac)).code


@pytest.fixture(scope="module")
def cluster(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NacServer, NacServer]]:
    require_radclient()
    url = pg.new_database()
    root = tmp_path_factory.mktemp("pg-serve")
    servers = [_server(root / "a", url, "nac-a"), _server(root / "b", url, "nac-b")]
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            if server.running:
                assert server.stop(signal.SIGTERM) == 0, server.stderr()


def _all_reject(servers: tuple[NacServer, ...], mac: str, deadline: float) -> float | None:
    """Seconds until every server rejects ``mac`` (each asked in turn), or None past ``deadline``."""
    start = time.monotonic()
    waiting = list(servers)
    while waiting:
        waiting = [s for s in waiting if _code(s, mac) != "Access-Reject"]
        if waiting and time.monotonic() - start > deadline:
            return None
    return time.monotonic() - start


def test_a_rule_added_on_postgresql_is_enforced_by_both_servers_within_a_second(
    cluster: tuple[NacServer, NacServer],
) -> None:
    a, b = cluster
    assert _code(a, HUAWEI_MAC) == _code(b, HUAWEI_MAC) == "Access-Accept"
    a.cli_ok("rules", "add", "--oui", "00:E0:FC", "--action", "reject", "--id", "ban-huawei")
    took = _all_reject((a, b), HUAWEI_MAC, deadline=WITHIN)
    assert took is not None, f"not enforced by both within {WITHIN} s:\n{a.stderr()}\n{b.stderr()}"
    # Audited once, in PostgreSQL; each journal holds the rule and no audit row for it.
    audit = json.loads(a.cli_ok("audit", "--json"))
    assert [row["subject"] for row in audit if row["action"] == "rules.add"] == ["ban-huawei"]
    for server in (a, b):
        journal = Store(server.workdir / "journal.db")
        try:
            assert [rule.id for rule in journal.rules()] == ["ban-huawei"]
            assert not [row for row in journal.audit_rows() if row["action"] == "rules.add"]
        finally:
            journal.close()
        assert _metric(server, "nac_pg_up") == 1.0


def test_while_postgresql_is_down_both_answer_with_their_last_rules(
    cluster: tuple[NacServer, NacServer], pg: PgServer
) -> None:
    a, b = cluster
    pg.stop()
    try:
        for server in (a, b):
            assert server.wait_for_log("PostgreSQL unreachable for the rules", timeout=5), server.stderr()
            assert _code(server, HUAWEI_MAC) == "Access-Reject"
            assert _code(server, XIRCOM_MAC) == "Access-Accept"
            assert _metric(server, "nac_pg_up") == 0.0
        # A change cannot be made meanwhile: one clear line, no traceback.
        refused = a.cli("rules", "add", "--mac", XIRCOM_MAC, "--action", "reject")
        assert refused.returncode == 1
        assert "cannot connect to PostgreSQL" in refused.stderr
        assert "Traceback" not in refused.stderr
        # A server restarted during the outage starts on its journal's rules.
        assert b.stop(signal.SIGTERM) == 0
        b.start()
        assert b.wait_ready(), b.stderr()
        assert b.wait_for_log("starting on the rules the journal"), b.stderr()
        assert _code(b, HUAWEI_MAC) == "Access-Reject"
    finally:
        pg.start()


def test_a_rule_added_after_postgresql_returns_reaches_both(cluster: tuple[NacServer, NacServer]) -> None:
    a, b = cluster
    a.cli_ok("rules", "add", "--mac", XIRCOM_MAC, "--action", "reject", "--id", "ban-xircom")
    took = _all_reject((a, b), XIRCOM_MAC, deadline=AFTER_OUTAGE)
    assert took is not None, f"not enforced after the outage:\n{a.stderr()}\n{b.stderr()}"
    for server in (a, b):
        assert _code(server, HUAWEI_MAC) == "Access-Reject"
        assert _metric(server, "nac_pg_up") == 1.0
    assert _metric(a, "nac_pg_reconnects_total") >= 1
    # One warning per outage, not one per retry.
    assert a.stderr().count("PostgreSQL unreachable for the rules") == 1
