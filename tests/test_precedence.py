"""Rule precedence at equal specificity, and conflicts that are refused or shown, never silent.

A ban that is accepted and listed must be enforced: a monitor rule never weakens an enforcing
one, and among enforcing rules that apply at the same specificity the strictest action wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interop import NacServer, mab_attrs, wait_for_decision
from typer.testing import CliRunner

from nac.cli.main import app
from nac.isotime import parse_time
from nac.policy.conflicts import find_conflicts
from nac.policy.decide import STRICTNESS, Context, Defaults, Policy, Rule, port_class, rank
from nac.registry.mac import LOCAL_BIT, parse_mac
from nac.registry.oui import Registry, registry_from_manuf

MANUF = "\n".join(
    [
        "00:E0:FC\tHuaweiTechno\tHUAWEI TECHNOLOGIES CO.,LTD",
        "00:1B:21\tIntel\tIntel Corporate",
        "70:B3:D5\tIEEERegistr\tIEEE Registration Authority",
        "70:B3:D5:12:30:00/36\tHuaweiSmall\tHuawei Device Co., Ltd.",
    ]
)
HUAWEI = parse_mac("00:e0:fc:12:34:56")
INTEL = parse_mac("00:1b:21:aa:bb:cc")
T0 = parse_time("2026-05-01T00:00:00Z", where="test")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return registry_from_manuf(MANUF, source="test-manuf", date="2026-01")


def policy(registry: Registry, *rules: Rule, defaults: Defaults | None = None) -> Policy:
    return Policy(rules, registry=registry, defaults=defaults or Defaults(quarantine_vlan="999"))


def rule(rule_id: str, kind: str, value: str, action: str, **kw: object) -> Rule:
    return Rule(id=rule_id, kind=kind, value=value, action=action, **kw)  # type: ignore[arg-type]


# -- the sequences, in memory ---------------------------------------------------------


@pytest.mark.parametrize("monitor_first", [True, False])
def test_enforcing_ban_beats_the_same_ban_in_monitor_mode(registry: Registry, monitor_first: bool) -> None:
    monitor = rule("watch", "vendor", "huawei", "reject", mode="monitor")
    enforce = rule("ban", "vendor", "huawei", "reject")
    rules = (monitor, enforce) if monitor_first else (enforce, monitor)
    decision, _ = policy(registry, *rules).decide(HUAWEI)
    assert (decision.action, decision.rule) == ("reject", "ban")


def test_monitor_rule_at_a_more_specific_level_never_weakens_an_enforcing_ban(registry: Registry) -> None:
    watch = rule("watch-prefix", "oui", "00:E0:FC", "accept", mode="monitor")
    ban = rule("ban", "vendor", "huawei", "reject")
    decision, _ = policy(registry, watch, ban).decide(HUAWEI)
    assert (decision.action, decision.rule) == ("reject", "ban")


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ("accept", "reject", "reject"),
        ("reject", "accept", "reject"),
        ("accept", "quarantine", "quarantine"),
        ("quarantine", "reject", "reject"),
    ],
)
def test_strictest_of_two_oui_rules_wins_in_either_order(
    registry: Registry, first: str, second: str, winner: str
) -> None:
    a = rule("a", "oui", "00:E0:FC", first)
    b = rule("b", "oui", "00:E0:FC", second)
    decision, _ = policy(registry, a, b).decide(HUAWEI)
    assert decision.action == winner
    assert decision.rule == ("a" if first == winner else "b")  # the decision names the winner


def test_more_specific_enforcing_rule_still_beats_a_stricter_broader_one(registry: Registry) -> None:
    ban = rule("ban", "vendor", "huawei", "reject")
    exception = rule("lab-phone", "mac", "00:e0:fc:12:34:56", "accept")
    assert policy(registry, ban, exception).decide(HUAWEI)[0].rule == "lab-phone"


def test_monitor_rule_alone_records_what_it_would_do_and_admits(registry: Registry) -> None:
    watch = rule("watch", "vendor", "huawei", "reject", mode="monitor")
    decision, _ = policy(registry, watch).decide(HUAWEI)
    assert (decision.action, decision.rule) == ("accept", "watch")
    assert decision.reason.startswith("monitor: would reject (rule watch)")


def test_monitor_accept_rule_does_not_weaken_a_reject_default(registry: Registry) -> None:
    watch = rule("watch", "vendor", "intel", "accept", mode="monitor")
    decision, _ = policy(registry, watch, defaults=Defaults(action="reject")).decide(INTEL)
    assert (decision.action, decision.rule) == ("reject", "default")
    assert "monitor: would accept (rule watch)" in decision.reason


def test_explain_names_the_winner_and_why_each_other_rule_lost(registry: Registry) -> None:
    rules = (
        rule("watch", "vendor", "huawei", "reject", mode="monitor"),
        rule("allow-prefix", "oui", "00:E0:FC", "accept"),
        rule("ban-prefix", "oui", "00:E0:FC", "reject"),
        rule("ban", "vendor", "huawei", "reject"),
        rule("wired-only", "oui", "00:E0:FC", "reject", port_type="wired"),
        rule("intel", "vendor", "intel", "reject"),
    )
    p = policy(registry, *rules)
    verdicts = {v.rule.id: v for v in p.explain(HUAWEI, Context(port_type="Wireless-802.11", now=T0))}
    assert set(verdicts) == {"watch", "allow-prefix", "ban-prefix", "ban", "wired-only"}
    assert [v for v in verdicts.values() if v.decided] == [verdicts["ban-prefix"]]
    assert "reject is stricter" in verdicts["allow-prefix"].why
    assert "more specific" in verdicts["ban"].why
    assert verdicts["watch"].why.startswith("monitor mode")
    assert "limited to wired ports" in verdicts["wired-only"].why


# -- a reference model, against random rule sets ----------------------------------------------

MACS = [HUAWEI, INTEL, parse_mac("70:b3:d5:12:34:56"), parse_mac("da:a1:19:00:00:01")]
MATCHES = [
    ("mac", "00:e0:fc:12:34:56"),
    ("oui", "00:E0:FC"),
    ("oui", "70:B3:D5:12:3"),
    ("oui", "70:B3:D5"),
    ("vendor", "huawei"),
    ("vendor", "huawei device"),
    ("vendor", "intel"),
    ("randomized", ""),
]
rule_specs = st.tuples(
    st.sampled_from(MATCHES),
    st.sampled_from(["accept", "quarantine", "reject"]),
    st.sampled_from([None, "monitor", "enforce"]),
    st.sampled_from([None, "wired", "wireless"]),
)


def _reference(p: Policy, mac: int, ctx: Context) -> tuple[str, str]:
    """Precedence as the README states it, by brute force over every rule."""
    match = None if mac & LOCAL_BIT else p.registry.lookup(mac)
    applying = [
        (seq, r)
        for seq, r in enumerate(p.rules)
        if p.matches(r, mac, match) and r.port_type in (None, port_class(ctx.port_type))
    ]

    def best(candidates: list[tuple[int, Rule]]) -> Rule:
        return min(
            candidates, key=lambda c: (rank(c[1]), STRICTNESS[c[1].action], not c[1].conditional, c[0])
        )[1]

    enforcing = [c for c in applying if not p.monitors(c[1])]
    if enforcing:
        winner = best(enforcing)
        return (winner.action, winner.id)
    monitored = [c for c in applying if p.monitors(c[1])]
    if monitored and p.default.action == "accept":
        return ("accept", best(monitored).id)
    return (p.default.action, "default")


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(rule_specs, max_size=8),
    monitor_default=st.booleans(),
    default=st.sampled_from(["accept", "reject"]),
    mac=st.sampled_from(MACS),
    port=st.sampled_from(["Ethernet", "Wireless-802.11"]),
)
def test_decision_matches_the_documented_precedence(
    registry: Registry,
    specs: list[tuple[tuple[str, str], str, str | None, str | None]],
    monitor_default: bool,
    default: str,
    mac: int,
    port: str,
) -> None:
    rules = [
        rule(f"r{i}", kind, value, action, mode=mode, port_type=port_type)
        for i, ((kind, value), action, mode, port_type) in enumerate(specs)
    ]
    defaults = Defaults(action=default, quarantine_vlan="999", monitor=monitor_default)
    p = policy(registry, *rules, defaults=defaults)
    decision, _ = p.decide(mac, Context(port_type=port, now=T0))
    assert (decision.action, decision.rule) == _reference(p, mac, Context(port_type=port, now=T0))


# -- conflicts ----------------------------------------------------------------------------------


def test_same_match_scope_and_mode_is_a_duplicate_whatever_the_action() -> None:
    a = rule("a", "oui", "00:E0:FC", "accept")
    b = rule("b", "oui", "00:e0:fc", "reject")
    (conflict,) = find_conflicts([a, b], Defaults())
    assert (conflict.kind, conflict.rule.id, conflict.by.id) == ("duplicate", "b", "a")
    assert "nac rules remove a" in conflict.message(Defaults())


def test_enforcing_rule_shadows_the_same_rule_in_monitor_mode() -> None:
    watch = rule("watch", "vendor", "Huawei", "reject", mode="monitor")
    ban = rule("ban", "vendor", "huawei", "reject")
    (conflict,) = find_conflicts([watch, ban], Defaults())
    assert (conflict.kind, conflict.rule.id, conflict.by.id) == ("shadowed", "watch", "ban")


def test_narrower_stricter_rule_is_no_conflict_but_a_narrower_lenient_one_is_shadowed() -> None:
    ban = rule("ban", "vendor", "huawei", "reject")
    wired_ban = rule("wired-q", "vendor", "huawei", "quarantine", port_type="wired")
    (conflict,) = find_conflicts([ban, wired_ban], Defaults())
    assert (conflict.rule.id, conflict.by.id) == ("wired-q", "ban")
    quarantine = rule("q", "vendor", "huawei", "quarantine")
    stricter_where_wired = rule("wired-ban", "vendor", "huawei", "reject", port_type="wired")
    assert find_conflicts([quarantine, stricter_where_wired], Defaults()) == []


def test_policy_wide_monitor_makes_mode_less_rules_monitor_rules() -> None:
    implicit = rule("implicit", "oui", "00:E0:FC", "reject")
    explicit = rule("explicit", "oui", "00:E0:FC", "reject", mode="monitor")
    (conflict,) = find_conflicts([implicit, explicit], Defaults(monitor=True))
    assert conflict.kind == "duplicate"
    assert find_conflicts([implicit, explicit], Defaults())[0].kind == "shadowed"


# -- the CLI ------------------------------------------------------------------------------------


Run = Callable[..., tuple[str, str]]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "test.db")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> tuple[str, str]:
        result = runner.invoke(app, [*args, "--db", db])
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
        return result.stdout, result.stderr

    return run


def test_rules_add_refuses_an_exact_duplicate_naming_the_existing_rule(cli: Run) -> None:
    cli("rules", "add", "--oui", "00:AA:BB", "--action", "accept", "--id", "allow-aabb")
    _, err = cli("rules", "add", "--oui", "00aabb", "--action", "reject", code=2)
    assert "duplicates rule allow-aabb" in err
    rules = json.loads(cli("rules", "list", "--json")[0])
    assert [r["id"] for r in rules] == ["allow-aabb"]


def test_monitor_then_enforce_warns_and_lists_the_monitor_rule_as_shadowed(cli: Run) -> None:
    cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--mode", "monitor", "--id", "watch")
    _, err = cli("rules", "add", "--vendor", "huawei", "--action", "reject", "--id", "ban")
    assert "rule watch" in err
    assert "shadowed by rule ban" in err
    rows = {r["id"]: r for r in json.loads(cli("rules", "list", "--json")[0])}
    assert (rows["watch"]["shadowed_by"], rows["ban"]["shadowed_by"]) == ("ban", None)
    assert "SHADOWED by ban" in cli("rules", "list")[0]
    out, _ = cli("check", "00:e0:fc:12:34:56")
    assert "reject" in out
    assert "also matched, but lost:" in out
    assert "watch (reject): monitor mode" in out
    check = json.loads(cli("check", "00:e0:fc:12:34:56", "--json")[0])
    assert (check["action"], check["rule"]) == ("reject", "ban")
    assert [(m["rule"], m["decided"]) for m in check["matched"]] == [("ban", True), ("watch", False)]


def test_rules_add_refuses_an_expiry_in_the_past(cli: Run) -> None:
    _, err = cli(
        "rules", "add", "--vendor", "huawei", "--action", "reject", "--expires", "2020-01-01", code=2
    )
    assert "in the past" in err


def _policy_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(body, encoding="utf-8")
    return path


SHADOWED = """
[[rule]]
id = "watch"
vendor = "huawei"
action = "reject"
mode = "monitor"

[[rule]]
id = "ban"
vendor = "huawei"
action = "reject"
"""

DUPLICATE = """
[[rule]]
id = "allow"
oui = "00:AA:BB"
action = "accept"

[[rule]]
id = "deny"
oui = "00-aa-bb"
action = "reject"
"""


def test_policy_check_warns_on_shadowed_rules_and_fails_with_strict(cli: Run, tmp_path: Path) -> None:
    path = _policy_file(tmp_path, SHADOWED)
    out, err = cli("policy", "check", str(path))
    assert "1 warnings" in out
    assert f"{path}, line 3" in err
    assert "rule watch" in err
    assert "shadowed by rule ban" in err
    cli("policy", "check", "--strict", str(path), code=1)


def test_policy_check_and_import_refuse_a_duplicate_with_file_and_line(cli: Run, tmp_path: Path) -> None:
    path = _policy_file(tmp_path, DUPLICATE)
    for command in ("check", "import"):
        _, err = cli("policy", command, str(path), code=2)
        assert "duplicates rule allow" in err
        assert f"{path}, line 8" in err
    assert json.loads(cli("rules", "list", "--json")[0]) == []


# -- through a running server, with radclient ------------------------------------------------


def test_monitor_then_enforce_rejects_through_a_running_server(nac_server: NacServer) -> None:
    huawei = "00e0fc112233"
    nac_server.cli_ok("rules", "add", "--vendor", "huawei", "--action", "reject", "--mode", "monitor")

    def monitored() -> bool:
        answer = nac_server.radclient(mab_attrs(huawei)).code
        row = nac_server.history("--mac", huawei, "--limit", "1")[0]
        return answer == "Access-Accept" and row["reason"].startswith("monitor: would reject")

    assert wait_for_decision(monitored, True), nac_server.stderr()
    nac_server.cli_ok("rules", "add", "--vendor", "huawei", "--action", "reject", "--apply", "now")
    code = wait_for_decision(lambda: nac_server.radclient(mab_attrs(huawei)).code, "Access-Reject")
    assert code == "Access-Reject", nac_server.stderr()
    row = nac_server.history("--mac", huawei, "--limit", "1")[0]
    assert (row["action"], row["rule"]) == ("reject", "reject-vendor-huawei-2")


def test_oui_duplicate_pair_is_refused_and_the_first_rule_enforced(nac_server: NacServer) -> None:
    mac = "00e0fc445566"
    nac_server.cli_ok("rules", "add", "--oui", "00:E0:FC", "--action", "reject", "--id", "ban-prefix")
    refused = nac_server.cli("rules", "add", "--oui", "00E0FC", "--action", "accept")
    assert refused.returncode == 2
    assert "duplicates rule ban-prefix" in refused.stderr
    assert (
        wait_for_decision(lambda: nac_server.radclient(mab_attrs(mac)).code, "Access-Reject")
        == "Access-Reject"
    )


EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "policies").glob("**/*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_policy_passes_a_strict_check(cli: Run, path: Path) -> None:
    out, err = cli("policy", "check", "--strict", str(path))
    assert "ok:" in out
    assert "warning" not in err
