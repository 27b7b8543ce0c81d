"""A database that cannot be written (locked, disk full) never stops nac deciding: by default it
withholds replies (fail closed: the NAS retries or fails over); with on_history_failure =
"answer" it answers and keeps the rows in memory, and catches up when the database is back."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time

from nac.history.tiers import recent_path
from tests.interop import NacServer, NacServerFactory, exchange, mab_request, parse_reply, udp_socket


def _lock(db: str, seconds: float, locked: threading.Event) -> None:
    # The file the server's group commit writes: the recent history tier (nac/history/tiers.py).
    conn = sqlite3.connect(recent_path(db), timeout=10)
    conn.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(seconds)
    conn.rollback()
    conn.close()


def _ask(server: NacServer, mac: str, identifier: int, timeout: float = 1.0) -> int | None:
    with udp_socket(timeout=timeout) as sock:
        request, _ = mab_request(mac, identifier=identifier)
        reply = exchange(sock, request, server.auth_port)
    return None if reply is None else parse_reply(reply).code


def _history_macs(server: NacServer) -> set[str]:
    return {row["mac"] for row in json.loads(server.cli_ok("history", "--json", "--limit", "1000"))}


def test_fail_open_answers_while_locked_and_catches_up(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(server_settings='on_history_failure = "answer"\n')
    locked = threading.Event()
    holder = threading.Thread(target=_lock, args=(str(server.db), 2.0, locked))
    holder.start()
    assert locked.wait(5)
    macs = [f"3c22fb0000{i:02x}" for i in range(10)]
    codes = [_ask(server, mac, i) for i, mac in enumerate(macs)]
    holder.join()
    assert codes == [2] * 10  # answered while the database was locked
    _ask(server, "3c22fb0000ff", 99)  # the next batch writes the backlog too
    canonical = {":".join(m[i : i + 2] for i in range(0, 12, 2)) for m in macs}
    assert canonical <= _history_macs(server)  # none lost
    assert server.stop(signal.SIGTERM) == 0
    log = server.stderr()
    assert "answering anyway (on_history_failure = answer)" in log
    assert "history writable again: " in log


def test_fail_closed_withholds_replies_while_locked(nac_server: NacServer) -> None:
    locked = threading.Event()
    holder = threading.Thread(target=_lock, args=(str(nac_server.db), 2.0, locked))
    holder.start()
    assert locked.wait(5)
    assert _ask(nac_server, "3c22fb000101", 1, timeout=0.8) is None  # no reply: nothing recorded
    holder.join()
    assert _ask(nac_server, "3c22fb000101", 2) == 2  # the NAS's retry is decided and recorded
    assert "3c:22:fb:00:01:01" in _history_macs(nac_server)
    assert nac_server.stop(signal.SIGTERM) == 0
    assert "dropped:history-write-failed=" in nac_server.stderr()
