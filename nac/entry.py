"""The `nac` command's entry point.

`nac why` is what a helpdesk types while a user waits on the phone, so it answers without
loading typer and click (a quarter of a second): it parses its three options itself and
prints exactly what the typer command prints.  Everything else goes to nac.cli.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["why"] and not {"-h", "--help"} & set(args):
        raise SystemExit(why(args[1:]))
    from nac.cli import main as cli_main  # noqa: PLC0415

    cli_main(args)


def why(args: list[str]) -> int:
    from nac.errors import ConfigError, InvalidMacError, InvalidPrefixError, NacError, PolicyError  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="nac why", add_help=False)
    parser.add_argument("mac", metavar="MAC")
    parser.add_argument("--latest", type=_positive, default=5)
    parser.add_argument("--json", dest="as_json", action="store_true")
    parser.add_argument("--db", default=None)
    options = parser.parse_args(args)  # exits 2 with a usage line on bad input
    try:
        from nac.app import Nac  # noqa: PLC0415
        from nac.render import to_json, why_text  # noqa: PLC0415

        nac = Nac(options.db)
        try:
            report = nac.why(options.mac, latest=options.latest)
        finally:
            nac.close()
    except (InvalidMacError, InvalidPrefixError, ConfigError, PolicyError) as exc:
        print(f"nac: error: {exc}", file=sys.stderr)
        return 2
    except NacError as exc:
        print(f"nac: error: {exc}", file=sys.stderr)
        return 1
    print(to_json(report) if options.as_json else "\n".join(why_text(report)))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value
