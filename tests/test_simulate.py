"""`nac rules simulate` (issue 4): replay a history the test builds through the rules in force
and a candidate rule or policy file; report the devices, clients and SSIDs that would change."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_policyfile import MINISTRY, Cli

import nac.resources
from nac.app.facade import open_store
from nac.history import tiers
from nac.history.record import HistoryRecord, record_row
from nac.registry.oui import Registry
from nac.store import Store

NOW = time.time()
DAY = 86400.0
A = "00:e0:fc:12:34:56"  # Huawei; exempt at headquarters in ministry.toml
B = "00:e0:fc:aa:bb:cc"  # Huawei, on Wi-Fi
C = "00:1b:21:aa:bb:cc"  # Intel
D = "da:a1:19:00:00:01"  # randomized, wired
E = "da:a1:19:00:00:02"  # randomized, wireless
F = "00:e0:fc:00:00:99"  # Huawei, but seen only before --since


def request(mac: str, client: str, *, ssid: str | None = None, ago: float = 3600.0) -> tuple[object, ...]:
    wireless = ssid is not None
    record = HistoryRecord(
        NOW - ago,
        mac,
        None,
        None,
        None,
        "accept",
        None,
        "default",
        "no rule matched",
        client,
        "192.0.2.1",
        "mab",
        mac,
        mac,
        f"00-11-22-33-44-55:{ssid}" if wireless else "00-11-22-33-44-55",
        1,
        None,
        "Wireless-802.11" if wireless else "Ethernet",
        None,
        "192.0.2.1:1645",
        1,
        2,
        "test",
    )
    return record_row(record, 100)


HISTORY = [
    request(A, "sw1"),
    request(A, "sw1", ago=7200),
    request(A, "hq-access-sw1"),
    request(B, "wlc1", ssid="corp"),
    request(B, "wlc1", ssid="corp", ago=60),
    request(B, "wlc1", ssid="guest"),
    request(C, "sw1"),
    request(C, "sw1"),
    request(D, "sw2"),
    request(E, "wlc1", ssid="corp"),
    request(F, "sw1", ago=40 * DAY),
]


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> None:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(str(tmp_path / "test.db"))
    open_store(c.db).close()  # the database with the shipped policy
    store = Store(c.db)
    tiers.write_batch(store.conn, HISTORY, ())
    store.close()
    return c


def devices(report: dict[str, object]) -> dict[str, tuple[str, str, int]]:
    return {d["mac"]: (d["before"], d["after"], d["requests"]) for d in report["device_list"]}  # type: ignore[attr-defined, index]


def test_simulate_a_vendor_ban(cli: Cli) -> None:
    report = cli.json("rules", "simulate", "--since", "30d", "--vendor", "huawei", "--action", "reject")
    assert (report["requests"], report["devices"]) == (10, 5)
    assert devices(report) == {A: ("accept", "reject", 3), B: ("accept", "reject", 3)}
    assert (report["changed_devices"], report["changed_requests"]) == (2, 6)
    assert report["changes"] == {"accept -> reject": 6}
    assert report["clients"] == {"wlc1": 3, "sw1": 2, "hq-access-sw1": 1}
    assert report["ssids"] == {"corp": 2, "guest": 1}
    out = cli("rules", "simulate", "--since", "30d", "--vendor", "huawei", "--action", "reject").stdout
    assert "would change: 2 devices, 6 requests" in out
    assert A in out
    assert B in out


def test_simulate_a_scoped_candidate(cli: Cli) -> None:
    report = cli.json(
        "rules", "simulate", "--since", "30d", "--vendor", "huawei", "--action", "reject", "--ssid", "corp"
    )
    assert devices(report) == {B: ("accept", "reject", 2)}
    assert report["clients"] == {"wlc1": 2}


def test_simulate_a_monitor_candidate_changes_no_answer(cli: Cli) -> None:
    report = cli.json(
        "rules", "simulate", "--since", "30d", "--vendor", "huawei", "--action", "reject", "--mode", "monitor"
    )
    assert report["changed_devices"] == 0


def test_simulate_a_policy_file(cli: Cli) -> None:
    report = cli.json("rules", "simulate", "--since", "30d", "--file", str(MINISTRY))
    # A stays admitted at headquarters (its exemption is scoped there); D, randomized on a
    # wired port, goes to quarantine; E, randomized on Wi-Fi, does not; F is too old.
    assert devices(report) == {
        A: ("accept", "reject", 2),
        B: ("accept", "reject", 3),
        D: ("accept", "quarantine vlan 999", 1),
    }
    assert report["clients"] == {"wlc1": 3, "sw1": 2, "sw2": 1}


def test_simulate_compares_with_the_rules_in_force(cli: Cli) -> None:
    cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "ban-huawei")
    report = cli.json("rules", "simulate", "--since", "30d", "--mac", A, "--action", "accept")
    assert devices(report) == {A: ("reject", "accept", 3)}


def test_simulate_needs_exactly_one_candidate(cli: Cli, tmp_path: Path) -> None:
    cli("rules", "simulate", "--since", "30d", code=2)
    cli(
        "rules",
        "simulate",
        "--since",
        "30d",
        "--file",
        str(MINISTRY),
        "--vendor",
        "x",
        "--action",
        "reject",
        code=2,
    )
    cli("rules", "simulate", "--since", "whenever", "--vendor", "huawei", "--action", "reject", code=2)
