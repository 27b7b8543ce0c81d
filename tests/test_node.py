"""Which server decided: `[server] node` (default: the host name) on every history row and
session a server records, through both history tiers."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nac.config import load_config
from nac.errors import ConfigError
from nac.history import reader, tiers
from nac.history.record import HistoryRecord, record_row
from nac.radius.packet import Codes
from nac.resources import load_dictionary
from nac.store import Store
from tests.fakenas import FakeNas
from tests.interop import NacServerFactory, exchange, mab_request, subprocess_env, udp_socket

DATA = Path(__file__).parent / "data"


def _config(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "nac.toml"
    path.write_text(f"[server]\n{server}")
    return path


def test_the_node_defaults_to_the_host_name_and_may_be_named(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, "")).node == (socket.gethostname() or "nac")
    assert load_config(_config(tmp_path, 'node = "nac-paris-1"\n')).node == "nac-paris-1"


@pytest.mark.parametrize("value", ['""', '"   "', f'"{"x" * 65}"', '"a\\tb"', "3"])
def test_a_bad_node_is_refused_naming_the_setting(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[server\] node.*1 to 64 printable"):
        load_config(_config(tmp_path, f"node = {value}\n"))


def test_decisions_and_sessions_carry_the_node_in_both_tiers(
    nac_server_factory: NacServerFactory,
) -> None:
    server = nac_server_factory(server_settings='node = "nac-a"\n')
    sock = udp_socket()
    try:
        data, _ = mab_request("00-10-A4-23-19-C0")
        assert exchange(sock, data, server.auth_port) is not None
        switch = FakeNas(Codes.from_dictionary(load_dictionary()), secret=b"testing123")
        start = switch.accounting_request("00-10-a4-23-19-c0", session_id="S-1")
        assert exchange(sock, start, server.acct_port) is not None
    finally:
        sock.close()
    [row] = server.history("--mac", "00:10:a4:23:19:c0")
    assert row["node"] == "nac-a"  # in the recent tier
    sessions = json.loads(server.cli_ok("sessions", "--json"))
    assert [s["node"] for s in sessions] == ["nac-a"]
    server.stop()  # indexes what is left: the row moves to the MAC-indexed tier
    store = Store(server.db)
    try:
        assert tiers.recent_backlog(store.conn) == 0
        nodes = reader.execute(store.conn, "SELECT node FROM main.history").fetchall()
        assert nodes == [("nac-a",)]
    finally:
        store.close()


def test_a_database_from_before_nodes_reads_with_no_node(tmp_path: Path) -> None:
    for file in (DATA / "history-v1").iterdir():
        shutil.copy(file, tmp_path / file.name)
        (tmp_path / file.name).chmod(0o600)
    store = Store(tmp_path / "nac.db")  # gains the column in both tiers
    try:
        rows = reader.execute(store.conn, "SELECT mac, node FROM history ORDER BY id").fetchall()
        assert len(rows) == 12
        assert {node for _, node in rows} == {None}
        tiers.write_batch(store.conn, [record_row(_decision(), 40)], (), node="nac-b")
        newest = reader.execute(store.conn, "SELECT node FROM history ORDER BY id DESC LIMIT 1").fetchone()
        assert newest == ("nac-b",)
    finally:
        store.close()


def _decision() -> HistoryRecord:
    fields = dict.fromkeys(HistoryRecord._fields)
    fields.update(ts=1_800_000_000.0, mac="00:10:a4:23:19:c0", action="accept", rule="default", reason="r",
                  client="sw1", nas_ip="192.0.2.1", method="mab", src="192.0.2.1:1645",
                  message_authenticator=1, reply=2, snapshot="bundled")  # fmt: skip
    return HistoryRecord(**fields)


def _nac(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nac", *args], capture_output=True, text=True, timeout=60, check=False,
        env=subprocess_env(),
    )  # fmt: skip


def test_db_upgrade_says_what_it_changed_then_that_the_database_is_up_to_date(tmp_path: Path) -> None:
    """A database of the nac before (marshal batches, no node columns) upgraded on its own."""
    for file in (DATA / "history-marshal").iterdir():
        shutil.copy(file, tmp_path / file.name)
        (tmp_path / file.name).chmod(0o600)
    db = str(tmp_path / "nac.db")
    first = _nac("db", "upgrade", "--db", db)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        f"upgraded {db}: added table eap_groups; added table eap_user_groups; added table eap_user_profiles;"
        " added table eap_users; added table history_mac; added table history_mac_segments;"
        " added history.node; added rules.list; added sessions.node; MAC index built for 6 decisions;"
        " history batches in format 1"
    )
    again = _nac("db", "upgrade", "--db", db, "--json")
    assert json.loads(again.stdout) == {"db": db, "schema_version": 1, "changes": [], "lists": []}
    store = Store.readonly(db)  # a reader now finds nothing to upgrade, and every decision
    try:
        assert reader.count(store.conn) == 12
    finally:
        store.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no database at"), (b"not a database", "not a nac database")],
)
def test_db_upgrade_refuses_what_is_not_a_nac_database(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    db = tmp_path / "nac.db"
    if content is not None:
        db.write_bytes(content)
    result = _nac("db", "upgrade", "--db", str(db))
    assert result.returncode == 1
    assert message in result.stderr
    assert (content is None) == (not db.exists())  # nothing created
