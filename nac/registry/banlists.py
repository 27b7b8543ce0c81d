"""Ban lists: the lists governments publish (the US NDAA §889, the FCC Covered List...), each
with its document and date, resolved to vendor families; and what a list covers in a registry.

Pure: the caller reads the files (``nac/data/banlists.toml``, an operator's ``--lists FILE``)
and passes their text.  Every error names the file, the line and the list.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from nac.errors import PolicyError
from nac.registry.families import Family
from nac.registry.oui import Registry, normalize_name
from nac.render import Record
from nac.tomlfile import Locator

#: A list's name is part of its rules' ids (``ndaa-889-huawei``, at most 64 characters).
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_LIST_KEYS: Final = {"title", "issuer", "document", "url", "date", "basis", "entity"}
_REQUIRED: Final = ("title", "issuer", "document", "url", "date")
_ENTITY_KEYS: Final = {"name", "subsidiaries", "covers", "family", "out_of_scope"}


@dataclass(frozen=True, kw_only=True)
class Entity:
    """One entity as the document names it: enforced through a family, or out of scope."""

    name: str
    subsidiaries: str = ""  # what the document says of its subsidiaries and affiliates
    covers: str = ""  # what of it the document covers (equipment, services, purposes)
    family: str | None = None  # the family key (nac/data/families.toml)
    out_of_scope: str | None = None  # why a MAC-based rule cannot enforce it


@dataclass(frozen=True, kw_only=True)
class BanList:
    name: str
    title: str
    issuer: str
    document: str
    url: str
    date: str  # ISO 8601 day of the version recorded
    basis: str
    entities: tuple[Entity, ...]
    source: str  # the file it was read from

    @property
    def families(self) -> tuple[str, ...]:
        """The family keys the list names, in document order, once each."""
        return tuple(dict.fromkeys(e.family for e in self.entities if e.family is not None))

    def reason(self) -> str:
        """A rule's default reason: the list and its version, as the NAS and helpdesk see it."""
        return f"{self.name}: {self.title} ({self.date})"[:200]

    def evidence(self) -> dict[str, str]:
        """What an audit row records of the list: enough to find the document again."""
        return {
            "list": self.name,
            "issuer": self.issuer,
            "document": self.document,
            "url": self.url,
            "date": self.date,
            "source": self.source,
        }


def parse_banlists(text: str, *, origin: str, families: Mapping[str, Family]) -> dict[str, BanList]:
    """The lists in one file; a :class:`PolicyError` names every error in it, one a line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    loc = Locator(origin, text)
    errors: list[str] = []
    lists: dict[str, BanList] = {}
    for name, raw in data.items():
        found = _banlist(name, raw, loc, families, errors)
        if found is not None:
            lists[name] = found
    if not data:
        errors.append(f"{origin}: no lists (each list is a [NAME] table)")
    if errors:
        raise PolicyError("\n".join(errors))
    return lists


def _banlist(
    name: str, raw: Any, loc: Locator, families: Mapping[str, Family], errors: list[str]
) -> BanList | None:
    before = len(errors)

    def bad(key: str | None, message: str) -> None:
        errors.append(f"{loc.where(name, key)}: list {name}: {message}")

    if not _NAME_RE.fullmatch(name):
        bad(None, "a list's name is 1-40 lower-case letters, digits and -, starting with a letter or digit")
    if not isinstance(raw, dict):
        bad(None, "must be a table")
        return None
    for key in sorted(set(raw) - _LIST_KEYS):
        bad(key, "unknown setting")
    for key in _REQUIRED:
        if key not in raw:
            bad(None, f"{key} is missing (a list says who issued which document, where, and when)")
        elif key != "date" and not (isinstance(raw[key], str) and raw[key].strip()):
            bad(key, "must be a non-empty string")
    url = raw.get("url")
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        bad("url", f"{url!r} is not an http(s) address of the document")
    day = _date(raw.get("date")) if "date" in raw else ""
    if day is None:
        bad("date", "use the document's date as YYYY-MM-DD")
    raw_entities = raw.get("entity", [])
    if not isinstance(raw_entities, list) or not raw_entities:
        bad(None, f"names no entities: add [[{name}.entity]] tables")
        raw_entities = []
    entities = [e for i, r in enumerate(raw_entities) if (e := _entity(name, i, r, loc, families, errors))]
    if len(errors) > before:
        return None
    return BanList(
        name=name,
        title=_text(raw["title"]),
        issuer=_text(raw["issuer"]),
        document=_text(raw["document"]),
        url=raw["url"].strip(),
        date=day or "",
        basis=_text(raw.get("basis", "")),
        entities=tuple(entities),
        source=loc.path,
    )


def _entity(
    name: str, i: int, raw: Any, loc: Locator, families: Mapping[str, Family], errors: list[str]
) -> Entity | None:
    table = f"{name}.entity"
    where = f"list {name}: entity #{i + 1}"

    def bad(key: str | None, message: str) -> None:
        errors.append(f"{loc.where(table, key, i)}: {where}: {message}")

    if not isinstance(raw, dict):
        bad(None, "must be a table")
        return None
    before = len(errors)
    for key in sorted(set(raw) - _ENTITY_KEYS):
        bad(key, "unknown setting")
    for key in _ENTITY_KEYS & set(raw):
        if not (isinstance(raw[key], str) and raw[key].strip()):
            bad(key, "must be a non-empty string")
    if "name" not in raw:
        bad(None, "name is missing (the entity as the document names it)")
    if ("family" in raw) == ("out_of_scope" in raw):
        bad(None, "give either family (the vendor family that enforces it) or out_of_scope (why none can)")
    family = normalize_name(raw["family"]) if isinstance(raw.get("family"), str) else None
    if family and family not in families:
        bad("family", f"unknown family {raw['family']!r}; known families: {', '.join(sorted(families))}")
    if len(errors) > before:
        return None
    return Entity(
        name=_text(raw["name"]),
        subsidiaries=_text(raw.get("subsidiaries", "")),
        covers=_text(raw.get("covers", "")),
        family=family,
        out_of_scope=_text(raw["out_of_scope"]) if "out_of_scope" in raw else None,
    )


def _date(value: object) -> str | None:
    """A TOML date (``2018-08-13``) or the same as a string; None if it is neither."""
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            return None
    return None


def _text(value: str) -> str:
    return " ".join(value.split())


# -- what a list covers ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ListFamily(Record):
    """A family a list names: the entities it stands for, and its prefixes in the registry."""

    family: str
    name: str
    entities: list[str]
    prefixes: int
    registries: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class ListEntity(Record):
    """An entity the document names, as the document words it."""

    name: str
    subsidiaries: str
    covers: str
    family: str | None
    out_of_scope: str | None


@dataclass(frozen=True, kw_only=True)
class ListSummary(Record):
    """`nac vendors lists`: one list, its evidence, and how many prefixes it covers."""

    name: str
    title: str
    issuer: str
    date: str
    url: str
    source: str
    families: list[str]
    prefixes: int
    out_of_scope: list[str]


@dataclass(frozen=True, kw_only=True)
class ListReport(Record):
    """`nac vendors show-list NAME`: the evidence, then what the list covers family by family
    in the registry ``snapshot``, and the entities it names that no MAC rule can enforce."""

    name: str
    title: str
    issuer: str
    document: str
    url: str
    date: str
    source: str
    basis: str
    snapshot: str
    families: list[ListFamily]
    entities: list[ListEntity]
    prefixes: int


def covered_families(
    banlist: BanList, families: Mapping[str, Family], registry: Registry
) -> list[ListFamily]:
    out = []
    for key in banlist.families:
        family = families[key]
        counts = Counter(entry.registry for entry in family.covered(registry))
        out.append(
            ListFamily(
                family=key,
                name=family.name,
                entities=[e.name for e in banlist.entities if e.family == key],
                prefixes=counts.total(),
                registries=dict(counts),
            )
        )
    return out


def list_summary(banlist: BanList, families: Mapping[str, Family], registry: Registry) -> ListSummary:
    covered = covered_families(banlist, families, registry)
    return ListSummary(
        name=banlist.name,
        title=banlist.title,
        issuer=banlist.issuer,
        date=banlist.date,
        url=banlist.url,
        source=banlist.source,
        families=[f.family for f in covered],
        prefixes=sum(f.prefixes for f in covered),
        out_of_scope=[e.name for e in banlist.entities if e.out_of_scope is not None],
    )


def list_report(banlist: BanList, families: Mapping[str, Family], registry: Registry) -> ListReport:
    covered = covered_families(banlist, families, registry)
    return ListReport(
        name=banlist.name,
        title=banlist.title,
        issuer=banlist.issuer,
        document=banlist.document,
        url=banlist.url,
        date=banlist.date,
        source=banlist.source,
        basis=banlist.basis,
        snapshot=registry.snapshot.id,
        families=covered,
        entities=[
            ListEntity(
                name=e.name,
                subsidiaries=e.subsidiaries,
                covers=e.covers,
                family=e.family,
                out_of_scope=e.out_of_scope,
            )
            for e in banlist.entities
        ],
        prefixes=sum(f.prefixes for f in covered),
    )
