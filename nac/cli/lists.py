"""Ban-list commands: `nac vendors lists`, `nac vendors show-list`, and the rendering of
`nac rules add --list` and `nac rules remove --list`.  Thin front ends over nac.app
(registered by nac/cli/main.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from nac.cli.common import DbOption, JsonOption, _app, _errors, _print_json, _print_table, _registries

if TYPE_CHECKING:
    from nac.app.lists import FamilyList, ListChange, ListRules, ListTally

#: Prefixes per gain or loss that the text lists (--json has them all).
_EXAMPLES: Final = 5

ListsOption = Annotated[
    Path | None,
    typer.Option("--lists", help="Your own ban lists: a TOML file in the form of nac/data/banlists.toml."),
]


def vendors_lists(db: DbOption = None, lists: ListsOption = None, as_json: JsonOption = False) -> None:
    """List the ban lists nac knows (shipped, and yours with --lists): who issued which
    document when, the vendor families each names, and how many registry prefixes they cover.

    Example: nac vendors lists --json
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            rows = nac.vendors_lists(lists)
        finally:
            nac.close()
    if as_json:
        _print_json(rows)
        return
    _print_table(
        [{**row, "families": ", ".join(row.families), "out of scope": len(row.out_of_scope)} for row in rows],
        ("name", "date", "issuer", "families", "prefixes", "out of scope"),
    )


def vendors_show_list(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    db: DbOption = None,
    lists: ListsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a ban list: its document, date and issuer, the prefixes each family it names
    covers in the registry in force, and the entities no MAC rule can enforce, with why.

    Example: nac vendors show-list ndaa-889
    """
    with _errors():
        nac = _app(db, readonly=True)
        try:
            report = nac.vendors_show_list(name, lists)
        finally:
            nac.close()
    if as_json:
        _print_json(report)
        return
    typer.echo(f"{report.name}: {report.title}")
    typer.echo(f"issuer:   {report.issuer}")
    typer.echo(f"document: {report.document}")
    typer.echo(f"url:      {report.url}")
    typer.echo(f"date:     {report.date}")
    typer.echo(f"from:     {report.source}")
    if report.basis:
        typer.echo(f"basis:    {report.basis}")
    typer.echo(f"covers {report.prefixes} prefixes in registry {report.snapshot}:")
    for family in report.families:
        typer.echo(
            f"  {family.prefixes:>6}  {family.family} ({_registries(family.registries) or 'none'}): "
            f"{'; '.join(family.entities)}"
        )
    outside = [e for e in report.entities if e.out_of_scope is not None]
    if outside:
        typer.echo("out of scope for MAC-based rules:")
    for entity in outside:
        typer.echo(f"  {entity.name}: {entity.out_of_scope}")


def print_added(report: ListRules) -> None:
    """`nac rules add --list`: the rules made, and what of the list they cannot enforce."""
    for rule in report.rules:
        detail = f"({rule.prefixes} registry prefixes)"
        typer.echo(f"added rule {rule.id}: vendor {rule.family} -> {report.action} {detail}")
    typer.echo(f"list {report.name}: {report.title}, dated {report.date} ({len(report.rules)} rules)")
    if report.out_of_scope:
        typer.echo(f"not enforceable by MAC (see `nac vendors show-list {report.name}`): "
                   + "; ".join(report.out_of_scope))  # fmt: skip


def print_removed(report: ListRules) -> None:
    for rule in report.rules:
        typer.echo(f"removed rule {rule.id}: vendor {rule.family} -> {report.action}")
    typer.echo(f"list {report.name}: {len(report.rules)} rules removed")


def print_list_changes(changes: Sequence[ListChange]) -> None:
    """Which prefixes each list rule gains or loses (`nac oui import`, `nac vendors review`)."""
    for listed in changes:
        typer.echo(
            f"list {listed.banlist}, rule {listed.rule} ({listed.family}): "
            f"gains {len(listed.gained)} prefixes, loses {len(listed.lost)}"
        )
        for mark, entries in (("+", listed.gained), ("-", listed.lost)):
            for entry in entries[:_EXAMPLES]:
                where = f"{entry.prefix}/{entry.prefix_bits} {entry.registry}"
                typer.echo(f"  {mark} {where}  {entry.organization}")
            if len(entries) > _EXAMPLES:
                typer.echo(f"  ... and {len(entries) - _EXAMPLES} more (--json lists them all)")


def lists_note(found: Sequence[FamilyList]) -> str:
    """`nac vendors review`'s note on an entry: the lists naming its family, and which are applied."""
    if not found:
        return ""
    named = [f"{f.banlist} (in force)" if f.in_force else f.banlist for f in found]
    return "  [lists: " + ", ".join(named) + "]"


def print_list_sites(tallies: Sequence[ListTally]) -> None:
    """`nac stats`: per list, the refused devices by site."""
    for tally in tallies:
        if tally.sites:
            typer.echo(f"\n{tally.banlist} by site:")
            _print_table(tally.sites, ("site", "decisions", "rejected", "devices_rejected"))
