"""Registry imports that cannot destroy the registry: an import that would remove more than
5 % of the entries is refused without --replace, --dry-run changes nothing, and every import
keeps the registry it replaced for `nac oui rollback` (audited, picked up by running servers)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.app.facade import ImportRefusedError, Nac, open_store
from nac.cli.main import app
from nac.errors import NacError
from nac.registry.ieee import MAX_REMOVED_SHARE, diff_registries, removal_refusal
from nac.registry.oui import Registry, Snapshot
from nac.registry.store import KEPT_SNAPSHOTS
from tests.interop import NacServer, NacServerFactory, exchange, mab_request, parse_reply, udp_socket

HEADER = "Registry,Assignment,Organization Name,Organization Address\n"
#: A truncated oui.csv: three MA-L rows where the IEEE's file has ~40,000.
TRUNCATED_OUI = HEADER + (
    'MA-L,00E0FC,"HUAWEI TECHNOLOGIES CO.,LTD",Dongguan CN\n'
    "MA-L,001122,Acme Corp,Somewhere US\n"
    "MA-L,ACBBCC,Newcomer Networks,Elsewhere DE\n"
)


@pytest.fixture(scope="module")
def bundled() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundled: Registry) -> None:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)  # parsed once (speed only)


class Cli:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, [*args, "--db", str(self.db)])
        assert result.exit_code == code, (
            f"nac {' '.join(args)} exited {result.exit_code}, expected {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
        )
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)

    def vendor(self, mac: str) -> str | None:
        return self.json("check", mac)["vendor"]  # type: ignore[no-any-return]

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [row for row in self.json("audit") if row["action"] == action]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "test.db")
    open_store(str(cli.db)).close()  # the shipped policy, as `nac serve` first makes it (readers make none)
    return cli


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def dump(db: Path) -> list[str]:
    """Every table and row of the database, as SQL (what "unchanged" means)."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def iab_csv(registry: Registry, *, drop: int, rename: str | None = None) -> str:
    """The bundled registry's IAB blocks as the IEEE's iab.csv, less the first ``drop``; the
    next block's organisation re-spelt as ``rename``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    rows = [e for e in registry.entries if e.registry == "IAB"][drop:]
    for i, e in enumerate(rows):
        writer.writerow(
            ["IAB", f"{e.prefix:09X}", rename if rename and i == 0 else e.organization, "Somewhere"]
        )
    return HEADER + out.getvalue()


# -- the threshold (pure) ---------------------------------------------------------------------


def _registry(count: int, *, source: str) -> Registry:
    return Registry(
        [(0x100000 + i, 24, f"Org {i}") for i in range(count)],
        Snapshot(source=source, date="", sha256="0" * 64),
    )


@pytest.mark.parametrize(("removed", "refused"), [(0, False), (5, False), (6, True), (100, True)])
def test_removal_refusal_allows_at_most_the_named_share(removed: int, refused: bool) -> None:
    assert MAX_REMOVED_SHARE == 0.05
    old = _registry(100, source="old")
    new = Registry([e[:3] for e in old.entries[removed:]], Snapshot(source="new", date="", sha256="1" * 64))
    message = removal_refusal(old, diff_registries(old, new), sources=["oui.csv"])
    assert (message is not None) is refused
    if message is not None:
        assert f"would remove {removed} of the 100 registry entries" in message
        assert f"MA-L {removed}" in message
        assert "--replace" in message


# -- refusing an import that would empty a registry -------------------------------------------


def test_partial_import_is_refused_and_the_registry_is_unchanged(
    cli: Cli, tmp_path: Path, bundled: Registry
) -> None:
    before = dump(cli.db)
    result = cli("oui", "import", write(tmp_path, "oui.csv", TRUNCATED_OUI), code=1)
    lost = bundled.counts()["MA-L"] - 2  # 00:E0:FC and 00:11:22 are in both
    # One clear message: what would be lost, and how to override.
    assert result.stderr.count("\n") == 1
    assert f"would remove {lost:,} of the {len(bundled):,} registry entries" in result.stderr
    assert f"MA-L {lost:,}" in result.stderr
    assert "give --replace to import them anyway" in result.stderr
    # The diff is shown: per registry, and a few examples.
    assert f"would replace {bundled.snapshot.id} for MA-L" in result.stdout
    assert f"MA-L      {bundled.counts()['MA-L']}   3" in result.stdout
    assert "  - 00:00:00/24 MA-L" in result.stdout
    assert "more (--json lists them all)" in result.stdout
    assert dump(cli.db) == before
    assert cli.vendor("00:00:0c:01:02:03") == "Cisco Systems, Inc"
    assert cli.json("oui", "status")["registry_version"] == 0
    assert cli.audit("oui.import") == []


def test_refused_import_prints_the_diff_as_json(cli: Cli, tmp_path: Path, bundled: Registry) -> None:
    report = cli.json("oui", "import", write(tmp_path, "oui.csv", TRUNCATED_OUI), code=1)
    assert "--replace" in report["refused"]
    assert report["by_registry"]["MA-L"] == {
        "before": bundled.counts()["MA-L"],
        "after": 3,
        "added": 1,  # AC:BB:CC
        "removed": bundled.counts()["MA-L"] - 2,
        "reassigned": 1,  # 00:11:22, CIMSYS Inc in the bundled registry
        "renamed": 1,  # HUAWEI TECHNOLOGIES CO.,LTD, spelt as the bundled file does not
    }
    assert report["by_registry"]["MA-M"]["removed"] == 0
    assert len(report["removed"]) == bundled.counts()["MA-L"] - 2


def test_replace_imports_the_partial_file_and_audits_it(cli: Cli, tmp_path: Path, bundled: Registry) -> None:
    report = cli.json("oui", "import", "--replace", write(tmp_path, "oui.csv", TRUNCATED_OUI))
    assert report["refused"] is None
    assert cli.vendor("ac:bb:cc:00:00:01") == "Newcomer Networks"
    assert cli.vendor("00:00:0c:01:02:03") is None
    [row] = cli.audit("oui.import")
    assert row["subject"] == report["snapshot"]
    assert row["before"]["snapshot"] == bundled.snapshot.id
    assert row["after"]["counts"]["MA-L"] == 3
    assert row["after"]["replaced"] == ["MA-L"]
    cli("audit", "verify")


def test_an_ordinary_update_goes_through_without_replace(cli: Cli, tmp_path: Path, bundled: Registry) -> None:
    # Ten IAB blocks withdrawn and one renamed: a real update's size, well under 5 %.
    iab = write(tmp_path, "iab.csv", iab_csv(bundled, drop=10, rename="Renamed Holder Ltd"))
    report = cli.json("oui", "import", iab)
    assert report["by_registry"]["IAB"]["removed"] == 10
    assert report["by_registry"]["IAB"]["reassigned"] == 1
    assert report["counts"]["IAB"] == bundled.counts()["IAB"] - 10
    assert cli.json("oui", "status")["registry_version"] == 1


# -- --dry-run --------------------------------------------------------------------------------


def test_dry_run_prints_the_diff_and_changes_nothing(cli: Cli, tmp_path: Path, bundled: Registry) -> None:
    iab = write(tmp_path, "iab.csv", iab_csv(bundled, drop=10))
    before = dump(cli.db)
    out = cli("oui", "import", "--dry-run", iab).stdout
    assert "removed: 10" in out
    assert out.endswith("dry run: nothing changed\n")
    report = cli.json("oui", "import", "--dry-run", iab)
    assert report["dry_run"] is True
    assert report["by_registry"]["IAB"]["removed"] == 10
    # Even with --replace, and for an import that would be refused: nothing changes.
    cli("oui", "import", "--dry-run", "--replace", write(tmp_path, "oui.csv", TRUNCATED_OUI))
    assert dump(cli.db) == before


def test_dry_run_exits_as_the_import_would(cli: Cli, tmp_path: Path) -> None:
    before = dump(cli.db)
    result = cli("oui", "import", "--dry-run", write(tmp_path, "oui.csv", TRUNCATED_OUI), code=1)
    assert "--replace" in result.stderr
    assert dump(cli.db) == before


# -- rollback ---------------------------------------------------------------------------------


def test_rollback_restores_the_previous_snapshot_and_is_audited(
    cli: Cli, tmp_path: Path, bundled: Registry
) -> None:
    first = cli.json("oui", "import", "--replace", write(tmp_path, "oui.csv", TRUNCATED_OUI))
    first_status = cli.json("oui", "status")
    newer = TRUNCATED_OUI.replace("Acme Corp", "Roadrunner Ltd")
    second = cli.json("oui", "import", write(tmp_path, "oui2.csv", newer))
    assert cli.vendor("00:11:22:33:44:55") == "Roadrunner Ltd"

    report = cli.json("oui", "rollback")
    assert report["from"]["snapshot"] == second["snapshot"]
    assert report["to"]["snapshot"] == first["snapshot"]
    assert cli.vendor("00:11:22:33:44:55") == "Acme Corp"
    status = cli.json("oui", "status")
    assert status["active"] == first_status["active"]
    assert status["registry_version"] == 3  # two imports and a rollback: servers reload
    assert cli.json("check", "00:11:22:33:44:55")["snapshot"] == first["snapshot"]
    [row] = cli.audit("oui.rollback")
    assert row["subject"] == first["snapshot"]
    assert (row["before"]["snapshot"], row["after"]["snapshot"]) == (second["snapshot"], first["snapshot"])
    cli("audit", "verify")
    assert bundled.snapshot.id in {r["snapshot"] for r in status["older"] if r["kept"]}


def test_rolling_back_again_goes_one_further_back_to_the_bundled_registry(
    cli: Cli, tmp_path: Path, bundled: Registry
) -> None:
    assert "nothing to roll back" in cli("oui", "rollback", code=1).stderr  # nothing imported yet
    cli("oui", "import", "--replace", write(tmp_path, "oui.csv", TRUNCATED_OUI))
    cli("oui", "import", write(tmp_path, "oui2.csv", TRUNCATED_OUI.replace("Acme", "Other")))
    cli("oui", "rollback")
    out = cli("oui", "rollback").stdout
    assert f"registry rolled back to {bundled.snapshot.id}" in out
    active = cli.json("oui", "status")["active"]
    assert (active["snapshot"], active["counts"], active["bundled"]) == (
        bundled.snapshot.id,
        bundled.counts(),
        True,
    )
    assert cli.vendor("00:00:0c:01:02:03") == "Cisco Systems, Inc"
    assert "nothing to roll back to" in cli("oui", "rollback", code=1).stderr
    assert len(cli.audit("oui.rollback")) == 2


def test_kept_snapshots_are_bounded_and_a_rolled_back_one_is_discarded(cli: Cli, tmp_path: Path) -> None:
    imported = [cli.json("oui", "import", "--replace", write(tmp_path, "oui.csv", TRUNCATED_OUI))["snapshot"]]
    for n in range(KEPT_SNAPSHOTS + 1):
        text = TRUNCATED_OUI.replace("Acme Corp", f"Acme {n}")
        imported.append(cli.json("oui", "import", write(tmp_path, f"oui{n}.csv", text))["snapshot"])
    older = cli.json("oui", "status")["older"]
    assert [r["snapshot"] for r in older if r["kept"]] == imported[-2 : -2 - KEPT_SNAPSHOTS : -1]
    with sqlite3.connect(cli.db) as conn:
        kept = conn.execute("SELECT COUNT(DISTINCT snapshot) FROM registry_kept").fetchone()[0]
    assert kept == KEPT_SNAPSHOTS  # the bundled registry's 58,000 rows, among others, are gone

    # Roll back once, then import: the snapshot rolled back from is not a rollback target.
    cli("oui", "rollback")
    newest = cli.json("oui", "import", write(tmp_path, "new.csv", TRUNCATED_OUI.replace("Acme Corp", "New")))
    assert cli.json("oui", "rollback")["to"]["snapshot"] == imported[-2]
    assert newest["snapshot"] != imported[-1]
    for _ in range(KEPT_SNAPSHOTS - 1):
        cli("oui", "rollback")
    assert "nothing to roll back to" in cli("oui", "rollback", code=1).stderr


def test_import_refuses_when_the_registry_changed_since_it_was_read(
    tmp_path: Path, bundled: Registry
) -> None:
    db = str(tmp_path / "test.db")
    path = write(tmp_path, "oui.csv", TRUNCATED_OUI)
    slow, other = Nac(db), Nac(db)
    assert slow.registry  # read before the other import
    other.oui_import([path], replace=True)
    with pytest.raises(NacError, match="registry changed while this import was prepared"):
        slow.oui_import([path], replace=True)
    with pytest.raises(ImportRefusedError) as refused:
        Nac(db).oui_import([write(tmp_path, "mam.csv", HEADER + "MA-M,ACBBCC1,New Block,x\n")])
    assert refused.value.report["by_registry"]["MA-M"]["removed"] == bundled.counts()["MA-M"]
    slow.close()
    other.close()


# -- a running server -------------------------------------------------------------------------


def _ask(server: NacServer, mac: str, identifier: int) -> int:
    with udp_socket(timeout=2.0) as sock:
        request, _ = mab_request(mac, identifier=identifier)
        reply = exchange(sock, request, server.auth_port)
    assert reply is not None, f"no reply for {mac}"
    return parse_reply(reply).code


def _await_code(server: NacServer, mac: str, expected: int, first_id: int) -> int:
    deadline = time.monotonic() + 2.5
    identifier = first_id
    code = _ask(server, mac, identifier)
    while code != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        identifier += 1
        code = _ask(server, mac, identifier)
    return code


def test_running_server_applies_a_rollback_within_2_seconds(
    nac_server_factory: NacServerFactory, bundled: Registry
) -> None:
    server = nac_server_factory(rules=[("--vendor", "huawei", "--action", "reject")])
    assert _ask(server, "3c-22-fb-00-00-01", 1) == 2  # an Apple block today
    csv_file = server.workdir / "oui.csv"
    csv_file.write_text(HEADER + 'MA-L,3C22FB,"Huawei Technologies Co.,Ltd",Shenzhen CN\n')
    server.cli_ok("oui", "import", "--replace", str(csv_file))
    assert _await_code(server, "3c-22-fb-00-00-01", 3, 10) == 3
    server.cli_ok("oui", "rollback")
    assert _await_code(server, "3c-22-fb-00-00-01", 2, 100) == 2
    assert server.wait_for_log(f"registry reloaded: {bundled.snapshot.id}")
