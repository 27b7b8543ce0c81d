"""The `nac` command: parse arguments, call one library method, render, map errors to exits.

This module assembles the command line from the command modules (nac/cli_*.py), which share
their options and helpers through nac/cli/common.py; exit codes are documented there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nac.cli import bench as cli_bench
from nac.cli import db as cli_db
from nac.cli import eap as cli_eap
from nac.cli import equipment as cli_equipment
from nac.cli import fast as cli_run
from nac.cli import groups as cli_groups
from nac.cli import helpdesk as cli_helpdesk
from nac.cli import lists as cli_lists
from nac.cli import policy as cli_policy
from nac.cli import profile as cli_profile
from nac.cli import registry as cli_registry
from nac.cli import sessions as cli_sessions
from nac.cli.common import (
    Action,
    Apply,
    ApplyOption,
    CsvOption,
    DbOption,
    JsonOption,
    _app,
    _before_apply,
    _errors,
    _fail,
    _print_json,
    _registries,
)

if TYPE_CHECKING:
    from nac.registry.vendors import OrganizationCount

app = typer.Typer(  # its help is _main()'s docstring
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich markup would eat "[eap]" and show every flag as "--json <bool>".
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from nac import __version__  # noqa: PLC0415

        typer.echo(f"nac {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """nac: a RADIUS server that admits, quarantines or rejects devices by manufacturer.

    Example: nac check 00:e0:fc:12:34:56
    """


rules_app = typer.Typer(help="Manage vendor, prefix, MAC and randomized-MAC rules.", no_args_is_help=True)
vendors_app = typer.Typer(help="Explore the IEEE registry's organisations.", no_args_is_help=True)

# The command modules' top-level commands, then the groups, in the order `nac --help` lists them
# (typer lists a group's own commands first, whatever the order of these calls).
app.add_typer(cli_bench.app)
app.add_typer(cli_equipment.app)
app.add_typer(cli_helpdesk.app)
app.add_typer(cli_profile.app)
app.add_typer(cli_sessions.app)
app.add_typer(rules_app, name="rules")
app.add_typer(vendors_app, name="vendors")
app.add_typer(cli_registry.oui_app, name="oui")
app.add_typer(cli_helpdesk.history_app, name="history")
app.add_typer(cli_policy.policy_app, name="policy")
app.add_typer(cli_db.db_app, name="db")
app.add_typer(cli_policy.audit_app, name="audit")
app.add_typer(cli_eap.users_app, name="users")
app.add_typer(cli_groups.groups_app, name="groups")
app.add_typer(cli_eap.certs_app, name="certs")
rules_app.add_typer(cli_policy.rules_app)  # `nac rules simulate`


# -- serve --------------------------------------------------------------------------------


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")] = None,
    db: DbOption = None,
    bind: Annotated[
        list[str] | None, typer.Option("--bind", help="Address to listen on (repeat for several).")
    ] = None,
    auth_port: Annotated[int | None, typer.Option("--auth-port", help="Authentication port (1812).")] = None,
    acct_port: Annotated[int | None, typer.Option("--acct-port", help="Accounting port (1813).")] = None,
    journal: Annotated[
        str | None,
        typer.Option(
            "--journal", help="With a postgresql:// --db: this server's local SQLite file (./nac-journal.db)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    workers: Annotated[
        int,
        typer.Option("--workers", min=cli_run.SERVE_WORKERS.least, help=cli_run.SERVE_WORKERS.help),
    ] = cli_run.SERVE_WORKERS.default,
) -> None:
    """Run the RADIUS server.

    Example: nac serve --config /etc/nac/nac.toml --workers 0

    Example: nac serve --db postgresql://nac@db.example.net/nac --journal /var/lib/nac/journal.db
    """
    code = cli_run.serve(
        config=config,
        db=db,
        bind=bind,
        auth_port=auth_port,
        acct_port=acct_port,
        log_level=log_level,
        workers=workers,
        journal=journal,
    )
    raise typer.Exit(code)


# -- rules --------------------------------------------------------------------------------


@rules_app.command("add")
def rules_add(
    action: Annotated[Action, typer.Option("--action", help="What to do with matching devices.")],
    vendor: Annotated[
        str | None, typer.Option("--vendor", help="IEEE organisation name or vendor family.")
    ] = None,
    oui: Annotated[
        str | None, typer.Option("--oui", help="24-, 28- or 36-bit prefix, e.g. 00:E0:FC.")
    ] = None,
    mac: Annotated[str | None, typer.Option("--mac", help="One device's MAC (an exception).")] = None,
    randomized: Annotated[bool, typer.Option("--randomized", help="Locally administered MACs.")] = False,
    banlist: Annotated[
        str | None, typer.Option("--list", help="A ban list (nac vendors lists): a rule per family it names.")
    ] = None,
    lists: cli_lists.ListsOption = None,
    vlan: Annotated[str | None, typer.Option("--vlan", help="VLAN id (1-4094) or name.")] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; shown to the device's NAS and helpdesk.")
    ] = "",
    rule_id: Annotated[
        str | None, typer.Option("--id", help="Rule id (default: made from the match).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="monitor (log what it would do, admit) or enforce.")
    ] = None,
    starts: Annotated[
        str | None, typer.Option("--starts", help="Applies from: ISO 8601, or a span ahead (2h).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lapses by itself at: ISO 8601, or a span ahead (7d).")
    ] = None,
    client: Annotated[
        list[str] | None, typer.Option("--client", help="Only on this NAS client or group (repeat).")
    ] = None,
    ssid: Annotated[list[str] | None, typer.Option("--ssid", help="Only on this SSID (repeat).")] = None,
    port_type: Annotated[
        str | None, typer.Option("--port-type", help="Only on wired or wireless ports.")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="Only for mab or dot1x.")] = None,
    apply: ApplyOption = Apply.next,
    db: DbOption = None,
) -> None:
    """Add a rule; a running server applies it within 2 seconds.

    Example: nac rules add --vendor huawei --action reject --reason "ministry ban 2026-04"

    Example: nac rules add --mac 00:e0:fc:12:34:56 --action accept --expires 7d --client lab-sw1

    Example: nac rules add --list ndaa-889 --action reject
    """
    given = [(k, v) for k, v in (("vendor", vendor), ("oui", oui), ("mac", mac)) if v is not None]
    if randomized:
        given.append(("randomized", ""))
    if banlist is not None:
        given.append(("list", banlist))
    if len(given) != 1:
        _fail("give exactly one of --vendor, --oui, --mac, --randomized or --list", 2)
    if banlist is not None and rule_id is not None:
        _fail("--id names one rule; a list's rules are named LIST-FAMILY", 2)
    kind, value = given[0]
    with _errors():
        nac = _app(db)
        try:
            before = _before_apply(nac, apply)
            if banlist is not None:
                made = nac.add_list(
                    banlist, action=action.value, lists_file=lists, vlan=vlan, reason=reason, mode=mode,
                    starts=starts, expires=expires, clients=client or (), ssids=ssid or (),
                    port_type=port_type, method=method,
                )  # fmt: skip
                cli_lists.print_added(made)
                if before is not None:
                    from nac.cli.sessions import enforce_after  # noqa: PLC0415

                    enforce_after(nac, before, apply.value, reason=f"list {banlist}")
                return
            rule, covered = nac.add_rule(
                kind=kind,
                value=value,
                action=action.value,
                vlan=vlan,
                reason=reason,
                rule_id=rule_id,
                mode=mode,
                starts=starts,
                expires=expires,
                clients=client or (),
                ssids=ssid or (),
                port_type=port_type,
                method=method,
            )
            detail = f" ({covered} registry prefixes)" if kind == "vendor" else ""
            vlan_text = f" vlan {rule.vlan}" if rule.vlan else ""
            typer.echo(f"added rule {rule.id}: {rule.describe()} -> {rule.action}{vlan_text}{detail}")
            for warning in nac.conflicts(rule.id):
                typer.echo(f"warning: {warning}", err=True)
            if before is not None:
                from nac.cli.sessions import enforce_after  # noqa: PLC0415

                enforce_after(nac, before, apply.value, reason=f"rule {rule.id}")
        finally:
            nac.close()


@rules_app.command("list")
def rules_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the rules in force, in the order they were added.

    Example: nac rules list --json
    """
    raise typer.Exit(cli_run.rules_list(db=db, as_json=as_json))


@rules_app.command("remove")
def rules_remove(
    rule_id: Annotated[str | None, typer.Argument(metavar="ID")] = None,
    banlist: Annotated[str | None, typer.Option("--list", help="Remove every rule of this ban list.")] = None,
    db: DbOption = None,
) -> None:
    """Remove a rule by id, or every rule a ban list made (--list), in one audited change.

    Example: nac rules remove reject-vendor-huawei

    Example: nac rules remove --list ndaa-889
    """
    if (rule_id is None) == (banlist is None):
        _fail("give a rule ID or --list NAME", 2)
    with _errors():
        nac = _app(db)
        try:
            if banlist is not None:
                cli_lists.print_removed(nac.remove_list(banlist))
                return
            assert rule_id is not None
            rule = nac.remove_rule(rule_id)
        finally:
            nac.close()
    typer.echo(f"removed rule {rule.id}: {rule.describe()} -> {rule.action}")


# -- lookups ------------------------------------------------------------------------------


@app.command()
def check(
    mac: Annotated[
        str, typer.Argument(metavar="MAC", help="In any common spelling; - reads MACs from stdin.")
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Explain what the current rules decide for a MAC, or for every MAC on stdin (`-`).

    Stdin holds one MAC per line, or a CSV whose header has a column mac, mac_address or
    Calling-Station-Id.  Each line gets a result; a line that is not a MAC gets an error
    result, and the exit code is then 2 once every line has been checked.

    Example: nac check 0010.a423.19c0

    Example: nac check - --csv < devices.csv > audit.csv
    """
    raise typer.Exit(cli_run.check(mac, db=db, as_json=as_json, as_csv=as_csv))


@vendors_app.command("search")
def vendors_search(
    text: Annotated[str, typer.Argument(metavar="TEXT")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """List the organisations (and prefix counts) a `--vendor TEXT` rule would cover.

    Example: nac vendors search huawei
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            rows = nac.vendors_search(text)
        finally:
            nac.close()
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"no organisation matches {text!r}")
        return
    _print_organizations(rows)


def _print_organizations(rows: Sequence[OrganizationCount], indent: str = "") -> None:
    for row in rows:
        typer.echo(f"{indent}{row.prefixes:>6}  {row.organization}  ({_registries(row.registries)})")
    typer.echo(f"{indent}{sum(r.prefixes for r in rows):>6}  prefixes in all")


@vendors_app.command("show")
def vendors_show(
    family: Annotated[str, typer.Argument(metavar="FAMILY")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Show a vendor family: why it is there, its patterns and exclusions, and exactly which
    organisations and how many prefixes per registry it covers.

    Example: nac vendors show dahua
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            report = nac.vendors_show(family)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    typer.echo(f"{report.name} (family {report.family}, registry {report.snapshot})")
    typer.echo(f"basis: {report.basis}")
    typer.echo("organisation patterns:")
    for hits in report.organization_patterns:
        typer.echo(f"  {hits.pattern!r}: {hits.prefixes} prefixes, {len(hits.organizations)} organisations")
    for entry in report.prefixes:
        typer.echo(f"  prefix {entry.prefix}: {entry.organization or '(not in the registry)'}")
    if report.exclude_organizations or report.exclude_prefixes:
        typer.echo("exclusions:")
    for hits in report.exclude_organizations:
        names = "; ".join(hits.organizations) or "(matches nothing)"
        typer.echo(f"  {hits.pattern!r}: {hits.prefixes} prefixes: {names}")
    for entry in report.exclude_prefixes:
        typer.echo(f"  prefix {entry.prefix}: {entry.organization or '(not in the registry)'}")
    total = report.total
    typer.echo(
        f"covers {total.prefixes} prefixes ({_registries(total.registries)}) "
        f"of {total.organizations} organisations:"
    )
    _print_organizations(report.covered, indent="  ")


@vendors_app.command("review")
def vendors_review(
    db: DbOption = None, lists: cli_lists.ListsOption = None, as_json: JsonOption = False
) -> None:
    """List registry organisations that look like a vendor family but are not covered by it,
    and family patterns or prefixes that match nothing in the current registry, each with the
    ban lists naming its family; and which prefixes list rules gained or lost since added.

    Example: nac vendors review --json
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            report = nac.vendors_review(lists)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    typer.echo(f"registry {report.snapshot}")
    typer.echo("look-alikes not covered (decide: add to the family, or exclude):")
    for alike in report.uncovered:
        note = "  [excluded by the family]" if alike.excluded else ""
        typer.echo(
            f"  {alike.family:<10} {alike.organization}  ({_registries(alike.registries)}; "
            f"shares {', '.join(alike.shared_words)}){note}{cli_lists.lists_note(alike.lists)}"
        )
    if not report.uncovered:
        typer.echo("  none")
    typer.echo("family entries that match nothing in this registry:")
    for entry in report.unmatched:
        typer.echo(f"  {entry.family:<10} {entry.field}: {entry.value}{cli_lists.lists_note(entry.lists)}")
    if not report.unmatched:
        typer.echo("  none")
    if report.since_added:
        typer.echo("list rules whose families cover other prefixes than when they were added:")
    cli_lists.print_list_changes(report.since_added)


vendors_app.command("lists")(cli_lists.vendors_lists)
vendors_app.command("show-list")(cli_lists.vendors_show_list)


def main(argv: Sequence[str] | None = None) -> None:
    command: Callable[..., Any] = typer.main.get_command(app)
    command(args=list(argv) if argv is not None else None, prog_name="nac")
