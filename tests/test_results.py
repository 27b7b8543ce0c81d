"""The typed results the CLI renders: ``to_json()`` is the --json object (a public interface),
field order and all, and a record reads as that object."""

from __future__ import annotations

import json
from dataclasses import fields

from nac.app.facade import open_store
from nac.app.results import (
    CheckResult,
    DeviceProfile,
    MatchedRule,
    PolicyImport,
    RegistryImport,
    RegistryImportPlan,
    RegistryRollback,
    RuleRow,
    SnapshotStatus,
)
from nac.policy.file import RuleChange, SettingChange
from nac.policy.simulate import ChangedDevice, Simulation
from nac.render import to_json


def _snapshot(name: str) -> SnapshotStatus:
    return SnapshotStatus(
        snapshot=name, source="oui.csv", date="2026-11-01", sha256="ab", counts={"MA-L": 2}, total=2,
        replaced=["MA-L"], imported=None, imported_by=None, bundled=True,
    )  # fmt: skip


def test_a_rule_row_has_the_rules_table_columns_in_order_then_shadowed_by(tmp_path: object) -> None:
    store = open_store(f"{tmp_path}/r.db")
    try:
        columns = [d[0] for d in store.conn.execute("SELECT * FROM rules").description]
    finally:
        store.close()
    assert [RuleRow.json_keys.get(f.name, f.name) for f in fields(RuleRow)] == [*columns, "shadowed_by"]


def test_nested_records_become_json_objects_in_field_order() -> None:
    result = CheckResult(
        mac="00:e0:fc:12:34:56", randomized=False, multicast=False, prefix="00:E0:FC", prefix_bits=24,
        vendor="HUAWEI", registry="MA-L", action="reject", vlan=None, rule="ban", reason="ministry ban",
        snapshot="s1", matched=[MatchedRule(rule="ban", action="reject", decided=True, why="first")],
        profile=DeviceProfile(
            family="huawei", vendor="Huawei", source="dhcp", evidence="", last_seen=None, conflict=True
        ),
    )  # fmt: skip
    plain = result.to_json()
    assert list(plain)[-3:] == ["snapshot", "matched", "profile"]
    assert plain["matched"] == [{"rule": "ban", "action": "reject", "decided": True, "why": "first"}]
    assert list(plain["profile"]) == ["family", "vendor", "source", "evidence", "last_seen", "conflict"]
    assert json.loads(to_json(result)) == plain
    assert to_json([result]) == to_json([plain])  # the CLI prints records and dicts alike


def test_a_json_key_a_field_cannot_be_named_reads_and_prints_under_that_key() -> None:
    report = RegistryRollback(discarded=_snapshot("new"), restored=_snapshot("old"), registry_version=3)
    assert list(report.to_json()) == ["from", "to", "registry_version"]
    assert list(report) == ["from", "to", "registry_version"]
    assert report["from"]["snapshot"] == "new"
    assert report["to"] is report.restored
    assert {**report}["registry_version"] == 3
    assert len(report) == 3
    try:
        report["discarded"]
    except KeyError:
        pass
    else:
        raise AssertionError("a renamed field must not read under its Python name")


def test_a_policy_import_is_the_diff_then_what_was_imported() -> None:
    report = PolicyImport(
        added=[{"id": "ban", "vendor": "huawei", "action": "reject"}], removed=[],
        changed=[RuleChange(id="lab", fields={"vlan": SettingChange(before=None, after=30)})],
        defaults={"action": SettingChange(before="accept", after="reject")}, unchanged=2,
        file="site.toml", rules=3, rules_version=7, warnings=[],
    )  # fmt: skip
    plain = report.to_json()
    assert list(plain) == [
        "added", "removed", "changed", "defaults", "unchanged", "user_groups", "file", "rules",
        "rules_version", "warnings",
    ]  # fmt: skip
    assert plain["user_groups"] is None  # the file had none: the database's stay as they were
    assert plain["changed"] == [{"id": "lab", "fields": {"vlan": {"before": None, "after": 30}}}]
    assert plain["defaults"] == {"action": {"before": "accept", "after": "reject"}}


def test_a_simulation_names_its_window_and_candidate_first() -> None:
    device = ChangedDevice(
        mac="00:e0:fc:12:34:56", before="accept", after="reject", rule_before=None, rule_after="ban",
        requests=2, clients=["sw1"], ssids=[], first_seen=1.0, last_seen=2.0,
    )  # fmt: skip
    report = Simulation(
        since="2026-11-01T00:00:00Z", candidate={"id": "ban"}, requests=2, devices=1,
        changed_requests=2, changed_devices=1, changes={"accept -> reject": 2}, clients={"sw1": 2},
        ssids={}, device_list=[device],
    )  # fmt: skip
    plain = report.to_json()
    assert list(plain)[:3] == ["since", "candidate", "requests"]
    assert plain["device_list"][0]["rule_after"] == "ban"
    assert json.loads(to_json(report)) == plain


def test_a_refused_registry_import_has_no_registry_version_and_a_done_one_ends_with_it() -> None:
    plan = [f.name for f in fields(RegistryImportPlan)]
    assert plan[-3:] == ["watch", "dry_run", "refused"]
    assert [f.name for f in fields(RegistryImport)] == [*plan, "registry_version"]
