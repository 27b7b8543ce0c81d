"""What a vendor family covers, and what it may be missing (pure: a registry and families in).

`nac vendors show FAMILY` explains a family entry by entry; `nac vendors review` lists registry
organisations that look like a family but are not covered (they share a distinctive word with
it: "Shenzhen Honor Electronic" and Honor, "Shanghai Dahua Scale Factory" and Dahua) and, the
other way round, family patterns and prefixes that match nothing in the current registry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from nac.registry.families import Family
from nac.registry.oui import Registry, VendorMatch, format_prefix, normalize_name

#: A word found in more organisations than this says nothing about who a company is
#: ("technology", "shenzhen", "zhejiang", "device"); one in fewer does ("huawei", "dahua", "zte").
DISTINCTIVE_MAX: Final = 20
#: Shorter words are initials and fragments ("s", "ab", "co").
DISTINCTIVE_MIN_LEN: Final = 3
#: Words that never identify a company however rare they are in a (small) registry: legal
#: forms, trades and the places in the names of the families' own organisations.
GENERIC_WORDS: Final = frozenset(
    [
        "co",
        "ltd",
        "inc",
        "corp",
        "corporation",
        "company",
        "limited",
        "llc",
        "gmbh",
        "private",
        "pvt",
        "holdings",
        "group",
        "technology",
        "technologies",
        "tech",
        "electronic",
        "electronics",
        "communication",
        "communications",
        "device",
        "devices",
        "digital",
        "software",
        "system",
        "systems",
        "network",
        "networks",
        "mobile",
        "international",
        "industrial",
        "information",
        "intelligent",
        "electric",
        "solutions",
        "products",
        "science",
        "vision",
        "smart",
        "beijing",
        "shanghai",
        "shenzhen",
        "hangzhou",
        "zhejiang",
        "guangdong",
        "dongguan",
        "india",
        "china",
    ]
)


def summarize(entries: Iterable[VendorMatch]) -> list[dict[str, Any]]:
    """Organisations with their prefix counts per registry, most prefixes first."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        row = out.setdefault(
            entry.organization, {"organization": entry.organization, "prefixes": 0, "registries": {}}
        )
        row["prefixes"] += 1
        row["registries"][entry.registry] = row["registries"].get(entry.registry, 0) + 1
    return sorted(out.values(), key=lambda r: (-r["prefixes"], r["organization"]))


def _per_registry(entries: Iterable[VendorMatch]) -> dict[str, int]:
    return dict(Counter(entry.registry for entry in entries))


def _organizations(entries: Iterable[VendorMatch]) -> list[str]:
    return sorted({entry.organization for entry in entries})


def show(family: Family, registry: Registry) -> dict[str, Any]:
    """Everything a family is made of and exactly what it covers in ``registry``."""
    covered = family.covered(registry)
    patterns = []
    for text in family.organizations:
        hits = list(registry.matching(text))
        patterns.append({"pattern": text, "organizations": _organizations(hits), "prefixes": len(hits)})
    exclusions = []
    for text in family.exclude_organizations:
        hits = list(registry.matching(text))
        exclusions.append({"pattern": text, "organizations": _organizations(hits), "prefixes": len(hits)})
    return {
        "family": family.key,
        "name": family.name,
        "basis": family.basis,
        "organization_patterns": patterns,
        "prefixes": [_prefix_row(registry, prefix, bits) for prefix, bits in family.prefixes],
        "exclude_organizations": exclusions,
        "exclude_prefixes": [_prefix_row(registry, prefix, bits) for prefix, bits in family.exclude_prefixes],
        "review_words": sorted(review_words(family, registry)),
        "covered": summarize(covered),
        "total": {
            "organizations": len({e.organization for e in covered}),
            "prefixes": len(covered),
            "registries": _per_registry(covered),
        },
        "snapshot": registry.snapshot.id,
    }


def _prefix_row(registry: Registry, prefix: int, bits: int) -> dict[str, Any]:
    entry = registry.get(prefix, bits)
    return {
        "prefix": format_prefix(prefix, bits),
        "prefix_bits": bits,
        "organization": entry.organization if entry else None,
        "registry": entry.registry if entry else None,
    }


def _document_frequency(registry: Registry) -> Counter[str]:
    df: Counter[str] = Counter()
    for tokens in registry.organizations().values():
        df.update(set(tokens))
    return df


def review_words(family: Family, registry: Registry, df: Mapping[str, int] | None = None) -> set[str]:
    """The words that mark a look-alike of ``family``: its own ``review_words`` if the data file
    gives them, else the distinctive words of its organisation patterns."""
    if family.review_words:
        return {normalize_name(w) for w in family.review_words}
    df = _document_frequency(registry) if df is None else df
    return {
        word
        for text in family.organizations
        for word in normalize_name(text).split()
        if len(word) >= DISTINCTIVE_MIN_LEN
        and word not in GENERIC_WORDS
        and df.get(word, 0) <= DISTINCTIVE_MAX
    }


def look_alikes(
    family: Family, registry: Registry, *, covered: set[int], df: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Organisations sharing a distinctive word with ``family`` that it does not cover."""
    words = review_words(family, registry, df)
    excluded = {e.organization for text in family.exclude_organizations for e in registry.matching(text)}
    out: dict[str, dict[str, Any]] = {}
    for entry in registry.entries:
        if entry.position in covered:
            continue
        tokens = registry.organizations()[entry.organization]
        shared = sorted(words.intersection(tokens))
        if not shared:
            continue
        row = out.setdefault(
            entry.organization,
            {
                "family": family.key,
                "organization": entry.organization,
                "shared_words": shared,
                "excluded": entry.organization in excluded,
                "prefixes": 0,
                "registries": {},
            },
        )
        row["prefixes"] += 1
        row["registries"][entry.registry] = row["registries"].get(entry.registry, 0) + 1
    return sorted(out.values(), key=lambda r: (r["excluded"], r["organization"]))


def review(families: Mapping[str, Family], registry: Registry) -> dict[str, Any]:
    """Look-alikes no family covers, and family entries that match nothing any more."""
    df = _document_frequency(registry)
    uncovered: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    for family in families.values():
        covered = {e.position for e in family.covered(registry)}
        uncovered.extend(look_alikes(family, registry, covered=covered, df=df))
        unmatched.extend(_unmatched(family, registry))
    return {"uncovered": uncovered, "unmatched": unmatched, "snapshot": registry.snapshot.id}


def _unmatched(family: Family, registry: Registry) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for field, texts in (
        ("organizations", family.organizations),
        ("exclude_organizations", family.exclude_organizations),
    ):
        for text in texts:
            if next(registry.matching(text), None) is None:
                out.append({"family": family.key, "field": field, "value": text})
    for field, prefixes in (("prefixes", family.prefixes), ("exclude_prefixes", family.exclude_prefixes)):
        for prefix, bits in prefixes:
            if registry.get(prefix, bits) is None:
                out.append({"family": family.key, "field": field, "value": format_prefix(prefix, bits)})
    return out


def watch_list(
    entries: Sequence[VendorMatch],
    *,
    registry: Registry,
    covered_by: Mapping[str, set[int]],
    targeted: Mapping[str, Family],
) -> list[dict[str, Any]]:
    """Which of ``entries`` (new or reassigned in ``registry``) a vendor rule now covers
    (``covered_by``: rule id → covered positions), or look like a family some rule targets
    (``targeted``) without being covered by it: both need an operator's eye after an import."""
    df = _document_frequency(registry)
    families = {
        key: (review_words(family, registry, df), {e.position for e in family.covered(registry)})
        for key, family in targeted.items()
    }
    out: list[dict[str, Any]] = []
    for entry in entries:
        rules = sorted(rule for rule, positions in covered_by.items() if entry.position in positions)
        tokens = set(registry.organizations()[entry.organization])
        looks_like = sorted(
            key
            for key, (words, covered) in families.items()
            if words & tokens and entry.position not in covered
        )
        if rules or looks_like:
            out.append(
                {
                    "prefix": entry.prefix_text,
                    "prefix_bits": entry.prefix_bits,
                    "registry": entry.registry,
                    "organization": entry.organization,
                    "rules": rules,
                    "looks_like": looks_like,
                }
            )
    return out
