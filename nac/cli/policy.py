"""Policy commands: `nac policy check|import|export|diff`, `nac audit [verify]` and
`nac rules simulate`.  Thin front ends over nac.app (registered by nac/cli/main.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from nac.app.results import AuditRow
from nac.cli.common import (
    Action,
    Apply,
    ApplyOption,
    DbOption,
    JsonOption,
    _app,
    _before_apply,
    _errors,
    _fail,
    _print_json,
    _print_table,
)
from nac.cli.lists import ListsOption
from nac.policy.file import PolicyDiff
from nac.policy.simulate import Simulation
from nac.render import iso_time

policy_app = typer.Typer(help="Check, import, export and compare policy files.", no_args_is_help=True)
audit_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
#: `nac rules simulate`, which nac/cli/main.py adds to the `rules` group.
rules_app = typer.Typer()

FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A TOML policy file.")]


@policy_app.command("check")
def policy_check(
    file: FileArgument,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too (shadowed rules).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Check a policy file without changing anything; errors name the file, line and rule.

    Rules that can never decide (shadowed by another rule with the same match) are warned
    about; with --strict they fail the check.

    Example: nac policy check --strict policies/examples/ministry.toml
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.policy_check(file)
        finally:
            nac.close()
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    monitor = ", monitor mode" if report.monitor else ""
    counts = f"{report.rules} rules, {report.groups} groups"
    if report.user_groups is not None:
        counts += f", {report.user_groups} user groups"
    warned = f", {len(report.warnings)} warnings" if report.warnings else ""
    typer.echo(f"{file}: ok: {counts}, default {report.default}{monitor}{warned}")
    if strict and report.warnings:
        raise typer.Exit(1)


@policy_app.command("diff")
def policy_diff(file: FileArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show what importing a policy file would change: rules added, removed and changed.

    Example: nac policy diff policies/examples/ministry.toml
    """
    with _errors():
        nac = _app(db)
        try:
            diff = nac.policy_diff(file)
        finally:
            nac.close()
    if as_json:
        _print_json(diff)
        return
    _print_diff(diff)


def _print_diff(diff: PolicyDiff) -> None:
    for key, change in diff.defaults.items():
        typer.echo(f"~ defaults {key}: {_show(change.before)} -> {_show(change.after)}")
    _print_changes("", "id", diff.added, diff.removed, [(c.id, c.fields) for c in diff.changed])
    typer.echo(
        f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
        f"{diff.unchanged} unchanged"
    )
    groups = diff.user_groups
    if groups is None:  # the file has no [user_groups]: they stay as they are
        return
    changed = [(g.name, g.fields) for g in groups.changed]
    _print_changes("user group ", "name", groups.added, groups.removed, changed)
    typer.echo(
        f"user groups: {len(groups.added)} added, {len(groups.removed)} removed,"
        f" {len(groups.changed)} changed, {groups.unchanged} unchanged"
    )


def _print_changes(
    what: str,
    key: str,
    added: Sequence[dict[str, Any]],
    removed: Sequence[dict[str, Any]],
    changed: Sequence[tuple[str, Mapping[str, Any]]],
) -> None:
    """One line per item added (+), removed (-) or changed (~), named by ``key``."""
    for item in added:
        typer.echo(f"+ {what}{item[key]}: {_summary(item, key)}")
    for item in removed:
        typer.echo(f"- {what}{item[key]}: {_summary(item, key)}")
    for name, fields in changed:
        shown = "; ".join(f"{k} {_show(v.before)} -> {_show(v.after)}" for k, v in fields.items())
        typer.echo(f"~ {what}{name}: {shown}")


def _show(value: object) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def _summary(rule: dict[str, Any], key: str = "id") -> str:
    return ", ".join(f"{k} {_show(v)}" for k, v in rule.items() if k != key) or "no settings"


@policy_app.command("import")
def policy_import(
    file: FileArgument,
    apply: ApplyOption = Apply.next,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the defaults and all rules with a policy file's, all or nothing.

    A file with [user_groups.NAME] tables replaces the 802.1X user groups too; one without
    leaves them alone.  The whole file is checked first; any error changes nothing.  Running servers apply the
    new policy within 2 seconds, and the import is recorded in the audit trail.

    Example: nac policy import policies/examples/ministry.toml
    """
    with _errors():
        nac = _app(db)
        try:
            before = _before_apply(nac, apply)
            report = nac.policy_import(file)
            if as_json:
                _print_json(report)
            else:
                _print_diff(report)
                version = report.rules_version
                typer.echo(f"imported {file}: {report.rules} rules in force (rules version {version})")
            for warning in report.warnings:
                typer.echo(f"warning: {warning}", err=True)
            if before is not None:
                from nac.cli.sessions import enforce_after  # noqa: PLC0415

                enforce_after(nac, before, apply.value, reason=f"policy import {file}")
        finally:
            nac.close()


@policy_app.command("export")
def policy_export(
    file: Annotated[
        Path | None, typer.Argument(metavar="[FILE]", help="Write here (default: standard output).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write the database's defaults, groups, rules and 802.1X user groups as a policy file
    that imports back to the same policy.

    Example: nac policy export site-policy.toml
    """
    with _errors():
        nac = _app(db)
        try:
            text = nac.policy_export()
        finally:
            nac.close()
    if file is None:
        typer.echo(text, nl=False)
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{file}: cannot write: {exc.strerror}", 1)
    typer.echo(f"exported to {file}", err=True)


# -- the audit trail -----------------------------------------------------------------------


@audit_app.callback()
def audit(ctx: typer.Context, db: DbOption = None, as_json: JsonOption = False) -> None:
    """List every change to the policy (rules added and removed, imports), oldest first, with
    time, operating-system user, and the policy before and after.

    Example: nac audit --json
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = db
        return
    with _errors():
        nac = _app(db, readonly=True)
        try:
            rows = [replace(row, time=iso_time(row.time)) for row in nac.audit()]
        finally:
            nac.close()
    if as_json:
        _print_json([_decoded(row) for row in rows])
        return
    if not rows:
        typer.echo("no changes recorded")
        return
    _print_table(rows, ("id", "time", "user", "action", "subject"))


def _decoded(row: AuditRow) -> dict[str, Any]:
    return {
        **row.to_json(),
        "before": json.loads(row.before) if row.before else None,
        "after": json.loads(row.after) if row.after else None,
    }


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, db: DbOption = None) -> None:
    """Check the audit trail's hash chain; exit 0 only if no row was changed, inserted or
    deleted since it was written.

    Example: nac audit verify
    """
    with _errors():
        nac = _app(db or ctx.obj, readonly=True)
        try:
            verdict = nac.audit_verify()
        finally:
            nac.close()
    if not verdict.ok:
        _fail(f"audit trail broken: {verdict.problem}", 1)
    typer.echo(f"audit trail intact: {verdict.rows} rows")


# -- simulation ----------------------------------------------------------------------------


@rules_app.command("simulate")
def rules_simulate(
    since: Annotated[str, typer.Option("--since", help="Replay history since: ISO 8601 or 30d, 12h.")],
    file: Annotated[Path | None, typer.Option("--file", help="A candidate policy file.")] = None,
    vendor: Annotated[str | None, typer.Option("--vendor", help="Candidate rule: vendor or family.")] = None,
    oui: Annotated[str | None, typer.Option("--oui", help="Candidate rule: prefix.")] = None,
    mac: Annotated[str | None, typer.Option("--mac", help="Candidate rule: one device.")] = None,
    randomized: Annotated[
        bool, typer.Option("--randomized", help="Candidate rule: randomized MACs.")
    ] = False,
    banlist: Annotated[
        str | None, typer.Option("--list", help="Candidate rules: a rule per family of this ban list.")
    ] = None,
    lists: ListsOption = None,
    action: Annotated[Action | None, typer.Option("--action", help="Candidate rule's action.")] = None,
    vlan: Annotated[str | None, typer.Option("--vlan", help="VLAN id or name.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    rule_id: Annotated[str | None, typer.Option("--id", help="Rule id.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="monitor or enforce.")] = None,
    starts: Annotated[str | None, typer.Option("--starts", help="ISO 8601 or a span ahead.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="ISO 8601 or a span ahead.")] = None,
    client: Annotated[list[str] | None, typer.Option("--client", help="Only these clients (repeat).")] = None,
    ssid: Annotated[list[str] | None, typer.Option("--ssid", help="Only these SSIDs (repeat).")] = None,
    port_type: Annotated[str | None, typer.Option("--port-type", help="wired or wireless.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="mab or dot1x.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay stored history through the rules in force and through a candidate (one rule
    given with the `rules add` flags, or a whole policy file) and report which devices,
    clients and SSIDs would get a different answer.

    Example: nac rules simulate --since 30d --vendor huawei --action reject

    Example: nac rules simulate --since 2026-04-01 --file policies/examples/ministry.toml

    Example: nac rules simulate --since 30d --list ndaa-889 --action reject
    """
    given = [(k, v) for k, v in (("vendor", vendor), ("oui", oui), ("mac", mac)) if v is not None]
    if randomized:
        given.append(("randomized", ""))
    if banlist is not None:
        given.append(("list", banlist))
    if file is not None and (given or action is not None):
        _fail("give either --file or a candidate rule, not both", 2)
    if file is None and (len(given) != 1 or action is None):
        _fail("give --file POLICY, or one of --vendor, --oui, --mac, --randomized, --list with --action", 2)
    with _errors():
        nac = _app(db)
        try:
            if banlist is not None and action is not None:
                report = nac.simulate_list(
                    since=since, name=banlist, action=action.value, lists_file=lists, vlan=vlan,
                    reason=reason, clients=client or (), ssids=ssid or (), port_type=port_type,
                    method=method, mode=mode, starts=starts, expires=expires,
                )  # fmt: skip
            else:
                rule = None
                if file is None and action is not None:
                    kind, value = given[0]
                    rule, _ = nac.make_rule(
                        kind=kind,
                        value=value,
                        action=action.value,
                        vlan=vlan,
                        reason=reason,
                        rule_id=rule_id or "candidate",
                        clients=client or (),
                        ssids=ssid or (),
                        port_type=port_type,
                        method=method,
                        mode=mode,
                        starts=starts,
                        expires=expires,
                    )
                report = nac.simulate(since=since, rule=rule, path=file)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    _print_simulation(report)


def _print_simulation(report: Simulation) -> None:
    typer.echo(f"replayed {report.requests} requests from {report.devices} devices since {report.since}")
    typer.echo(f"would change: {report.changed_devices} devices, {report.changed_requests} requests")
    for label, counts in (("change", report.changes), ("client", report.clients), ("ssid", report.ssids)):
        if counts:
            typer.echo(f"by {label}:")
            for key, count in counts.items():
                typer.echo(f"  {count:>7}  {key}")
    if report.device_list:
        rows = [
            {
                "mac": d.mac,
                "change": f"{d.before} -> {d.after}",
                "rule_after": d.rule_after,
                "requests": d.requests,
                "clients": ",".join(d.clients),
                "ssids": ",".join(d.ssids),
                "last_seen": iso_time(d.last_seen),
            }
            for d in report.device_list
        ]
        _print_table(rows, ("mac", "change", "rule_after", "requests", "clients", "ssids", "last_seen"))
