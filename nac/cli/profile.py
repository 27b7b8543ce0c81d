"""`nac profile MAC` and `nac profile signatures`: who made a device, on what evidence.
A thin front end over nac.app (registered by nac/cli/main.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from nac.cli.common import DbOption, JsonOption, _errors, _print_json, _print_table
from nac.cli.fast import reading

#: This module's top-level commands; nac/cli/main.py adds them to `nac`.
app = typer.Typer()


@app.command("profile")
def profile(
    target: Annotated[
        str, typer.Argument(metavar="MAC|signatures", help="A device's MAC, or `signatures`.")
    ],
    signatures: Annotated[
        str | None,
        typer.Option("--signatures", help="An operator's signatures file to list with the shipped ones."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what DHCP and the switches told nac about a device, and the manufacturer it
    indicates; or, with `signatures`, the manufacturer signatures in force.

    Example: nac profile da:c0:ff:ee:00:01

    Example: nac profile signatures --json
    """
    if target == "signatures":
        from nac.profiling.report import signature_rows  # noqa: PLC0415 - keeps `nac --help` fast
        from nac.profiling.signatures import load_signatures  # noqa: PLC0415

        with _errors():  # no database: the signatures are files
            rows = signature_rows(load_signatures(signatures))
        if as_json:
            _print_json(rows)
        else:
            _print_table(rows, ("family", "field", "pattern", "strength", "note"))
        return
    with _errors():
        row = reading(db, lambda nac: nac.profile(target))
    if as_json:
        _print_json(row)
        return
    if row.source is None:
        typer.echo(f"{row.mac}: no DHCP or device-sensor data seen for this device")
        return
    decided = row.vendor or ("undecided (conflicting signatures)" if row.ambiguous else "undecided")
    for label, value in (
        ("mac", row.mac),
        ("vendor", decided),
        ("oui vendor", row.oui_vendor or "-"),
        ("conflict", "yes: spoof suspected (the OUI's maker differs)" if row.conflict else "no"),
        ("source", row.source),
        ("first seen", row.first_seen),
        ("last seen", row.last_seen),
    ):
        typer.echo(f"{label:<12}{value}")
    for name, value in sorted(row.fields.items()):
        typer.echo(f"{name:<12}{value}")
    for e in row.evidence:
        match = f"{e['field']} {e['value']!r} matches {e['pattern']!r}"
        typer.echo(f"evidence    {match}: {e['family']} ({e['strength']})")
