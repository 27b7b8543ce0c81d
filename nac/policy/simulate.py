"""`nac rules simulate`: what a candidate rule or policy would have changed, over stored history.

Each stored request is decided twice, by the policy in force and by the candidate, with the
request's own context (client, Called-Station-Id, NAS-Port-Type, method) and its own receive
time (so a rule's validity window counts as it would have then).  Both decisions are made now,
against the current registry: the report shows the effect of the rule change alone, not of
registry updates or rule changes since.  Pure: the caller reads the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from nac.policy.decide import Context, Decision, Policy, method_class, ssid_of
from nac.registry.mac import try_parse_mac
from nac.render import Record

#: Devices listed in the report (the counts cover them all).
DEVICES_MAX: Final = 1000


class ReplayRow(NamedTuple):
    """The history columns a replay needs (Store.replay_rows)."""

    ts: float
    mac: str
    client: str
    called_station_id: str | None
    nas_port_type: str | None
    method: str


@dataclass(frozen=True, kw_only=True)
class ChangedDevice(Record):
    """A device the candidate would answer differently: both answers and rules, how often it
    asked, where from, and when (Unix times)."""

    mac: str
    before: str
    after: str
    rule_before: str | None
    rule_after: str | None
    requests: int
    clients: list[str]
    ssids: list[str]
    first_seen: float
    last_seen: float


@dataclass(frozen=True, kw_only=True)
class Simulation(Record):
    """`nac rules simulate`: the replay's window and candidate (a policy file, or a rule as its
    policy-file table), what it read, and what would change, counted and by device."""

    since: str | None
    candidate: str | dict[str, Any] | None
    requests: int
    devices: int
    changed_requests: int
    changed_devices: int
    changes: dict[str, int]
    clients: dict[str, int]
    ssids: dict[str, int]
    device_list: list[ChangedDevice]


def _outcome(decision: Decision) -> str:
    """What the device would get: the action and its VLAN (monitor decisions are accepts)."""
    return decision.action if decision.vlan is None else f"{decision.action} vlan {decision.vlan}"


def simulate(
    rows: Iterable[Sequence[Any]],
    *,
    current: Policy,
    candidate: Policy,
    since: str | None = None,
    shown: str | dict[str, Any] | None = None,
) -> Simulation:
    """Replay ``rows`` (ReplayRow fields) through both policies; report what changes.
    ``since`` and ``shown`` (the candidate as the report names it) are only reported."""
    requests = changed_requests = 0
    devices: dict[str, dict[str, Any]] = {}
    seen_devices: set[str] = set()
    by_client: Counter[str] = Counter()
    by_ssid: Counter[str] = Counter()
    by_change: Counter[str] = Counter()
    memo: dict[tuple[Any, ...], tuple[Decision, Decision]] = {}
    contextual = current.contextual or candidate.contextual
    timed = any(r.starts or r.expires for r in (*current.rules, *candidate.rules))
    for row in rows:
        ts, text, client, called, port_type, method = row
        mac = try_parse_mac(text) if text else None
        if mac is None:
            continue
        requests += 1
        seen_devices.add(text)
        ctx = Context(client, called, port_type, method_class(method), ts) if contextual else None
        # History repeats few devices and contexts: decide each once (the time joins the key
        # only when a rule has a validity window).
        key = (mac, client, called, port_type, method, ts if timed else 0) if contextual else (mac,)
        pair = memo.get(key)
        if pair is None:
            pair = memo[key] = (current.decide(mac, ctx)[0], candidate.decide(mac, ctx)[0])
        before, after = pair
        if _outcome(before) == _outcome(after):
            continue  # the same answer (perhaps from another rule): the device does not notice
        changed_requests += 1
        change = f"{_outcome(before)} -> {_outcome(after)}"
        by_change[change] += 1
        by_client[client] += 1
        ssid = ssid_of(called)
        if ssid is not None:
            by_ssid[ssid] += 1
        device = devices.get(text)
        if device is None:
            device = devices[text] = {
                "mac": text,
                "before": _outcome(before),
                "after": _outcome(after),
                "rule_before": before.rule,
                "rule_after": after.rule,
                "requests": 0,
                "clients": set(),
                "ssids": set(),
                "first_seen": ts,
                "last_seen": ts,
            }
        device["requests"] += 1
        device["clients"].add(client)
        if ssid is not None:
            device["ssids"].add(ssid)
        device["first_seen"] = min(device["first_seen"], ts)
        device["last_seen"] = max(device["last_seen"], ts)
    listed = sorted(devices.values(), key=lambda d: (-d["requests"], d["mac"]))
    return Simulation(
        since=since,
        candidate=shown,
        requests=requests,
        devices=len(seen_devices),
        changed_requests=changed_requests,
        changed_devices=len(devices),
        changes=dict(by_change.most_common()),
        clients=dict(by_client.most_common()),
        ssids=dict(by_ssid.most_common()),
        device_list=[
            ChangedDevice(
                mac=d["mac"],
                before=d["before"],
                after=d["after"],
                rule_before=d["rule_before"],
                rule_after=d["rule_after"],
                requests=d["requests"],
                clients=sorted(d["clients"]),
                ssids=sorted(d["ssids"]),
                first_seen=d["first_seen"],
                last_seen=d["last_seen"],
            )
            for d in listed[:DEVICES_MAX]
        ],
    )
