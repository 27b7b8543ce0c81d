"""802.1X user groups in policy files (`[user_groups.NAME]`, nac/eap/groupfile.py): checked as
`nac groups add` checks them, with file, line and reason; imported with the rules in one
transaction and one audit row; left alone by a file without them; exported back to the same;
followed by `[policy] watch`; refused on PostgreSQL."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nac.app import Nac
from nac.app.usergroups import file_groups
from nac.cli.main import app
from nac.eap.groupfile import diff_user_groups, dump_user_groups, parse_user_groups
from nac.eap.groups import add_group, read_groups, set_user
from nac.eap.profiles import Profile
from nac.eap.users import add_user
from nac.errors import PolicyError
from nac.resources import load_dictionary
from nac.serve.watch import PolicyWatcher
from nac.store import Store

DICTIONARY = load_dictionary()
STAFF = Profile(vlan="100", attributes=(("Filter-Id", "staff-acl"), ("Cisco-AVPair", "shell:priv-lvl=1")))
POLICY = """\
[defaults]
action = "accept"

[[rule]]
id = "ban-huawei"
oui = "00:E0:FC"
action = "reject"
"""
GROUPS = """
[user_groups.staff]
vlan = 100
attrs = ["Filter-Id=staff-acl", "Cisco-AVPair=shell:priv-lvl=1"]

[user_groups.guests]
vlan = "internet"
"""


def _parse(text: str) -> dict[str, Profile] | None:
    return parse_user_groups(text, origin="site.toml", dictionary=DICTIONARY)


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="nac")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "nac.db"
    Nac(str(path)).close()  # a fresh database with the shipped policy
    return path


def _write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _groups(db: Path) -> dict[str, Profile]:
    store = Store(str(db))
    try:
        return read_groups(store.conn)
    finally:
        store.close()


def _audit_actions(db: Path) -> list[str]:
    nac = Nac(str(db))
    try:
        return [row.action for row in nac.audit()]
    finally:
        nac.close()


# -- the file ----------------------------------------------------------------------------


def test_a_file_without_user_groups_has_none_to_apply() -> None:
    assert _parse(POLICY) is None
    assert _parse(POLICY + "\n# user_groups are kept elsewhere\n") is None


def test_user_groups_read_as_the_cli_gives_them() -> None:
    groups = _parse(POLICY + GROUPS)
    assert groups == {"staff": STAFF, "guests": Profile(vlan="internet")}
    assert _parse("[user_groups]\n") == {}  # an empty table: the site has no user groups


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("vlan = 5000", "[user_groups.staff] vlan: user group staff: VLAN id 5000 is outside 1-4094"),
        ("vlan = true", "[user_groups.staff] vlan: must be a VLAN id or name"),
        ('attrs = ["Nope=1"]', "attrs: user group staff: unknown attribute 'Nope' (not in nac's RADIUS"),
        ('attrs = ["Tunnel-Private-Group-Id=5"]', "attribute Tunnel-Private-Group-Id is set by nac itself"),
        ('attrs = ["Session-Timeout=soon"]', "Session-Timeout='soon' is not a valid integer"),
        ('attrs = ["Filter-Id"]', "[user_groups.staff] attrs: 'Filter-Id': expected NAME=VALUE"),
        ('attrs = "Filter-Id=x"', 'attrs: must be a list of "NAME=VALUE" strings'),
        ('colour = "red"', "[user_groups.staff] colour: unknown setting (a user group has vlan and attrs)"),
    ],
)
def test_a_bad_group_is_refused_with_file_line_and_reason(table: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _parse(f"[user_groups.staff]\n{table}\n")
    assert str(caught.value).startswith("site.toml, line 2: "), caught.value  # the setting's line
    assert message in str(caught.value)


def test_every_bad_group_is_listed_at_once() -> None:
    text = '[user_groups.a]\nvlan = 0\n\n[user_groups."-b"]\nvlan = "10"\n\n[user_groups.c]\nvlan = "20"\n'
    with pytest.raises(PolicyError) as caught:
        _parse(text)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("site.toml, line 2: [user_groups.a] vlan:")
    assert "group names are 1 to 64 letters" in lines[1]


def test_the_section_is_not_the_nas_client_groups() -> None:
    groups = _parse('[groups]\nbranch = ["lab-switch"]\n' + GROUPS)
    assert groups is not None
    assert sorted(groups) == ["guests", "staff"]


def test_diff_names_groups_added_removed_and_changed() -> None:
    old = {"staff": STAFF, "guests": Profile(vlan="internet"), "lab": Profile(vlan="30")}
    new = {"staff": STAFF._replace(vlan="200"), "lab": Profile(vlan="30"), "contractors": Profile()}
    diff = diff_user_groups(old, new).to_json()
    assert diff["added"] == [{"name": "contractors"}]
    assert diff["removed"] == [{"name": "guests", "vlan": "internet"}]
    assert diff["changed"] == [{"name": "staff", "fields": {"vlan": {"before": "100", "after": "200"}}}]
    assert diff["unchanged"] == 1


def test_dump_reads_back_to_the_same_groups_names_with_dots_included() -> None:
    groups = {"staff": STAFF, "eu.contractors": Profile(attributes=(("Filter-Id", 'a "quoted" acl'),))}
    text = dump_user_groups(groups)
    assert '[user_groups."eu.contractors"]' in text
    assert _parse(text) == groups
    assert dump_user_groups({}) == ""  # none: no table, so re-importing leaves a site's alone


# -- the policy commands -----------------------------------------------------------------


def test_import_sets_the_groups_with_the_rules_in_one_audit_row(db: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY + GROUPS)
    code, out, err = _cli("policy", "check", str(path), "--db", str(db))
    assert code == 0, err
    assert "1 rules, 0 groups, 2 user groups" in out
    code, out, err = _cli("policy", "import", str(path), "--db", str(db))
    assert code == 0, err
    assert '+ user group staff: vlan "100", attrs' in out
    assert "user groups: 2 added, 0 removed, 0 changed, 0 unchanged" in out
    assert _groups(db) == {"guests": Profile(vlan="internet"), "staff": STAFF}
    assert _audit_actions(db) == ["policy.init", "policy.import"]
    code, out, _ = _cli("audit", "--json", "--db", str(db))
    row = json.loads(out)[-1]
    assert row["before"]["user_groups"] == {}
    assert row["after"]["user_groups"]["staff"] == {
        "vlan": "100",
        "attrs": ["Filter-Id=staff-acl", "Cisco-AVPair=shell:priv-lvl=1"],
    }
    assert [r["id"] for r in row["after"]["rules"]] == ["ban-huawei"]
    assert _cli("audit", "verify", "--db", str(db))[0] == 0


def test_a_changed_file_changes_and_removes_groups(db: Path, tmp_path: Path) -> None:
    assert _cli("policy", "import", str(_write(tmp_path, POLICY + GROUPS)), "--db", str(db))[0] == 0
    changed = _write(tmp_path, POLICY + '[user_groups.staff]\nvlan = "200"\n', "changed.toml")
    code, out, _ = _cli("policy", "diff", str(changed), "--db", str(db))
    assert code == 0
    assert '- user group guests: vlan "internet"' in out
    assert '~ user group staff: vlan "100" -> "200"; attrs' in out
    assert _groups(db) == {"guests": Profile(vlan="internet"), "staff": STAFF}  # diff changes nothing
    assert _cli("policy", "import", str(changed), "--db", str(db))[0] == 0
    assert _groups(db) == {"staff": Profile(vlan="200")}


def test_a_file_without_user_groups_leaves_them_alone(db: Path, tmp_path: Path) -> None:
    store = Store(str(db))
    add_group(store.conn, DICTIONARY, "staff", STAFF)
    store.close()
    path = _write(tmp_path, POLICY)
    code, out, _ = _cli("policy", "import", str(path), "--db", str(db))
    assert code == 0
    assert "user group" not in out
    assert _groups(db) == {"staff": STAFF}
    code, out, _ = _cli("policy", "check", str(path), "--db", str(db))
    assert "user groups" not in out


def test_a_bad_group_imports_nothing(db: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY + GROUPS + '\n[user_groups.lab]\nattrs = ["Not-An-Attribute=1"]\n')
    for command in ("check", "diff", "import"):
        code, _, err = _cli("policy", command, str(path), "--db", str(db))
        assert code == 2
        assert f"{path}, line 17: [user_groups.lab] attrs: user group lab: unknown attribute" in err
    assert _groups(db) == {}
    assert _audit_actions(db) == ["policy.init"]
    assert Nac(str(db)).rules() == []  # the file's rule did not come in either


def test_removing_a_group_that_users_belong_to_is_refused(db: Path, tmp_path: Path) -> None:
    assert _cli("policy", "import", str(_write(tmp_path, POLICY + GROUPS)), "--db", str(db))[0] == 0
    store = Store(str(db))
    add_user(store.conn, "alice", "a long password")
    set_user(store.conn, DICTIONARY, "alice", groups=["staff"])
    store.close()
    path = _write(tmp_path, POLICY + "[user_groups]\n", "none.toml")
    for command in ("check", "import"):
        code, _, err = _cli("policy", command, str(path), "--db", str(db))
        assert code == 2
        assert "removes user group(s) that users belong to: staff (alice)" in err
    assert sorted(_groups(db)) == ["guests", "staff"]


def test_export_then_import_is_a_round_trip(db: Path, tmp_path: Path) -> None:
    store = Store(str(db))
    add_group(store.conn, DICTIONARY, "staff", STAFF)
    add_group(store.conn, DICTIONARY, "eu.guests", Profile(vlan="internet"))
    add_group(store.conn, DICTIONARY, "empty", Profile())
    store.close()
    exported = tmp_path / "exported.toml"
    assert _cli("policy", "export", str(exported), "--db", str(db))[0] == 0
    other = tmp_path / "other.db"
    code, _, err = _cli("policy", "import", str(exported), "--db", str(other))
    assert code == 0, err
    expected = {"empty": Profile(), "eu.guests": Profile(vlan="internet"), "staff": STAFF}
    assert _groups(other) == _groups(db) == expected
    again = tmp_path / "again.toml"
    assert _cli("policy", "export", str(again), "--db", str(other))[0] == 0
    body = exported.read_text().split("\n", 2)[2]  # past the header naming the database
    assert again.read_text().split("\n", 2)[2] == body
    code, out, _ = _cli("policy", "diff", str(exported), "--db", str(other))
    assert "user groups: 0 added, 0 removed, 0 changed, 3 unchanged" in out


def test_postgresql_refuses_a_file_with_user_groups(tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY + GROUPS)

    class Shared:  # any store but the SQLite one: PostgreSQL keeps no users or groups yet
        path = "postgresql://nac@db/nac"

    with pytest.raises(PolicyError) as caught:
        file_groups(path, Shared())  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"{path}: [user_groups] cannot be imported into PostgreSQL")
    assert len(message.splitlines()) == 1
    assert file_groups(_write(tmp_path, POLICY, "plain.toml"), Shared()) is None  # type: ignore[arg-type]


def test_postgresql_import_with_user_groups_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY + GROUPS)
    code, _, err = _cli("policy", "import", str(path), "--db", pg_url)
    assert code == 2
    assert err.startswith(f"nac: error: {path}: [user_groups] cannot be imported into PostgreSQL")
    assert len(err.strip().splitlines()) == 1
    code, out, _ = _cli("audit", "--json", "--db", pg_url)
    assert [row["action"] for row in json.loads(out)] == ["policy.init"]
    assert _cli("policy", "import", str(_write(tmp_path, POLICY, "plain.toml")), "--db", pg_url)[0] == 0


# -- [policy] watch ----------------------------------------------------------------------


def test_watch_imports_the_groups_of_every_file_and_follows_edits(
    db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watched = tmp_path / "policy.d"
    watched.mkdir()
    (watched / "10-rules.toml").write_text(POLICY)
    (watched / "20-staff.toml").write_text('[user_groups.staff]\nvlan = "100"\n')
    (watched / "30-guests.toml").write_text('[user_groups.guests]\nvlan = "internet"\n')
    store = Store(str(db))
    nac = Nac(str(db))
    watcher = PolicyWatcher(watched)
    try:
        assert watcher.poll(store, nac.registry, nac.families)
        assert read_groups(store.conn) == {"guests": Profile(vlan="internet"), "staff": Profile(vlan="100")}
        (watched / "20-staff.toml").write_text('[user_groups.staff]\nvlan = "200"\n# edited\n')
        assert watcher.poll(store, nac.registry, nac.families)
        assert read_groups(store.conn)["staff"] == Profile(vlan="200")
        assert [row["action"] for row in store.audit_rows()][-2:] == ["policy.watch", "policy.watch"]
        (watched / "30-guests.toml").write_text('[user_groups.staff]\nvlan = "300"\n')
        with caplog.at_level(logging.ERROR, logger="nac.watch"):
            assert not watcher.poll(store, nac.registry, nac.families)
        assert "user group 'staff' is set in" in caplog.text
        assert read_groups(store.conn)["staff"] == Profile(vlan="200")  # the groups in force stay
    finally:
        nac.close()
        store.close()
