"""Policy commands: `nac policy check|import|export|diff` and `nac audit [verify]` (issue 4).
Thin front ends over nac.app (registered by nac/cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nac.cli import (
    DbOption,
    JsonOption,
    _app,
    _errors,
    _fail,
    _print_json,
    _print_table,
    app,
)

policy_app = typer.Typer(help="Check, import, export and compare policy files.", no_args_is_help=True)
audit_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")

FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A TOML policy file.")]


@policy_app.command("check")
def policy_check(file: FileArgument, db: DbOption = None) -> None:
    """Check a policy file without changing anything; errors name the file, line and rule.

    Example: nac policy check policies/examples/ministry.toml
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.policy_check(file)
        finally:
            nac.close()
    monitor = ", monitor mode" if report["monitor"] else ""
    counts = f"{report['rules']} rules, {report['groups']} groups"
    typer.echo(f"{file}: ok: {counts}, default {report['default']}{monitor}")


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


def _print_diff(diff: dict[str, Any]) -> None:
    for key, change in diff["defaults"].items():
        typer.echo(f"~ defaults {key}: {_show(change['before'])} -> {_show(change['after'])}")
    for rule in diff["added"]:
        typer.echo(f"+ {rule['id']}: {_summary(rule)}")
    for rule in diff["removed"]:
        typer.echo(f"- {rule['id']}: {_summary(rule)}")
    for rule in diff["changed"]:
        fields = "; ".join(
            f"{k} {_show(v['before'])} -> {_show(v['after'])}" for k, v in rule["fields"].items()
        )
        typer.echo(f"~ {rule['id']}: {fields}")
    typer.echo(
        f"{len(diff['added'])} added, {len(diff['removed'])} removed, {len(diff['changed'])} changed, "
        f"{diff['unchanged']} unchanged"
    )


def _show(value: object) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def _summary(rule: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_show(v)}" for k, v in rule.items() if k != "id")


@policy_app.command("import")
def policy_import(file: FileArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Replace the defaults and all rules with a policy file's, all or nothing.

    The whole file is checked first; any error changes nothing.  Running servers apply the
    new policy within 2 seconds, and the import is recorded in the audit trail.

    Example: nac policy import policies/examples/ministry.toml
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.policy_import(file)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    _print_diff(report)
    typer.echo(f"imported {file}: {report['rules']} rules in force (rules version {report['rules_version']})")


@policy_app.command("export")
def policy_export(
    file: Annotated[
        Path | None, typer.Argument(metavar="[FILE]", help="Write here (default: standard output).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write the database's defaults, groups and rules as a policy file that imports back
    to the same policy.

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
        nac = _app(db)
        try:
            rows = nac.audit()
        finally:
            nac.close()
    if as_json:
        _print_json([_decoded(row) for row in rows])
        return
    if not rows:
        typer.echo("no changes recorded")
        return
    _print_table(rows, ("id", "time", "user", "action", "subject"))


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "before": json.loads(row["before"]) if row["before"] else None,
        "after": json.loads(row["after"]) if row["after"] else None,
    }


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, db: DbOption = None) -> None:
    """Check the audit trail's hash chain; exit 0 only if no row was changed, inserted or
    deleted since it was written.

    Example: nac audit verify
    """
    with _errors():
        nac = _app(db or ctx.obj)
        try:
            verdict = nac.audit_verify()
        finally:
            nac.close()
    if not verdict.ok:
        _fail(f"audit trail broken: {verdict.problem}", 1)
    typer.echo(f"audit trail intact: {verdict.rows} rows")
