"""Helpdesk commands: `nac history [prune]`, `nac why`, `nac stats`, `nac web`.

Thin front ends over nac.app and nac.helpdesk (registered by nac/cli/main.py).  Text output goes to
people's terminals and carries what the network sent (User-Name, NAS-Port-Id...), so control
characters are shown escaped, never written raw.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from nac.cli import fast as cli_run
from nac.cli.common import (
    Action,
    CsvOption,
    DbOption,
    JsonOption,
    _app,
    _errors,
    _fail,
    _print_json,
    _print_table,
)
from nac.cli.fast import HISTORY_LIMIT, HISTORY_OFFSET, WHY_LATEST
from nac.cli.lists import print_list_sites
from nac.render import printable

#: This module's top-level commands; nac/cli/main.py adds them, and `history_app`, to `nac`.
app = typer.Typer()
history_app = typer.Typer(  # its help is history()'s docstring
    invoke_without_command=True,
    no_args_is_help=False,
)


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
    limit: Annotated[
        int, typer.Option("--limit", min=HISTORY_LIMIT.least, help=HISTORY_LIMIT.help)
    ] = HISTORY_LIMIT.default,
    offset: Annotated[
        int, typer.Option("--offset", min=HISTORY_OFFSET.least, help=HISTORY_OFFSET.help)
    ] = HISTORY_OFFSET.default,
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
    code = cli_run.history(
        db=db,
        limit=limit,
        as_json=as_json,
        as_csv=as_csv,
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
        offset=offset,
        before=before,
    )
    raise typer.Exit(code)


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
    latest: Annotated[
        int, typer.Option("--latest", min=WHY_LATEST.least, help=WHY_LATEST.help)
    ] = WHY_LATEST.default,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Explain in plain words what nac decided for a device, where, by which rule, how often
    it was refused, and whether the current rules would decide otherwise.

    Example: nac why 0010.a423.19c0
    """
    raise typer.Exit(cli_run.why(mac, latest=latest, as_json=as_json, db=db))


@app.command()
def stats(
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time or span (default: all history).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="List this many per section.")] = 10,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Decisions by action, vendor, client, rule, method and node (the server that decided); the
    most refused devices; and the clients that never send Message-Authenticator (not ready for
    strict BlastRADIUS enforcement).  On PostgreSQL: every server's decisions.

    Example: nac stats --since 24h
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            report = nac.stats(since=since, top=top)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    span = f"since {report.since}" if report.since else "in all history kept"
    typer.echo(f"{report.decisions} decisions {span}")
    for dim in ("action", "vendor", "client", "rule", "method", "node"):
        tallies = report[f"by_{dim}"][:top]
        typer.echo(f"\nby {dim}:")
        _print_table([{dim: printable(t.name), **t} for t in tallies], (dim, "decisions", "rejected"))
    if report.by_list:
        typer.echo("\nby ban list:")
        _print_table(report.by_list, ("list", "decisions", "rejected", "devices_rejected"))
        print_list_sites(report.by_list)
    if report.profiled:
        typer.echo("\nprofiled devices (maker from DHCP or device-sensor data):")
        rows = [{"maker": maker, "devices": n} for maker, n in report.profiled.items()]
        _print_table(rows, ("maker", "devices"))
    typer.echo("\nmost refused devices:")
    if report.top_refused:
        _print_table(report.top_refused, ("mac", "vendor", "rejected", "first", "last"))
    else:
        typer.echo("  none")
    typer.echo("\nclients and Message-Authenticator (BlastRADIUS, CVE-2024-3596):")
    for client in report.message_authenticator:
        if client.never_sends:
            state = "never sends it: not ready for strict enforcement"
        elif client.without_message_authenticator:
            state = f"{client.without_message_authenticator} of {client.requests} requests without it"
        else:
            state = "always sends it: ready"
        typer.echo(f"  {printable(client.client)} ({', '.join(client.nas_ips)}): {state}")
    for missing in report.unavailable:
        typer.echo(f"\n{missing}")


@app.command()
def web(
    bind: Annotated[
        str, typer.Option("--bind", help="Address to listen on; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8812,
    token_file: Annotated[
        str | None,
        typer.Option(
            "--token-file",
            envvar="NAC_WEB_TOKEN_FILE",
            help="Require the access token in this file; also $NAC_WEB_TOKEN_FILE.",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="NAC_WEB_TOKEN",
            help="Require this access token (visible in ps: prefer --token-file); also $NAC_WEB_TOKEN.",
            show_default=False,
        ),
    ] = None,
    host_name: Annotated[
        list[str] | None,
        typer.Option(
            "--host-name",
            help="A name the page is reached by (NAME or NAME:PORT; repeat for several).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Serve the read-only helpdesk page: search a MAC in any spelling, see decisions, reasons
    and the `why` story, refusals only, CSV export; new decisions appear without reloading.

    The database is opened read-only; the page never writes.  Only loopback may go without a token.

    Browsers log in once (a form, or ?token= once) and keep an HttpOnly cookie; scripts use a header.

    A Host that is neither the address listened on nor a --host-name is refused (DNS rebinding).

    Example: nac web --bind 0.0.0.0 --token-file /etc/nac/web-token --host-name nac.example.org
    """
    from nac.helpdesk.access import read_token_file  # noqa: PLC0415
    from nac.helpdesk.web import serve_forever  # noqa: PLC0415 - http.server only when asked for

    # Click drops an empty $NAC_WEB_TOKEN as if unset: an unset variable must not open the page.
    for name in ("NAC_WEB_TOKEN", "NAC_WEB_TOKEN_FILE"):
        if os.environ.get(name) == "" and token is None and token_file is None:
            _fail(f"${name} is set but empty: give it a value, or unset it", 2)
    if token is not None and token_file is not None:
        _fail("give --token or --token-file, not both", 2)
    with _errors():
        if token_file is not None:
            token = read_token_file(token_file)
        serve_forever(db, bind=bind, port=port, token=token, names=host_name or ())
