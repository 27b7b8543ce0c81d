"""A running `nac serve` (issue 4, "Acceptance"): a policy import applies within 2 seconds
while requests flow, none unanswered; an exemption lapses by itself without a restart."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from interop import (
    RULE_CHANGE_DEADLINE,
    NacServer,
    exchange,
    mab_request,
    parse_reply,
    udp_socket,
    wait_for_decision,
)

ROOT = Path(__file__).resolve().parent.parent
MINISTRY = ROOT / "policies" / "examples" / "ministry.toml"
HUAWEI = "00e0fc112233"  # covered by ministry.toml's ban-huawei
ACCESS_ACCEPT, ACCESS_REJECT = 2, 3


class Stream:
    """Sends MAB requests back to back from a thread and keeps (send time, reply code)."""

    def __init__(self, server: NacServer, mac: str) -> None:
        self.server = server
        self.mac = mac
        self.replies: list[tuple[float, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        sock = udp_socket(timeout=1.0)
        identifier = 0
        while not self._stop.is_set():
            identifier = (identifier + 1) % 256
            data, _ = mab_request(self.mac, identifier=identifier)
            sent = time.monotonic()
            reply = exchange(sock, data, self.server.auth_port)
            self.replies.append((sent, parse_reply(reply).code if reply is not None else None))
            time.sleep(0.01)
        sock.close()


def test_import_applies_within_two_seconds_while_requests_flow(nac_server: NacServer) -> None:
    with Stream(nac_server, HUAWEI) as stream:
        time.sleep(0.5)
        nac_server.cli_ok("policy", "import", str(MINISTRY))
        imported = time.monotonic()
        time.sleep(RULE_CHANGE_DEADLINE + 0.5)
    codes = [code for _, code in stream.replies]
    assert len(codes) > 50, f"only {len(codes)} requests sent"
    assert None not in codes, f"{codes.count(None)} of {len(codes)} requests got no reply"
    assert codes[0] == ACCESS_ACCEPT
    first_reject = next(sent for sent, code in stream.replies if code == ACCESS_REJECT)
    assert first_reject - imported <= RULE_CHANGE_DEADLINE
    after = [code for sent, code in stream.replies if sent > first_reject]
    assert after
    assert set(after) == {ACCESS_REJECT}  # once applied, it stays applied
    rows = nac_server.history("--limit", "1")
    assert rows[0]["rule"] == "ban-huawei"


def test_exemption_lapses_without_a_restart(nac_server: NacServer) -> None:
    nac_server.cli_ok("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "ban-huawei")
    expires = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nac_server.cli_ok(
        "rules", "add", "--mac", HUAWEI, "--action", "accept", "--id", "exempt", "--expires", expires
    )
    sock = udp_socket()

    def code() -> int | None:
        reply = exchange(
            sock, mab_request(HUAWEI, identifier=int(time.monotonic() * 10) % 256)[0], nac_server.auth_port
        )
        return parse_reply(reply).code if reply is not None else None

    assert wait_for_decision(code, ACCESS_ACCEPT) == ACCESS_ACCEPT  # the exemption is live
    assert wait_for_decision(code, ACCESS_REJECT, deadline=8.0) == ACCESS_REJECT  # and lapses
    rows = nac_server.history("--limit", "1")
    assert rows[0]["rule"] == "ban-huawei"
    sock.close()


def test_monitor_rule_admits_and_history_says_would_reject(nac_server: NacServer) -> None:
    nac_server.cli_ok(
        "rules", "add", "--vendor", "huawei", "--action", "reject", "--mode", "monitor", "--id", "ban"
    )
    sock = udp_socket()
    time.sleep(RULE_CHANGE_DEADLINE)
    reply = exchange(sock, mab_request(HUAWEI, identifier=7)[0], nac_server.auth_port)
    sock.close()
    assert reply is not None
    assert parse_reply(reply).code == ACCESS_ACCEPT
    row = wait_for_decision(lambda: (nac_server.history("--limit", "1") or [{}])[0].get("rule"), "ban")
    assert row == "ban"
    last = nac_server.history("--limit", "1")[0]
    assert last["action"] == "accept"
    assert last["reason"].startswith("monitor: would reject (rule ban)")
