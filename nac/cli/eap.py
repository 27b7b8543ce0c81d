"""802.1X commands: `nac users add/set/list/test/remove` and `nac certs init` (registered by
nac/cli/main.py).  Groups are in nac/cli/groups.py; both take the profile options below.

Passwords never come from a flag (it would sit in shell history and `ps`): from stdin when it
is not a terminal, else from a prompt that asks twice.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nac.cli.common import DbOption, JsonOption, _errors, _fail, _print_json, _print_table

if TYPE_CHECKING:
    import sqlite3

    from nac.eap.profiles import Profile
    from nac.identity.config import LdapConfig

VlanOption = Annotated[
    str | None,
    typer.Option("--vlan", help="VLAN id (1-4094) or name sent when the vendor policy accepts the device."),
]
AttrOption = Annotated[
    list[str] | None,
    typer.Option(
        "--attr",
        metavar="NAME=VALUE",
        help="A reply attribute by dictionary name (Session-Timeout=3600, Filter-Id=staff,"
        " Cisco-AVPair=..., Aruba-User-Role=...); repeat for more.",
    ),
]
GroupOption = Annotated[
    list[str] | None,
    typer.Option("--group", help="A group (nac groups add) whose profile applies; repeat, strongest first."),
]

users_app = typer.Typer(help="Manage 802.1X users (PEAP and EAP-TTLS passwords).", no_args_is_help=True)
certs_app = typer.Typer(help="Make certificates for an 802.1X lab.", no_args_is_help=True)


def _read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def profile_of(vlan: str | None, attrs: list[str] | None, *, base: Profile | None = None) -> Profile:
    """A profile from --vlan and --attr; given ``base``, what is not given is kept from it."""
    from nac.eap.profiles import Profile, parse_attribute  # noqa: PLC0415

    base = base or Profile()
    pairs = tuple(parse_attribute(text) for text in attrs) if attrs else base.attributes
    return Profile(vlan=vlan if vlan is not None else base.vlan, attributes=pairs)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    eap_md5: Annotated[
        bool,
        typer.Option(
            "--eap-md5", help="Also keep the password itself, for EAP-MD5 (clients with eap_md5 = true)."
        ),
    ] = False,
    vlan: VlanOption = None,
    group: GroupOption = None,
    attr: AttrOption = None,
    db: DbOption = None,
) -> None:
    """Add a user, or set a user's password; the password is read from stdin or a prompt.

    Only the password's NT hash is stored (what MS-CHAPv2 needs), unless --eap-md5 asks to
    keep the password itself for EAP-MD5, which cannot work from a hash.  --vlan, --attr
    and --group give the user's authorization profile (see nac users set).

    Example: printf '%s\\n' 'correct horse' | nac users add alice --group staff
    """
    from nac.eap.groups import check_groups, set_user  # noqa: PLC0415
    from nac.eap.profiles import check_profile  # noqa: PLC0415
    from nac.eap.users import add_user, check_name  # noqa: PLC0415
    from nac.resources import load_dictionary, open_store  # noqa: PLC0415

    with _errors():
        check_name(name)
        profile = check_profile(load_dictionary(), profile_of(vlan, attr), where=f"user {name}")
        password = _read_password()
        if not password:
            _fail("the password is empty", 2)
        store = open_store(db)
        try:
            check_groups(store.conn, group or [])  # before the user is stored, not half-way
            replaced = add_user(store.conn, name, password, eap_md5=eap_md5)
            if group is not None or not profile.empty:
                set_user(store.conn, load_dictionary(), name, groups=group, profile=profile)
        finally:
            store.close()
    typer.echo(f"{'changed the password of' if replaced else 'added'} user {name}")


@users_app.command("set")
def users_set(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    vlan: VlanOption = None,
    group: GroupOption = None,
    attr: AttrOption = None,
    no_groups: Annotated[bool, typer.Option("--no-groups", help="Take the user out of every group.")] = False,
    clear: Annotated[
        bool, typer.Option("--clear-profile", help="Drop the user's own VLAN and attributes.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Change a user's groups or own profile, never its password.

    The user's own --vlan and --attr come first, then its groups' profiles in the order
    given (for each attribute name, the first that sets it).  --group replaces the groups;
    --attr replaces the user's own attributes.  A profile applies only to a device that the
    vendor policy accepts: a banned manufacturer is still refused, a quarantined one still
    gets the quarantine VLAN.

    Example: nac users set alice --group contractors --attr Session-Timeout=3600
    """
    from nac.eap.groups import set_user, user_settings  # noqa: PLC0415
    from nac.eap.profiles import Profile  # noqa: PLC0415
    from nac.resources import load_dictionary, open_store  # noqa: PLC0415

    if group and no_groups:
        _fail("--group and --no-groups contradict each other", 2)
    if clear and (vlan is not None or attr):
        _fail("--clear-profile and --vlan/--attr contradict each other", 2)
    if not (group or no_groups or clear or vlan is not None or attr):
        _fail("nothing to change: give --vlan, --attr, --group, --no-groups or --clear-profile", 2)
    with _errors():
        store = open_store(db)
        try:
            profile = None
            if clear:
                profile = Profile()
            elif vlan is not None or attr:
                profile = profile_of(vlan, attr, base=user_settings(store.conn, name)[1])
            groups = [] if no_groups else group
            set_user(store.conn, load_dictionary(), name, groups=groups, profile=profile)
        finally:
            store.close()
    typer.echo(f"changed user {name}")


@users_app.command("test")
def users_test(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    db: DbOption = None,
    as_json: JsonOption = False,
    config: Annotated[
        str | None,
        typer.Option("--config", help="The server's config, for [ldap] (default: /etc/nac/nac.toml)."),
    ] = None,
) -> None:
    """Check a user's password (stdin or a prompt) and show where the user was found (nac's
    users table first, then the config's LDAP directory), its groups and the profile an
    Access-Accept would carry; exit 1 if the password is wrong.

    Example: printf '%s\\n' 'correct horse' | nac users test alice --json
    """
    from nac.eap.groups import try_user  # noqa: PLC0415
    from nac.resources import load_dictionary, open_store  # noqa: PLC0415

    with _errors():
        password = _read_password()
        store = open_store(db)
        try:
            ldap = _ldap_config(config)
            if ldap is not None and not _in_users_table(store.conn, name):
                from nac.identity.check import try_directory_user  # noqa: PLC0415

                result = try_directory_user(store.conn, load_dictionary(), ldap, name, password)
            else:
                result = try_user(store.conn, load_dictionary(), name, password)
        finally:
            store.close()
    if as_json:
        _print_json(result)
    else:
        verdict = "password accepted" if result["authenticated"] else "WRONG PASSWORD"
        if result["source"] == "ldap":
            typer.echo(f"user {name}: {verdict} (source: ldap, {result['dn']})")
            typer.echo(f"directory groups: {', '.join(result['directory_groups']) or 'none'}")
        else:
            typer.echo(f"user {name}: {verdict} (source: nac's {result['source']} table)")
        typer.echo(f"groups: {', '.join(result['groups']) or 'none'}")
        if result["profile"] is None:
            typer.echo("profile: none (an Access-Accept carries the vendor decision alone)")
        else:
            typer.echo(f"profile: {result['profile']} ({result['reply']}), when the vendor policy accepts")
    if not result["authenticated"]:
        raise typer.Exit(1)


def _ldap_config(path: str | None) -> LdapConfig | None:
    from nac.config import load_config  # noqa: PLC0415
    from nac.dbfile import PACKAGED_CONFIG  # noqa: PLC0415

    if path is None and Path(PACKAGED_CONFIG).is_file():
        path = PACKAGED_CONFIG
    return load_config(path).ldap if path is not None else None


def _in_users_table(conn: sqlite3.Connection, name: str) -> bool:
    from nac.eap.users import UserDirectory  # noqa: PLC0415

    return name in UserDirectory(conn)


@users_app.command("list")
def users_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the users (names and when each was set; never passwords or hashes).

    Example: nac users list --json
    """
    from nac.eap.groups import user_rows  # noqa: PLC0415
    from nac.render import iso_time  # noqa: PLC0415
    from nac.resources import open_store  # noqa: PLC0415

    with _errors():
        store = open_store(db)
        try:
            rows = [{**row, "created": iso_time(row["created"])} for row in user_rows(store.conn)]
        finally:
            store.close()
    if as_json:
        _print_json(rows)
    elif not rows:
        typer.echo("no users")
    else:
        shown = [{**row, "groups": ", ".join(row["groups"]), "profile": row["profile"] or ""} for row in rows]
        _print_table(shown, ("name", "groups", "profile", "created"))


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
