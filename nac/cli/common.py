"""What every `nac` command module shares: the common options, the error-to-exit mapping and
the output helpers.  Command modules import this, never nac.cli, which assembles them.

Exit codes: 0 success, 1 an operation failed (e.g. no such rule), 2 bad input (a bad MAC,
prefix, flag or file), as the README promises for MAC arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer

from nac.cli import fast as cli_run
from nac.errors import ConfigError, InvalidMacError, InvalidPrefixError, NacError, PolicyError
from nac.pg import PgUnsupportedError
from nac.render import table, to_json

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite database, or a postgresql:// URL (default: $NAC_DB, else the db of"
        " /etc/nac/nac.toml, else ./nac.db).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV.")]


class Apply(StrEnum):
    """What a rule change does to devices already on the network: enforce.APPLY_MODES, and
    "ask" (tests/test_cli_choices.py holds them equal)."""

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
    """policy.ACTIONS as typer's choices (tests/test_cli_choices.py holds them equal)."""

    reject = "reject"
    quarantine = "quarantine"
    accept = "accept"


def _fail(message: str, code: int) -> NoReturn:
    raise typer.Exit(cli_run.fail(message, code))


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the library's errors into one clear line and an exit code."""
    try:
        yield
    except PgUnsupportedError as exc:
        _fail(f"{_command()}: {exc}", 2)
    except (InvalidMacError, InvalidPrefixError, ConfigError, PolicyError) as exc:
        _fail(str(exc), 2)
    except NacError as exc:
        _fail(str(exc), 1)


def _command() -> str:
    """The command being run, as typed (``nac rules add``), for messages."""
    try:  # typer 0.2x runs its own copy of click, whose context stack this is
        from typer._click import globals as click_globals  # noqa: PLC0415
    except ImportError:
        from click import globals as click_globals  # type: ignore[no-redef]  # noqa: PLC0415
    ctx = click_globals.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "nac"


def _before_apply(nac: Any, apply: Apply) -> Any:
    """The policy in force before a change, when ``--apply`` acts on sessions (now, ask)."""
    if apply == Apply.next:
        return None
    return nac.policy()


def _app(db: str | None, *, readonly: bool = False) -> Any:
    """The library over ``db``.  Commands that only read pass ``readonly``: the database is
    then opened with SQLite's mode=ro, so they work where they may read but not write, and
    never create an empty one."""
    from nac.app.facade import Nac  # noqa: PLC0415 - keeps `nac --help` fast

    return Nac.readonly(db) if readonly else Nac(db)


def _print_json(data: object) -> None:
    typer.echo(to_json(data))


def _print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    for line in table(rows, columns):
        typer.echo(line)


def _registries(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
