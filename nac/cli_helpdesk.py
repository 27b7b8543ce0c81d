"""Helpdesk commands: `nac history [prune]`, `nac why`, `nac stats`, `nac web`.

Thin front ends over nac.app and nac.helpdesk (registered by nac/cli.py).  Text output goes to
people's terminals and carries what the network sent (User-Name, NAS-Port-Id...), so control
characters are shown escaped, never written raw.
"""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Final

import typer

from nac.cli import (
    Action,
    CsvOption,
    DbOption,
    JsonOption,
    _app,
    _errors,
    _fail,
    _print_json,
    _print_table,
    app,
)
from nac.render import DECISION_COLUMNS, decision_cells, printable, why_text

history_app = typer.Typer(  # its help is history()'s docstring
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(history_app, name="history")

_TABLE: Final = DECISION_COLUMNS
_CSV_DEFAULT: Final = (
    "time",
    "mac",
    "vendor",
    "action",
    "vlan",
    "rule",
    "reason",
    "client",
    "nas_ip",
    "method",
)
_table_rows = decision_cells


@history_app.callback()
def history(
    ctx: typer.Context,
    mac: Annotated[str | None, typer.Option("--mac", help="One device, any spelling.")] = None,
    vendor: Annotated[
        str | None, typer.Option("--vendor", help="Organisation name contains this (any case).")
    ] = None,
    client: Annotated[str | None, typer.Option("--client", help="The NAS's name (or its IP).")] = None,
    port: Annotated[
        str | None, typer.Option("--port", help="NAS-Port number or NAS-Port-Id (Gi1/0/7, or 1/0/7).")
    ] = None,
    ssid: Annotated[str | None, typer.Option("--ssid", help="SSID from Called-Station-Id.")] = None,
    action: Annotated[Action | None, typer.Option("--action", help="Only this decision.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Decided by this rule id.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="mab, eap-tls, peap, ...")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 time or span (15m, 2h, 7d).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 time or span; before it.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many rows first.")] = 0,
    before: Annotated[
        int | None, typer.Option("--before", metavar="ID", help="Only rows older than row ID (next page).")
    ] = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
    db: DbOption = None,
) -> None:
    """Show decisions, newest first; every filter narrows (AND).  `nac history prune` deletes
    old ones.

    The last column of --json and --csv is the row's id: `--before ID` gives the next page.

    Example: nac history --mac 00-10-A4-23-19-C0 --since 2h

    Example: nac history --client access-sw1 --port 1/0/7 --action reject --csv > refused.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        _fail("--json and --csv exclude each other", 2)
    with _errors():
        nac = _app(db)
        try:
            rows = nac.history(
                mac=mac,
                vendor=vendor,
                client=client,
                port=port,
                ssid=ssid,
                action=action.value if action else None,
                rule=rule,
                method=method,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
                before=before,
            )
        finally:
            nac.close()
    if as_json:
        _print_json(rows)
    elif as_csv:
        columns = list(rows[0]) if rows else list(_CSV_DEFAULT)
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif not rows:
        typer.echo("no decisions match")
    else:
        _print_table(_table_rows(rows), _TABLE)


@history_app.command("prune")
def history_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="SPAN", help="Delete decisions older than this (90d).")
    ],
    db: DbOption = None,
) -> None:
    """Delete decisions older than a span, in small batches (safe while the server runs).

    Example: nac history prune --older-than 90d
    """
    with _errors():
        nac = _app(db)
        try:
            deleted = nac.prune(older_than)
        finally:
            nac.close()
    typer.echo(f"deleted {deleted} decision{'s' if deleted != 1 else ''} older than {older_than}")


@app.command()
def why(
    mac: Annotated[str, typer.Argument(metavar="MAC", help="In any common spelling.")],
    latest: Annotated[int, typer.Option("--latest", min=1, help="List this many decisions.")] = 5,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Explain in plain words what nac decided for a device, where, by which rule, how often
    it was refused, and whether the current rules would decide otherwise.

    Example: nac why 0010.a423.19c0
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.why(mac, latest=latest)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    for line in why_text(report):
        typer.echo(line)


@app.command()
def stats(
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time or span (default: all history).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="List this many per section.")] = 10,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Decisions by action, vendor, client, rule and method; the most refused devices; and the
    clients that never send Message-Authenticator (not ready for strict BlastRADIUS enforcement).

    Example: nac stats --since 24h
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.stats(since=since, top=top)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    span = f"since {report['since']}" if report["since"] else "in all history kept"
    typer.echo(f"{report['decisions']} decisions {span}")
    for dim in ("action", "vendor", "client", "rule", "method"):
        rows = report[f"by_{dim}"][:top]
        typer.echo(f"\nby {dim}:")
        _print_table([{dim: printable(r["name"]), **r} for r in rows], (dim, "decisions", "rejected"))
    typer.echo("\nmost refused devices:")
    if report["top_refused"]:
        _print_table(report["top_refused"], ("mac", "vendor", "rejected", "first", "last"))
    else:
        typer.echo("  none")
    typer.echo("\nclients and Message-Authenticator (BlastRADIUS, CVE-2024-3596):")
    for row in report["message_authenticator"]:
        if row["never_sends"]:
            state = "never sends it: not ready for strict enforcement"
        elif row["without_message_authenticator"]:
            state = f"{row['without_message_authenticator']} of {row['requests']} requests without it"
        else:
            state = "always sends it: ready"
        typer.echo(f"  {printable(row['client'])} ({', '.join(row['nas_ips'])}): {state}")


@app.command()
def web(
    bind: Annotated[str, typer.Option("--bind", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8812,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="NAC_WEB_TOKEN",
            help="Require this access token (header or ?token=); also $NAC_WEB_TOKEN.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Serve the read-only helpdesk page: search a MAC in any spelling, see decisions, reasons
    and the `why` story, refusals only, CSV export; new decisions appear without reloading.

    The database is opened read-only; the page never writes.  Bound to 127.0.0.1 unless told.

    Example: nac web --port 8812 --token "$(cat /etc/nac/web-token)"
    """
    from nac.web import serve_forever  # noqa: PLC0415 - http.server only when asked for

    with _errors():
        serve_forever(db, bind=bind, port=port, token=token)
