"""The helpdesk's lookups: `nac check`, `nac history`, `nac why`, `nac rules list`; and `nac serve`.

A helpdesk types these while a user waits, and loading typer (with click and pydantic) costs a
quarter of a second, so nac/entry.py parses their options itself and calls these functions;
the typer commands call the same ones (for `--help`, and for any input entry.py leaves to
them).  Each opens the library read-only, prints, and returns its exit code: 0, 1 when an
operation failed, 2 for bad input (README).  No typer here.  `nac serve` is here not for speed
but for memory: a server started through typer would hold typer, click and pydantic for its
whole life without using them.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from nac.errors import ConfigError, InvalidMacError, InvalidPrefixError, NacError, PolicyError
from nac.pg import PgUnsupportedError
from nac.render import DECISION_COLUMNS, decision_cells, iso_time, table, to_json, why_text

if TYPE_CHECKING:
    from pathlib import Path

    from nac.app.facade import Nac
    from nac.app.results import CheckResult, RuleRow

#: Columns of `nac history --csv` when no row gives them.
HISTORY_CSV_COLUMNS: Final = (
    *("time", "mac", "vendor", "action", "vlan", "rule", "reason"),
    *("client", "nas_ip", "method"),
)


class Count(NamedTuple):
    """A whole-number option of a fast command: one definition of its default, least value and
    help, which nac/entry.py's argparse and the typer command both declare it with."""

    default: int
    least: int
    help: str


HISTORY_LIMIT: Final = Count(default=50, least=1, help="At most this many rows.")
HISTORY_OFFSET: Final = Count(default=0, least=0, help="Skip this many rows first.")
WHY_LATEST: Final = Count(default=5, least=1, help="List this many decisions.")
SERVE_WORKERS: Final = Count(
    default=1, least=0, help="Processes sharing the ports (0: one per core). Default 1."
)
_CHECK_COLUMNS: Final = ("line", "mac", "vendor", "prefix", "randomized", "action", "vlan", "rule", "reason")
_RULE_COLUMNS: Final = (
    *("id", "kind", "value", "action", "vlan", "scope", "mode", "valid", "reason"),
    "created_by",
)


def fail(message: str, code: int) -> int:
    """Print ``message`` as errors (one per line: a policy file can have several) and return
    ``code``."""
    for line in message.splitlines() or [""]:
        print(f"nac: error: {line}", file=sys.stderr)
    return code


def guarded(body: Callable[[], int], command: str = "nac") -> int:
    """Run ``body``; the library's errors become one line on stderr and an exit code."""
    try:
        return body()
    except PgUnsupportedError as exc:
        return fail(f"{command}: {exc}", 2)
    except (InvalidMacError, InvalidPrefixError, ConfigError, PolicyError) as exc:
        return fail(str(exc), 2)
    except NacError as exc:
        return fail(str(exc), 1)


def reading(db: str | None, call: Callable[[Nac], Any]) -> Any:
    """``call`` on the library over ``db`` opened read-only (a reader never creates or
    changes a database)."""
    from nac.app.facade import Nac  # noqa: PLC0415 - `nac --help` and bad flags need none of it

    nac = Nac.readonly(db)
    try:
        return call(nac)
    finally:
        nac.close()


def print_json(data: object) -> None:
    print(to_json(data))


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    for line in table(rows, columns):
        print(line)


# -- nac check ---------------------------------------------------------------------------------


def check(mac: str, *, db: str | None, as_json: bool, as_csv: bool) -> int:
    if as_json and as_csv:
        return fail("--json and --csv exclude each other", 2)
    if mac == "-":
        return guarded(
            lambda: reading(db, lambda nac: _check_stdin(nac, as_json=as_json, as_csv=as_csv)), "nac check"
        )

    def body() -> int:
        _check_one(reading(db, lambda nac: nac.check(mac)), as_json=as_json, as_csv=as_csv)
        return 0

    return guarded(body, "nac check")


def _check_one(result: CheckResult, *, as_json: bool, as_csv: bool) -> None:
    if as_json:
        print_json(result)
        return
    if as_csv:
        row = result.to_json()
        fields = [key for key in row if key != "matched"]  # a list; --json carries it
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
        return
    vendor = result.vendor or ("(randomized: no vendor)" if result.randomized else "(not in the registry)")
    prefix = f"{result.prefix}/{result.prefix_bits} {result.registry}" if result.prefix else "-"
    vlan = f" vlan {result.vlan}" if result.vlan else ""
    for label, value in (
        ("mac", result.mac),
        ("randomized", "yes" if result.randomized else "no"),
        ("vendor", vendor),
        ("prefix", prefix),
        ("decision", f"{result.action}{vlan}"),
        ("rule", result.rule),
        ("reason", result.reason),
    ):
        print(f"{label:<11}{value}")
    profile = result.profile
    if profile is not None:
        maker = profile.vendor or "undecided"
        conflict = "; CONFLICT with the OUI (spoof suspected)" if profile.conflict else ""
        evidence = profile.evidence or "no signature matched"
        print(f"{'profile':<11}{maker} from {profile.source} ({evidence}){conflict}")
    lost = [m for m in result.matched if not m.decided]
    if lost:
        print("also matched, but lost:")
        for m in lost:
            print(f"  {m.rule} ({m.action}): {m.why}")


def _check_stdin(nac: Nac, *, as_json: bool, as_csv: bool) -> int:
    invalid = 0
    if as_csv:
        write = sys.stdout.write
        for line, valid in nac.check_csv(sys.stdin):
            invalid += not valid
            write(line)
    else:
        rows = list(nac.check_lines(sys.stdin))
        invalid = sum(row["error"] is not None for row in rows)
        if as_json:
            print_json(rows)
        else:
            print_table([_check_cells(row) for row in rows], _CHECK_COLUMNS)
    return fail(f"{invalid} line(s) are not MAC addresses", 2) if invalid else 0


def _check_cells(row: dict[str, Any]) -> dict[str, Any]:
    if row["error"] is not None:
        return {"line": row["line"], "mac": row["input"], "action": "error", "reason": row["error"]}
    prefix = f"{row['prefix']}/{row['prefix_bits']}" if row["prefix"] else None
    return {**row, "prefix": prefix, "randomized": "yes" if row["randomized"] else "no"}


# -- nac history -------------------------------------------------------------------------------


def history(*, db: str | None, limit: int, as_json: bool, as_csv: bool, **filters: Any) -> int:
    """``filters``: :meth:`nac.app.Nac.history`'s (mac, vendor, client, ..., offset, before)."""
    if as_json and as_csv:
        return fail("--json and --csv exclude each other", 2)

    def body() -> int:
        # One row more than asked for says whether --limit cut the answer.
        rows = reading(db, lambda nac: nac.history(limit=limit + 1, **filters))
        cut = len(rows) > limit
        rows = rows[:limit]
        if as_json:
            print_json(rows)
        elif as_csv:
            columns = list(rows[0]) if rows else list(HISTORY_CSV_COLUMNS)
            writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        elif not rows:
            print("no decisions match")
        else:
            print_table(decision_cells(rows), DECISION_COLUMNS)
        if cut:
            note = (
                f"(the newest {limit} shown; more match: --limit N, or --before {rows[-1]['id']}"
                " for the next page)"
            )
            # Text gets a footer; --json and --csv stay parseable, so the note goes to stderr.
            print(note, file=sys.stderr if as_json or as_csv else sys.stdout)
        return 0

    return guarded(body, "nac history")


# -- nac why -----------------------------------------------------------------------------------


def why(mac: str, *, latest: int, as_json: bool, db: str | None) -> int:
    def body() -> int:
        report = reading(db, lambda nac: nac.why(mac, latest=latest))
        if as_json:
            print_json(report)
        else:
            print("\n".join(why_text(report)))
        return 0

    return guarded(body, "nac why")


# -- nac serve ---------------------------------------------------------------------------------


def serve(
    *,
    config: str | Path | None,
    db: str | None,
    bind: list[str] | None,
    auth_port: int | None,
    acct_port: int | None,
    log_level: str,
    workers: int,
    journal: str | None = None,
) -> int:
    """Run the RADIUS server until it is stopped (a signal); its exit code."""
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        return fail(f"--log-level must be debug, info, warning or error, not {log_level!r}", 2)

    def body() -> int:
        from nac.config import Config, load_config  # noqa: PLC0415 - the server's, not the CLI's
        from nac.serve.observe import setup_logging  # noqa: PLC0415
        from nac.serve.run import serve as run_server  # noqa: PLC0415

        def configure() -> Config:
            return load_config(
                config, db=db, bind=bind, auth_port=auth_port, acct_port=acct_port, journal=journal
            )

        cfg = configure()
        setup_logging(fmt=cfg.log_format, level=level)
        run_server(cfg, configure, workers=workers or os.cpu_count() or 1)
        return 0

    return guarded(body, "nac serve")


# -- nac rules list ----------------------------------------------------------------------------


def rules_list(*, db: str | None, as_json: bool) -> int:
    def body() -> int:
        rows = [replace(row, created=iso_time(row.created)) for row in reading(db, lambda nac: nac.rules())]
        if as_json:
            print_json(rows)
        elif not rows:
            print("no rules; every device gets the policy's default")
        else:
            print_table([_rule_cells(row) for row in rows], _RULE_COLUMNS)
        return 0

    return guarded(body, "nac rules list")


def _rule_cells(row: RuleRow) -> dict[str, Any]:
    """A rule as one table line: its scope (clients, SSIDs, port type, method) and validity
    folded into a column each, so a conditional rule reads as one at a glance."""
    scope = [
        *(f"client {c}" for c in row.clients),
        *(f"ssid {s}" for s in row.ssids),
        *((f"{row.port_type} ports",) if row.port_type else ()),
        *((row.method,) if row.method else ()),
    ]
    valid = " ".join(
        part
        for part in (
            f"from {row.starts}" if row.starts else "",
            f"until {row.expires}" if row.expires else "",
        )
        if part
    )
    mode = row.mode or ""
    if row.shadowed_by:  # the rule never decides: say so where the operator looks
        mode = f"{mode} SHADOWED by {row.shadowed_by}".strip()
    return {**row, "scope": ", ".join(scope) or "all", "mode": mode, "valid": valid}
