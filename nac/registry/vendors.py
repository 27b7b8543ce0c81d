"""What a vendor family covers, and what it may be missing (pure: a registry and families in).

`nac vendors show FAMILY` explains a family entry by entry; `nac vendors review` lists registry
organisations that look like a family but are not covered (they share a distinctive word with
it: "Shenzhen Honor Electronic" and Honor, "Shanghai Dahua Scale Factory" and Dahua) and, the
other way round, family patterns and prefixes that match nothing in the current registry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from nac.registry.families import Family
from nac.registry.oui import Registry, VendorMatch, format_prefix, normalize_name
from nac.render import Record

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


@dataclass(frozen=True, kw_only=True)
class OrganizationCount(Record):
    """An organisation and how many prefixes it holds, per registry (MA-L, MA-M, ...)."""

    organization: str
    prefixes: int
    registries: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class PatternHits(Record):
    """A family's organisation pattern (or exclusion) and what it matches in the registry."""

    pattern: str
    organizations: list[str]
    prefixes: int


@dataclass(frozen=True, kw_only=True)
class PrefixEntry(Record):
    """A family's prefix (or excluded prefix) and who the registry assigns it to, if anyone."""

    prefix: str
    prefix_bits: int
    organization: str | None
    registry: str | None


@dataclass(frozen=True, kw_only=True)
class Coverage(Record):
    """What a family covers in all: organisations, prefixes, prefixes per registry."""

    organizations: int
    prefixes: int
    registries: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class FamilyReport(Record):
    """`nac vendors show`: a family's basis, patterns, prefixes and exclusions with what each
    matches, the words that mark its look-alikes, and what it covers in the registry."""

    family: str
    name: str
    basis: str
    organization_patterns: list[PatternHits]
    prefixes: list[PrefixEntry]
    exclude_organizations: list[PatternHits]
    exclude_prefixes: list[PrefixEntry]
    review_words: list[str]
    covered: list[OrganizationCount]
    total: Coverage
    snapshot: str


@dataclass(frozen=True, kw_only=True)
class LookAlike(Record):
    """An organisation sharing a distinctive word with a family that does not cover it
    (``excluded``: the family excludes it on purpose)."""

    family: str
    organization: str
    shared_words: list[str]
    excluded: bool
    prefixes: int
    registries: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class UnmatchedEntry(Record):
    """A family entry (``field``: organizations, prefixes or an exclusion) matching nothing."""

    family: str
    field: str
    value: str


@dataclass(frozen=True, kw_only=True)
class VendorReview(Record):
    """`nac vendors review`: look-alikes no family covers, entries matching nothing."""

    uncovered: list[LookAlike]
    unmatched: list[UnmatchedEntry]
    snapshot: str


@dataclass(frozen=True, kw_only=True)
class WatchEntry(Record):
    """A new or reassigned prefix after an import that a vendor rule now covers (``rules``) or
    that looks like a targeted family without being covered by it (``looks_like``)."""

    prefix: str
    prefix_bits: int
    registry: str
    organization: str
    rules: list[str]
    looks_like: list[str]


def _per_organization(entries: Iterable[VendorMatch]) -> dict[str, Counter[str]]:
    """Prefix counts per registry, by organisation, in first-seen order."""
    out: dict[str, Counter[str]] = {}
    for entry in entries:
        out.setdefault(entry.organization, Counter())[entry.registry] += 1
    return out


def summarize(entries: Iterable[VendorMatch]) -> list[OrganizationCount]:
    """Organisations with their prefix counts per registry, most prefixes first."""
    rows = [
        OrganizationCount(organization=org, prefixes=counts.total(), registries=dict(counts))
        for org, counts in _per_organization(entries).items()
    ]
    return sorted(rows, key=lambda r: (-r.prefixes, r.organization))


def _per_registry(entries: Iterable[VendorMatch]) -> dict[str, int]:
    return dict(Counter(entry.registry for entry in entries))


def _organizations(entries: Iterable[VendorMatch]) -> list[str]:
    return sorted({entry.organization for entry in entries})


def show(family: Family, registry: Registry) -> FamilyReport:
    """Everything a family is made of and exactly what it covers in ``registry``."""
    covered = family.covered(registry)
    patterns = []
    for text in family.organizations:
        hits = list(registry.matching(text))
        patterns.append(PatternHits(pattern=text, organizations=_organizations(hits), prefixes=len(hits)))
    exclusions = []
    for text in family.exclude_organizations:
        hits = list(registry.matching(text))
        exclusions.append(PatternHits(pattern=text, organizations=_organizations(hits), prefixes=len(hits)))
    return FamilyReport(
        family=family.key,
        name=family.name,
        basis=family.basis,
        organization_patterns=patterns,
        prefixes=[_prefix_row(registry, prefix, bits) for prefix, bits in family.prefixes],
        exclude_organizations=exclusions,
        exclude_prefixes=[_prefix_row(registry, prefix, bits) for prefix, bits in family.exclude_prefixes],
        review_words=sorted(review_words(family, registry)),
        covered=summarize(covered),
        total=Coverage(
            organizations=len({e.organization for e in covered}),
            prefixes=len(covered),
            registries=_per_registry(covered),
        ),
        snapshot=registry.snapshot.id,
    )


def _prefix_row(registry: Registry, prefix: int, bits: int) -> PrefixEntry:
    entry = registry.get(prefix, bits)
    return PrefixEntry(
        prefix=format_prefix(prefix, bits),
        prefix_bits=bits,
        organization=entry.organization if entry else None,
        registry=entry.registry if entry else None,
    )


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
) -> list[LookAlike]:
    """Organisations sharing a distinctive word with ``family`` that it does not cover."""
    words = review_words(family, registry, df)
    excluded = {e.organization for text in family.exclude_organizations for e in registry.matching(text)}
    tokens = registry.organizations()
    shared: dict[str, list[str]] = {}
    hits: list[VendorMatch] = []
    for entry in registry.entries:
        if entry.position in covered:
            continue
        if entry.organization not in shared:
            shared[entry.organization] = sorted(words.intersection(tokens[entry.organization]))
        if shared[entry.organization]:
            hits.append(entry)
    rows = [
        LookAlike(
            family=family.key,
            organization=org,
            shared_words=shared[org],
            excluded=org in excluded,
            prefixes=counts.total(),
            registries=dict(counts),
        )
        for org, counts in _per_organization(hits).items()
    ]
    return sorted(rows, key=lambda r: (r.excluded, r.organization))


def review(families: Mapping[str, Family], registry: Registry) -> VendorReview:
    """Look-alikes no family covers, and family entries that match nothing any more."""
    df = _document_frequency(registry)
    uncovered: list[LookAlike] = []
    unmatched: list[UnmatchedEntry] = []
    for family in families.values():
        covered = {e.position for e in family.covered(registry)}
        uncovered.extend(look_alikes(family, registry, covered=covered, df=df))
        unmatched.extend(_unmatched(family, registry))
    return VendorReview(uncovered=uncovered, unmatched=unmatched, snapshot=registry.snapshot.id)


def _unmatched(family: Family, registry: Registry) -> list[UnmatchedEntry]:
    out: list[UnmatchedEntry] = []
    for field, texts in (
        ("organizations", family.organizations),
        ("exclude_organizations", family.exclude_organizations),
    ):
        for text in texts:
            if next(registry.matching(text), None) is None:
                out.append(UnmatchedEntry(family=family.key, field=field, value=text))
    for field, prefixes in (("prefixes", family.prefixes), ("exclude_prefixes", family.exclude_prefixes)):
        for prefix, bits in prefixes:
            if registry.get(prefix, bits) is None:
                out.append(UnmatchedEntry(family=family.key, field=field, value=format_prefix(prefix, bits)))
    return out


def watch_list(
    entries: Sequence[VendorMatch],
    *,
    registry: Registry,
    covered_by: Mapping[str, set[int]],
    targeted: Mapping[str, Family],
) -> list[WatchEntry]:
    """Which of ``entries`` (new or reassigned in ``registry``) a vendor rule now covers
    (``covered_by``: rule id → covered positions), or look like a family some rule targets
    (``targeted``) without being covered by it: both need an operator's eye after an import."""
    df = _document_frequency(registry)
    families = {
        key: (review_words(family, registry, df), {e.position for e in family.covered(registry)})
        for key, family in targeted.items()
    }
    out: list[WatchEntry] = []
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
                WatchEntry(
                    prefix=entry.prefix_text,
                    prefix_bits=entry.prefix_bits,
                    registry=entry.registry,
                    organization=entry.organization,
                    rules=rules,
                    looks_like=looks_like,
                )
            )
    return out
