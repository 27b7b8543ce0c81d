"""Registry files an operator imports, and what an import changes (pure: bytes in, values out).

Two formats, for networks without Internet access:

- the IEEE's CSV files ``oui.csv`` (MA-L), ``mam.csv`` (MA-M), ``oui36.csv`` (MA-S) and
  ``iab.csv`` (IAB), header ``Registry,Assignment,Organization Name,Organization Address``,
  addresses quoted and often spanning several lines;
- Wireshark's ``manuf`` (all four registries in one file, see :func:`nac.oui.parse_manuf`).

A file is validated whole before anything is applied: the first fault raises
:class:`PolicyError` naming the file and line, so a bad file changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from nac.errors import PolicyError
from nac.registry.oui import Registry, VendorMatch, normalize_name, parse_manuf, registry_name
from nac.render import Record

REGISTRIES: Final = ("MA-L", "MA-M", "MA-S", "IAB")
IEEE_HEADER: Final = ("Registry", "Assignment", "Organization Name", "Organization Address")
#: Hex digits of an assignment per registry: 24, 28 and 36 bits.
_DIGITS: Final = {"MA-L": 6, "MA-M": 7, "MA-S": 9, "IAB": 9}
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")
#: IEEE CSV files are small (oui.csv is ~4 MB); a guard against being handed a disk image.
MAX_FILE_BYTES: Final = 64 * 1024 * 1024


class Assignment(NamedTuple):
    """One block as a registry file states it (the shape :class:`nac.oui.Registry` takes)."""

    prefix: int
    bits: int
    organization: str
    registry: str


@dataclass(frozen=True, kw_only=True)
class RegistryFile:
    """A validated registry file: its assignments and which registries it speaks for."""

    name: str
    format: str  # "ieee-csv" or "manuf"
    sha256: str
    assignments: tuple[Assignment, ...]
    duplicates: int  # repeated blocks, the first kept (old IEEE files list a few twice)

    @property
    def registries(self) -> frozenset[str]:
        return frozenset(a.registry for a in self.assignments)


def parse_registry_file(data: bytes, *, name: str) -> RegistryFile:
    """Validate one file (IEEE CSV or manuf, told apart by the first line) and return it."""
    if len(data) > MAX_FILE_BYTES:
        raise PolicyError(f"{name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; not a registry file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError(f"{name}, line {line}: not UTF-8 text ({exc.reason})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    if name.lower().endswith(".csv") or first.startswith("Registry,"):
        kind, rows = "ieee-csv", list(_parse_ieee_csv(text, origin=name))
    else:
        kind = "manuf"
        rows = [Assignment(p, b, org, registry_name(p, b)) for p, b, org in parse_manuf(text, origin=name)]
    if not rows:
        raise PolicyError(f"{name}: no assignments in the file")
    seen: set[tuple[int, int]] = set()
    kept: list[Assignment] = []
    for row in rows:
        key = (row.prefix, row.bits)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return RegistryFile(
        name=name,
        format=kind,
        sha256=hashlib.sha256(data).hexdigest(),
        assignments=tuple(kept),
        duplicates=len(rows) - len(kept),
    )


def _parse_ieee_csv(text: str, *, origin: str) -> Iterable[Assignment]:
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines, strict=True)
    start = 1
    header = True
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            detail = "a quoted field is not closed" if "end of data" in str(exc) else str(exc)
            raise PolicyError(f"{origin}, line {start}: {detail}") from None
        where = f"{origin}, line {start}"
        if header:
            header = False
            if tuple(cell.strip() for cell in row) != IEEE_HEADER:
                raise PolicyError(f"{where}: the header must be {','.join(IEEE_HEADER)}, not {','.join(row)}")
            continue
        if not any(cell.strip() for cell in row):
            continue
        yield _assignment(row, where)


def _assignment(row: Sequence[str], where: str) -> Assignment:
    if len(row) != len(IEEE_HEADER):
        raise PolicyError(f"{where}: {len(row)} fields; an IEEE registry row has {len(IEEE_HEADER)}")
    registry, digits, organization = row[0].strip(), row[1].strip(), " ".join(row[2].split())
    if registry not in _DIGITS:
        raise PolicyError(f"{where}: registry {registry!r} is not one of {', '.join(REGISTRIES)}")
    if not _HEX_RE.fullmatch(digits):
        raise PolicyError(f"{where}: assignment {digits!r} is not hexadecimal")
    if len(digits) != _DIGITS[registry]:
        raise PolicyError(
            f"{where}: a {registry} assignment has {_DIGITS[registry]} hex digits, "
            f"{digits!r} has {len(digits)}"
        )
    if not organization:
        raise PolicyError(f"{where}: no organisation name")
    return Assignment(int(digits, 16), len(digits) * 4, organization, registry)


def merge(base: Registry, files: Sequence[RegistryFile]) -> tuple[list[Assignment], list[str]]:
    """The entries after an import: each registry the files contain is replaced whole by the
    files' entries; the others stay as they are.  Also returns the replaced registries."""
    replaced = sorted(set().union(*(f.registries for f in files)), key=REGISTRIES.index)
    kept = (
        Assignment(e.prefix, e.prefix_bits, e.organization, e.registry)
        for e in base.entries
        if e.registry not in replaced
    )
    out: list[Assignment] = []
    taken: set[tuple[int, int]] = set()
    for a in (*kept, *(a for f in files for a in f.assignments)):
        if (a.prefix, a.bits) not in taken:  # one block, one assignee: the first wins
            taken.add((a.prefix, a.bits))
            out.append(a)
    return out, replaced


def files_sha256(files: Sequence[RegistryFile]) -> str:
    """One digest for a set of files, independent of the order they were named in."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.sha256):
        digest.update(bytes.fromhex(f.sha256))
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class RegistryDiff:
    added: list[VendorMatch]  # entries of the new registry
    removed: list[VendorMatch]  # entries of the old registry
    reassigned: list[tuple[VendorMatch, VendorMatch]]  # (old, new): another organisation
    renamed: list[tuple[VendorMatch, VendorMatch]]  # (old, new): the same name spelt differently


def diff_registries(old: Registry, new: Registry) -> RegistryDiff:
    added: list[VendorMatch] = []
    reassigned: list[tuple[VendorMatch, VendorMatch]] = []
    renamed: list[tuple[VendorMatch, VendorMatch]] = []
    for entry in new.entries:
        before = old.get(entry.prefix, entry.prefix_bits)
        if before is None:
            added.append(entry)
        elif before.organization != entry.organization:
            if normalize_name(before.organization) == normalize_name(entry.organization):
                renamed.append((before, entry))
            else:
                reassigned.append((before, entry))
    removed = [e for e in old.entries if new.get(e.prefix, e.prefix_bits) is None]
    return RegistryDiff(added=added, removed=removed, reassigned=reassigned, renamed=renamed)


@dataclass(frozen=True, kw_only=True)
class EntryRow(Record):
    """A registry assignment an import adds or removes."""

    prefix: str
    prefix_bits: int
    registry: str
    organization: str


@dataclass(frozen=True, kw_only=True)
class ChangeRow(Record):
    """A block an import gives to another organisation, or whose organisation it renames."""

    prefix: str
    prefix_bits: int
    registry: str
    old: str
    new: str


@dataclass(frozen=True, kw_only=True)
class RegistryChanges(Record):
    """One registry's (MA-L, ...) entries before and after an import, and what changed."""

    before: int
    after: int
    added: int
    removed: int
    reassigned: int
    renamed: int


def entry_row(entry: VendorMatch) -> EntryRow:
    return EntryRow(
        prefix=entry.prefix_text,
        prefix_bits=entry.prefix_bits,
        registry=entry.registry,
        organization=entry.organization,
    )


def change_rows(pairs: Iterable[tuple[VendorMatch, VendorMatch]]) -> list[ChangeRow]:
    return [
        ChangeRow(
            prefix=new.prefix_text,
            prefix_bits=new.prefix_bits,
            registry=new.registry,
            old=old.organization,
            new=new.organization,
        )
        for old, new in pairs
    ]


#: The share of the current entries one import may remove unless the operator says --replace.
#: IEEE assignments are almost never withdrawn, so a real update removes a handful of ~58,000
#: entries; losing more than 5 % at once means a truncated or partial file, not new data.
MAX_REMOVED_SHARE: Final = 0.05
#: Entries of each kind a summary names as examples (the full lists go to --json).
EXAMPLES: Final = 3


def by_registry(old: Registry, new: Registry, diff: RegistryDiff) -> dict[str, RegistryChanges]:
    """Per registry (MA-L, MA-M, MA-S, IAB): entries before and after, and how many were
    added, removed, reassigned to another organisation and renamed."""
    before, after = old.counts(), new.counts()
    added = Counter(e.registry for e in diff.added)
    removed = Counter(e.registry for e in diff.removed)
    reassigned = Counter(e.registry for _, e in diff.reassigned)
    renamed = Counter(e.registry for _, e in diff.renamed)
    return {
        name: RegistryChanges(
            before=before.get(name, 0),
            after=after.get(name, 0),
            added=added[name],
            removed=removed[name],
            reassigned=reassigned[name],
            renamed=renamed[name],
        )
        for name in REGISTRIES
        if name in before or name in after
    }


def removal_refusal(old: Registry, diff: RegistryDiff, *, sources: Sequence[str]) -> str | None:
    """Why an import must be confirmed with ``--replace`` (it removes more than
    :data:`MAX_REMOVED_SHARE` of the entries in force), or ``None`` when it may go ahead."""
    removed, total = len(diff.removed), len(old)
    if not total or removed <= MAX_REMOVED_SHARE * total:
        return None
    per_registry: dict[str, int] = {}
    for entry in diff.removed:
        per_registry[entry.registry] = per_registry.get(entry.registry, 0) + 1
    lost = ", ".join(f"{name} {per_registry[name]:,}" for name in REGISTRIES if name in per_registry)
    examples = "; ".join(f"{e.prefix_text} {e.organization}" for e in diff.removed[:EXAMPLES])
    return (
        f"refused: importing {' '.join(sources)} would remove {removed:,} of the {total:,} registry "
        f"entries in force ({removed / total:.1%}: {lost}; e.g. {examples}), more than the "
        f"{MAX_REMOVED_SHARE:.0%} one import may remove; nothing changed. Check that the files are "
        "complete, or give --replace to import them anyway (`nac oui rollback` undoes an import)"
    )
