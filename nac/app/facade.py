"""The library the CLI fronts: one object per database, one method per command.

Keeps SQL and policy logic out of the CLI (sqlite-utils' cli.py over its db.py).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nac.app import lists, lookups, usergroups
from nac.app.registry import ImportRefusedError as ImportRefusedError  # noqa: PLC0414 - cli imports it here
from nac.app.registry import import_registry, registry_status, rollback_registry
from nac.app.results import (
    AuditRow,
    CheckResult,
    DeviceProfile,
    MatchedRule,
    PolicyCheck,
    PolicyImport,
    RegistryImport,
    RegistryRollback,
    RegistryStatus,
    RuleRow,
    StatsReport,
    VendorsReview,
    WhyReport,
)
from nac.errors import NacError, PolicyError
from nac.helpdesk import inventory
from nac.helpdesk import queries as helpdesk
from nac.history import reader as history_reader
from nac.isotime import format_time, parse_time, span_seconds
from nac.pg import PgUnsupportedError
from nac.policy.audit import Verdict, verify_chain
from nac.policy.conflicts import find_conflicts, shadowed_by
from nac.policy.decide import ACTIONS, Context, Defaults, Policy, Rule, canonical_match
from nac.policy.file import PolicyDiff, dump_policy, load_policy_file, rule_line, rule_table
from nac.policy.simulate import Simulation
from nac.policy.simulate import simulate as replay
from nac.registry import vendors
from nac.registry.banlists import BanList, ListReport, ListSummary, list_report, list_summary
from nac.registry.families import Family
from nac.registry.mac import format_mac, is_multicast, is_randomized, parse_mac
from nac.registry.oui import Registry, normalize_name
from nac.render import iso_time
from nac.resources import load_active_registry, load_banlists, load_families, load_registry_for, open_stores
from nac.resources import open_store as open_store  # noqa: PLC0414 - tests import it here
from nac.store import Store

if TYPE_CHECKING:
    from nac.profiling.report import ProfileReport


def parse_when(text: str, *, now: datetime | None = None) -> float:
    """An ISO 8601 time (naive means UTC) or a span back from now: ``15m``, ``2h``, ``7d``."""
    now = now or datetime.now(UTC)
    span = span_seconds(text)
    if span is not None:
        return (now - timedelta(seconds=span)).timestamp()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        # Bad input (exit 2), like a bad MAC: the operator typed it.
        raise PolicyError(
            f"{text!r} is neither an ISO 8601 time (2026-11-28T09:00) nor a span (15m, 2h, 7d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class Nac:
    def __init__(self, db: str | None = None) -> None:
        self._store, self.policy_store = open_stores(db)  # the rules' store: it, or PostgreSQL
        self.shared = self._store is None  # the rules are in a shared PostgreSQL (nac/pg/)

    @classmethod
    def readonly(cls, db: str | None = None) -> Nac:
        """For readers that must never write (`nac web`, `nac history`, ...): an existing
        database, sqlite mode=ro; they never create one."""
        nac = cls.__new__(cls)
        nac._store, nac.policy_store = open_stores(db, readonly=True)
        nac.shared = nac._store is None
        return nac

    @property
    def store(self) -> Store:
        """The SQLite database; PgUnsupportedError on PostgreSQL (the CLI names the command)."""
        if self._store is None:
            raise PgUnsupportedError(self.policy_store.path)
        return self._store

    def close(self) -> None:
        self.policy_store.close()

    @cached_property
    def registry(self) -> Registry:
        return load_active_registry(self.policy_store)

    @cached_property
    def families(self) -> dict[str, Family]:
        return load_families()

    def policy(self) -> Policy:
        return self._compiled(self.registry)

    def _compiled(self, registry: Registry, extra: Sequence[Rule] = ()) -> Policy:
        """The rules in force (and ``extra``) compiled against ``registry``."""
        rules, defaults = [*self.policy_store.rules(), *extra], self.policy_store.defaults()
        return Policy(rules, registry=registry, defaults=defaults, families=self.families)

    # -- rules -----------------------------------------------------------------------------

    def add_rule(
        self,
        *,
        kind: str,
        value: str,
        action: str,
        vlan: str | None = None,
        reason: str = "",
        rule_id: str | None = None,
        **scope: Any,
    ) -> tuple[Rule, int]:
        """Validate, store and return the rule with how many registry entries it covers.

        ``scope``: see :meth:`make_rule`."""
        rule, covered = self.make_rule(
            kind=kind, value=value, action=action, vlan=vlan, reason=reason, rule_id=rule_id, **scope
        )
        for conflict in find_conflicts([*self.policy_store.rules(), rule], self.policy_store.defaults()):
            if conflict.kind == "duplicate" and conflict.rule is rule:
                raise PolicyError(conflict.message(self.policy_store.defaults()))
        self.policy_store.add_rule(rule)
        return rule, covered

    def conflicts(self, rule_id: str | None = None) -> list[str]:
        """Warnings about shadowed rules (all, or those involving ``rule_id``)."""
        defaults = self.policy_store.defaults()
        return [
            c.message(defaults)
            for c in find_conflicts(self.policy_store.rules(), defaults)
            if rule_id is None or rule_id in (c.rule.id, c.by.id)
        ]

    def make_rule(
        self,
        *,
        kind: str,
        value: str,
        action: str,
        vlan: str | None = None,
        reason: str = "",
        rule_id: str | None = None,
        clients: Sequence[str] = (),
        ssids: Sequence[str] = (),
        port_type: str | None = None,
        method: str | None = None,
        mode: str | None = None,
        starts: str | None = None,
        expires: str | None = None,
    ) -> tuple[Rule, int]:
        """A rule from `nac rules add` flags, checked against the rules in force (not stored).

        ``starts``/``expires`` take an ISO 8601 time or a span *ahead* of now (``7d``: an
        exemption for a week)."""
        if action not in ACTIONS:
            raise PolicyError(f"--action must be one of {', '.join(ACTIONS)}")
        canonical = canonical_match(kind, value)
        rule = Rule(
            id=rule_id or self._new_id(kind, canonical, action),
            kind=kind,
            value=canonical,
            action=action,
            vlan=vlan,
            reason=reason,
            clients=tuple(clients),
            ssids=tuple(ssids),
            port_type=port_type,
            method=method,
            mode=mode,
            starts=_ahead(starts, "--starts") if starts is not None else None,
            expires=_ahead(expires, "--expires") if expires is not None else None,
        )
        if rule.expires is not None and parse_time(rule.expires, where="--expires") <= time.time():
            raise PolicyError(
                f"--expires {expires} is in the past ({rule.expires}): the rule would never apply"
            )
        policy = self._compiled(self.registry, [rule])
        covered = 0
        if kind == "vendor":
            covered = len(policy.covered(canonical))
            if not covered:
                raise PolicyError(
                    f"vendor {value!r} matches no organisation in the registry "
                    f"({self.registry.snapshot.id}); see `nac vendors search`"
                )
        return rule, covered

    def _new_id(self, kind: str, value: str, action: str) -> str:
        slug = {
            "randomized": "randomized",
            "vendor": re.sub(r"[^a-z0-9]+", "-", normalize_name(value))[:40].strip("-"),
            "oui": value.replace(":", "").lower(),
            "mac": value.replace(":", ""),
        }[kind]
        base = f"{action}-{kind}-{slug}" if kind != "randomized" else f"{action}-randomized"
        taken = {rule.id for rule in self.policy_store.rules()}
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def rules(self) -> list[RuleRow]:
        """The stored rules, each with ``shadowed_by``: the rule that always decides in its
        place (same match, wider scope, first in precedence), else ``None``."""
        store = self.policy_store
        marks = shadowed_by(store.rules(), store.defaults())
        return [RuleRow.from_row(row, shadowed_by=marks.get(row["id"])) for row in store.rule_rows()]

    def remove_rule(self, rule_id: str) -> Rule:
        return self.policy_store.remove_rule(rule_id)

    # -- ban lists (nac/app/lists.py, nac/registry/banlists.py) ------------------------------

    def banlists(self, lists_file: str | Path | None = None) -> dict[str, BanList]:
        """The shipped ban lists, and the operator's ``lists_file`` if given."""
        return load_banlists(self.families, lists_file)

    def banlist(self, name: str, lists_file: str | Path | None = None) -> BanList:
        known = self.banlists(lists_file)
        if name not in known:
            raise PolicyError(f"no list {name!r}; known lists: {', '.join(sorted(known))}")
        return known[name]

    def add_list(
        self, name: str, *, action: str, lists_file: str | Path | None = None, **options: Any
    ) -> lists.ListRules:
        """One vendor rule per family of the list ``name``, stored and audited together;
        ``options``: :meth:`make_rule`'s (VLAN, reason, scope, mode, validity)."""
        banlist = self.banlist(name, lists_file)
        made = lists.list_rules(
            banlist, make_rule=self.make_rule, families=self.families, registry=self.registry,
            action=action, **options,
        )  # fmt: skip
        return lists.add_list(self.policy_store, banlist, made)

    def remove_list(self, name: str, lists_file: str | Path | None = None) -> lists.ListRules:
        """Remove every rule the list ``name`` made, in one audited change."""
        rules = self.policy_store.remove_list_rules(name)
        return lists.removed(self.banlists(lists_file).get(name), name, rules)

    def vendors_lists(self, lists_file: str | Path | None = None) -> list[ListSummary]:
        """Every list, its evidence, and how many registry prefixes its families cover."""
        return [list_summary(b, self.families, self.registry) for b in self.banlists(lists_file).values()]

    def vendors_show_list(self, name: str, lists_file: str | Path | None = None) -> ListReport:
        """A list's document, date and issuer, its families' prefixes, and what it leaves out."""
        return list_report(self.banlist(name, lists_file), self.families, self.registry)

    # -- policy files, the audit trail and simulation -------------------------------------

    def load_policy(self, path: str | Path) -> tuple[Defaults, list[Rule]]:
        """Read and check a policy file whole: syntax, every rule, and the policy compiled
        against the registry (quarantine VLANs, vendors that match nothing)."""
        defaults, rules = load_policy_file(path)
        text = Path(path).read_text(encoding="utf-8")
        try:
            policy = Policy(rules, registry=self.registry, defaults=defaults, families=self.families)
        except PolicyError as exc:
            rule_id = next((r.id for r in rules if str(exc).startswith(f"rule {r.id}:")), None)
            raise PolicyError(f"{rule_line(text, str(path), rule_id)}: {exc}") from None
        errors = [  # all of them at once, like the file's own errors
            f"{rule_line(text, str(path), rule.id)}: rule {rule.id}: vendor {rule.value!r} matches no"
            f" organisation in the registry ({self.registry.snapshot.id}); see `nac vendors search`"
            for rule in rules
            if rule.kind == "vendor" and not policy.covered(rule.value)
        ]
        errors += [
            f"{rule_line(text, str(path), c.rule.id)}: {c.message(defaults)}"
            for c in find_conflicts(rules, defaults)
            if c.kind == "duplicate"
        ]
        if errors:
            raise PolicyError("\n".join(errors))
        return defaults, rules

    def policy_warnings(self, path: str | Path, defaults: Defaults, rules: Sequence[Rule]) -> list[str]:
        """Shadowed rules in a policy file, each with its file and line."""
        text = Path(path).read_text(encoding="utf-8")
        return [
            f"{rule_line(text, str(path), c.rule.id)}: {c.message(defaults)}"
            for c in find_conflicts(rules, defaults)
            if c.kind == "shadowed"
        ]

    def policy_check(self, path: str | Path) -> PolicyCheck:
        defaults, rules = self.load_policy(path)
        return PolicyCheck(
            file=str(path),
            rules=len(rules),
            groups=len(defaults.groups),
            default=defaults.action,
            monitor=defaults.monitor,
            warnings=self.policy_warnings(path, defaults, rules),
            user_groups=usergroups.checked_count(self.policy_store, path, defaults, rules),
        )

    def policy_diff(self, path: str | Path) -> PolicyDiff:
        """What importing ``path`` would change: rules added, removed and changed, defaults,
        and the 802.1X user groups when the file has them (nac/app/usergroups.py)."""
        defaults, rules = self.load_policy(path)
        return usergroups.policy_diff(self.policy_store, path, defaults, rules)[0]

    def policy_import(self, path: str | Path) -> PolicyImport:
        """Replace the defaults and every rule (and the user groups, when the file has them)
        with the file's, in one transaction (all or nothing); running servers apply it within
        2 seconds."""
        defaults, rules = self.load_policy(path)
        warnings = self.policy_warnings(path, defaults, rules)
        return usergroups.import_policy(self.policy_store, path, defaults, rules, warnings=warnings)

    def policy_export(self) -> str:
        store = self.policy_store
        header = (
            f"nac policy exported from {store.path} (rules version {store.rules_version()}).\n"
            "`nac policy import` this file to restore exactly these defaults, groups and rules."
        )
        text = dump_policy(self.policy_store.defaults(), self.policy_store.rules(), header=header)
        return text + usergroups.export(self.policy_store)  # its user groups, when it has some

    def audit(self) -> list[AuditRow]:
        return [AuditRow.from_row(row) for row in self.policy_store.audit_rows()]

    def audit_verify(self) -> Verdict:
        return verify_chain(self.policy_store.audit_rows(), self.policy_store.audit_head())

    def simulate(self, *, since: str, rule: Rule | None = None, path: str | Path | None = None) -> Simulation:
        """Replay history since ``since`` through the rules in force and through the candidate
        (the rules in force plus ``rule``, or the policy file ``path``)."""
        since_ts = parse_when(since)
        current = self.policy()
        if path is not None:
            defaults, rules = self.load_policy(path)
            candidate = Policy(rules, registry=self.registry, defaults=defaults, families=self.families)
        elif rule is not None:
            candidate = Policy(
                [*current.rules, rule],
                registry=self.registry,
                defaults=current.defaults,
                families=self.families,
            )
        else:
            raise PolicyError("give a candidate rule (rule flags) or --file POLICY")
        rows = history_reader.replay(self.store.conn, since_ts)
        shown = str(path) if path is not None else rule_table(rule) if rule is not None else None
        return replay(rows, current=current, candidate=candidate, since=iso_time(since_ts), shown=shown)

    def simulate_list(
        self, *, since: str, name: str, action: str, lists_file: str | Path | None = None, **options: Any
    ) -> Simulation:
        """Replay history since ``since`` through the rules in force and through them plus the
        rules `nac rules add --list NAME` would make (``options``: :meth:`make_rule`'s)."""
        banlist = self.banlist(name, lists_file)
        made = lists.list_rules(
            banlist, make_rule=self.make_rule, families=self.families, registry=self.registry,
            action=action, **options,
        )  # fmt: skip
        since_ts, current = parse_when(since), self.policy()
        candidate = Policy(
            [*current.rules, *(rule for rule, _ in made)],
            registry=self.registry, defaults=current.defaults, families=self.families,
        )  # fmt: skip
        rows = history_reader.replay(self.store.conn, since_ts)
        shown = f"list {name} dated {banlist.date}"
        return replay(rows, current=current, candidate=candidate, since=iso_time(since_ts), shown=shown)

    # -- profiles ----------------------------------------------------------------------------

    def profile(self, text: str) -> ProfileReport:
        """`nac profile MAC`: the device's profile beside its registry entry."""
        from nac.profiling.report import profile_row  # noqa: PLC0415 - only this command needs it

        return profile_row(
            self.store.conn, parse_mac(text.strip()), registry=self.registry, policy=self.policy(),
            families=self.families,
        )  # fmt: skip

    # -- lookups ---------------------------------------------------------------------------

    def check(self, text: str) -> CheckResult:
        """What the current rules decide for one MAC, and why (`nac check`)."""
        mac = parse_mac(text.strip())
        # No request context: a rule limited to clients, SSIDs, ports or a method does not
        # apply here; a validity window counts as of now.
        now = datetime.now(UTC).timestamp()
        profile = self._profile(mac)
        family = profile.family if profile is not None else None
        # A profiled maker is matched against whole vendor families: the full registry then.
        policy = self.policy() if family is not None and is_randomized(mac) else self._policy_for(mac)
        decision, match = policy.decide(mac, Context(now=now), family)
        matched = [
            MatchedRule(rule=v.rule.id, action=v.rule.action, decided=v.decided, why=v.why)
            for v in policy.explain(mac, Context(now=now), family)
        ]
        vendor = match.organization if match else None
        if profile is not None:
            profile = replace(profile, conflict=policy.spoofed(match, family))
            if match is None and profile.vendor is not None:
                vendor = f"{profile.vendor} (profiled)"
        return CheckResult(
            mac=format_mac(mac),
            randomized=is_randomized(mac),
            multicast=is_multicast(mac),
            prefix=match.prefix_text if match else None,
            prefix_bits=match.prefix_bits if match else None,
            vendor=vendor,
            registry=match.registry if match else None,
            action=decision.action,
            vlan=decision.vlan,
            rule=decision.rule,
            reason=decision.reason,
            snapshot=policy.snapshot_id,
            # Every rule whose match covers the MAC: the one that decided and why the others lost.
            matched=matched,
            # What DHCP and the switches said of the device (None: nothing seen).
            profile=profile,
        )

    def _profile(self, mac: int) -> DeviceProfile | None:
        """The device's profile in brief (``conflict`` still to be judged), or None (no
        profile, or no profiling table)."""
        conn = self.store.conn
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'profiles'").fetchone() is None:
            return None  # profiling never ran here: not even its module is loaded
        from nac.profiling import store as profiles  # noqa: PLC0415 - off `nac check`'s import path

        try:
            found = profiles.get(conn, mac)
        except sqlite3.OperationalError:  # the table went away under us
            return None
        if found is None:
            return None
        known = self.families.get(found.family) if found.family is not None else None
        return DeviceProfile(
            family=found.family,
            vendor=known.name if known is not None else found.family,
            source=found.source,
            evidence="; ".join(f"{e.field} {e.value!r} matches {e.pattern!r}" for e in found.evidence),
            last_seen=iso_time(found.last_seen),
            conflict=False,
        )

    def _policy_for(self, mac: int) -> Policy:
        """The rules in force compiled against only ``mac``'s registry entries: deciding for
        one MAC needs nothing else, and three indexed reads beat loading 58,000 entries."""
        return self._compiled(self.__dict__.get("registry") or load_registry_for(self.policy_store, mac))

    def history(
        self,
        *,
        mac: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = 50,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Decisions, newest first; ``filters`` are :class:`nac.helpdesk.HistoryFilter`'s other
        fields (vendor, client, port, ssid, rule, method, before, offset).  On PostgreSQL,
        every server's decisions, each with its node."""
        return lookups.history(self, mac=mac, action=action, since=since, until=until, limit=limit, **filters)

    def why(self, text: str, *, latest: int = helpdesk.WHY_LATEST) -> WhyReport:
        """`nac why`: one device's latest decisions and what the current rules would say."""
        return lookups.why(self, text, latest=latest)

    def stats(self, *, since: str | None = None, top: int = helpdesk.STATS_TOP) -> StatsReport:
        """`nac stats` (nac/app/lookups.py); on PostgreSQL, every server's decisions."""
        return lookups.stats(self, since=since, top=top)

    def list_stats(self, since: str | None = None) -> list[lists.ListTally]:
        """Per ban list in force: decisions, refusals and refused devices, and the same by site."""
        return lookups.list_stats(self, since)

    def prune(self, older_than: str) -> int:
        """`nac history prune`: delete decisions older than a span (``90d``), in batches."""
        return lookups.prune(self, older_than)

    def check_lines(self, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
        """`nac check -`: one result per MAC line (or CSV row); the policy is built once."""
        return inventory.check_lines(self.policy(), lines, now=time.time())

    def check_csv(self, lines: Iterable[str]) -> Iterator[tuple[str, bool]]:
        """`nac check - --csv`: the same results as CSV lines (header first), each with
        whether its MAC was valid."""
        return inventory.csv_lines(self.policy(), lines, now=time.time())

    def vendors_search(self, text: str) -> list[vendors.OrganizationCount]:
        """The organisations a ``--vendor TEXT`` rule covers, with prefix counts per registry."""
        if not normalize_name(text):
            raise NacError(f"{text!r} has no letters or digits to search for")
        return vendors.summarize(self.policy().covered(text))

    def _family(self, name: str) -> Family:
        family = self.families.get(normalize_name(name))
        if family is None:
            raise NacError(f"no vendor family {name!r}; known families: {', '.join(sorted(self.families))}")
        return family

    def vendors_show(self, name: str) -> vendors.FamilyReport:
        """A family's basis, patterns and exclusions, and exactly what it covers."""
        return vendors.show(self._family(name), self.registry)

    def vendors_review(self, lists_file: str | Path | None = None) -> VendorsReview:
        """Look-alike organisations no family covers, and family entries matching nothing, each
        with the ban lists naming its family; and what list rules gained or lost since added."""
        rules, audit = self.policy_store.rules(), self.policy_store.audit_rows()
        return VendorsReview.of(
            vendors.review(self.families, self.registry),
            lists=lists.family_lists(self.banlists(lists_file), rules),
            since_added=lists.since_added(rules, audit, self.families, self.registry),
        )

    # -- the registry (nac/app/registry.py) --------------------------------------------------

    def oui_status(self) -> RegistryStatus:
        """The active registry snapshot (source, date, sha256, counts, import time) and older ones."""
        return registry_status(self.policy_store, lambda: self.registry.snapshot)

    def oui_import(
        self,
        paths: Sequence[str | Path],
        *,
        on: str | None = None,
        replace: bool = False,
        dry_run: bool = False,
    ) -> RegistryImport:
        """Validate every file, then make them the registry in one transaction (or refuse:
        :func:`nac.app_registry.import_registry`); returns what changed (or would change)."""
        report, new = import_registry(
            self.policy_store, self.registry, self.families, paths, on=on, replace=replace, dry_run=dry_run
        )
        if new is not None:
            self.__dict__["registry"] = new
        return report

    def oui_rollback(self) -> RegistryRollback:
        """Restore the registry the last import (or rollback) replaced."""
        report = rollback_registry(self.policy_store)
        self.__dict__.pop("registry", None)
        return report


def _ahead(text: str, flag: str) -> str:
    """``--starts``/``--expires``: an ISO 8601 time, or a span ahead of now (``7d``)."""
    span = span_seconds(text)
    if span is not None:
        return format_time(datetime.now(UTC).timestamp() + span)
    return format_time(parse_when(text)) if _looks_iso(text) else _bad_when(text, flag)


def _looks_iso(text: str) -> bool:
    return bool(re.match(r"\s*\d{4}-\d{2}-\d{2}", text))


def _bad_when(text: str, flag: str) -> str:
    raise PolicyError(f"{flag} {text!r}: use an ISO 8601 time (2026-05-01T00:00Z) or a span ahead (7d, 12h)")
