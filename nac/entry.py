"""The `nac` command's entry point.

`nac check`, `nac history`, `nac why` and `nac rules list` are what a helpdesk types while a
user waits, so they answer without loading typer, click and pydantic (a quarter of a second):
this module parses their options with argparse and calls the same functions in nac/cli/fast.py
that the typer commands call, so both print the same thing.  Anything it does not parse
cleanly (`--help`, an unknown or malformed option, a subcommand) goes to nac.cli, whose
typer commands give the usage and errors; tests/test_cli_fast.py checks both declare the same
options, and the defaults and least values of their counts (`--latest`, `--limit`, `--offset`)
are nac/cli/fast.py's, read by both.  `nac --version` answers here too.

`nac serve` is parsed here as well: typer, click and pydantic, once loaded, would stay in the
server's memory for as long as it runs, unused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from nac import __version__

if TYPE_CHECKING:
    from nac.cli.fast import Count

#: The commands answered here, by their words (`rules list` is two).
FAST_COMMANDS = ("check", "history", "why", "rules list", "serve")
_HELP = frozenset({"-h", "--help"})


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(f"nac {__version__}")
        raise SystemExit(0)
    run = fast(args)
    if run is not None:
        _exit(run)
    from nac.cli.main import main as cli_main  # noqa: PLC0415

    cli_main(args)


def fast(args: list[str]) -> Callable[[], int] | None:
    """The fast path's call for ``args``, or None if typer is to handle them."""
    if _HELP & set(args):
        return None
    for name in FAST_COMMANDS:
        words = name.split()
        if args[: len(words)] == words:
            try:
                options = vars(parser(name).parse_args(args[len(words) :]))
            except _UnparsedError:
                return None
            from nac.cli import fast as cli_run  # noqa: PLC0415

            command = getattr(cli_run, name.replace(" ", "_"))
            return lambda: int(command(**options))
    return None


class _UnparsedError(Exception):
    """argparse met something typer should report (its usage errors are the CLI's)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UnparsedError(message)


def parser(name: str) -> argparse.ArgumentParser:
    """The options of fast command ``name``: the typer command's, spelled for argparse."""
    # Both are imported by the command this parses for anyway (nac.app imports nac.policy).
    from nac.cli.fast import HISTORY_LIMIT, HISTORY_OFFSET, SERVE_WORKERS, WHY_LATEST  # noqa: PLC0415
    from nac.policy.decide import ACTIONS  # noqa: PLC0415

    p = _Parser(prog=f"nac {name}", add_help=False, allow_abbrev=False)
    p.add_argument("--db", default=None)
    if name == "serve":
        p.add_argument("--config", default=None)
        p.add_argument("--bind", action="append", default=None)
        p.add_argument("--auth-port", type=int, default=None)
        p.add_argument("--acct-port", type=int, default=None)
        p.add_argument("--journal", default=None)
        p.add_argument("--log-level", default="info")
        _count(p, "--workers", SERVE_WORKERS)
        return p
    p.add_argument("--json", dest="as_json", action="store_true")
    if name == "check":
        p.add_argument("mac")
        p.add_argument("--csv", dest="as_csv", action="store_true")
    elif name == "why":
        p.add_argument("mac")
        _count(p, "--latest", WHY_LATEST)
    elif name == "history":
        for option in ("--mac", "--vendor", "--client", "--port", "--ssid", "--rule", "--method"):
            p.add_argument(option, default=None)
        p.add_argument("--since", default=None)
        p.add_argument("--until", default=None)
        p.add_argument("--action", choices=ACTIONS, default=None)
        _count(p, "--limit", HISTORY_LIMIT)
        _count(p, "--offset", HISTORY_OFFSET)
        p.add_argument("--before", type=int, default=None)
        p.add_argument("--csv", dest="as_csv", action="store_true")
    return p


def _count(p: argparse.ArgumentParser, option: str, spec: Count) -> None:
    """A whole-number option no less than ``spec.least`` (the typer command's ``min=``)."""

    def convert(text: str) -> int:
        value = int(text)  # a ValueError: argparse's error(), so typer reports it
        if value < spec.least:
            raise ValueError(text)
        return value

    p.add_argument(option, type=convert, default=spec.default)


def _exit(run: Callable[[], int]) -> NoReturn:
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`nac history | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    raise SystemExit(code)
