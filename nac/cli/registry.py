"""Registry commands: `nac oui import|status|rollback`.  Thin front ends over nac.app
(registered by nac/cli/main.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from nac.cli.common import (
    DbOption,
    JsonOption,
    _app,
    _errors,
    _fail,
    _print_json,
    _print_table,
    _registries,
)
from nac.cli.lists import print_list_changes

if TYPE_CHECKING:
    from nac.app.results import RegistryImportPlan

oui_app = typer.Typer(help="Import and inspect the IEEE registry data.", no_args_is_help=True)

#: Rows per section that the text output of `nac oui import` lists (--json has them all).
_EXAMPLES: Final = 5
_BY_REGISTRY_COLUMNS: Final = ("registry", "before", "after", "added", "removed", "reassigned", "renamed")


@oui_app.command("import")
def oui_import(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="IEEE CSV or Wireshark manuf files.")
    ],
    date: Annotated[
        str | None, typer.Option("--date", help="When the data was published (default: today).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the changes and exit as the import would; change nothing."),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Import even if it removes more than 5 % of the entries in force."),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import IEEE registry files (oui.csv, mam.csv, oui36.csv, iab.csv) or Wireshark's manuf.

    Every file is checked first; one bad line refuses the whole import and changes nothing.
    Each registry the files contain (MA-L, MA-M, MA-S, IAB) is then replaced whole, in one
    transaction; a running server (every server, with a PostgreSQL --db) picks the new
    registry up.  The changes are printed (per registry, with examples).  An import that would
    remove more than 5 % of the entries in force (a truncated or partial file) is refused,
    exit 1, unless --replace is given.  The registry replaced is kept: `nac oui rollback`
    restores it.

    Example: nac oui import oui.csv mam.csv oui36.csv iab.csv --date 2026-11-01 --dry-run
    """
    from nac.app.facade import ImportRefusedError  # noqa: PLC0415 - keeps `nac --help` fast

    refused: ImportRefusedError | None = None
    report: RegistryImportPlan
    with _errors():
        nac = _app(db)
        try:
            report = nac.oui_import([str(f) for f in files], on=date, replace=replace, dry_run=dry_run)
        except ImportRefusedError as exc:
            refused, report = exc, exc.report
        finally:
            nac.close()
    if as_json:
        _print_json(report)
    else:
        _print_import(report)
    if refused is not None:
        _fail(str(refused), 1)
    if dry_run and not as_json:
        typer.echo("dry run: nothing changed")


def _print_import(report: RegistryImportPlan) -> None:
    for f in report.files:
        dupes = f", {f.duplicates} repeated blocks ignored" if f.duplicates else ""
        typer.echo(
            f"read {f.file}: {f.format}, {f.assignments} assignments ({', '.join(f.registries)}){dupes}"
        )
    verb = "would replace" if report.dry_run or report.refused else "replaces"
    typer.echo(
        f"registry {report.snapshot} (dated {report.date}) {verb} {report.previous} "
        f"for {', '.join(report.replaced)}: {_registries(report.counts)}"
    )
    _print_table(
        [{"registry": name, **row} for name, row in report.by_registry.items()], _BY_REGISTRY_COLUMNS
    )
    for label, mark, entries in (("added", "+", report.added), ("removed", "-", report.removed)):
        typer.echo(f"{label}: {len(entries)}")
        for entry in entries[:_EXAMPLES]:
            typer.echo(f"  {mark} {entry.prefix}/{entry.prefix_bits} {entry.registry}  {entry.organization}")
        _more(entries)
    for label, changes in (("reassigned", report.reassigned), ("renamed", report.renamed)):
        typer.echo(f"{label}: {len(changes)}")
        for change in changes[:_EXAMPLES]:
            typer.echo(
                f"  ~ {change.prefix}/{change.prefix_bits} {change.registry}  {change.old} -> {change.new}"
            )
        _more(changes)
    print_list_changes(report.lists)  # a published list's rules now cover other prefixes
    typer.echo(f"to review (covered by a vendor rule, or like a family a rule targets): {len(report.watch)}")
    for watch in report.watch:
        why = [f"rule {r}" for r in watch.rules] + [f"looks like {k}, not covered" for k in watch.looks_like]
        where = f"{watch.prefix}/{watch.prefix_bits} {watch.registry}  {watch.organization}"
        typer.echo(f"  ! {where}: " + "; ".join(why))


def _more(rows: Sequence[object]) -> None:
    if len(rows) > _EXAMPLES:
        typer.echo(f"  ... and {len(rows) - _EXAMPLES} more (--json lists them all)")


@oui_app.command("rollback")
def oui_rollback(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Restore the registry snapshot the last import replaced, audited; a running server (every
    server, with a PostgreSQL --db) picks it up.  The snapshot rolled back from is discarded,
    so a second rollback goes one further back (the last 3 replaced snapshots are kept);
    import its files again to return to it.

    Example: nac oui rollback
    """
    with _errors():
        nac = _app(db)
        try:
            report = nac.oui_rollback()
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    before, after = report.discarded, report.restored
    typer.echo(
        f"registry rolled back to {after.snapshot} (dated {after.date}, {after.total} entries: "
        f"{_registries(after.counts)})"
    )
    typer.echo(f"discarded {before.snapshot} (dated {before.date}); import its files again to return")


@oui_app.command("status")
def oui_status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show the active registry snapshot (source, date, sha256, counts) and older ones, and
    which of those `nac oui rollback` can restore.

    Example: nac oui status --json
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            status = nac.oui_status()
        finally:
            nac.close()
    if as_json:
        _print_json(status)
        return
    active = status.active
    typer.echo(f"active     {active.snapshot}")
    typer.echo(f"source     {active.source}{' (bundled)' if active.bundled else ''}")
    typer.echo(f"date       {active.date}")
    typer.echo(f"sha256     {active.sha256}")
    typer.echo(f"entries    {active.total} ({_registries(active.counts)})")
    if active.imported:
        typer.echo(f"imported   {active.imported} by {active.imported_by}")
    if active.replaced:
        typer.echo(f"replaced   {', '.join(active.replaced)}")
    if status.older:
        typer.echo("older snapshots:")
        for row in status.older:
            when = f"imported {row.imported}" if row.imported else "bundled"
            kept = ", kept for rollback" if row.kept else ""
            typer.echo(f"  {row.snapshot}  dated {row.date}, {row.total} entries, {when}{kept}")
