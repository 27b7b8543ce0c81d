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
    RegistryRollback,
    RuleRow,
    SnapshotStatus,
)
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
    assert [f.name for f in fields(RuleRow)] == [*columns, "shadowed_by"]


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
