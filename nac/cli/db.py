"""`nac db upgrade`: bring a database up to this nac's layout.  A thin front end (registered
by nac/cli/main.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nac.cli.common import DbOption, JsonOption, _app, _errors, _print_json
from nac.cli.lists import print_list_changes

if TYPE_CHECKING:
    from nac.app.lists import ListChange

#: The `nac db` group; nac/cli/main.py adds it to `nac`.
db_app = typer.Typer(help="The database itself: its layout and version.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Add what this nac's layout has and the database lacks, and rewrite history batches an
    older nac wrote.  Any writing command (and `nac serve`) does it on its way; this does it
    alone, before a rollout, and says what changed.

    Example: nac db upgrade --db /var/lib/nac/nac.db
    """
    from nac import dbfile, pg, store  # noqa: PLC0415 - keeps `nac --help` fast

    with _errors():
        path, origin = dbfile.locate(db)
        location = path
        if pg.is_url(path):  # PostgreSQL: its numbered migrations (nac/pg/schema.py)
            changes, version, path = _upgrade_pg(path)
        else:
            changes, version = store.upgrade(dbfile.existing(path, origin)), store.SCHEMA_VERSION
        lists = _lists_since_added(location)
    if as_json:
        _print_json({"db": path, "schema_version": version, "changes": changes, "lists": lists})
        return
    if changes:
        typer.echo(f"upgraded {path}: " + "; ".join(changes))
    else:
        typer.echo(f"{path} is up to date (schema version {version})")
    if lists:
        typer.echo("list rules whose families this nac makes cover other prefixes than when added:")
    print_list_changes(lists)


def _upgrade_pg(url: str) -> tuple[list[str], int, str]:
    """Migrate the PostgreSQL database (a new one takes the shipped policy, as a new SQLite
    file does): what changed, the schema version, and the URL without its password."""
    from nac.pg.schema import SCHEMA_VERSION  # noqa: PLC0415
    from nac.pg.store import open_pg_store  # noqa: PLC0415

    shared = open_pg_store(url)
    shared.close()
    return shared.changes, SCHEMA_VERSION, shared.path


def _lists_since_added(path: str) -> list[ListChange]:
    """The prefixes ban-list rules gained or lost since they were added: the families and
    lists ship with nac, so a new nac can change what a list's rules cover."""
    from nac.app import lists  # noqa: PLC0415 - keeps `nac --help` fast

    nac = _app(path, readonly=True)
    try:
        rules = nac.policy_store.rules()
        if not any(rule.banlist for rule in rules):
            return []
        return lists.since_added(rules, nac.policy_store.audit_rows(), nac.families, nac.registry)
    finally:
        nac.close()
