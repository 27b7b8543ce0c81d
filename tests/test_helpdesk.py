"""`nac history` for the helpdesk: every filter, paging, and table/JSON/CSV output."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.cli.main import app
from nac.helpdesk.queries import ssid_of
from nac.registry.oui import Registry
from tests.helpdesk_rows import decision, write

CONTRACT_KEYS = {"time", "mac", "vendor", "action", "vlan", "rule", "reason", "client", "nas_ip", "method"}
XIRCOM = "00:10:a4:23:19:c0"
HUAWEI = "00:e0:fc:12:34:56"
APPLE = "3c:22:fb:00:00:01"
RANDOM = "da:a1:19:00:00:02"
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> Iterator[None]:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)
    yield
    assert not (tmp_path / "nac.db").exists(), "a command ignored --db"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "helpdesk.db")


def run(db: str, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, [*args, "--db", db], terminal_width=250)
    assert result.exit_code == code, (
        f"nac {' '.join(args)}: {result.exit_code}\n{result.output}{result.stderr}"
    )
    return result


def run_json(db: str, *args: str) -> Any:
    return json.loads(run(db, *args, "--json").stdout)


@pytest.fixture
def stamps(db: str) -> dict[str, float]:
    """Five decisions, newest first a b e c d: wired and wireless, MAB and PEAP."""
    now = time.time()
    at = {"a": now - MINUTE, "b": now - 3 * HOUR, "e": now - 2 * DAY, "c": now - 3 * DAY, "d": now - 10 * DAY}
    wireless = {"nas_port": None, "nas_port_id": None, "nas_port_type": "Wireless-802.11"}
    huawei = {"vendor": "HUAWEI TECHNOLOGIES CO.,LTD", "prefix": "00:E0:FC"}
    write(
        db,
        [
            decision(at["d"], HUAWEI, "reject", client="legacy-sw", nas_port_id="Gi1/0/17", **huawei),
            decision(
                at["c"],
                APPLE,
                "quarantine",
                vendor="Apple, Inc.",
                client="wlc1",
                method="peap",
                called_station_id="00-11-22-33-44-55:eduroam",
                **wireless,
            ),
            decision(
                at["e"],
                RANDOM,
                "accept",
                vendor=None,
                prefix=None,
                prefix_bits=None,
                client="wlc1",
                called_station_id="00:11:22:33:44:66:Guest-WiFi",
                **wireless,
            ),
            decision(at["b"], HUAWEI, "reject", client="access-sw2", nas_port=3, nas_port_id=None, **huawei),
            decision(at["a"], XIRCOM, "accept"),
        ],
    )
    return at


def names(rows: list[dict[str, Any]], stamps: dict[str, float]) -> str:
    """The names of the inserted decisions that ``rows`` are, in order (by their ISO time)."""
    out = ""
    for row in rows:
        ts = datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp()
        [name] = [name for name, at in stamps.items() if 0 <= at - ts < 1]  # times in whole seconds
        out += name
    return out


FILTERS = [
    ((), "abecd"),
    (("--mac", "00E0.FC12.3456"), "bd"),
    (("--mac", "00-e0-fc-12-34-56"), "bd"),
    (("--mac", "00e0fc-123456"), "bd"),
    (("--vendor", "huawei"), "bd"),
    (("--vendor", "APPLE"), "c"),
    (("--vendor", "%"), ""),  # LIKE wildcards are text, not patterns
    (("--client", "access-sw2"), "b"),
    (("--client", "WLC1"), "ec"),
    (("--client", "192.0.2.10"), "abecd"),  # the NAS's IP works too
    (("--port", "1/0/7"), "a"),  # the tail of GigabitEthernet1/0/7, not Gi1/0/17
    (("--port", "GigabitEthernet1/0/7"), "a"),
    (("--port", "Gi1/0/17"), "d"),
    (("--port", "3"), "b"),  # NAS-Port
    (("--ssid", "eduroam"), "c"),
    (("--ssid", "guest-wifi"), "e"),  # any case; colon-separated AP MAC
    (("--ssid", "edu"), ""),
    (("--action", "reject"), "bd"),
    (("--rule", "ban-huawei"), "bd"),
    (("--rule", "default"), "ae"),
    (("--method", "peap"), "c"),
    (("--since", "1d"), "ab"),
    (("--until", "1d"), "ecd"),
    (("--since", "7d", "--until", "1h"), "bec"),
    (("--vendor", "huawei", "--since", "7d"), "b"),
    (("--client", "wlc1", "--action", "quarantine"), "c"),
    (("--limit", "2"), "ab"),
    (("--limit", "2", "--offset", "2"), "ec"),
]


@pytest.mark.parametrize(("args", "expected"), FILTERS, ids=[" ".join(a) or "all" for a, _ in FILTERS])
def test_history_filter(db: str, stamps: dict[str, float], args: tuple[str, ...], expected: str) -> None:
    rows = run_json(db, "history", *args)
    assert names(rows, stamps) == expected
    for row in rows:
        assert set(row) >= CONTRACT_KEYS | {"id", "port", "ssid"}


def test_history_before_pages_through_everything(db: str, stamps: dict[str, float]) -> None:
    seen = ""
    page = run_json(db, "history", "--limit", "2")
    while page:
        seen += names(page, stamps)
        page = run_json(db, "history", "--limit", "2", "--before", str(page[-1]["id"]))
    assert seen == "abecd"


def test_history_before_keeps_other_filters(db: str, stamps: dict[str, float]) -> None:
    [newest] = run_json(db, "history", "--mac", HUAWEI, "--limit", "1")
    assert names(run_json(db, "history", "--mac", HUAWEI, "--before", str(newest["id"])), stamps) == "d"


def test_history_row_spells_out_port_and_ssid(db: str, stamps: dict[str, float]) -> None:
    rows = {row["mac"]: row for row in run_json(db, "history")}
    assert rows[XIRCOM]["port"] == "GigabitEthernet1/0/7"
    assert rows[XIRCOM]["ssid"] is None
    assert rows[APPLE]["ssid"] == "eduroam"
    assert rows[APPLE]["port"] is None


def test_history_table_on_a_terminal(db: str, stamps: dict[str, float]) -> None:
    out = run(db, "history", "--client", "wlc1").stdout
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["TIME", "MAC", "VENDOR", "ACTION"]
    assert len(lines) == 2
    assert "eduroam" in out
    assert "Guest-WiFi" in out
    assert "Apple, Inc." in out


def test_history_table_escapes_control_characters(db: str) -> None:
    write(db, [decision(time.time(), XIRCOM, nas_port_id="Gi1/0/1\x1b[2J\x07")])
    out = run(db, "history").stdout
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "Gi1/0/1\\x1b[2J\\x07" in out


def test_history_csv_has_every_column_and_the_id(db: str, stamps: dict[str, float]) -> None:
    out = run(db, "history", "--csv", "--vendor", "huawei").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["mac"] for r in rows] == [HUAWEI, HUAWEI]
    assert set(rows[0]) >= CONTRACT_KEYS | {"id", "port", "ssid", "user_name", "nas_port_id"}
    assert list(rows[0])[-1] == "id"


@pytest.mark.parametrize(
    "args",
    [
        ("--mac", "00:e0:fc:12:34"),
        ("--until", "tomorrow"),
        ("--before", "999999"),
        ("--action", "deny"),
    ],
)
def test_history_bad_input_exits_2(db: str, stamps: dict[str, float], args: tuple[str, ...]) -> None:
    result = run(db, "history", *args, code=2)
    assert args[1] in result.stderr or "deny" in result.output


@pytest.mark.parametrize(
    ("called", "ssid"),
    [
        ("00-11-22-33-44-55:eduroam", "eduroam"),
        ("00:11:22:33:44:55:eduroam", "eduroam"),
        ("001122334455:My:SSID", "My:SSID"),
        ("0011.2233.4455:x", "x"),
        ("00-11-22-33-44-55", None),
        ("00-11-22-33-44-55:", None),
        ("eduroam", None),
        ("10.0.0.1:eduroam", None),
        (None, None),
    ],
)
def test_ssid_of(called: str | None, ssid: str | None) -> None:
    assert ssid_of(called) == ssid
