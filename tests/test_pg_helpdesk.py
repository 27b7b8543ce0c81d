"""The helpdesk over a shared PostgreSQL (tests/pgserver.py): `nac history` with each of its
filters, `nac stats` (decisions per node among them) and `nac web`, over the decisions two
servers' journals shipped there (nac/pg/ship.py), as `nac serve` ships them."""

from __future__ import annotations

import csv
import io
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nac.cli.main import app
from nac.history import reader, tiers
from nac.pg import connect
from nac.pg.journal import journal_id
from nac.pg.ship import ship, shipped_upto
from nac.store import Store
from tests.helpdesk_rows import decision, write
from tests.interop import subprocess_env
from tests.pgserver import PgServer
from tests.test_web import get

HUAWEI = "00:e0:fc:12:34:56"
HUAWEI2 = "00:e0:fc:00:00:02"
XIRCOM = "00:10:a4:23:19:c0"
PHONE = "3c:22:fb:00:00:01"
GUEST = "3c:22:fb:00:00:02"
OLD = "00:10:a4:00:00:09"
DAY = 86400.0
LIST_RULE = "ndaa-889-huawei"  # `nac rules add --list ndaa-889` names its Huawei rule so
NOW = time.time()

#: A wireless controller's request: the SSID in Called-Station-Id, no switch port.
WIFI: dict[str, Any] = {
    "vendor": "Apple",
    "client": "wlc1",
    "nas_ip": "192.0.2.20",
    "nas_port": None,
    "nas_port_id": None,
    "nas_port_type": "Wireless-802.11",
}
LEGACY: dict[str, Any] = {"client": "fortigate", "nas_ip": "192.0.2.99", "message_authenticator": 0}
BANNED: dict[str, Any] = {"vendor": "Huawei", "rule": LIST_RULE}

#: Each node's decisions, oldest first, as its server would have recorded them.
ROWS: dict[str, list[tuple[object, ...]]] = {
    "node-a": [
        *(decision(NOW - 70 + i, HUAWEI, "reject", client="access-sw2", **BANNED) for i in range(3)),
        decision(NOW - 40, XIRCOM, "accept"),
        decision(NOW - 30, PHONE, method="peap", called_station_id="00-11-22-33-44-55:Corp-WiFi", **WIFI),
    ],
    "node-b": [
        decision(NOW - 3 * DAY, OLD, "quarantine", nas_port=7, nas_port_id="Gi2/0/3", **LEGACY),
        decision(NOW - 20, HUAWEI2, "reject", client="access-sw3", **BANNED),
        decision(NOW - 10, GUEST, method="eap-tls", called_station_id="00-11-22-33-44-55:Guest", **WIFI),
    ],
}
#: Newest first, as `nac history` lists them, and each one's node.
NEWEST_FIRST: list[tuple[str, str]] = [
    (GUEST, "node-b"),
    (HUAWEI2, "node-b"),
    (PHONE, "node-a"),
    (XIRCOM, "node-a"),
    *[(HUAWEI, "node-a")] * 3,
    (OLD, "node-b"),
]
UNTIL = datetime.fromtimestamp(NOW - 35, UTC).isoformat()


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), prog_name="nac", terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


def _ship(path: str, node: str, url: str) -> None:
    """What a server's shipper does: its journal's decisions into PostgreSQL."""
    store = Store(path)
    try:
        tiers.write_batch(store.conn, ROWS[node], [], node=node)
    finally:
        store.close()
    conn, pg = tiers.connect(path, sync=False), connect(url)
    try:
        journal = journal_id(conn)
        ship(pg, journal, node, reader.after(conn, shipped_upto(pg, journal), 1000))
    finally:
        conn.close()
        pg.close()


@pytest.fixture(scope="module")
def shared(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for the module: the ndaa-889 list in force, and both nodes' decisions."""
    url = pg.new_database()
    _cli("rules", "add", "--list", "ndaa-889", "--action", "reject", "--db", url)
    root = tmp_path_factory.mktemp("pg-helpdesk")
    for node in ROWS:
        _ship(str(root / f"{node}.db"), node, url)
    return url


def history(url: str, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(_cli("history", "--json", *args, "--db", url))
    return rows


def macs(url: str, *args: str) -> list[str]:
    return [row["mac"] for row in history(url, *args)]


def test_history_shows_both_nodes_newest_first_with_one_id_sequence(shared: str) -> None:
    rows = history(shared)
    assert [(r["mac"], r["node"]) for r in rows] == NEWEST_FIRST
    assert len({r["id"] for r in rows}) == len(rows)  # PostgreSQL's seq: unique across journals


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--vendor", "huaw"), [HUAWEI2, HUAWEI, HUAWEI, HUAWEI]),
        (("--vendor", "APPLE"), [GUEST, PHONE]),
        (("--client", "WLC1"), [GUEST, PHONE]),
        (("--client", "192.0.2.99"), [OLD]),  # its NAS-IP-Address
        (("--port", "50107"), [HUAWEI2, XIRCOM, HUAWEI, HUAWEI, HUAWEI]),  # NAS-Port
        (("--port", "7"), [OLD]),
        (("--port", "2/0/3"), [OLD]),  # the tail of NAS-Port-Id
        (("--port", "Gi2/0/3"), [OLD]),
        (("--ssid", "corp-wifi"), [PHONE]),
        (("--ssid", "Guest"), [GUEST]),
        (("--rule", LIST_RULE), [HUAWEI2, HUAWEI, HUAWEI, HUAWEI]),
        (("--method", "PEAP"), [PHONE]),
        (("--method", "eap-tls"), [GUEST]),
        (("--action", "quarantine"), [OLD]),
        (("--since", "1d"), [GUEST, HUAWEI2, PHONE, XIRCOM, HUAWEI, HUAWEI, HUAWEI]),
        (("--until", "1d"), [OLD]),
        (("--since", "1d", "--until", UNTIL), [XIRCOM, HUAWEI, HUAWEI, HUAWEI]),
        (("--mac", "00E0.FC12.3456", "--limit", "2"), [HUAWEI, HUAWEI]),
        (("--vendor", "huawei", "--client", "access-sw3"), [HUAWEI2]),
        (("--vendor", "no such maker"), []),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_history_filters_on_postgresql(shared: str, args: tuple[str, ...], expected: list[str]) -> None:
    assert macs(shared, *args) == expected


def test_history_pages_by_offset_and_before(shared: str) -> None:
    everything = history(shared)
    assert history(shared, "--limit", "3", "--offset", "2") == everything[2:5]
    assert history(shared, "--limit", "3", "--before", str(everything[2]["id"])) == everything[3:6]
    assert history(shared, "--ssid", "guest", "--offset", "1") == []  # one guest decision, skipped
    page = history(shared, "--vendor", "huawei", "--limit", "2", "--before", str(everything[1]["id"]))
    assert [(r["mac"], r["id"]) for r in page] == [(r["mac"], r["id"]) for r in everything[4:6]]


def test_history_before_an_unknown_id_says_so(shared: str) -> None:
    result = CliRunner().invoke(app, ["history", "--before", "999999", "--db", shared])
    assert result.exit_code == 2
    assert "--before 999999: no decision with that id" in result.stderr


def test_history_csv_carries_the_node_and_the_filters(shared: str) -> None:
    out = _cli("history", "--csv", "--vendor", "huawei", "--db", shared)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["mac"], r["node"], r["rule"]) for r in rows] == [
        (HUAWEI2, "node-b", LIST_RULE),
        *[(HUAWEI, "node-a", LIST_RULE)] * 3,
    ]
    assert next(iter(rows[0])) == "time"
    assert list(rows[0])[-1] == "id"  # what --before pages by
    assert [r["id"] for r in rows] == [str(r["id"]) for r in history(shared, "--vendor", "huawei")]


def _by(report: dict[str, Any], dim: str) -> dict[str, tuple[int, int]]:
    return {row["name"]: (row["decisions"], row["rejected"]) for row in report[f"by_{dim}"]}


def test_stats_counts_every_node_and_each_list(shared: str) -> None:
    report = json.loads(_cli("stats", "--json", "--db", shared))
    assert report["decisions"] == 8
    assert _by(report, "node") == {"node-a": (5, 3), "node-b": (3, 1)}
    assert _by(report, "action") == {"reject": (4, 4), "accept": (3, 0), "quarantine": (1, 0)}
    assert _by(report, "method") == {"mab": (6, 4), "peap": (1, 0), "eap-tls": (1, 0)}
    assert [(d["mac"], d["rejected"]) for d in report["top_refused"]] == [(HUAWEI, 3), (HUAWEI2, 1)]
    assert report["not_ready"] == ["fortigate"]
    [tally] = report["by_list"]
    assert (tally["list"], tally["decisions"], tally["rejected"], tally["devices_rejected"]) == (
        "ndaa-889", 4, 4, 2,
    )  # fmt: skip
    assert {s["site"]: s["devices_rejected"] for s in tally["sites"]} == {"access-sw2": 1, "access-sw3": 1}
    assert report["profiled"] == {}
    assert report["unavailable"] == [
        "profiled devices: not on PostgreSQL (each server profiles into its journal);"
        " `nac stats --db JOURNAL` on a server counts its own"
    ]


def test_stats_since_leaves_older_decisions_out(shared: str) -> None:
    report = json.loads(_cli("stats", "--since", "1d", "--json", "--db", shared))
    assert report["decisions"] == 7
    assert _by(report, "node") == {"node-a": (5, 3), "node-b": (2, 1)}
    assert report["not_ready"] == []  # fortigate's only decision is older


def test_stats_text_names_the_nodes_and_what_it_cannot_count(shared: str) -> None:
    out = _cli("stats", "--db", shared)
    assert out.startswith("8 decisions in all history kept")
    node_section = out.split("\nby node:\n", 1)[1].split("\n\n", 1)[0]
    assert "node-a" in node_section
    assert "node-b" in node_section
    assert "profiled devices: not on PostgreSQL" in out
    assert "fortigate (192.0.2.99): never sends it" in out


def test_stats_on_postgresql_counts_as_sqlite_does(shared: str, tmp_path: Path) -> None:
    db = str(tmp_path / "one.db")
    write(db, sorted((row for rows in ROWS.values() for row in rows), key=lambda row: float(str(row[0]))))
    on_pg = json.loads(_cli("stats", "--json", "--db", shared))
    on_sqlite = json.loads(_cli("stats", "--json", "--db", db))
    assert _by(on_sqlite, "node") == {"(none)": (8, 4)}  # written by no named server
    assert on_sqlite["unavailable"] == []
    same = ("decisions", "by_action", "by_vendor", "by_client", "by_rule", "by_method", "top_refused")
    assert {k: on_pg[k] for k in same} == {k: on_sqlite[k] for k in same}
    assert on_pg["message_authenticator"] == on_sqlite["message_authenticator"]


# -- nac web --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def web(shared: str) -> Iterator[str]:
    """`nac web --db postgresql://...` as a process; its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nac", "web", "--port", str(port), "--db", shared],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "nac web printed nothing in 30 s"
        line = proc.stdout.readline()
        assert line.startswith(f"nac web: http://127.0.0.1:{port}/ (database postgresql://"), line
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert "Traceback" not in err


def _api(web: str, path: str) -> Any:
    status, _, body = get(web + path)
    assert status == 200, body
    return json.loads(body)


def test_web_shows_every_servers_decisions_with_the_node(web: str) -> None:
    rows = _api(web, "api/decisions?since=all")["rows"]
    assert [(r["mac"], r["node"]) for r in rows] == NEWEST_FIRST
    assert len(_api(web, "api/decisions?since=24h&action=reject")["rows"]) == 4
    status, _, page = get(web)
    assert status == 200
    assert b"<th>server</th>" in page
    assert b'data-list="ndaa-889"' in page  # the ban-list section, counted on PostgreSQL


def test_web_tells_one_devices_story_from_both_nodes(web: str) -> None:
    found = _api(web, "api/decisions?since=all&mac=00-E0-FC-12-34-56")
    assert {r["node"] for r in found["rows"]} == {"node-a"}
    assert found["why"]["lines"][0].startswith(f"{HUAWEI} is a Huawei device")
    assert any("Rejected 3 times since" in line for line in found["why"]["lines"])
    [tally] = _api(web, "api/lists?since=all")
    assert (tally["list"], tally["devices_rejected"]) == ("ndaa-889", 2)


def test_web_exports_csv_with_the_node(web: str) -> None:
    status, headers, body = get(web + "export.csv?since=all&action=reject")
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(r["mac"], r["node"]) for r in rows] == [(HUAWEI2, "node-b"), *[(HUAWEI, "node-a")] * 3]


def test_web_refuses_a_bad_mac_on_postgresql_as_on_sqlite(web: str) -> None:
    status, _, body = get(web + "api/decisions?mac=not-a-mac")
    assert status == 400
    assert "error" in json.loads(body)


def test_web_connects_again_after_postgresql_dropped_its_connection(web: str, shared: str) -> None:
    with connect(shared) as admin:  # as a PostgreSQL restart or failover would
        dropped = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    assert dropped == [(True,)]  # nac web's one connection
    status, _, body = get(web + "api/decisions?since=all")
    assert status == 500
    assert json.loads(body)["error"].startswith("postgresql://nac@/")  # one line naming it
    assert len(_api(web, "api/decisions?since=all")["rows"]) == len(NEWEST_FIRST)
