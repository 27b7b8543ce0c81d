"""The rules, defaults and audit chain on a real PostgreSQL (tests/pgserver.py): the schema is
created and versioned, a newer one is refused, and every change means what it means on
SQLite: one transaction, one audit row, rules_version + 1, and a NOTIFY of the new version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nac import entry
from nac.cli.main import app
from nac.errors import DatabaseFileError, NacError, PolicyError
from nac.pg import RULES_CHANNEL, PgUnreachableError, connect, redact
from nac.pg.schema import SCHEMA_VERSION
from nac.pg.store import PgStore, open_pg_store, published
from nac.policy.audit import verify_chain
from nac.policy.decide import Rule
from nac.store import Store
from tests.interop import subprocess_env

HUAWEI_OUI = "00:E0:FC"


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="nac")
    return result.exit_code, result.stdout, result.stderr


def _rule_ids(url: str) -> list[str]:
    store = PgStore(url, readonly=True)
    try:
        return [rule.id for rule in store.rules()]
    finally:
        store.close()


def test_db_upgrade_creates_the_versioned_schema_once(pg_url: str) -> None:
    code, out, err = _cli("db", "upgrade", "--db", pg_url)
    assert code == 0, err
    assert out.startswith(f"upgraded {pg_url}: schema version 1: rules, policy defaults and the audit chain")
    code, out, _ = _cli("db", "upgrade", "--db", pg_url)
    assert (code, out.strip()) == (0, f"{pg_url} is up to date (schema version {SCHEMA_VERSION})")
    with connect(pg_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        # A new database takes the shipped policy, audited once, as a new SQLite file does.
        assert conn.execute("SELECT action FROM audit").fetchall() == [("policy.init",)]


def test_a_schema_newer_than_this_nac_is_refused_by_every_command(pg_url: str, tmp_path: Path) -> None:
    open_pg_store(pg_url).close()
    with connect(pg_url) as conn:
        conn.execute("INSERT INTO schema_version (version, nac) VALUES (99, 'tomorrow')")
    newer = f"made by a newer nac (schema version 99; this nac knows {SCHEMA_VERSION} and older)"
    for args in (
        ("rules", "list"),
        ("rules", "add", "--oui", HUAWEI_OUI, "--action", "reject"),
        ("db", "upgrade"),
    ):
        code, out, err = _cli(*args, "--db", pg_url)
        assert (code, out) == (1, ""), args
        assert newer in err, args
    with pytest.raises(DatabaseFileError, match="newer nac"):
        PgStore(pg_url, readonly=True)
    serve = subprocess.run(
        [
            *(sys.executable, "-m", "nac", "serve", "--db", pg_url),
            *("--journal", str(tmp_path / "journal.db"), "--bind", "127.0.0.1"),
            *("--auth-port", "0", "--acct-port", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=subprocess_env(),
        check=False,
    )
    assert serve.returncode == 1
    assert f"nac: error: {pg_url}: {newer}" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_a_reader_needs_the_schema_and_says_how_to_make_it(pg_url: str) -> None:
    code, _, err = _cli("rules", "list", "--db", pg_url)
    assert code == 1
    assert f"no nac tables, this nac needs {SCHEMA_VERSION}: run `nac db upgrade --db URL`" in err


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://nac:s3cret@/nac?host={tmp_path}&port=1"
    assert redact(url) == f"postgresql://nac:***@/nac?host={tmp_path}&port=1"
    with pytest.raises(PgUnreachableError) as caught:
        connect(url, timeout=1)
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith("postgresql://nac:***@/nac")
    code, out, err = _cli("rules", "list", "--db", url)
    assert (code, out) == (1, "")
    assert "cannot connect to PostgreSQL" in err
    assert "s3cret" not in err
    assert len(err.strip().splitlines()) == 1


def test_each_change_is_one_audited_transaction_announced_with_its_version(pg_url: str) -> None:
    store = open_pg_store(pg_url)
    listener = connect(pg_url)
    listener.execute(f"LISTEN {RULES_CHANNEL}")
    start = store.rules_version()
    rule = Rule(id="ban-huawei", kind="oui", value=HUAWEI_OUI, action="reject", reason="ban")
    store.add_rule(rule)
    with pytest.raises(PolicyError, match="a rule with id 'ban-huawei' exists already"):
        store.add_rule(rule)  # refused whole: no audit row, no version
    assert store.rules() == [rule]
    assert store.rules_version() == start + 1
    removed = store.remove_rule("ban-huawei")
    assert removed == rule
    with pytest.raises(NacError, match="no rule with id 'ban-huawei'"):
        store.remove_rule("ban-huawei")
    assert store.rules_version() == start + 2
    heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert heard == [str(start + 1), str(start + 2)]
    rows = store.audit_rows()
    assert [r["action"] for r in rows] == ["policy.init", "rules.add", "rules.remove"]
    assert verify_chain(rows, store.audit_head()).ok
    listener.close()
    store.close()


def test_postgresql_and_sqlite_store_the_same_rows(pg_url: str, tmp_path: Path) -> None:
    """One meaning on both: the same change gives the same rules, defaults and audit rows
    (times and users aside), since both use nac/policy/stored.py and nac/policy/audit.py."""
    rules = [
        Rule(id="a", kind="mac", value="00:10:A4:23:19:C0", action="accept", clients=("lab-sw1",)),
        Rule(id="b", kind="vendor", value="huawei", action="quarantine", vlan="666", ssids=("corp",)),
    ]
    shared, local = open_pg_store(pg_url), Store(tmp_path / "nac.db")
    for store in (shared, local):
        store.set_policy(shared.defaults(), [], action="policy.init", subject="test")
        store.add_list_rules(rules, evidence={"list": "test-list", "date": "2026-01-01"})
        store.remove_rule("a")
    assert shared.rules() == local.rules() == rules[1:]
    assert shared.defaults() == local.defaults()

    def comparable(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return [(r["action"], r["subject"], r["before"], r["after"]) for r in rows]

    assert comparable(shared.audit_rows())[-2:] == comparable(local.audit_rows())[-2:]
    drop = ("created", "created_by")
    assert [{k: v for k, v in r.items() if k not in drop} for r in shared.rule_rows()] == [
        {k: v for k, v in r.items() if k not in drop} for r in local.rule_rows()
    ]
    # What a server's journal copies: whole rows, and the version they were read at.
    found = published(shared.conn)
    assert found.version == shared.rules_version()
    assert [row[0] for row in found.records] == ["b"]
    assert json.loads(found.defaults or "{}")["action"] == shared.defaults().action
    shared.close()
    local.close()


def test_rules_and_policy_commands_run_on_postgresql(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        "rules", "add", "--oui", HUAWEI_OUI, "--action", "reject", "--id", "ban", "--db", pg_url
    )
    assert code == 0, err
    assert out.startswith("added rule ban:")
    run = entry.fast(["rules", "list", "--json", "--db", pg_url])  # the fast path, no typer
    assert run is not None
    assert run() == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["ban"]
    exported = tmp_path / "policy.toml"
    assert _cli("policy", "export", str(exported), "--db", pg_url)[0] == 0
    assert "exported from postgresql://" in exported.read_text()
    assert _cli("rules", "remove", "ban", "--db", pg_url)[0] == 0
    code, out, err = _cli("policy", "import", str(exported), "--db", pg_url)
    assert code == 0, err
    assert "1 rules in force" in out
    code, out, _ = _cli("audit", "--json", "--db", pg_url)
    actions = [row["action"] for row in json.loads(out)]
    assert actions == ["policy.init", "rules.add", "rules.remove", "policy.import"]
    code, out, _ = _cli("audit", "verify", "--db", pg_url)
    assert (code, out.strip()) == (0, "audit trail intact: 4 rows")


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["users", "list"], "nac users list"),
        (["profile", "00:11:22:33:44:55"], "nac profile"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_commands_not_shared_yet_exit_2_naming_the_command(
    pg_url: str, args: list[str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    open_pg_store(pg_url).close()
    run = entry.fast([*args, "--db", pg_url])
    if run is not None:  # the fast path answers it: the same message
        assert run() == 2
        err = capsys.readouterr().err
    else:
        code, _, err = _cli(*args, "--db", pg_url)
        assert code == 2
    assert err.startswith(f"nac: error: {command}: not yet supported on PostgreSQL"), err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert _rule_ids(pg_url) == []  # a refused command changes nothing


def test_the_database_may_come_from_nac_db(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAC_DB", pg_url)
    code, _, err = _cli("rules", "add", "--oui", HUAWEI_OUI, "--action", "reject", "--id", "env")
    assert code == 0, err
    assert _rule_ids(pg_url) == ["env"]
