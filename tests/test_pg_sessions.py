"""Sessions, Disconnect and CoA across servers on one real PostgreSQL (tests/pgserver.py).

The library first: the session shipper upserts what changed in a journal after its watermark
(a journal older than the change counter included), and a job is copied into a journal once,
whether two claimers race for it or a crash fell between the journal's commit and
PostgreSQL's.  Then two `nac serve` processes, each with its own fake NAS (tests/fakenas.py):
a session one saw is listed by the other's CLI with its node, a `nac disconnect` and a
`--apply now` run through one are sent by the other, and with PostgreSQL down a disconnect
cannot be queued while sessions started meanwhile reach it once it is back.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from nac.pg import coa, connect
from nac.pg import sessions as pg_sessions
from nac.pg.link import BACKOFF_MAX
from nac.pg.store import open_pg_store
from nac.radius.accounting import SessionEvent
from nac.sessions import store as session_store
from nac.store import Store
from tests.fakenas import DasListener
from tests.interop import SECRET, NacServer, free_udp_ports, require_radclient
from tests.pgserver import PgServer
from tests.test_pg_serve import _metric, _server

#: After PostgreSQL returns: a thread's next retry (backoff), its pass and some slack.
AFTER_OUTAGE: Final = BACKOFF_MAX + 5.0


def _event(session_id: str, mac: str, *, status: str = "start", ts: float = 1_000.0) -> SessionEvent:
    return SessionEvent(
        ts=ts, status=status, client="lab-switch", nas_ip="127.0.0.1", nas_identifier="sw1",
        session_id=session_id, mac=mac, user_name=mac, nas_port=9, nas_port_id="Gi1/0/9",
        called_station_id=None, calling_station_id=mac, framed_ip=None, vlan=None, session_time=None,
        input_octets=None, output_octets=None, input_packets=None, output_packets=None,
        terminate_cause=None,
    )  # fmt: skip


def _apply(journal: Store, *events: SessionEvent) -> None:
    with journal.conn:
        session_store.apply_events(journal.conn, events, node="n1")


def _pg_sessions(url: str, **filters: Any) -> list[dict[str, Any]]:
    with connect(url) as pg:
        return pg_sessions.query(pg, **filters)


def test_the_shipper_upserts_what_changed_after_the_watermark(pg_url: str, tmp_path: Path) -> None:
    open_pg_store(pg_url).close()
    journal = Store(tmp_path / "journal.db")
    # A session from before the journal had its change counter: counted when it gets one.
    _apply(journal, _event("s1", "00:e0:fc:00:00:01"))
    pg_sessions.track_changes(journal.conn)
    pg_sessions.track_changes(journal.conn)  # once only
    with connect(pg_url) as pg:
        rows = pg_sessions.changed(journal.conn, 0, 100)
        assert [row[3] for row in rows] == ["s1"]
        upto = pg_sessions.ship(pg, "j1", "n1", rows)
        assert pg_sessions.shipped_upto(pg, "j1") == upto
        assert pg_sessions.changed(journal.conn, upto, 100) == []
        _apply(journal, _event("s2", "00:e0:fc:00:00:02", ts=1_001.0))
        _apply(journal, _event("s1", "00:e0:fc:00:00:01", status="stop", ts=1_002.0))
        rows = pg_sessions.changed(journal.conn, upto, 100)
        assert [row[3] for row in rows] == ["s2", "s1"]  # in the order they changed
        upto = pg_sessions.ship(pg, "j1", "n1", rows)
        assert pg_sessions.changed(journal.conn, upto, 100) == []
        pg_sessions.ship(pg, "j1", "n1", rows)  # a repeat (a crash before the watermark) is harmless
    journal.close()
    shipped = {row["session_id"]: row for row in _pg_sessions(pg_url)}
    assert sorted(shipped) == ["s1", "s2"]
    assert (shipped["s1"]["status"], shipped["s1"]["stopped"]) == ("stopped", 1_002.0)
    assert shipped["s2"]["status"] == "active"
    assert {row["node"] for row in shipped.values()} == {"n1"}
    assert [row["session_id"] for row in _pg_sessions(pg_url, active=True)] == ["s2"]


def _copy_then_crash(pg: Any, journal: Store) -> None:
    with pg.transaction():
        coa.copy_in(journal.conn, coa.pending(pg, "n1", now=2.0)[:5])
        raise RuntimeError("killed")


def test_a_job_is_copied_once_with_two_claimers_and_after_a_crash(pg_url: str, tmp_path: Path) -> None:
    open_pg_store(pg_url).close()
    path = tmp_path / "journal.db"
    journal = Store(path)
    macs = [f"00:e0:fc:00:01:{n:02x}" for n in range(40)]
    _apply(journal, *(_event(f"s{n}", mac) for n, mac in enumerate(macs)))
    pg_sessions.track_changes(journal.conn)
    journal.conn.execute(coa._LOCAL)
    with connect(pg_url) as pg:
        pg_sessions.ship(pg, "j1", "n1", pg_sessions.changed(journal.conn, 0, 100))
        ids = [
            i
            for mac in macs
            for i in coa.request_action(pg, mac=mac, kind="disconnect", reason="t", requested_by="t", now=1.0)
        ]
        # A session PostgreSQL knows but the journal does not (a journal made anew): it comes
        # with the job; and a job whose session nobody knows is refused.
        pg.execute(
            "INSERT INTO sessions (node, client, nas_ip, session_id, mac, status, started, updated)"
            " VALUES ('n1', 'lab-switch', '127.0.0.1', 'new', '00:e0:fc:00:02:00', 'active', 1, 1)"
        )
        ids += coa.request_action(
            pg, mac="00:e0:fc:00:02:00", kind="reauth", reason="t", requested_by="t", now=1.0
        )
        [gone] = pg.execute(
            "INSERT INTO coa_jobs (node, client, nas_ip, session_id, kind, reason, requested, requested_by)"
            " VALUES ('n1', 'lab-switch', '127.0.0.1', 'gone', 'reauth', 't', 1, 't') RETURNING id"
        ).fetchone()
        # A crash after the journal's commit, before PostgreSQL's: the rows stay pending.
        with pytest.raises(RuntimeError, match="killed"):
            _copy_then_crash(pg, journal)

    def claimer() -> None:
        with connect(pg_url) as pg:
            own = Store(path)
            try:
                while coa.claim(pg, own.conn, "n1", now=2.0) != (0, 0):
                    pass
            finally:
                own.close()

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    local = journal.conn.execute(
        "SELECT m.pg_id FROM pg_coa_jobs m JOIN coa_jobs j ON j.id = m.job"
    ).fetchall()
    assert sorted(row[0] for row in local) == ids  # each job once, the crashed ones too
    with connect(pg_url) as pg:
        assert [row["status"] for row in coa.jobs(pg, ids)] == ["sent"] * len(ids)
        new = journal.conn.execute("SELECT node, status FROM sessions WHERE session_id = 'new'").fetchall()
        assert new == [("n1", "active")]
        [refused] = coa.jobs(pg, [gone])
        assert (refused["status"], refused["detail"]) == ("error", "the session is not in n1's journal")
        # The answers go back once: the journal notes what PostgreSQL was told.
        first = journal.conn.execute("SELECT job FROM pg_coa_jobs WHERE pg_id = ?", (ids[0],)).fetchone()[0]
        session_store.finish(
            journal.conn, first, status="ack", attempts=1, error_cause=None, detail="ack", now=3.0
        )
        assert coa.report(pg, journal.conn) == 1
        assert coa.report(pg, journal.conn) == 0
        assert coa.jobs(pg, [ids[0]])[0]["status"] == "ack"
        assert coa.unreported(journal.conn) == len(ids) - 1
    journal.close()


def test_a_job_its_server_left_is_taken_over_by_one_that_knows_the_nas(pg_url: str, tmp_path: Path) -> None:
    open_pg_store(pg_url).close()
    other = Store(tmp_path / "other.db")
    _apply(other, _event("s9", "00:e0:fc:00:03:00"))  # n1's session, in n1's journal
    pg_sessions.track_changes(other.conn)
    journal = Store(tmp_path / "journal.db")  # n2's, without it
    journal.conn.execute(coa._LOCAL)
    with connect(pg_url) as pg:
        pg_sessions.ship(pg, "j1", "n1", pg_sessions.changed(other.conn, 0, 100))
        [job] = coa.request_action(
            pg, mac="00:e0:fc:00:03:00", kind="disconnect", reason="t", requested_by="t", now=100.0
        )
        soon, late = 100.0 + coa.TAKEOVER / 2, 100.0 + coa.TAKEOVER + 1
        assert coa.claim(pg, journal.conn, "n2", now=soon, clients={"lab-switch"}) == (0, 0)  # n1's turn
        assert coa.claim(pg, journal.conn, "n2", now=late, clients={"other-switch"}) == (0, 0)  # unknown NAS
        assert coa.claim(pg, journal.conn, "n2", now=late, clients={"lab-switch"}) == (1, 0)
        assert coa.jobs(pg, [job])[0]["status"] == "sent"
    # The session came with the job, under its own node: its end goes back to n1's row.
    copied = journal.conn.execute("SELECT node, mac, status, nas_port_id FROM sessions").fetchall()
    assert copied == [("n1", "00:e0:fc:00:03:00", "active", "Gi1/0/9")]
    journal.close()
    other.close()


# -- two servers ---------------------------------------------------------------------------

MAC_A: Final = "00-e0-fc-0a-00-01"  # 00:E0:FC is Huawei Technologies
MAC_B: Final = "00-e0-fc-0b-00-01"
MAC_OUTAGE: Final = "00-e0-fc-0c-00-01"
MAC_TAKEOVER: Final = "00-e0-fc-0d-00-01"


class Cluster:
    def __init__(self, url: str, a: NacServer, b: NacServer, nas_a: DasListener, nas_b: DasListener) -> None:
        self.url, self.a, self.b, self.nas_a, self.nas_b = url, a, b, nas_a, nas_b


@pytest.fixture(scope="module")
def cluster(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Servers nac-a and nac-b, each with its fake NAS's Disconnect/CoA port as the client's."""
    require_radclient()
    url = pg.new_database()
    root = tmp_path_factory.mktemp("pg-sessions")
    port_a, port_b = free_udp_ports(2)
    nas_a = DasListener(port_a, secret=SECRET.encode())
    nas_b = DasListener(port_b, secret=SECRET.encode())
    servers: list[NacServer] = []
    try:
        servers.append(_server(root / "a", url, "nac-a", coa_port=port_a))
        servers.append(_server(root / "b", url, "nac-b", coa_port=port_b))
        yield Cluster(url, servers[0], servers[1], nas_a, nas_b)
    finally:
        for server in servers:
            if server.running:
                assert server.stop(signal.SIGTERM) == 0, server.stderr()
        nas_a.close()
        nas_b.close()


def _start_session(server: NacServer, mac: str, session: str) -> None:
    attrs = (
        f'Acct-Status-Type = Start, Acct-Session-Id = "{session}", User-Name = "{mac}", '
        f'Calling-Station-Id = "{mac}", NAS-Port-Id = "Gi1/0/9"'
    )
    assert server.radclient(attrs, "acct").code == "Accounting-Response"


def _listed(server: NacServer, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(server.cli_ok("sessions", "--json", *args))
    return rows


def _until(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_session_one_server_saw_is_listed_by_the_other_with_its_node(cluster: Cluster) -> None:
    _start_session(cluster.a, MAC_A, "sess-a")
    assert _until(lambda: bool(_listed(cluster.b, "--mac", MAC_A)), within=5), cluster.a.stderr()
    [row] = _listed(cluster.b, "--mac", MAC_A)
    assert (row["node"], row["session_id"], row["status"]) == ("nac-a", "sess-a", "active")
    assert row["client"] == "lab-switch"
    table = cluster.b.cli_ok("sessions", "--active")
    assert table.split()[0] == "NODE"
    assert "nac-a" in table


def test_a_disconnect_through_one_server_is_sent_by_the_one_that_saw_the_session(cluster: Cluster) -> None:
    result = cluster.b.cli("disconnect", MAC_A)
    assert result.returncode == 0, result.stdout + result.stderr + cluster.a.stderr()
    assert result.stdout.strip() == "disconnect 00:e0:fc:0a:00:01 on lab-switch (127.0.0.1): ack"
    [request] = cluster.nas_a.received
    assert request[0] == 40  # Disconnect-Request (RFC 5176), from A, with A's secret
    assert b"sess-a" in request
    assert cluster.nas_b.received == []
    # A marks the session stopped on the ACK, and its shipper tells PostgreSQL.
    assert _until(lambda: _listed(cluster.b, "--mac", MAC_A)[0]["status"] == "stopped", within=5)
    assert _metric(cluster.a, "nac_pg_coa_claimed_total") == 1.0
    assert _metric(cluster.a, "nac_pg_coa_reported_total") == 1.0
    assert _metric(cluster.b, "nac_pg_coa_claimed_total") == 0.0
    again = cluster.b.cli("disconnect", MAC_A)
    assert again.returncode == 1
    assert "no active session for 00:e0:fc:0a:00:01" in again.stderr


def test_apply_now_through_one_server_disconnects_a_session_the_other_saw(cluster: Cluster) -> None:
    _start_session(cluster.b, MAC_B, "sess-b")
    assert _until(lambda: bool(_listed(cluster.a, "--mac", MAC_B, "--active")), within=5), cluster.b.stderr()
    out = cluster.a.cli_ok("rules", "add", "--mac", MAC_B, "--action", "reject", "--apply", "now")
    assert "1 devices on the network change decision" in out
    assert "disconnect 00:e0:fc:0b:00:01 on lab-switch (127.0.0.1): ack" in out
    [request] = cluster.nas_b.received
    assert request[0] == 40
    assert b"sess-b" in request
    assert len(cluster.nas_a.received) == 1  # only the earlier test's


def test_with_postgresql_down_nothing_is_queued_and_sessions_catch_up(cluster: Cluster, pg: PgServer) -> None:
    pg.stop()
    try:
        refused = cluster.b.cli("disconnect", MAC_B)
        assert refused.returncode == 1
        assert "cannot connect to PostgreSQL" in refused.stderr
        assert "Traceback" not in refused.stderr
        _start_session(cluster.a, MAC_OUTAGE, "sess-outage")  # accounting still answered
        assert _until(lambda: _metric(cluster.a, "nac_pg_sessions_unshipped") >= 1, within=5)
        assert _metric(cluster.a, "nac_pg_sessions_up") == 0.0
        # Restarted meanwhile, it still counts what waits (the journal noted the watermark).
        assert cluster.a.stop(signal.SIGTERM) == 0, cluster.a.stderr()
        cluster.a.start()
        assert cluster.a.wait_ready(), cluster.a.stderr()
        assert _until(lambda: _metric(cluster.a, "nac_pg_sessions_unshipped") >= 1, within=5)
    finally:
        pg.start()
    assert _until(lambda: bool(_listed(cluster.b, "--mac", MAC_OUTAGE)), within=AFTER_OUTAGE), (
        cluster.a.stderr()
    )
    [row] = _listed(cluster.b, "--mac", MAC_OUTAGE)
    assert (row["node"], row["status"]) == ("nac-a", "active")
    assert _until(lambda: _metric(cluster.a, "nac_pg_sessions_unshipped") == 0, within=2)
    assert "PostgreSQL unreachable for the sessions" in cluster.a.stderr()


def test_a_job_for_a_server_that_is_down_is_sent_by_another_that_knows_the_nas(cluster: Cluster) -> None:
    _start_session(cluster.a, MAC_TAKEOVER, "sess-t")
    assert _until(lambda: bool(_listed(cluster.b, "--mac", MAC_TAKEOVER)), within=5), cluster.a.stderr()
    assert cluster.a.stop(signal.SIGTERM) == 0, cluster.a.stderr()
    before = len(cluster.nas_b.received)
    result = cluster.b.cli("disconnect", MAC_TAKEOVER)
    assert result.returncode == 0, result.stdout + result.stderr + cluster.b.stderr()
    assert "ack" in result.stdout
    [request] = cluster.nas_b.received[before:]
    assert b"sess-t" in request
    assert "taken over from nac-a" in cluster.b.stderr()
    assert _until(lambda: _listed(cluster.b, "--mac", MAC_TAKEOVER)[0]["status"] == "stopped", within=5)
    [row] = _listed(cluster.b, "--mac", MAC_TAKEOVER)
    assert row["node"] == "nac-a"  # the session's own row, not a copy under nac-b
