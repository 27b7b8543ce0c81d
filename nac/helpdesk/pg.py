"""The helpdesk's lookups on PostgreSQL: `nac history`, `nac why`, `nac stats` and `nac web`
over every server's decisions, as the history shipper (nac/pg/ship.py) stores them.

The same filters and the same rows as on SQLite (nac/helpdesk/queries.py builds both), with
two differences: a row's ``id`` is PostgreSQL's ``seq`` (one sequence across all journals,
what ``--before`` pages by), and each row names its ``node``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from nac.app.lists import HistoryRows, ListTally, list_stats
from nac.errors import PolicyError
from nac.helpdesk import queries
from nac.helpdesk.queries import HistoryFilter, history_row, ssid_of
from nac.history.macindex import Posting
from nac.pg.ship import COLUMNS
from nac.policy.decide import Context, Decision, Rule

if TYPE_CHECKING:
    import psycopg

    from nac.app.results import StatsReport, WhyReport

#: What `nac stats` on PostgreSQL leaves out: profiles stay in each server's own database.
NO_PROFILES: Final = (
    "profiled devices: not on PostgreSQL (each server profiles into its journal);"
    " `nac stats --db JOURNAL` on a server counts its own"
)
#: Rows as the SQLite reader names them: ``id`` is the global sequence.
_ROWS: Final = f"(SELECT seq AS id, {', '.join(COLUMNS)} FROM history) AS history"  # noqa: S608


def query_history(pg: psycopg.Connection[Any], f: HistoryFilter) -> list[dict[str, Any]]:
    """Decisions matching ``f``, newest first."""
    before_ts = None
    if f.before is not None:
        found = pg.execute("SELECT ts FROM history WHERE seq = %s", (f.before,)).fetchone()
        if found is None:
            raise PolicyError(f"--before {f.before}: no decision with that id (pruned?)")
        before_ts = float(found[0])
    where, params = queries.where_clauses(f, None, before_ts, placeholder="%s")
    sql = f"SELECT * FROM {_ROWS}"  # noqa: S608 - constants and the filter's own terms
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts DESC, id DESC"
    if f.ssid is None and f.limit is not None:
        sql += " LIMIT %s OFFSET %s"
        params += [f.limit, f.offset]
    elif f.ssid is None and f.offset:
        sql += " OFFSET %s"
        params.append(f.offset)
    with pg.transaction(), pg.cursor(name="nac_history") if f.ssid is not None else pg.cursor() as cursor:
        cursor.execute(sql, params)
        names = [d.name for d in cursor.description or ()]
        if f.ssid is None:
            return [history_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
        # The SSID as a rule reads it (the AP MAC must parse): LIKE only narrowed the rows.
        wanted, skip, out = f.ssid.lower(), f.offset, []
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            if (ssid_of(record["called_station_id"]) or "").lower() != wanted:
                continue
            if skip:
                skip -= 1
                continue
            out.append(history_row(record))
            if f.limit is not None and len(out) == f.limit:
                break
        return out


def mac_decisions(pg: psycopg.Connection[Any], mac: str) -> list[Posting]:
    """(id, ts, action) of every decision of ``mac``, from every server, by id."""
    rows = pg.execute("SELECT seq, ts, action FROM history WHERE mac = %s ORDER BY seq", (mac,))
    return [Posting(id=int(seq), ts=float(ts), action=str(action)) for seq, ts, action in rows]


def why(
    pg: psycopg.Connection[Any],
    mac: str,
    *,
    decide: Callable[[Context], Decision] | None,
    now: float,
    latest: int = queries.WHY_LATEST,
) -> WhyReport:
    """`nac why` over every server's decisions (nac/helpdesk/queries.py tells the story)."""
    found = mac_decisions(pg, mac)
    rows = query_history(pg, HistoryFilter(mac=mac, limit=latest))
    return queries.story(mac, found, rows, decide=decide, now=now)


def pg_rows(pg: psycopg.Connection[Any]) -> HistoryRows:
    """:data:`HistoryRows` over PostgreSQL's ``history`` table (``?`` marks become ``%s``; the
    shared SQL has no other ``?`` and no ``%``)."""

    def rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with pg.transaction():  # one snapshot, whatever the connection's mode
            return pg.execute(sql.replace("?", "%s"), list(params)).fetchall()

    return rows


def stats(pg: psycopg.Connection[Any], *, since: float | None, top: int = queries.STATS_TOP) -> StatsReport:
    """`nac stats` over every server's decisions, ``by_node`` among them; no profiles."""
    return queries.stats_of(pg_rows(pg), since=since, top=top, unavailable=[NO_PROFILES])


def lists_tally(
    pg: psycopg.Connection[Any],
    rules: Sequence[Rule],
    *,
    since: float | None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> list[ListTally]:
    """Per ban list in force, its rules' decisions by every server (nac/app/lists.py)."""
    return list_stats(pg_rows(pg), rules, since=since, groups=groups)
