"""Session commands: `nac sessions`, `nac disconnect`, `nac reauth` (registered by nac/cli/main.py)."""

from __future__ import annotations

from typing import Annotated, Any, Final

import typer

from nac.cli.common import DbOption, JsonOption, _app, _errors, _fail, _print_json, _print_table
from nac.render import iso_time
from nac.sessions.enforce import APPLY_MODES as ENFORCE_MODES

#: This module's top-level commands; nac/cli/main.py adds them to `nac`.
app = typer.Typer()

_TABLE: Final = (
    "mac",
    "status",
    "client",
    "nas_ip",
    "nas_port_id",
    "called_station_id",
    "vlan",
    "started_time",
    "updated_time",
)


@app.command()
def sessions(
    active: Annotated[
        bool, typer.Option("--active", help="Only sessions that are on the network now.")
    ] = False,
    mac: Annotated[str | None, typer.Option("--mac", help="One device, any spelling.")] = None,
    client: Annotated[str | None, typer.Option("--client", help="One NAS (client name).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sessions from accounting: which device is on which NAS and port, since when.

    Example: nac sessions --active --mac 00:e0:fc:12:34:56
    """
    from nac.app import sessions as app_sessions  # noqa: PLC0415
    from nac.registry.mac import format_mac, parse_mac  # noqa: PLC0415

    with _errors():
        canonical = format_mac(parse_mac(mac.strip())) if mac is not None else None
        nac = _app(db)
        try:
            rows = [
                {
                    **row,
                    "started_time": iso_time(row["started_time"]),
                    "updated_time": iso_time(row["updated_time"]),
                }
                for row in app_sessions.query(nac, active=active, mac=canonical, client=client)
            ]
        finally:
            nac.close()
    if as_json:
        _print_json(rows)
    elif not rows:
        typer.echo("no sessions match")
    else:  # on PostgreSQL, every server's sessions: each names its node
        _print_table(rows, ("node", *_TABLE) if nac.shared else _TABLE)


def _act(kind: str, mac: str, db: str | None, wait: float, as_json: bool) -> None:
    from nac.app import sessions as app_sessions  # noqa: PLC0415
    from nac.registry.mac import format_mac, parse_mac  # noqa: PLC0415

    with _errors():
        canonical = format_mac(parse_mac(mac.strip()))
        nac = _app(db)
        try:  # on PostgreSQL, the server that saw the session's accounting sends it
            ids = app_sessions.request_action(nac, mac=canonical, kind=kind, reason="cli")
            if not ids:
                _fail(f"no active session for {canonical} (see `nac sessions --mac {canonical}`)", 1)
            rows = app_sessions.wait_jobs(nac, ids, wait=wait)
        finally:
            nac.close()
    if as_json:
        _print_json(rows)
    else:
        print_jobs(rows)
    if any(r["status"] != "ack" for r in rows):
        raise typer.Exit(1)


def print_jobs(rows: list[dict[str, Any]]) -> None:
    """One line per Disconnect / re-authorize: the device, its NAS, and what the NAS answered."""
    for row in rows:
        waiting = "queued: is `nac serve` running on this database?"
        state = row["detail"] or (waiting if row["status"] == "pending" else row["status"])
        typer.echo(f"{row['kind']} {row['mac']} on {row['client']} ({row['nas_ip']}): {state}")


WaitOption = Annotated[
    float,
    typer.Option("--wait", min=0, help="Seconds to wait for the NAS's answer (retries take up to 7 s)."),
]


@app.command()
def disconnect(
    mac: Annotated[str, typer.Argument(metavar="MAC", help="In any common spelling.")],
    wait: WaitOption = 10.0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a Disconnect-Request (RFC 5176) for every active session of a device to its NAS;
    the running server sends it with the NAS's secret and records the ACK or NAK in history.

    Example: nac disconnect 00:e0:fc:12:34:56
    """
    _act("disconnect", mac, db, wait, as_json)


@app.command()
def reauth(
    mac: Annotated[str, typer.Argument(metavar="MAC", help="In any common spelling.")],
    wait: WaitOption = 10.0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the NAS to re-authorize every active session of a device (CoA-Request with
    Service-Type Authorize-Only, or Cisco's reauthenticate AV-pair per the client's `reauth`).

    Example: nac reauth 0010.a423.19c0
    """
    _act("reauth", mac, db, wait, as_json)


# The engine's modes plus "ask", which only the CLI can offer (it needs a terminal).
APPLY_MODES: Final = (*ENFORCE_MODES, "ask")
#: Seconds `--apply now|ask` waits for the NASes to answer (the server retries for 7 s).
APPLY_WAIT: Final = 10.0


def enforce_after(nac: Any, before: Any, apply: str, *, reason: str) -> None:
    """After a rule change: `next` leaves devices on the network until they authenticate
    again; `now` disconnects (banned) or re-authorizes (VLAN changed) them at once; `ask`
    lists them and asks first."""
    from nac.app import sessions as app_sessions  # noqa: PLC0415

    if apply == "next":
        return
    pending = app_sessions.changes(nac, before)  # on PostgreSQL, every server's sessions
    typer.echo(f"{len(pending)} devices on the network change decision")
    for change in pending:
        old = change.before.action + (f" vlan {change.before.vlan}" if change.before.vlan else "")
        new = change.after.action + (f" vlan {change.after.vlan}" if change.after.vlan else "")
        typer.echo(f"  {change.mac} on {change.client}: {old} -> {new} ({change.kind})")
    if not pending:
        return
    if apply == "ask" and not typer.confirm("Act on them now?", default=False):
        typer.echo("left for their next authentication")
        return
    queued = app_sessions.enforce_change(nac, before, reason=reason)
    ids = [i for _, job_ids in queued for i in job_ids]
    print_jobs(app_sessions.wait_jobs(nac, ids, wait=APPLY_WAIT) if ids else [])
