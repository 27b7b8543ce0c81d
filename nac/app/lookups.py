"""The helpdesk's lookups behind :class:`nac.app.facade.Nac`: `nac history`, `nac why`,
`nac stats` (with its ban-list tallies) and `nac history prune`.

Each reads this server's SQLite history (nac/helpdesk/queries.py) or, with a shared
PostgreSQL, every server's shipped decisions (nac/helpdesk/pg.py): the same questions and the
same reports, only the SQL differs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nac.app import lists
from nac.app.results import StatsReport, WhyReport
from nac.errors import NacError
from nac.helpdesk import pg as pg_helpdesk
from nac.helpdesk import queries as helpdesk
from nac.history import prune as history_prune
from nac.isotime import parse_span
from nac.pg import ship as pg_ship
from nac.pg.store import PgStore
from nac.policy.decide import ACTIONS
from nac.registry.mac import format_mac, parse_mac

if TYPE_CHECKING:
    import psycopg

    from nac.app.facade import Nac


@contextmanager
def _shared(nac: Nac) -> Iterator[psycopg.Connection[Any] | None]:
    """PostgreSQL's connection when the decisions are every server's there, else None; the
    driver's errors come out as one line naming the database (PgUnreachableError if it went
    away)."""
    store = nac.policy_store
    if not isinstance(store, PgStore):
        yield None
        return
    with store._errors():  # the store's own translation of the driver's errors
        yield store.conn


def _when(text: str | None) -> float | None:
    from nac.app.facade import parse_when  # noqa: PLC0415 - the facade imports this module

    return parse_when(text) if text is not None else None


def history(
    nac: Nac,
    *,
    mac: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Decisions, newest first (:meth:`Nac.history`)."""
    if action is not None and action not in ACTIONS:
        raise NacError(f"--action must be one of {', '.join(ACTIONS)}")
    query = helpdesk.HistoryFilter(
        mac=format_mac(parse_mac(mac.strip())) if mac is not None else None,
        action=action,
        since=_when(since),
        until=_when(until),
        limit=limit,
        **filters,
    )
    with _shared(nac) as pg:
        if pg is not None:  # every server's decisions, as shipped
            return pg_helpdesk.query_history(pg, query)
    return helpdesk.query_history(nac.store.conn, query)


def why(nac: Nac, text: str, *, latest: int) -> WhyReport:
    """One device's latest decisions and what the current rules would say (:meth:`Nac.why`)."""
    mac = parse_mac(text.strip())
    policy, key = nac._policy_for(mac), format_mac(mac)
    decide, now = (lambda ctx: policy.decide(mac, ctx)[0]), datetime.now(UTC).timestamp()
    with _shared(nac) as pg:
        if pg is not None:  # every server's decisions, as shipped
            return pg_helpdesk.why(pg, key, decide=decide, now=now, latest=latest)
    return helpdesk.why(nac.store.conn, key, decide=decide, now=now, latest=latest)


def stats(nac: Nac, *, since: str | None, top: int) -> StatsReport:
    """Decisions counted six ways, top refused, BlastRADIUS readiness, ban lists, profiles."""
    since_ts = _when(since)
    with _shared(nac) as pg:
        if pg is not None:  # profiles are each server's own: the report says so
            return replace(pg_helpdesk.stats(pg, since=since_ts, top=top), by_list=list_stats(nac, since))
    from nac.profiling import store as profiles  # noqa: PLC0415 - off the other commands' path

    try:  # devices whose maker came from DHCP or device-sensor data, by maker
        profiled = profiles.counts(nac.store.conn)
    except sqlite3.OperationalError:  # profiling never ran on this database
        profiled = {}
    report = helpdesk.stats(nac.store.conn, since=since_ts, top=top, profiled=profiled)
    return replace(report, by_list=list_stats(nac, since))


def list_stats(nac: Nac, since: str | None) -> list[lists.ListTally]:
    """Per ban list in force: decisions, refusals and refused devices, and the same by site."""
    store, since_ts = nac.policy_store, _when(since)
    rules, groups = store.rules(), store.defaults().groups
    with _shared(nac) as pg:
        if pg is not None:
            return pg_helpdesk.lists_tally(pg, rules, since=since_ts, groups=groups)
    rows = helpdesk.sqlite_rows(nac.store.conn)
    return lists.list_stats(rows, rules, since=since_ts, groups=groups)


def prune(nac: Nac, older_than: str) -> int:
    """Delete decisions older than a span (``90d``), in batches: on PostgreSQL, every server's."""
    seconds = parse_span(older_than)
    with _shared(nac) as pg:
        if pg is not None:
            return pg_ship.prune(pg, datetime.now(UTC).timestamp() - seconds) or 0
    return history_prune.prune(nac.store.conn, seconds)
