"""The IEEE registry in force, shared on a real PostgreSQL (tests/pgserver.py): `nac oui import`,
`nac oui status` and `nac oui rollback` with --db postgresql://... mean what they mean on SQLite
(one transaction, audited once, registry_version + 1, the same refusals), a NOTIFY announces
each change, and every server's follower copies the registry in force into its journal, so two
`nac serve` processes on one database change the vendor they decide by within seconds."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
from typer.testing import CliRunner

import nac.resources
from nac.app.facade import Nac
from nac.cli.main import app
from nac.errors import NacError
from nac.helpdesk.web import Helpdesk
from nac.pg import REGISTRY_CHANNEL, connect
from nac.pg.follow import copy_registry
from nac.pg.store import PgStore, open_pg_store
from nac.registry.oui import Registry
from nac.store import Store
from tests.interop import NacServer, require_radclient
from tests.pgserver import PgServer
from tests.test_pg_serve import _code, _server

HEADER = "Registry,Assignment,Organization Name,Organization Address\n"
#: One MA-L block, an Apple one in the bundled registry, given to Huawei: a one-line oui.csv
#: removes most of MA-L, so these imports take --replace.
HUAWEI_OUI = HEADER + 'MA-L,3C22FB,"Huawei Technologies Co.,Ltd",Shenzhen CN\n'
MAC: Final = "3c22fb000001"
#: How soon both servers decide by an imported (or rolled back) registry: the NOTIFY, the copy
#: into each journal, the server's next tick.
WITHIN: Final = 5.0


@pytest.fixture(scope="module")
def bundled() -> Registry:
    return nac.resources.load_registry()


def _cli(*args: str) -> tuple[int, Any, str]:
    result = CliRunner().invoke(app, list(args), prog_name="nac")
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str) -> Any:
    code, out, err = _cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def _audit(url: str, action: str) -> list[dict[str, Any]]:
    return [row for row in _json("audit", "--db", url) if row["action"] == action]


def _vendor(url: str) -> str | None:
    """MAC's organisation in the registry in force on PostgreSQL."""
    store = PgStore(url, readonly=True)
    try:
        match = nac.resources.load_active_registry(store).lookup(int(MAC, 16))
    finally:
        store.close()
    return None if match is None else match.organization


def _oui_csv(tmp_path: Path, text: str = HUAWEI_OUI, name: str = "oui.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- the commands on PostgreSQL ---------------------------------------------------------------


def test_import_status_and_rollback_on_postgresql_are_audited_once_and_announced(
    pg_url: str, tmp_path: Path, bundled: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)  # parsed once (speed only)
    open_pg_store(pg_url).close()
    status = _json("oui", "status", "--db", pg_url)
    assert (status["active"]["snapshot"], status["active"]["bundled"]) == (bundled.snapshot.id, True)
    assert status["registry_version"] == 0
    with connect(pg_url) as listener:
        listener.execute(f"LISTEN {REGISTRY_CHANNEL}")
        report = _json("oui", "import", "--replace", _oui_csv(tmp_path), "--db", pg_url)
        assert report["registry_version"] == 1
        [notify] = list(listener.notifies(timeout=2, stop_after=1))
        assert notify.payload == "1"
    assert _vendor(pg_url) == "Huawei Technologies Co.,Ltd"
    status = _json("oui", "status", "--db", pg_url)
    assert status["active"]["snapshot"] == report["snapshot"]
    assert status["active"]["source"] == "oui.csv"
    assert [(r["snapshot"], r["kept"]) for r in status["older"]] == [(bundled.snapshot.id, True)]
    [row] = _audit(pg_url, "oui.import")
    assert (row["subject"], row["before"]["snapshot"]) == (report["snapshot"], bundled.snapshot.id)

    rolled = _json("oui", "rollback", "--db", pg_url)
    assert (rolled["from"]["snapshot"], rolled["to"]["snapshot"]) == (report["snapshot"], bundled.snapshot.id)
    assert rolled["registry_version"] == 2
    assert _vendor(pg_url) == "Apple, Inc."
    status = _json("oui", "status", "--db", pg_url)
    assert (status["active"]["snapshot"], status["active"]["counts"]) == (
        bundled.snapshot.id,
        bundled.counts(),
    )
    assert len(_audit(pg_url, "oui.rollback")) == 1
    code, _, err = _cli("oui", "rollback", "--db", pg_url)  # nothing older kept: refused
    assert code == 1
    assert "nothing to roll back to" in err
    assert _cli("audit", "verify", "--db", pg_url)[1].strip() == "audit trail intact: 3 rows"


def test_one_device_commands_read_only_its_blocks_of_postgresqls_registry(
    pg_url: str, tmp_path: Path, bundled: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)
    open_pg_store(pg_url).close()
    _json("oui", "import", "--replace", _oui_csv(tmp_path), "--db", pg_url)
    store = PgStore(pg_url, readonly=True)
    try:
        mac = int(MAC, 16)
        blocks = [(mac >> (48 - bits), bits) for bits in (36, 28, 24)]
        assert store.registry_entries_for(blocks) == [(0x3C22FB, 24, "Huawei Technologies Co.,Ltd", "MA-L")]
        assert store.registry_entries_for([(0x001122, 24)]) == []
        one = nac.resources.load_registry_for(store, mac)
        assert one.lookup(mac) is not None
        assert one.lookup(mac).organization == "Huawei Technologies Co.,Ltd"  # type: ignore[union-attr]
        assert one.snapshot == nac.resources.load_active_registry(store).snapshot
    finally:
        store.close()
    # `nac why` on PostgreSQL decides for the device by that registry: a Huawei rule applies.
    _cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--db", pg_url)
    story = _json("why", MAC, "--db", pg_url)
    assert story["now"]["action"] == "reject"


def test_a_suspicious_import_is_refused_on_postgresql_and_changes_nothing(
    pg_url: str, tmp_path: Path, bundled: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)
    open_pg_store(pg_url).close()
    code, out, err = _cli("oui", "import", _oui_csv(tmp_path), "--db", pg_url)
    assert code == 1
    assert "--replace" in err
    assert "removed: " in out  # the diff is shown, so the operator sees what would have gone
    code, _, err = _cli("oui", "import", "--replace", "--dry-run", _oui_csv(tmp_path), "--db", pg_url)
    assert code == 0, err
    code, _, err = _cli("oui", "import", _oui_csv(tmp_path, "not,a registry\n", "bad.csv"), "--db", pg_url)
    assert code == 2
    assert "bad.csv" in err
    store = PgStore(pg_url, readonly=True)
    try:
        assert (store.registry_version(), store.registry_snapshots(), store.active_registry()) == (
            0,
            [],
            None,
        )
        assert [row["action"] for row in store.audit_rows()] == ["policy.init"]
    finally:
        store.close()


def test_an_import_prepared_against_an_older_registry_is_refused(
    pg_url: str, tmp_path: Path, bundled: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)
    slow, other = Nac(pg_url), Nac(pg_url)
    try:
        assert slow.registry  # read before the other import
        other.oui_import([_oui_csv(tmp_path)], replace=True)
        with pytest.raises(NacError, match="registry changed while this import was prepared"):
            slow.oui_import([_oui_csv(tmp_path)], replace=True)
        assert other.policy_store.registry_version() == 1
    finally:
        slow.close()
        other.close()


def test_the_journal_copy_bumps_its_registry_version_without_an_audit_row(
    pg_url: str, tmp_path: Path, bundled: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)
    open_pg_store(pg_url).close()
    journal = Store(tmp_path / "journal.db")
    try:
        with connect(pg_url) as conn:
            before = journal.registry_version()
            assert copy_registry(conn, journal, "pg") == before + 1  # the bundled one, noted
            assert copy_registry(conn, journal, "pg") is None  # nothing moved
            _json("oui", "import", "--replace", _oui_csv(tmp_path), "--db", pg_url)
            assert copy_registry(conn, journal, "pg") == before + 2
            assert copy_registry(conn, journal, "pg") is None
            shared = PgStore(pg_url, readonly=True)
            try:
                assert journal.active_registry() == shared.active_registry()
            finally:
                shared.close()
            assert nac.resources.load_active_registry(journal).get(0x3C22FB, 24) is not None
            assert not [row for row in journal.audit_rows() if row["action"].startswith("oui.")]
            _json("oui", "rollback", "--db", pg_url)
            assert copy_registry(conn, journal, "pg") == before + 3
            active = journal.active_registry()
            assert active is not None
            assert (active[0]["sha256"], len(active[1])) == (bundled.snapshot.sha256, len(bundled))
    finally:
        journal.close()


def test_the_helpdesk_page_follows_an_import_on_postgresql(
    pg_url: str, tmp_path: Path, bundled: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: bundled)
    open_pg_store(pg_url).close()
    helpdesk = Helpdesk(pg_url)
    try:
        match = helpdesk.nac.registry.lookup(int(MAC, 16))
        assert match is not None
        assert match.organization == "Apple, Inc."
        _json("oui", "import", "--replace", _oui_csv(tmp_path), "--db", pg_url)
        helpdesk.decisions({"since": "24h"})  # a request sees the registry version moved
        match = helpdesk.nac.registry.lookup(int(MAC, 16))
        assert match is not None
        assert match.organization == "Huawei Technologies Co.,Ltd"
    finally:
        helpdesk.close()


# -- two servers on one database --------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NacServer, NacServer]]:
    require_radclient()
    url = pg.new_database()
    root = tmp_path_factory.mktemp("pg-registry")
    servers = [_server(root / "a", url, "nac-a"), _server(root / "b", url, "nac-b")]
    try:
        servers[0].cli_ok("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "no-huawei")
        yield servers[0], servers[1]
    finally:
        for server in servers:
            if server.running:
                assert server.stop(signal.SIGTERM) == 0, server.stderr()


def _both_answer(servers: tuple[NacServer, ...], expected: str) -> bool:
    """Whether every server answers MAC with ``expected`` within WITHIN seconds."""
    deadline = time.monotonic() + WITHIN
    waiting = list(servers)
    while waiting and time.monotonic() < deadline:
        waiting = [s for s in waiting if _code(s, MAC) != expected]
    return not waiting


def _vendors_recorded(server: NacServer, since: str, expected: str) -> dict[str, str]:
    """Each node's vendor on its newest decision for MAC since ``since``, from PostgreSQL's
    history (the shippers follow within a second): asked again until both say ``expected``."""
    deadline = time.monotonic() + WITHIN
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = {}
        for row in server.history("--mac", MAC, "--since", since, "--limit", "100"):  # newest first
            found.setdefault(row["node"], row["vendor"])
        if found == {"nac-a": expected, "nac-b": expected}:
            break
        time.sleep(0.2)
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_an_import_on_postgresql_changes_the_vendor_both_servers_decide_by(
    cluster: tuple[NacServer, NacServer],
) -> None:
    a, b = cluster
    assert _both_answer((a, b), "Access-Accept")  # an Apple block: no rule covers it
    since = _now()
    csv_file = a.workdir / "oui.csv"
    csv_file.write_text(HUAWEI_OUI, encoding="utf-8")
    a.cli_ok("oui", "import", "--replace", str(csv_file))
    assert _both_answer((a, b), "Access-Reject"), f"not both within {WITHIN} s:\n{a.stderr()}\n{b.stderr()}"
    huawei = "Huawei Technologies Co.,Ltd"
    assert _vendors_recorded(a, since, huawei) == {"nac-a": huawei, "nac-b": huawei}
    status = json.loads(b.cli_ok("oui", "status", "--json"))
    assert (status["active"]["source"], status["registry_version"]) == ("oui.csv", 1)
    audit = json.loads(b.cli_ok("audit", "--json"))
    assert [row["action"] for row in audit if row["action"].startswith("oui.")] == ["oui.import"]
    for server in (a, b):
        assert server.wait_for_log("registry reloaded: oui.csv"), server.stderr()
        journal = Store(server.workdir / "journal.db")
        try:
            assert not [row for row in journal.audit_rows() if row["action"].startswith("oui.")]
        finally:
            journal.close()


def test_a_rollback_on_postgresql_reaches_both_servers(cluster: tuple[NacServer, NacServer]) -> None:
    a, b = cluster
    since = _now()
    b.cli_ok("oui", "rollback")
    assert _both_answer((a, b), "Access-Accept"), f"not both within {WITHIN} s:\n{a.stderr()}\n{b.stderr()}"
    assert _vendors_recorded(a, since, "Apple, Inc.") == {"nac-a": "Apple, Inc.", "nac-b": "Apple, Inc."}
    status = json.loads(a.cli_ok("oui", "status", "--json"))
    assert (status["active"]["bundled"], status["registry_version"]) == (True, 2)
    audit = json.loads(a.cli_ok("audit", "--json"))
    assert [row["action"] for row in audit if row["action"].startswith("oui.")] == [
        "oui.import",
        "oui.rollback",
    ]
