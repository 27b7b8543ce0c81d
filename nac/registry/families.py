"""Vendor families: the companies bans name, resolved to registry entries.

Pure: the caller reads the data file (``nac/data/families.toml``) and passes its text.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from nac.errors import InvalidPrefixError, PolicyError
from nac.registry.oui import Registry, VendorMatch, normalize_name, parse_prefix

_KEYS: Final = {
    "name",
    "organizations",
    "prefixes",
    "exclude_organizations",
    "exclude_prefixes",
    "review_words",
    "basis",
}


@dataclass(frozen=True, kw_only=True)
class Family:
    key: str  # the normalised name a `--vendor` rule uses
    name: str
    organizations: tuple[str, ...]
    prefixes: tuple[tuple[int, int], ...] = ()
    exclude_organizations: tuple[str, ...] = ()
    exclude_prefixes: tuple[tuple[int, int], ...] = ()
    #: Words that mark a look-alike for `nac vendors review` (default: the distinctive words
    #: of ``organizations``).
    review_words: tuple[str, ...] = ()
    basis: str = ""

    def covered(self, registry: Registry) -> list[VendorMatch]:
        """Entries this family covers in ``registry``, in registry order."""
        excluded_orgs = {e.position for text in self.exclude_organizations for e in registry.matching(text)}
        excluded = set(self.exclude_prefixes)
        positions = {e.position for text in self.organizations for e in registry.matching(text)}
        for prefix, bits in self.prefixes:
            entry = registry.get(prefix, bits)
            if entry is not None:
                positions.add(entry.position)
        return [
            registry.entries[p]
            for p in sorted(positions)
            if p not in excluded_orgs
            and (registry.entries[p].prefix, registry.entries[p].prefix_bits) not in excluded
        ]


def parse_families(text: str, *, origin: str) -> dict[str, Family]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    families: dict[str, Family] = {}
    for key, raw in data.items():
        families[normalize_name(key)] = _family(key, raw, origin)
    return families


def _family(key: str, raw: Mapping[str, Any], origin: str) -> Family:
    where = f"{origin}: [{key}]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")

    def texts(name: str) -> tuple[str, ...]:
        value = raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and normalize_name(v) for v in value):
            raise PolicyError(f"{where}: {name} must be a list of names")
        return tuple(value)

    def prefixes(name: str) -> tuple[tuple[int, int], ...]:
        try:
            return tuple(parse_prefix(p) for p in texts(name))
        except InvalidPrefixError as exc:
            raise PolicyError(f"{where}: {name}: {exc}") from None

    family = Family(
        key=normalize_name(key),
        name=str(raw.get("name", key)),
        organizations=texts("organizations"),
        prefixes=prefixes("prefixes"),
        exclude_organizations=texts("exclude_organizations"),
        exclude_prefixes=prefixes("exclude_prefixes"),
        review_words=texts("review_words"),
        basis=" ".join(str(raw.get("basis", "")).split()),
    )
    if not family.organizations and not family.prefixes:
        raise PolicyError(f"{where}: names no organizations or prefixes")
    return family
