"""`nac clients`: the configured NAS clients, their equipment profiles, and what nac last saw
from each.  A thin front end (registered by nac/cli/main.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nac.cli.common import DbOption, JsonOption, _errors, _print_json, _print_table
from nac.cli.fast import reading

#: This module's top-level commands; nac/cli/main.py adds them to `nac`.
app = typer.Typer()


@app.command("clients")
def clients(
    config: Annotated[
        str | None,
        typer.Option("--config", help="The server's config (default: /etc/nac/nac.toml if it exists)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the NAS clients with their equipment profile, the MAB shape it expects, and what
    history says each last sent (the MAB shape, Message-Authenticator, CoA answers).

    Example: nac clients --config /etc/nac/nac.toml
    """
    from nac.config import load_config  # noqa: PLC0415 - keeps `nac --help` fast
    from nac.dbfile import PACKAGED_CONFIG  # noqa: PLC0415
    from nac.equipment.report import client_rows  # noqa: PLC0415

    with _errors():
        if config is None and Path(PACKAGED_CONFIG).is_file():
            config = PACKAGED_CONFIG
        configured = load_config(config).clients
        rows = reading(db, lambda nac: client_rows(configured, nac.store.conn))
    if as_json:
        _print_json(rows)
        return
    cells = [
        {
            **row,
            "last mab": row.last_mab_shape or "-",
            "without M-A": f"{row.without_message_authenticator}/{row.requests}",
            "coa answers": ", ".join(f"{k}={v}" for k, v in sorted(row.coa.items())) or "-",
        }
        for row in rows
    ]
    columns = (
        "name", "address", "profile", "mab", "reply", "last_seen", "last mab", "without M-A", "coa answers",
    )  # fmt: skip
    _print_table(cells, columns)
