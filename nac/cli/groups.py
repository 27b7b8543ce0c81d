"""`nac groups add/list/remove`: groups of 802.1X users, each with an authorization profile
(registered by nac/cli/main.py; users join them with `nac users add/set --group`)."""

from __future__ import annotations

from typing import Annotated

import typer

from nac.cli.common import DbOption, JsonOption, _errors, _print_json, _print_table
from nac.cli.eap import AttrOption, VlanOption, profile_of

groups_app = typer.Typer(
    help="Manage groups of 802.1X users and their authorization profiles (VLAN, reply attributes).",
    no_args_is_help=True,
)


@groups_app.command("add")
def groups_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    vlan: VlanOption = None,
    attr: AttrOption = None,
    db: DbOption = None,
) -> None:
    """Add a group, or replace its profile.

    Its members get the VLAN (as the RFC 3580 tunnel attributes, in each client's reply shape)
    and the attributes in their Access-Accept, when the vendor policy accepts the device.
    Attribute names and values are checked against nac's RADIUS dictionaries.

    Example: nac groups add staff --vlan 100 --attr Filter-Id=staff-acl
    """
    from nac.eap.groups import add_group  # noqa: PLC0415
    from nac.resources import load_dictionary, open_store  # noqa: PLC0415

    with _errors():
        profile = profile_of(vlan, attr)
        store = open_store(db)
        try:
            replaced = add_group(store.conn, load_dictionary(), name, profile)
        finally:
            store.close()
    typer.echo(f"{'changed' if replaced else 'added'} group {name}: {profile.describe()}")


@groups_app.command("list")
def groups_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the groups, their profiles and members.

    Example: nac groups list --json
    """
    from nac.eap.groups import list_groups  # noqa: PLC0415
    from nac.resources import open_store  # noqa: PLC0415

    with _errors():
        store = open_store(db)
        try:
            rows = list_groups(store.conn)
        finally:
            store.close()
    if as_json:
        _print_json(rows)
    elif not rows:
        typer.echo("no groups")
    else:
        shown = [{**row, "members": ", ".join(row["members"])} for row in rows]
        _print_table(shown, ("name", "profile", "members"))


@groups_app.command("remove")
def groups_remove(name: Annotated[str, typer.Argument(metavar="NAME")], db: DbOption = None) -> None:
    """Remove a group; refused while users belong to it.

    Example: nac groups remove contractors
    """
    from nac.eap.groups import remove_group  # noqa: PLC0415
    from nac.resources import open_store  # noqa: PLC0415

    with _errors():
        store = open_store(db)
        try:
            remove_group(store.conn, name)
        finally:
            store.close()
    typer.echo(f"removed group {name}")
