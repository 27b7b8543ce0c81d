"""The `nac` command: parse arguments, call one library method, render, map errors to exits.

Exit codes: 0 success, 1 an operation failed (e.g. no such rule), 2 bad input (a bad MAC,
prefix, flag or file), as CONTRACT.md asks for MAC arguments.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from nac.errors import ConfigError, InvalidMacError, InvalidPrefixError, NacError, PolicyError
from nac.render import table

app = typer.Typer(
    help="nac: a RADIUS server that admits, quarantines or rejects devices by manufacturer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Manage vendor, prefix, MAC and randomized-MAC rules.", no_args_is_help=True)
vendors_app = typer.Typer(help="Explore the IEEE registry's organisations.", no_args_is_help=True)
oui_app = typer.Typer(help="Import and inspect the IEEE registry data.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(vendors_app, name="vendors")
app.add_typer(oui_app, name="oui")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite database (default: $NAC_DB, else ./nac.db).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV.")]
#: Rows per section that the text output of `nac oui import` lists (--json has them all).
_LIST_MAX = 20


class Apply(StrEnum):
    """What a rule change does to devices already on the network (nac/enforce.py)."""

    now = "now"
    next = "next"
    ask = "ask"


ApplyOption = Annotated[
    Apply,
    typer.Option(
        "--apply",
        help="now: disconnect or re-authorize devices on the network the change affects; "
        "next: at their next authentication; ask: list them and ask.",
    ),
]


class Action(StrEnum):
    reject = "reject"
    quarantine = "quarantine"
    accept = "accept"


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"nac: error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the library's errors into one clear line and an exit code."""
    try:
        yield
    except (InvalidMacError, InvalidPrefixError, ConfigError, PolicyError) as exc:
        _fail(str(exc), 2)
    except NacError as exc:
        _fail(str(exc), 1)


def _app(db: str | None) -> Any:
    from nac.app import Nac  # noqa: PLC0415 - keeps `nac --help` fast

    return Nac(db)


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    for line in table(rows, columns):
        typer.echo(line)


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
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    workers: Annotated[
        int,
        typer.Option("--workers", min=0, help="Processes sharing the ports (0: one per core). Default 1."),
    ] = 1,
) -> None:
    """Run the RADIUS server.

    Example: nac serve --config /etc/nac/nac.toml --workers 0
    """
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        _fail(f"--log-level must be debug, info, warning or error, not {log_level!r}", 2)
    with _errors():
        from nac.config import Config, load_config  # noqa: PLC0415
        from nac.observe import setup_logging  # noqa: PLC0415
        from nac.run import serve as run_server  # noqa: PLC0415

        def configure() -> Config:
            return load_config(config, db=db, bind=bind, auth_port=auth_port, acct_port=acct_port)

        cfg = configure()
        setup_logging(fmt=cfg.log_format, level=level)
        run_server(cfg, configure, workers=workers or os.cpu_count() or 1)


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
    """
    given = [(k, v) for k, v in (("vendor", vendor), ("oui", oui), ("mac", mac)) if v is not None]
    if randomized:
        given.append(("randomized", ""))
    if len(given) != 1:
        _fail("give exactly one of --vendor, --oui, --mac or --randomized", 2)
    kind, value = given[0]
    with _errors():
        nac = _app(db)
        try:
            before = nac.policy() if apply != Apply.next else None
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
                from nac.cli_sessions import enforce_after  # noqa: PLC0415

                enforce_after(nac, before, apply.value, reason=f"rule {rule.id}")
        finally:
            nac.close()


@rules_app.command("list")
def rules_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the rules in force, in the order they were added.

    Example: nac rules list --json
    """
    with _errors():
        nac = _app(db)
        try:
            rows = nac.rules()
        finally:
            nac.close()
    if as_json:
        _print_json(rows)
    elif not rows:
        typer.echo("no rules; every device gets the policy's default")
    else:
        _print_table([_rule_cells(row) for row in rows], _RULE_COLUMNS)


_RULE_COLUMNS = ("id", "kind", "value", "action", "vlan", "scope", "mode", "valid", "reason", "created_by")


def _rule_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A rule as one table line: its scope (clients, SSIDs, port type, method) and validity
    folded into a column each, so a conditional rule reads as one at a glance."""
    scope = [
        *(f"client {c}" for c in row.get("clients") or ()),
        *(f"ssid {s}" for s in row.get("ssids") or ()),
        *((f"{row['port_type']} ports",) if row.get("port_type") else ()),
        *((row["method"],) if row.get("method") else ()),
    ]
    valid = " ".join(
        part
        for part in (
            f"from {row['starts']}" if row.get("starts") else "",
            f"until {row['expires']}" if row.get("expires") else "",
        )
        if part
    )
    mode = row.get("mode") or ""
    if row.get("shadowed_by"):  # the rule never decides: say so where the operator looks
        mode = f"{mode} SHADOWED by {row['shadowed_by']}".strip()
    return {**row, "scope": ", ".join(scope) or "all", "mode": mode, "valid": valid}


@rules_app.command("remove")
def rules_remove(rule_id: Annotated[str, typer.Argument(metavar="ID")], db: DbOption = None) -> None:
    """Remove a rule by id.

    Example: nac rules remove reject-vendor-huawei
    """
    with _errors():
        nac = _app(db)
        try:
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
    if as_json and as_csv:
        _fail("--json and --csv exclude each other", 2)
    if mac == "-":
        _check_stdin(db, as_json=as_json, as_csv=as_csv)
        return
    with _errors():
        nac = _app(db)
        try:
            result = nac.check(mac)
        finally:
            nac.close()
    if as_json:
        _print_json(result)
        return
    if as_csv:
        fields = [key for key in result if key != "matched"]  # a list; --json carries it
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerow(result)
        return
    vendor = result["vendor"] or (
        "(randomized: no vendor)" if result["randomized"] else "(not in the registry)"
    )
    prefix = f"{result['prefix']}/{result['prefix_bits']} {result['registry']}" if result["prefix"] else "-"
    vlan = f" vlan {result['vlan']}" if result["vlan"] else ""
    for label, value in (
        ("mac", result["mac"]),
        ("randomized", "yes" if result["randomized"] else "no"),
        ("vendor", vendor),
        ("prefix", prefix),
        ("decision", f"{result['action']}{vlan}"),
        ("rule", result["rule"]),
        ("reason", result["reason"]),
    ):
        typer.echo(f"{label:<11}{value}")
    lost = [m for m in result["matched"] if not m["decided"]]
    if lost:
        typer.echo("also matched, but lost:")
        for m in lost:
            typer.echo(f"  {m['rule']} ({m['action']}): {m['why']}")


def _check_stdin(db: str | None, *, as_json: bool, as_csv: bool) -> None:
    with _errors():
        nac = _app(db)
        try:
            invalid = 0
            if as_csv:
                write = sys.stdout.write
                for line, valid in nac.check_csv(sys.stdin):
                    invalid += not valid
                    write(line)
            else:
                rows = list(nac.check_lines(sys.stdin))
                invalid = sum(row["error"] is not None for row in rows)
                if as_json:
                    _print_json(rows)
                else:
                    _print_table([_check_cells(row) for row in rows], _CHECK_COLUMNS)
        finally:
            nac.close()
    if invalid:
        typer.echo(f"nac: error: {invalid} line(s) are not MAC addresses", err=True)
        raise typer.Exit(2)


_CHECK_COLUMNS = ("line", "mac", "vendor", "prefix", "randomized", "action", "vlan", "rule", "reason")


def _check_cells(row: dict[str, Any]) -> dict[str, Any]:
    if row["error"] is not None:
        return {"line": row["line"], "mac": row["input"], "action": "error", "reason": row["error"]}
    prefix = f"{row['prefix']}/{row['prefix_bits']}" if row["prefix"] else None
    return {**row, "prefix": prefix, "randomized": "yes" if row["randomized"] else "no"}


@vendors_app.command("search")
def vendors_search(
    text: Annotated[str, typer.Argument(metavar="TEXT")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """List the organisations (and prefix counts) a `--vendor TEXT` rule would cover.

    Example: nac vendors search huawei
    """
    with _errors():
        nac = _app(db)
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


def _registries(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _print_organizations(rows: Sequence[dict[str, Any]], indent: str = "") -> None:
    for row in rows:
        typer.echo(f"{indent}{row['prefixes']:>6}  {row['organization']}  ({_registries(row['registries'])})")
    typer.echo(f"{indent}{sum(r['prefixes'] for r in rows):>6}  prefixes in all")


@vendors_app.command("show")
def vendors_show(
    family: Annotated[str, typer.Argument(metavar="FAMILY")], db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Show a vendor family: why it is there, its patterns and exclusions, and exactly which
    organisations and how many prefixes per registry it covers.

    Example: nac vendors show dahua
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.vendors_show(family)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    typer.echo(f"{report['name']} (family {report['family']}, registry {report['snapshot']})")
    typer.echo(f"basis: {report['basis']}")
    typer.echo("organisation patterns:")
    for row in report["organization_patterns"]:
        typer.echo(
            f"  {row['pattern']!r}: {row['prefixes']} prefixes, {len(row['organizations'])} organisations"
        )
    for row in report["prefixes"]:
        typer.echo(f"  prefix {row['prefix']}: {row['organization'] or '(not in the registry)'}")
    if report["exclude_organizations"] or report["exclude_prefixes"]:
        typer.echo("exclusions:")
    for row in report["exclude_organizations"]:
        names = "; ".join(row["organizations"]) or "(matches nothing)"
        typer.echo(f"  {row['pattern']!r}: {row['prefixes']} prefixes: {names}")
    for row in report["exclude_prefixes"]:
        typer.echo(f"  prefix {row['prefix']}: {row['organization'] or '(not in the registry)'}")
    total = report["total"]
    typer.echo(
        f"covers {total['prefixes']} prefixes ({_registries(total['registries'])}) "
        f"of {total['organizations']} organisations:"
    )
    _print_organizations(report["covered"], indent="  ")


@vendors_app.command("review")
def vendors_review(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List registry organisations that look like a vendor family but are not covered by it,
    and family patterns or prefixes that match nothing in the current registry.

    Example: nac vendors review --json
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.vendors_review()
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    typer.echo(f"registry {report['snapshot']}")
    typer.echo("look-alikes not covered (decide: add to the family, or exclude):")
    for row in report["uncovered"]:
        note = "  [excluded by the family]" if row["excluded"] else ""
        typer.echo(
            f"  {row['family']:<10} {row['organization']}  ({_registries(row['registries'])}; "
            f"shares {', '.join(row['shared_words'])}){note}"
        )
    if not report["uncovered"]:
        typer.echo("  none")
    typer.echo("family entries that match nothing in this registry:")
    for row in report["unmatched"]:
        typer.echo(f"  {row['family']:<10} {row['field']}: {row['value']}")
    if not report["unmatched"]:
        typer.echo("  none")


# -- the registry -------------------------------------------------------------------------


@oui_app.command("import")
def oui_import(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="IEEE CSV or Wireshark manuf files.")
    ],
    date: Annotated[
        str | None, typer.Option("--date", help="When the data was published (default: today).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import IEEE registry files (oui.csv, mam.csv, oui36.csv, iab.csv) or Wireshark's manuf.

    Every file is checked first; one bad line refuses the whole import and changes nothing.
    Each registry the files contain (MA-L, MA-M, MA-S, IAB) is then replaced whole, in one
    transaction; a running server picks the new registry up.

    Example: nac oui import oui.csv mam.csv oui36.csv iab.csv --date 2026-11-01
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.oui_import([str(f) for f in files], on=date)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    for f in report["files"]:
        dupes = f", {f['duplicates']} repeated blocks ignored" if f["duplicates"] else ""
        typer.echo(
            f"read {f['file']}: {f['format']}, {f['assignments']} assignments "
            f"({', '.join(f['registries'])}){dupes}"
        )
    typer.echo(
        f"registry {report['snapshot']} (dated {report['date']}) replaces {report['previous']} "
        f"for {', '.join(report['replaced'])}: {_registries(report['counts'])}"
    )
    for label, mark, rows in (("added", "+", report["added"]), ("removed", "-", report["removed"])):
        typer.echo(f"{label}: {len(rows)}")
        for row in rows[:_LIST_MAX]:
            typer.echo(
                f"  {mark} {row['prefix']}/{row['prefix_bits']} {row['registry']}  {row['organization']}"
            )
        _more(rows)
    for label, rows in (("reassigned", report["reassigned"]), ("renamed", report["renamed"])):
        typer.echo(f"{label}: {len(rows)}")
        for row in rows[:_LIST_MAX]:
            typer.echo(
                f"  ~ {row['prefix']}/{row['prefix_bits']} {row['registry']}  {row['old']} -> {row['new']}"
            )
        _more(rows)
    typer.echo(
        f"to review (covered by a vendor rule, or like a family a rule targets): {len(report['watch'])}"
    )
    for row in report["watch"]:
        why = [f"rule {r}" for r in row["rules"]] + [
            f"looks like {k}, not covered" for k in row["looks_like"]
        ]
        typer.echo(
            f"  ! {row['prefix']}/{row['prefix_bits']} {row['registry']}  {row['organization']}: "
            + "; ".join(why)
        )


def _more(rows: Sequence[object]) -> None:
    if len(rows) > _LIST_MAX:
        typer.echo(f"  ... and {len(rows) - _LIST_MAX} more (--json lists them all)")


@oui_app.command("status")
def oui_status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show the active registry snapshot (source, date, sha256, counts) and older ones.

    Example: nac oui status --json
    """
    with _errors():
        nac = _app(db)
        try:
            status = nac.oui_status()
        finally:
            nac.close()
    if as_json:
        _print_json(status)
        return
    active = status["active"]
    typer.echo(f"active     {active['snapshot']}")
    typer.echo(f"source     {active['source']}{' (bundled)' if active['bundled'] else ''}")
    typer.echo(f"date       {active['date']}")
    typer.echo(f"sha256     {active['sha256']}")
    typer.echo(f"entries    {active['total']} ({_registries(active['counts'])})")
    if active["imported"]:
        typer.echo(f"imported   {active['imported']} by {active['imported_by']}")
    if active["replaced"]:
        typer.echo(f"replaced   {', '.join(active['replaced'])}")
    if status["older"]:
        typer.echo("older snapshots:")
        for row in status["older"]:
            when = f"imported {row['imported']}" if row["imported"] else "bundled"
            typer.echo(f"  {row['snapshot']}  dated {row['date']}, {row['total']} entries, {when}")


@app.command()
def bench(
    secret_file: Annotated[
        Path,
        typer.Option("--secret-file", help="File holding the shared secret (never a flag: ps shows flags)."),
    ],
    host: Annotated[str, typer.Option("--host", help="Server address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Authentication port.")] = 1812,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Requests to send.")] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Seconds to send for.")
    ] = None,
    window: Annotated[int, typer.Option("--window", min=1, help="Requests in flight.")] = 128,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a reply.")] = 2.0,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=1, help="Requests/s to pace at (default: as fast as the window allows)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Load a RADIUS server with MAB requests (allowed, quarantined and banned MACs in every
    spelling) and report requests/s, latency percentiles and reply counts.

    Example: nac bench --secret-file /etc/nac/bench.secret --duration 10 --window 128

    With --rate, the latency at a given load (e.g. 80 % of the peak the first form measured).
    """
    from nac import bench as load  # noqa: PLC0415

    if count is not None and duration is not None:
        _fail("--count and --duration exclude each other", 2)
    try:
        secret = secret_file.read_bytes().strip()
    except OSError as exc:
        _fail(f"{secret_file}: cannot read: {exc.strerror}", 2)
    if not secret:
        _fail(f"{secret_file}: the secret is empty", 2)
    try:
        result = load.run(
            host=host,
            port=port,
            secret=secret,
            count=count,
            duration=duration,
            window=window,
            timeout=timeout,
            rate=rate,
        )
    except (ValueError, OSError) as exc:
        _fail(str(exc), 2)
    if as_json:
        _print_json(result.as_dict())
    else:
        typer.echo(result.format_text())


# The helpdesk commands (history, why, stats, web) live in their own module and add themselves to
# `app`; imported here, after everything they use from this module is defined.
# So do the policy commands (policy, audit, rules simulate).
from nac import cli_helpdesk, cli_policy, cli_sessions  # noqa: E402, F401


def main(argv: Sequence[str] | None = None) -> None:
    command: Callable[..., Any] = typer.main.get_command(app)
    command(args=list(argv) if argv is not None else None, prog_name="nac")


# The 802.1X commands (users, certs) add themselves to `app` the same way.
from nac import cli_eap  # noqa: E402, F401
