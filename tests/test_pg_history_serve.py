"""Two `nac serve` processes on one real PostgreSQL under a steady load: PostgreSQL stopped for
10 s, one server SIGKILLed and restarted meanwhile; both keep answering, and once PostgreSQL is
back every decision either answered is in PostgreSQL exactly once, with its node."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from nac.registry.mac import format_mac, parse_mac
from tests.interop import NacServer, exchange, mab_request, parse_reply, require_radclient, udp_socket
from tests.pgserver import PgServer
from tests.test_pg_serve import _metric, _server

OUTAGE = 10.0
ANSWERS = (2, 3)  # Access-Accept, Access-Reject: a decision either way


class Load:
    """A thread per server asking with a new MAC each time (so each answer names one decision),
    about 100 a second; ``answered`` holds, per node, the MACs that got an answer."""

    def __init__(self, servers: dict[str, NacServer]) -> None:
        self.servers = servers
        self.answered: dict[str, list[str]] = {node: [] for node in servers}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(node,), daemon=True) for node in servers]
        self._macs = iter(range(1, 1 << 24))
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, node: str) -> None:
        sock = udp_socket(timeout=0.5)
        while not self._stop.is_set():
            with self._lock:
                n = next(self._macs)
            mac = f"02:00:00:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
            data, _ = mab_request(mac.replace(":", ""), identifier=n & 0xFF)
            server = self.servers[node]
            try:
                reply = exchange(sock, data, server.auth_port)
            except OSError:
                reply = None
            if reply is not None and parse_reply(reply).code in ANSWERS:
                self.answered[node].append(format_mac(parse_mac(mac)))
            self._stop.wait(0.01)
        sock.close()


@pytest.fixture
def cluster(
    pg: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, NacServer]]]:
    require_radclient()
    url = pg.new_database()
    root = tmp_path_factory.mktemp("pg-history")
    servers = {node: _server(root / node, url, node) for node in ("nac-a", "nac-b")}
    try:
        yield url, servers
    finally:
        for server in servers.values():
            if server.running:
                server.stop(signal.SIGTERM)


def _wait(check: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_every_answered_decision_reaches_postgresql_once_through_an_outage_and_a_sigkill(
    cluster: tuple[str, dict[str, NacServer]], pg: PgServer
) -> None:
    url, servers = cluster
    a, b = servers["nac-a"], servers["nac-b"]
    with Load(servers) as load:
        time.sleep(1.0)
        pg.stop()
        try:
            outage = time.monotonic()
            before = {node: len(macs) for node, macs in load.answered.items()}
            time.sleep(3.0)
            b.stop(signal.SIGKILL)  # with decisions in its journal that PostgreSQL has not seen
            b.start()
            assert b.wait_ready(), b.stderr()
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - outage)))
            during = {node: len(macs) - before[node] for node, macs in load.answered.items()}
            assert _metric(a, "nac_pg_history_up") == 0.0
            assert _metric(a, "nac_pg_history_unshipped") > 0
            assert _metric(b, "nac_pg_history_unshipped") > 0  # restarted: from the journal's note
        finally:
            pg.start()
        time.sleep(1.0)
    assert all(count > 100 for count in during.values()), during  # both kept answering
    for server in (a, b):
        assert _wait(lambda s=server: _metric(s, "nac_pg_history_unshipped") == 0.0, within=30), (
            server.stderr()
        )
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT node, mac, journal, id FROM history").fetchall()
        per_journal = conn.execute(
            "SELECT journal, count(*), min(id), max(id) FROM history GROUP BY journal"
        ).fetchall()
    # Exactly once: no decision twice, and each journal's ids without a gap.
    assert len(per_journal) == 2
    assert all(count == high - low + 1 for _, count, low, high in per_journal), per_journal
    copies = Counter((node, mac) for node, mac, _, _ in stored)
    assert max(copies.values()) == 1
    # Every answered decision is there, with the node that answered it.
    for node, macs in load.answered.items():
        missing = [mac for mac in macs if (node, mac) not in copies]
        assert not missing, f"{len(missing)} of {len(macs)} answered by {node} not in PostgreSQL"
    assert _metric(a, "nac_pg_history_shipped_total") > 0
    # The helpdesk on either server sees both servers' decisions, with the node that made them.
    newest = a.history("--limit", "200")
    assert {row["node"] for row in newest} == {"nac-a", "nac-b"}
    assert [row["time"] for row in newest] == sorted((row["time"] for row in newest), reverse=True)
    mac = load.answered["nac-b"][-1]
    (row,) = a.history("--mac", mac)
    assert row["node"] == "nac-b"
    assert row["mac"] == mac
    older = b.history("--limit", "5", "--before", str(newest[-1]["id"]))  # the next page
    assert len(older) == 5
    assert all(r["time"] <= newest[-1]["time"] for r in older)
    assert not {r["id"] for r in older} & {r["id"] for r in newest}
    story = json.loads(a.cli_ok("why", mac, "--json"))
    assert story["decisions"][0]["node"] == "nac-b"
    assert story["streak"]["count"] == 1
