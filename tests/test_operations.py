"""Running nac in production: metrics, syslog, JSON logs, reload, one server per database."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from nac.history import tiers
from tests.interop import (
    NacServer,
    NacServerFactory,
    exchange,
    free_udp_ports,
    mab_request,
    parse_reply,
    subprocess_env,
    udp_socket,
)


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ask(server: NacServer, mac: str, identifier: int = 1) -> int:
    with udp_socket(timeout=2.0) as sock:
        request, _ = mab_request(mac, identifier=identifier)
        reply = exchange(sock, request, server.auth_port)
    assert reply is not None, f"no reply for {mac}"
    return parse_reply(reply).code


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("nac_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_expose_counters_and_they_move(nac_server_factory: NacServerFactory) -> None:
    port = _free_tcp_port()
    server = nac_server_factory(
        rules=[("--vendor", "huawei", "--action", "reject")],
        extra_config=f'\n[metrics]\nbind = "127.0.0.1:{port}"\n',
    )
    before = _scrape(port)
    assert before["nac_requests_total"] == before.get('nac_handled_total{kind="decision"}', 0) + before.get(
        'nac_handled_total{kind="status"}', 0
    )
    assert _ask(server, "00e0fc000001") == 3
    assert _ask(server, "3c22fb000001", identifier=2) == 2
    with udp_socket(timeout=0.3) as sock:
        assert exchange(sock, b"\x01\x02\x00", server.auth_port) is None
    after = _scrape(port)
    assert after["nac_requests_total"] == before["nac_requests_total"] + 3
    reject = 'nac_decisions_total{action="reject",client="lab-switch",rule="reject-vendor-huawei"}'
    assert after[reject] == 1
    assert after['nac_dropped_total{reason="too-short"}'] == 1
    assert after["nac_history_rows_total"] == before["nac_history_rows_total"] + 2
    assert after['nac_decision_latency_seconds_bucket{le="+Inf"}'] == 2
    assert after["nac_history_backlog"] == 0  # every decision is on disk
    assert after["nac_history_unindexed"] >= 0  # the recent tier's rows waiting for the indexer
    assert after["nac_duplicate_cache_entries"] >= 2  # the two decisions wait for retransmissions
    assert after["nac_rules_version"] >= 1
    assert after["nac_eap_conversations"] == 0


def test_decisions_stream_to_syslog_as_rfc5424(nac_server_factory: NacServerFactory) -> None:
    (port,) = free_udp_ports(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", port))
        listener.settimeout(5)
        server = nac_server_factory(
            rules=[("--vendor", "huawei", "--action", "reject", "--reason", "ministry ban")],
            extra_config=f'\n[syslog]\naddress = "127.0.0.1:{port}"\nfacility = "local3"\n',
        )
        assert _ask(server, "00-E0-FC-00-00-07") == 3
        message = listener.recv(4096).decode()
    # <PRI>VERSION TIMESTAMP HOSTNAME APP PROCID MSGID [SD] MSG, PRI = local3 (19) * 8 + warning (4)
    assert re.match(
        r"<156>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ nac \d+ decision \[nac@32473 ", message
    )
    assert 'mac="00:e0:fc:00:00:07"' in message
    assert 'action="reject"' in message
    assert 'rule="reject-vendor-huawei"' in message
    assert 'client="lab-switch"' in message
    assert message.endswith("ministry ban [rule reject-vendor-huawei]")


def test_json_log_format_writes_one_object_per_line(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(extra_config='\n[log]\nformat = "json"\n')
    assert _ask(server, "3c22fb000002") == 2
    assert server.stop(signal.SIGTERM) == 0
    lines = [line for line in server.stderr().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"].startswith("ready: ") for r in records)
    assert any(r["message"].startswith("stopped; ") and "decision=1" in r["message"] for r in records)


def test_reload_under_a_stream_drops_nothing_and_refuses_a_broken_config(nac_server: NacServer) -> None:
    answered: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        with udp_socket(timeout=2.0) as sock:
            i = 0
            while not stop.is_set():
                i += 1
                request, _ = mab_request(f"3c22fb{i:06x}", identifier=i % 256)
                reply = exchange(sock, request, nac_server.auth_port)
                answered.append(0 if reply is None else parse_reply(reply).code)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        assert nac_server.proc is not None
        time.sleep(0.5)
        # A new client appears in the file; SIGHUP applies it without a restart.
        original = nac_server.config.read_text()
        nac_server.config.write_text(
            original + '\n[[client]]\nname = "new-switch"\naddress = "127.0.0.4"\nsecret = "fresh"\n'
        )
        nac_server.proc.send_signal(signal.SIGHUP)
        assert nac_server.wait_for_log("configuration reloaded")
        time.sleep(0.5)
        nac_server.config.write_text(original + "\n[server\n")  # broken TOML
        nac_server.proc.send_signal(signal.SIGHUP)
        assert nac_server.wait_for_log("reload refused, keeping the running configuration")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert len(answered) > 50
    assert all(code == 2 for code in answered), f"{answered.count(0)} of {len(answered)} unanswered"
    with udp_socket("127.0.0.4", timeout=2.0) as sock:
        request, _ = mab_request("3c22fb000003", secret="fresh")
        reply = exchange(sock, request, nac_server.auth_port)
    assert reply is not None  # the client added by the first reload survived the refused one


def test_second_server_on_the_same_database_is_refused(nac_server: NacServer) -> None:
    auth_port, acct_port = free_udp_ports(2)
    result = subprocess.run(
        [sys.executable, "-m", "nac", "serve", "--db", str(nac_server.db), "--bind", "127.0.0.1",
         "--auth-port", str(auth_port), "--acct-port", str(acct_port)],
        capture_output=True, text=True, timeout=30, check=False, env=subprocess_env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert "another nac serve" in result.stderr
    assert "is already using the database" in result.stderr
    assert _ask(nac_server, "3c22fb000004") == 2  # the first one goes on


def test_second_server_on_the_same_ports_is_refused(nac_server: NacServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nac", "serve", "--db", str(nac_server.db) + ".other", "--bind", "127.0.0.1",
         "--auth-port", str(nac_server.auth_port), "--acct-port", str(nac_server.acct_port)],
        capture_output=True, text=True, timeout=30, check=False, env=subprocess_env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {nac_server.auth_port}/udp" in result.stderr


def test_nac_bench_measures_a_running_server(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(rules=[("--vendor", "huawei", "--action", "reject")])
    secret = server.workdir / "secret"
    secret.write_text("testing123\n")
    out = subprocess.run(
        [sys.executable, "-m", "nac", "bench", "--secret-file", str(secret), "--port", str(server.auth_port),
         "--count", "660", "--window", "16", "--rate", "2000", "--json"],
        capture_output=True, text=True, timeout=60, check=True, env=subprocess_env(),
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["sent"] == report["received"] == 660
    assert report["timeouts"] == report["bad_authenticator"] == 0
    assert report["codes"]["Access-Reject"] > 0  # the mix includes Huawei MACs
    assert report["codes"]["Access-Accept"] > 0
    assert report["latency_p99_ms"] >= report["latency_p50_ms"] > 0
    assert report["rate"] == 2000
    assert report["elapsed"] >= 0.3  # 660 requests paced at 2,000/s take a third of a second


def test_running_server_applies_a_registry_import_within_2_seconds(
    nac_server_factory: NacServerFactory,
) -> None:
    server = nac_server_factory(rules=[("--vendor", "huawei", "--action", "reject")])
    assert _ask(server, "3c-22-fb-00-00-01") == 2  # an Apple block today
    csv_file = server.workdir / "oui.csv"
    csv_file.write_text(
        "Registry,Assignment,Organization Name,Organization Address\n"
        'MA-L,3C22FB,"Huawei Technologies Co.,Ltd","Bantian, Longgang District Shenzhen CN 518129"\n'
    )
    server.cli_ok("oui", "import", "--replace", str(csv_file))  # one MA-L row: --replace
    deadline = time.monotonic() + 2.5
    code = _ask(server, "3c-22-fb-00-00-01", identifier=2)
    while code != 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        code = _ask(server, "3c-22-fb-00-00-01", identifier=3)
    assert code == 3
    assert server.wait_for_log("registry reloaded")


def test_configured_retention_prunes_old_history_in_the_running_server(
    nac_server_factory: NacServerFactory, tmp_path: Path
) -> None:
    from nac.history.record import HistoryRecord
    from nac.store import Store

    db = tmp_path / "server-0" / "nac.db"
    db.parent.mkdir(parents=True)
    store = Store(db)
    now = time.time()
    fields = dict.fromkeys(HistoryRecord._fields)
    fields.update(action="accept", rule="default", reason="r", client="c", nas_ip="10.0.0.1", method="mab",
                  src="10.0.0.1:1", message_authenticator=1, reply=2, snapshot="s")  # fmt: skip
    old = HistoryRecord(**{**fields, "ts": now - 3 * 86400, "mac": "00:00:00:00:00:01"})
    recent = HistoryRecord(**{**fields, "ts": now - 3600, "mac": "00:00:00:00:00:02"})
    tiers.write_batch(store.conn, [(*old, 1), (*recent, 1)], ())
    store.close()
    server = nac_server_factory(extra_config='\n[history]\nretention = "2d"\n')
    assert server.wait_for_log("history retention: removed 1 decisions older than 2 days", timeout=10)
    with tiers.connect(db) as conn:
        assert conn.execute("SELECT mac FROM history ORDER BY ts").fetchall() == [("00:00:00:00:00:02",)]


def test_watched_policy_file_applies_within_2_seconds_and_a_broken_edit_is_refused(
    nac_server_factory: NacServerFactory, tmp_path: Path
) -> None:
    policy = tmp_path / "site-policy.toml"
    policy.write_text('[defaults]\naction = "accept"\n')
    server = nac_server_factory(extra_config=f'\n[policy]\nwatch = "{policy}"\n')
    assert _ask(server, "00e0fc000010") == 2
    policy.write_text(
        '[defaults]\naction = "accept"\n\n[[rule]]\nid = "ban-huawei"\nvendor = "huawei"\naction = "reject"\n'
    )
    deadline = time.monotonic() + 2.5
    code = _ask(server, "00e0fc000010", identifier=2)
    while code != 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        code = _ask(server, "00e0fc000010", identifier=3)
    assert code == 3
    # A broken edit (a quarantine with no VLAN) is refused as a whole; the ban stays.
    policy.write_text('[[rule]]\nid = "q"\noui = "00:10:A4"\naction = "quarantine"\n')
    assert server.wait_for_log("refused, the rules in force stay", timeout=3)
    assert _ask(server, "00e0fc000010", identifier=4) == 3
    rules = json.loads(server.cli_ok("rules", "list", "--json"))
    assert [r["id"] for r in rules] == ["ban-huawei"]
    audit = json.loads(server.cli_ok("audit", "--json"))
    assert any(row["action"] == "policy.watch" for row in audit)


def test_watched_policy_directory_merges_its_files(
    nac_server_factory: NacServerFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "policy.d"
    folder.mkdir()
    (folder / "00-defaults.toml").write_text('[defaults]\naction = "accept"\nquarantine_vlan = "666"\n')
    (folder / "10-bans.toml").write_text('[[rule]]\nid = "ban"\nvendor = "huawei"\naction = "reject"\n')
    (folder / "20-quarantine.toml").write_text(
        '[[rule]]\nid = "q"\noui = "00:10:A4"\naction = "quarantine"\n'
    )
    server = nac_server_factory(extra_config=f'\n[policy]\nwatch = "{folder}"\n')
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline and _ask(server, "00e0fc000011") != 3:
        time.sleep(0.1)
    assert _ask(server, "00e0fc000011", identifier=2) == 3
    assert _ask(server, "0010a4000011", identifier=3) == 2
    rules = json.loads(server.cli_ok("rules", "list", "--json"))
    assert {r["id"] for r in rules} == {"ban", "q"}
