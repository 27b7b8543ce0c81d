"""The library's IEEE registry operations (`nac oui status|import|rollback`), which
nac/app/facade.py's :class:`~nac.app.Nac` fronts.

Each function takes the store and the registry in force, so the facade keeps its cache of the
compiled registry and this module keeps the checks, the report and the refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from nac.app.lists import list_changes
from nac.app.results import (
    FileRead,
    OlderSnapshot,
    RegistryImport,
    RegistryImportPlan,
    RegistryRollback,
    RegistryStatus,
    SnapshotStatus,
)
from nac.errors import NacError, PolicyError
from nac.policy.decide import Policy
from nac.policy.stored import PolicyStore
from nac.registry import ieee, vendors
from nac.registry.families import Family
from nac.registry.oui import Registry, Snapshot, normalize_name
from nac.render import iso_time

_DATE_RE: Final = re.compile(r"\d{4}-\d{2}(-\d{2})?")


class ImportRefusedError(NacError):
    """An import that would remove too much of the registry, refused until ``--replace``;
    ``report`` is the diff, so the operator sees what would have been lost."""

    def __init__(self, message: str, report: RegistryImportPlan) -> None:
        super().__init__(message)
        self.report = report


def registry_status(store: PolicyStore, bundled: Callable[[], Snapshot]) -> RegistryStatus:
    """The active registry snapshot (source, date, sha256, counts, import time) and older ones;
    ``bundled`` gives the shipped registry's snapshot when nothing was ever imported."""
    rows = store.registry_snapshots()
    active = next((row for row in rows if row["active"]), None)
    if active is None:
        snapshot = bundled()
        active = {
            "source": snapshot.source,
            "date": snapshot.date,
            "sha256": snapshot.sha256,
            "counts": snapshot.counts,
            "replaced": [],
            "imported": None,
            "imported_by": None,
            "active": True,
        }
    kept = store.kept_snapshots()
    return RegistryStatus(
        active=SnapshotStatus(**_status_row(active, bundled=not rows)),
        older=[
            OlderSnapshot(**_status_row(row, bundled=False), kept=row["id"] in kept)
            for row in rows
            if not row["active"]
        ],
        registry_version=store.registry_version(),
    )


def import_registry(
    store: PolicyStore,
    old: Registry,
    families: dict[str, Family],
    paths: Sequence[str | Path],
    *,
    on: str | None = None,
    replace: bool = False,
    dry_run: bool = False,
) -> tuple[RegistryImport, Registry | None]:
    """Validate every file, then make them the registry in one transaction.

    Each registry a file contains (MA-L, MA-M, MA-S, IAB) is replaced whole; the others
    stay.  Nothing changes unless every file is valid, nor when the import would remove
    more than :data:`nac.ieee.MAX_REMOVED_SHARE` of the entries and ``replace`` is not
    given (:class:`ImportRefusedError`, carrying the report), nor with ``dry_run``.
    Returns what changed (or would change), and the new registry if it is now in force.
    """
    if not paths:
        raise PolicyError("name at least one registry file (oui.csv, mam.csv, oui36.csv, iab.csv, manuf)")
    snapshot_date = _snapshot_date(on)
    files = [ieee.parse_registry_file(_read(Path(p)), name=str(p)) for p in paths]
    entries, replaced = ieee.merge(old, files)
    snapshot = Snapshot(
        source="+".join(Path(f.name).name for f in files),
        date=snapshot_date,
        sha256=ieee.files_sha256(files),
    )
    new = Registry(entries, snapshot)
    object.__setattr__(snapshot, "counts", new.counts())
    diff = ieee.diff_registries(old, new)
    watch = _watch(store, families, new, [*diff.added, *(n for _, n in diff.reassigned)])
    refusal = ieee.removal_refusal(old, diff, sources=[Path(f.name).name for f in files])
    plan = RegistryImportPlan(
        snapshot=snapshot.id,
        source=snapshot.source,
        date=snapshot.date,
        sha256=snapshot.sha256,
        counts=snapshot.counts,
        replaced=replaced,
        previous=old.snapshot.id,
        files=[
            FileRead(
                file=Path(f.name).name,
                format=f.format,
                registries=sorted(f.registries, key=ieee.REGISTRIES.index),
                assignments=len(f.assignments),
                duplicates=f.duplicates,
            )
            for f in files
        ],
        added=[ieee.entry_row(e) for e in diff.added],
        removed=[ieee.entry_row(e) for e in diff.removed],
        reassigned=ieee.change_rows(diff.reassigned),
        renamed=ieee.change_rows(diff.renamed),
        by_registry=ieee.by_registry(old, new, diff),
        lists=list_changes(store.rules(), families, old, new),
        watch=watch,
        dry_run=dry_run,
        refused=None if replace else refusal,
    )
    if refusal is not None and not replace:
        raise ImportRefusedError(refusal, plan)
    if dry_run:
        return _done(plan, store), None
    base = [(e.prefix, e.prefix_bits, e.organization, e.registry) for e in old.entries]
    now = datetime.now(UTC).timestamp()
    store.replace_registry(
        entries, snapshot=snapshot, replaced=replaced, base=old.snapshot, base_entries=base, now=now
    )
    return _done(plan, store), new


def _done(plan: RegistryImportPlan, store: PolicyStore) -> RegistryImport:
    """``plan`` with the registry version now in force."""
    return RegistryImport(
        **{f.name: getattr(plan, f.name) for f in fields(plan)}, registry_version=store.registry_version()
    )


def rollback_registry(store: PolicyStore) -> RegistryRollback:
    """Restore the registry the last import (or rollback) replaced; a second rollback goes
    one further back, as far as the snapshots kept (nac/registry/store.py)."""
    before, after = store.rollback_registry()
    return RegistryRollback(
        discarded=SnapshotStatus(**_status_row(before, bundled=False)),
        restored=SnapshotStatus(**_status_row(after, bundled=False)),
        registry_version=store.registry_version(),
    )


def _watch(
    store: PolicyStore, families: dict[str, Family], registry: Registry, entries: Sequence[Any]
) -> list[vendors.WatchEntry]:
    """New or reassigned entries that a vendor rule covers or that look like a family one
    targets: what an operator should read before the new registry decides."""
    rules = [rule for rule in store.rules() if rule.kind == "vendor"]
    policy = Policy(rules, registry=registry, defaults=store.defaults(), families=families)
    covered_by = {rule.id: {e.position for e in policy.covered(rule.value)} for rule in rules}
    targeted = {key: families[key] for rule in rules if (key := normalize_name(rule.value)) in families}
    return vendors.watch_list(entries, registry=registry, covered_by=covered_by, targeted=targeted)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None


def _snapshot_date(text: str | None) -> str:
    """``--date``: the day (or month) the registry data was published; default today (UTC)."""
    if text is None:
        return datetime.now(UTC).date().isoformat()
    try:
        if not _DATE_RE.fullmatch(text):
            raise ValueError(text)
        date.fromisoformat(text if len(text) == 10 else f"{text}-01")
    except ValueError:
        raise PolicyError(f"--date {text!r}: use YYYY-MM-DD (or YYYY-MM)") from None
    return text


def _status_row(row: dict[str, Any], *, bundled: bool) -> dict[str, Any]:
    snapshot = Snapshot(source=row["source"], date=row["date"], sha256=row["sha256"])
    return {
        "snapshot": snapshot.id,
        "source": row["source"],
        "date": row["date"],
        "sha256": row["sha256"],
        "counts": row["counts"],
        "total": sum(row["counts"].values()),
        "replaced": row["replaced"],
        "imported": iso_time(row["imported"]),
        "imported_by": row["imported_by"],
        "bundled": bundled or row["imported"] is None,
    }
