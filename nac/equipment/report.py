"""`nac clients`: each configured NAS client with its equipment profile, and what nac last saw
from it in history (when, the MAB shape it used, Message-Authenticator, CoA answers), so an
operator sees at once which switch is set up differently from its profile."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nac.equipment.clients import Client
from nac.registry.mac import try_parse_mac
from nac.render import Record, iso_time


@dataclass(frozen=True, kw_only=True)
class ClientRow(Record):
    """A NAS client as configured (its equipment profile and the shapes it implies), and what
    history last saw from it: when, how many requests and how many without
    Message-Authenticator, its last MAB request's shape, and its CoA answers by kind."""

    name: str
    address: str
    profile: str
    mab: str
    reply: str
    reauth: str
    require_message_authenticator: bool
    last_seen: str | None
    requests: int
    without_message_authenticator: int
    last_mab_shape: str | None
    coa: dict[str, int]


def client_rows(clients: Iterable[Client], conn: sqlite3.Connection | None) -> list[ClientRow]:
    """One row per client; the history part is empty without a database (or history)."""
    seen = _seen(conn) if conn is not None else {}
    rows = []
    for client in clients:
        history = seen.get(client.name, {})
        rows.append(
            ClientRow(
                name=client.name,
                address=str(client.network),
                profile=client.profile,
                mab=client.mab.describe(),
                reply=client.reply.describe(),
                reauth=client.reauth,
                require_message_authenticator=client.require_message_authenticator,
                last_seen=history.get("last_seen"),
                requests=history.get("requests", 0),
                without_message_authenticator=history.get("without_message_authenticator", 0),
                last_mab_shape=history.get("last_mab_shape"),
                coa=history.get("coa", {}),
            )
        )
    return rows


def _seen(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    from nac.history import reader  # noqa: PLC0415 - history, read only here

    try:
        totals = reader.execute(
            conn,
            "SELECT client, COUNT(*), MAX(ts), SUM(message_authenticator = 0) FROM history"
            " WHERE method != 'coa' GROUP BY client"
        ).fetchall()
        last_mab = reader.execute(
            conn,
            "SELECT client, user_name, calling_station_id FROM history WHERE id IN"
            " (SELECT MAX(id) FROM history WHERE method = 'mab' GROUP BY client)"
        ).fetchall()
        coa = reader.execute(
            conn,
            "SELECT client, action, reason, COUNT(*) FROM history WHERE method = 'coa' GROUP BY 1, 2, 3"
        ).fetchall()
    except sqlite3.OperationalError:  # a database with no history yet
        return {}
    seen: dict[str, dict[str, Any]] = {}
    for client, requests, last, without in totals:
        seen[client] = {
            "requests": requests,
            "last_seen": iso_time(last),
            "without_message_authenticator": without or 0,
        }
    for client, user, calling in last_mab:
        seen.setdefault(client, {})["last_mab_shape"] = _shape(user, calling)
    for client, kind, reason, count in coa:
        words = (reason or "").split()  # "disconnect ack", "reauth nak (Error-Cause 503)"...
        answer = words[1] if len(words) > 1 else "unknown"
        counts = seen.setdefault(client, {}).setdefault("coa", {})
        counts[f"{kind} {answer}"] = counts.get(f"{kind} {answer}", 0) + count
    return seen


def _shape(user: str | None, calling: str | None) -> str:
    """A MAB request's shape as history recorded it."""
    if user is not None and try_parse_mac(user) is not None:
        return "User-Name = the MAC"
    if calling is not None and try_parse_mac(calling) is not None:
        return f"User-Name {user!r}, the MAC in Calling-Station-Id"
    return f"User-Name {user!r}, no MAC"
