"""802.1X commands: `nac users add/list/remove` and `nac certs init` (registered by nac/cli/main.py).

Passwords never come from a flag (it would sit in shell history and `ps`): from stdin when it
is not a terminal, else from a prompt that asks twice.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nac.cli.common import DbOption, JsonOption, _errors, _fail, _print_json, _print_table

users_app = typer.Typer(help="Manage 802.1X users (PEAP and EAP-TTLS passwords).", no_args_is_help=True)
certs_app = typer.Typer(help="Make certificates for an 802.1X lab.", no_args_is_help=True)


def _read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    eap_md5: Annotated[
        bool,
        typer.Option(
            "--eap-md5", help="Also keep the password itself, for EAP-MD5 (clients with eap_md5 = true)."
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Add a user, or set a user's password; the password is read from stdin or a prompt.

    Only the password's NT hash is stored (what MS-CHAPv2 needs), unless --eap-md5 asks to
    keep the password itself for EAP-MD5, which cannot work from a hash.

    Example: printf '%s\\n' 'correct horse' | nac users add alice
    """
    from nac.eap.users import add_user, check_name  # noqa: PLC0415
    from nac.resources import open_store  # noqa: PLC0415

    with _errors():
        check_name(name)
        password = _read_password()
        if not password:
            _fail("the password is empty", 2)
        store = open_store(db)
        try:
            replaced = add_user(store.conn, name, password, eap_md5=eap_md5)
        finally:
            store.close()
    typer.echo(f"{'changed the password of' if replaced else 'added'} user {name}")


@users_app.command("list")
def users_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the users (names and when each was set; never passwords or hashes).

    Example: nac users list --json
    """
    from nac.eap.users import list_users  # noqa: PLC0415
    from nac.render import iso_time  # noqa: PLC0415
    from nac.resources import open_store  # noqa: PLC0415

    with _errors():
        store = open_store(db)
        try:
            rows = [{**row, "created": iso_time(row["created"])} for row in list_users(store.conn)]
        finally:
            store.close()
    if as_json:
        _print_json(rows)
    elif not rows:
        typer.echo("no users")
    else:
        _print_table(rows, ("name", "created"))


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(metavar="NAME")], db: DbOption = None) -> None:
    """Remove a user.

    Example: nac users remove alice
    """
    from nac.eap.users import remove_user  # noqa: PLC0415
    from nac.resources import open_store  # noqa: PLC0415

    with _errors():
        store = open_store(db)
        try:
            remove_user(store.conn, name)
        finally:
            store.close()
    typer.echo(f"removed user {name}")


@certs_app.command("init")
def certs_init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the files.")],
    server_name: Annotated[
        str, typer.Option("--server-name", help="The server certificate's name.")
    ] = "nac.lab",
) -> None:
    """Make a lab CA, a server certificate and a client certificate (never for production).

    Writes ca.pem/ca.key, server.pem/server.key and client.pem/client.key, refusing to
    overwrite, and prints the [eap] section that uses them.

    Example: nac certs init /etc/nac/lab
    """
    from nac.eap.certs import init  # noqa: PLC0415

    with _errors():
        written = init(directory, server_name=server_name)
    for path in written:
        typer.echo(f"wrote {path}")
    where = directory.resolve()
    typer.echo(
        "\n# a lab PKI: replace it with your own CA's certificates in production\n"
        f'[eap]\ncertificate = "{where / "server.pem"}"\nprivate_key = "{where / "server.key"}"\n'
        f'ca_certificates = "{where / "ca.pem"}"'
    )
