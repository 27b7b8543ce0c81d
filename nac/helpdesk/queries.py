"""Helpdesk questions over the history table: find decisions, explain one device, summarise.

Library code shared by `nac history|why|stats` and `nac web`: functions take a sqlite3
connection (the web page's is read-only) and return plain dicts; the wording of `why` lives
here so the CLI and the web page say the same thing.  ``history`` is the view over both tiers
(nac/history/tiers.py), read through nac/history/reader.py.  One device's questions go
through the MAC index (nac/history/macindex.py) and read that device's rows alone; the others
are shaped for the (ts) index, so that they stay fast at ten million rows
(bench/helpdesk_bench.py measures it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from nac.app.lists import HistoryRows
from nac.app.results import (
    ClientReadiness,
    CurrentDecision,
    EarlierDecision,
    Refusals,
    RefusedDevice,
    StatsReport,
    Streak,
    Tally,
    WhyReport,
)
from nac.errors import PolicyError
from nac.history import reader
from nac.isotime import parse_span as parse_span  # noqa: PLC0414 - nac/config.py reads it here
from nac.policy.decide import Context, Decision, method_class
from nac.policy.decide import ssid_of as _rule_ssid
from nac.registry.mac import try_parse_mac
from nac.render import iso_time

#: The action that refuses a device (quarantine admits it, to a VLAN of its own).
REFUSED: Final = "reject"
#: `nac why` lists this many of the device's latest decisions.
WHY_LATEST: Final = 5
#: `nac stats` lists this many top refused devices.
STATS_TOP: Final = 10

#: Output order: the documented columns first, then the rest, then what helps paging.
_FIRST: Final = ("time", "mac", "vendor", "action", "vlan", "rule", "reason", "client", "nas_ip", "method")
_VERBS: Final = {"accept": "accepted", "quarantine": "quarantined", "reject": "rejected"}


def ssid_of(called_station_id: str | None) -> str | None:
    """The SSID in a Called-Station-Id of the form ``AP-MAC:SSID`` (RFC 3580 §3.20); None if
    there is none.  The same reading as an `--ssid` rule's (nac.policy), so that what a rule
    matched and what `nac history --ssid` finds agree."""
    return _rule_ssid(called_station_id) or None


# -- finding decisions -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HistoryFilter:
    """What `nac history` and the web page's search can ask for; None means any."""

    mac: str | None = None  # canonical spelling (nac.mac.format_mac)
    vendor: str | None = None  # substring of the organisation name, any case
    client: str | None = None  # the NAS's name (or its NAS-IP-Address)
    port: str | None = None  # NAS-Port (a number) or NAS-Port-Id (Gi1/0/7, or its tail 1/0/7)
    ssid: str | None = None  # from Called-Station-Id, any case
    action: str | None = None
    rule: str | None = None
    method: str | None = None
    since: float | None = None  # ts >= since
    until: float | None = None  # ts < until
    before: int | None = None  # id of a row: only rows older than it (keyset paging)
    limit: int | None = 50
    offset: int = 0


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where_clauses(
    f: HistoryFilter, conn: sqlite3.Connection | None, before_ts: float | None, *, placeholder: str = "?"
) -> tuple[list[str], list[object]]:
    """The WHERE terms of ``f`` and their parameters, in SQL that SQLite and PostgreSQL share
    (``placeholder``: PostgreSQL's driver takes ``%s``).  Without ``conn`` (PostgreSQL) the
    SSID term only narrows: the caller keeps the rows whose :func:`ssid_of` matches."""
    where: list[str] = []
    params: list[object] = []

    def add(sql: str, *values: object) -> None:
        where.append(sql.replace("?", placeholder))
        params.extend(values)

    if f.mac is not None:
        add("mac = ?", f.mac)
    if f.action is not None:
        add("action = ?", f.action)
    if f.rule is not None:
        add("rule = ?", f.rule)
    if f.method is not None:
        add("method = ?", f.method.lower())
    if f.client is not None:
        add("(lower(client) = lower(?) OR nas_ip = ?)", f.client, f.client)
    if f.vendor is not None:
        add("lower(vendor) LIKE lower(?) ESCAPE '\\'", f"%{_like(f.vendor)}%")
    if f.port is not None:
        port = f.port.strip()
        if port.isascii() and port.isdigit():
            add("(nas_port = ? OR nas_port_id = ?)", int(port), port)
        else:  # "1/0/7" finds "Gi1/0/7" and "GigabitEthernet1/0/7"
            add("lower(nas_port_id) LIKE lower(?) ESCAPE '\\'", f"%{_like(port)}")
    if f.ssid is not None:
        # LIKE narrows in C; the function (the AP MAC must parse) decides.
        add("lower(called_station_id) LIKE lower(?) ESCAPE '\\'", f"%:{_like(f.ssid)}")
        if conn is not None:
            conn.create_function("nac_ssid", 1, ssid_of, deterministic=True)
            add("lower(nac_ssid(called_station_id)) = lower(?)", f.ssid)
    if f.since is not None:
        add("ts >= ?", f.since)
    if f.until is not None:
        add("ts < ?", f.until)
    if before_ts is not None:
        # Newest first is (ts DESC, id DESC); the ts index holds (ts, rowid), so this is a range.
        add("ts <= ? AND (ts < ? OR id < ?)", before_ts, before_ts, f.before)
    return where, params


def query_history(
    conn: sqlite3.Connection, f: HistoryFilter, *, postings: Sequence[reader.Posting] | None = None
) -> list[dict[str, Any]]:
    """Decisions matching ``f``, newest first, as :func:`history_row` shapes them.  With a MAC,
    over that device's decisions alone (found in the MAC index; ``postings`` if the caller has
    them already)."""
    before_ts = None
    if f.before is not None:
        before_ts = reader.decision_ts(conn, f.before)
        if before_ts is None:
            raise PolicyError(f"--before {f.before}: no decision with that id (pruned?)")
    where, params = where_clauses(f, conn, before_ts)
    if f.mac is not None:
        table = _device_scope(conn, f, postings, before_ts)
        return [history_row(row) for row in _dicts(conn.execute(*_select(table, where, params, f)))]
    if f.limit is not None and reader.unstored(conn) > reader.NEWEST_FIRST_MIN:
        # The newest batches alone answer "the latest N" unless the filters are selective.
        want = replace(f, limit=f.offset + f.limit, offset=0)
        for older in reader.newest_first(conn):
            found = _dicts(conn.execute(*_select(reader.SCOPE, where, params, want)))
            if len(found) == want.limit and found[-1]["ts"] > older:
                return [history_row(row) for row in found[f.offset :]]
    return [history_row(row) for row in _dicts(reader.execute(conn, *_select("history", where, params, f)))]


def _select(table: str, where: list[str], params: list[object], f: HistoryFilter) -> tuple[str, list[object]]:
    sql = f"SELECT * FROM {table}"  # noqa: S608 - the view or a TEMP table of the reader's
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts DESC, id DESC"
    if f.limit is not None or f.offset:
        sql += " LIMIT ? OFFSET ?"
        return sql, [*params, -1 if f.limit is None else f.limit, f.offset]
    return sql, list(params)


def _device_scope(
    conn: sqlite3.Connection,
    f: HistoryFilter,
    postings: Sequence[reader.Posting] | None,
    before_ts: float | None,
) -> str:
    """The table holding the rows ``f`` may select of one device: what the MAC index knows
    (time, action, id) narrows them first; only the rows that can be in the answer are read."""
    assert f.mac is not None
    found = reader.mac_decisions(conn, f.mac) if postings is None else postings
    keep = [
        p
        for p in found
        if (f.action is None or p.action == f.action)
        and (f.since is None or p.ts >= f.since)
        and (f.until is None or p.ts < f.until)
        and (before_ts is None or p.ts < before_ts or (p.ts == before_ts and p.id < (f.before or 0)))
    ]
    keep.sort(key=lambda p: (p.ts, p.id), reverse=True)
    row_filters = (f.vendor, f.client, f.port, f.ssid, f.rule, f.method)
    if f.limit is not None and all(x is None for x in row_filters):
        keep = keep[: f.offset + f.limit]
    return reader.load(conn, (p.id for p in keep))


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def history_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row as the README names it: ``time`` first; ``port`` and ``ssid`` spelled out
    for people; ``id`` last (what ``--before`` pages by); internal ``ts`` dropped."""
    out = {key: row.get(key) for key in _FIRST}
    out["time"] = iso_time(row["ts"] if row.get("ts") is not None else row.get("time"))
    out.update({k: v for k, v in row.items() if k not in out and k not in ("id", "ts")})
    out["port"] = row.get("nas_port_id") or (None if row.get("nas_port") is None else str(row["nas_port"]))
    out["ssid"] = ssid_of(row.get("called_station_id"))
    out["id"] = row.get("id")
    return out


# -- why ---------------------------------------------------------------------------------------


def why(
    conn: sqlite3.Connection,
    mac: str,
    *,
    decide: Callable[[Context], Decision] | None,
    now: float,
    latest: int = WHY_LATEST,
) -> WhyReport:
    """The story of one device: its latest decisions, how long the latest answer has held and
    how often it was refused, and whether the current rules (``decide``, the device's policy
    decision) would answer its latest request differently.  ``lines`` tells it in plain words."""
    found = reader.mac_decisions(conn, mac)  # (id, ts, action) of every decision, by id
    rows = query_history(conn, HistoryFilter(mac=mac, limit=latest), postings=found)
    return story(mac, found, rows, decide=decide, now=now)


def story(
    mac: str,
    found: Sequence[reader.Posting],
    rows: list[dict[str, Any]],
    *,
    decide: Callable[[Context], Decision] | None,
    now: float,
) -> WhyReport:
    """:func:`why`'s report from the device's decisions (``found``, by id) and its latest rows
    (newest first), wherever they were read."""
    streak: Streak | None = None
    refusals: Refusals | None = None
    if rows:
        last = rows[0]
        # The latest decision with another answer bounds the run.
        other = max(((p.ts, p.id, p.action) for p in found if p.action != last["action"]), default=None)
        run = [p.ts for p in found if other is None or p.ts > other[0]]
        first_ts = min(run) if run else _ts(last)
        streak = Streak(
            action=last["action"],
            count=len(run),
            since=iso_time(first_ts),
            since_ts=first_ts,
            before=None if other is None else _other(other),
        )
        refused = [p.ts for p in found if p.action == REFUSED]
        refusals = Refusals(
            count=len(refused),
            first=iso_time(min(refused)) if refused else None,
            last=iso_time(max(refused)) if refused else None,
        )
    current: CurrentDecision | None = None
    if decide is not None:
        # Asked as for the latest request: a rule scoped to a switch, SSID, port type or
        # method applies to this device only there.
        ctx = Context(now=now)
        if rows:
            row = rows[0]
            ctx = Context(
                row["client"],
                row["called_station_id"],
                row["nas_port_type"],
                method_class(row["method"]),
                now,
            )
        decision = decide(ctx)
        current = CurrentDecision(
            action=decision.action, vlan=decision.vlan, rule=decision.rule, reason=decision.reason
        )
    report = WhyReport(
        mac=mac,
        decisions=rows,
        streak=streak,
        refused=refusals,
        now=current,
        changed=bool(rows and current is not None and _differs(rows[0], current)),
        lines=[],
    )
    return replace(report, lines=explain(report, now=now))


def _differs(row: Mapping[str, Any], current: CurrentDecision) -> bool:
    return (row["action"], row["vlan"], row["rule"]) != (current.action, current.vlan, current.rule)


def explain(report: WhyReport, *, now: float) -> list[str]:
    """`nac why` in plain words, one sentence a line (the web page shows the same lines)."""
    mac = report.mac
    rows: Sequence[Mapping[str, Any]] = report.decisions
    current = report.now
    if not rows:
        lines = [f"No decision for {mac} is on record: the device has not asked, or its rows were pruned."]
        if current is not None:
            lines.append(f"The current rules would {_decision_text(current)}.")
        return lines
    last = rows[0]
    lines = [f"{mac} is {_device_text(last)}."]
    lines.append(
        f"Last decision {iso_time(_ts(last))} ({_ago(now - _ts(last))}) {_where_text(last)}: "
        f"{_VERBS.get(last['action'], last['action'])}{_vlan(last)} by rule {last['rule']}: {last['reason']}"
    )
    streak, refused = report.streak, report.refused
    assert streak is not None  # a device with decisions has a run of them
    assert refused is not None
    verb = _VERBS.get(streak.action, streak.action)
    times = "once" if streak.count == 1 else f"{streak.count} times"
    run = f"{verb.capitalize()} {times} since {iso_time(streak.since_ts)}"
    before = streak.before
    if before is None:
        run += ", every decision on record"
    else:
        run += f"; before that {_VERBS.get(before.action, before.action)} {iso_time(before.ts)}"
    lines.append(run + ".")
    if streak.action != REFUSED and refused.count:
        lines.append(f"Refused {refused.count} times in the history kept, last at {refused.last}.")
    if current is not None:
        if report.changed:
            lines.append(f"The rules have changed since: now they would {_decision_text(current)}.")
        else:
            lines.append(f"The current rules still {_decision_text(current)}.")
    return lines


def _other(found: tuple[float, int, str]) -> EarlierDecision:
    """The latest decision with another answer, as (ts, id, action)."""
    return EarlierDecision(action=found[2], time=iso_time(found[0]), ts=found[0])


def _ts(row: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(row["time"]).replace("Z", "+00:00")).timestamp()


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _vlan(row: Mapping[str, Any]) -> str:
    return f" to VLAN {row['vlan']}" if row.get("vlan") else ""


def _device_text(row: Mapping[str, Any]) -> str:
    if row.get("vendor"):
        entry = f"registry prefix {row['prefix']}/{row['prefix_bits']}" if row.get("prefix") else "registry"
        return f"a {row['vendor']} device ({entry}, snapshot {row['snapshot']})"
    mac = try_parse_mac(str(row["mac"]))
    if mac is not None and mac & (1 << 41):
        return "a randomized (locally administered) MAC, which names no vendor"
    return f"not in the IEEE registry (snapshot {row['snapshot']})"


def _where_text(row: Mapping[str, Any]) -> str:
    nas = f"{row['client']} ({row['nas_ip']})" if row.get("nas_ip") else str(row["client"])
    place = f"on switch {nas}"
    ssid = row.get("ssid")
    if ssid:
        place = f"on access point/controller {nas}, SSID {ssid}"
    if row.get("port"):
        place += f", port {row['port']}"
    return f"{place}, by {str(row['method']).upper()}"


def _decision_text(current: CurrentDecision) -> str:
    verb = {"accept": "accept it", "quarantine": "quarantine it", "reject": "reject it"}.get(
        current.action, current.action
    )
    vlan = f" to VLAN {current.vlan}" if current.vlan else ""
    return f"{verb}{vlan} (rule {current.rule}: {current.reason})"


# -- stats ---------------------------------------------------------------------------------------


def sqlite_rows(conn: sqlite3.Connection) -> HistoryRows:
    """:data:`HistoryRows` over SQLite's ``history`` view (both tiers, brought up to date)."""
    return lambda sql, params: reader.execute(conn, sql, params).fetchall()


def stats(
    conn: sqlite3.Connection,
    *,
    since: float | None = None,
    top: int = STATS_TOP,
    profiled: dict[str, int] | None = None,
) -> StatsReport:
    """:func:`stats_of` this database's history."""
    return stats_of(sqlite_rows(conn), since=since, top=top, profiled=profiled)


def stats_of(
    rows: HistoryRows,
    *,
    since: float | None = None,
    top: int = STATS_TOP,
    profiled: dict[str, int] | None = None,
    unavailable: Sequence[str] = (),
) -> StatsReport:
    """Decisions by action, vendor, client, rule, method and node (the server that decided);
    the most refused devices; and each client's Message-Authenticator habit (BlastRADIUS,
    CVE-2024-3596: who is ready to enforce).  ``rows`` runs the SQL (SQLite's or PostgreSQL's
    history: the same columns); ``profiled``: devices by maker from profiling, reported
    alongside; ``unavailable``: what this database cannot count, said in the report."""
    where, params = ("WHERE ts >= ?", [since]) if since is not None else ("", [])
    # One pass over the range: a handful of groups, summed per dimension in Python.
    groups = rows(
        "SELECT action, vendor, client, rule, method, nas_ip, message_authenticator, node, COUNT(*)"  # noqa: S608
        f" FROM history {where} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
        params,
    )
    dims: dict[str, dict[str, dict[str, int]]] = {
        k: {} for k in ("action", "vendor", "client", "rule", "method", "node")
    }
    clients: dict[str, dict[str, Any]] = {}
    total = 0
    for action, vendor, client, rule, method, nas_ip, with_ma, node, count in groups:
        total += count
        for dim, key in (
            ("action", action),
            ("vendor", vendor or "(none)"),
            ("client", client),
            ("rule", rule),
            ("method", method),
            ("node", node or "(none)"),  # rows from before servers were named
        ):
            slot = dims[dim].setdefault(key, {"decisions": 0, "rejected": 0})
            slot["decisions"] += count
            slot["rejected"] += count if action == REFUSED else 0
        seen = clients.setdefault(client, {"nas_ips": set(), "requests": 0, "without": 0})
        seen["nas_ips"].add(nas_ip)
        seen["requests"] += count
        seen["without"] += 0 if with_ma else count
    refused_sql = (
        "SELECT mac, MAX(vendor), COUNT(*), MIN(ts), MAX(ts) FROM history WHERE action = ?"  # noqa: S608
        f"{' AND ts >= ?' if since is not None else ''} GROUP BY mac ORDER BY 3 DESC, 5 DESC LIMIT ?"
    )
    top_refused = [
        RefusedDevice(mac=mac, vendor=vendor, rejected=count, first=iso_time(first), last=iso_time(last))
        for mac, vendor, count, first, last in rows(refused_sql, [REFUSED, *params, top])
    ]
    client_rows = [
        ClientReadiness(
            client=client,
            nas_ips=sorted(seen["nas_ips"]),
            requests=seen["requests"],
            without_message_authenticator=seen["without"],
            ready=seen["without"] == 0,
            never_sends=seen["without"] == seen["requests"],
        )
        for client, seen in clients.items()
    ]
    return StatsReport(
        since=iso_time(since),
        decisions=total,
        by_action=_ranked(dims["action"]),
        by_vendor=_ranked(dims["vendor"]),
        by_client=_ranked(dims["client"]),
        by_rule=_ranked(dims["rule"]),
        by_method=_ranked(dims["method"]),
        by_node=_ranked(dims["node"]),
        top_refused=top_refused,
        message_authenticator=sorted(client_rows, key=lambda r: (r.ready, r.client)),
        not_ready=sorted(r.client for r in client_rows if r.never_sends),
        profiled=dict(profiled or {}),
        unavailable=list(unavailable),
    )


def _ranked(counts: Mapping[str, Mapping[str, int]]) -> list[Tally]:
    return [
        Tally(name=name, decisions=value["decisions"], rejected=value["rejected"])
        for name, value in sorted(counts.items(), key=lambda item: (-item[1]["decisions"], item[0]))
    ]
