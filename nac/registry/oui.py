"""The IEEE registry in memory: longest-prefix lookup of a MAC's assignee (36 → 28 → 24 bits).

MA-M (28-bit) and MA-S / IAB (36-bit) blocks sit under 24-bit prefixes that belong to the IEEE
itself, so a lookup tries the longest block first (IEEE Std 802, the registration authority's MA-M and MA-S).
Parsing is pure: the caller reads the file and passes its text.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final, NamedTuple

from nac.errors import InvalidPrefixError, PolicyError

PREFIX_BITS: Final = (36, 28, 24)
#: 36-bit blocks under these 24-bit prefixes are the closed IAB registry, the rest MA-S.
_IAB_PARENTS: Final = frozenset({0x0050C2, 0x40D855})
_PRIVATE: Final = "private"
_PREFIX_SEPARATORS: Final = str.maketrans("", "", ":-.")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")
_TOKEN_RE: Final = re.compile(r"[0-9a-z]+")
_WORD_GAP: Final = r"[^0-9a-z\n]+"
_MANUF_24_RE: Final = re.compile(r"[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}")


#: ``(prefix, bits, organization)``, optionally with the registry (``"MA-S"``, ``"IAB"``, ...).
Entry = tuple[int, int, str] | tuple[int, int, str, str]


class VendorMatch(NamedTuple):
    """One registry assignment: the block a MAC falls in and who it is assigned to."""

    prefix: int  # the block's value, ``prefix_bits`` wide
    prefix_bits: int  # 24, 28 or 36
    organization: str  # as the registry spells it
    registry: str  # "MA-L", "MA-M", "MA-S" or "IAB"
    position: int  # position in the registry's entry list (for per-entry tables)
    prefix_text: str  # format_prefix(prefix, prefix_bits), computed once: it goes into every row

    @property
    def private(self) -> bool:
        """A confidential assignment: the IEEE publishes no assignee (shown as "Private")."""
        return self.organization.strip().lower() == _PRIVATE


def registry_name(prefix: int, bits: int) -> str:
    if bits == 24:
        return "MA-L"
    if bits == 28:
        return "MA-M"
    return "IAB" if prefix >> 12 in _IAB_PARENTS else "MA-S"


def format_prefix(prefix: int, bits: int) -> str:
    """``00:E0:FC`` (24 bits), ``70:B3:D5:1`` (28), ``70:B3:D5:12:3`` (36)."""
    d = f"{prefix:0{bits // 4}X}"
    # Slices rather than a generator: this runs for every one of ~58,000 entries at start-up.
    return ":".join([d[0:2], d[2:4], d[4:6], d[6:8], d[8:10]][: (len(d) + 1) // 2])


def parse_prefix(text: str) -> tuple[int, int]:
    """A 24-, 28- or 36-bit prefix in any common spelling → ``(prefix, bits)``.

    Accepts ``00:E0:FC``, ``00e0fc``, ``00-E0-FC``, ``70-B3-D5-1``, ``70B3D5123``, and
    Wireshark's ``70:B3:D5:12:30:00/36``.
    """
    raw = text.strip()
    bits: int | None = None
    if "/" in raw:
        raw, _, width = raw.partition("/")
        if width not in ("24", "28", "36"):
            raise InvalidPrefixError(f"{text!r}: prefix length must be 24, 28 or 36 bits")
        bits = int(width)
    digits = raw.translate(_PREFIX_SEPARATORS)
    if not _HEX_RE.fullmatch(digits):
        raise InvalidPrefixError(f"{text!r} is not a hexadecimal IEEE prefix (e.g. 00:E0:FC, 70-B3-D5-1)")
    if bits is None:
        if len(digits) not in (6, 7, 9):
            raise InvalidPrefixError(
                f"{text!r} has {len(digits)} hex digits; an IEEE prefix has 6 (MA-L, 24 bits), "
                "7 (MA-M, 28 bits) or 9 (MA-S, 36 bits)"
            )
        bits = len(digits) * 4
    else:
        nibbles = bits // 4
        if len(digits) < nibbles or int(digits[nibbles:] or "0", 16) != 0:
            raise InvalidPrefixError(f"{text!r}: bits beyond /{bits} must be zero")
        digits = digits[:nibbles]
    return int(digits, 16), bits


def normalize_name(name: str) -> str:
    """Case- and punctuation-insensitive form of an organisation name: lower-case words."""
    return " ".join(_TOKEN_RE.findall(name.lower()))


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Where the registry data came from; its ``id`` is written into every history row."""

    source: str
    date: str
    sha256: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.source}@{self.sha256[:12]}"


class Registry:
    """Registry entries with one dict per prefix length; immutable once built.

    A rebuilt registry replaces the old one as a whole (one reference swap), so a lookup
    never sees half an import.
    """

    def __init__(self, entries: Iterable[Entry], snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.entries: list[VendorMatch] = []
        by_bits: dict[int, dict[int, VendorMatch]] = {bits: {} for bits in PREFIX_BITS}
        # One string object per organisation and per registry name: rows read from SQLite
        # bring a copy each, and the server keeps every entry for its lifetime.
        shared: dict[str, str] = {}
        for entry in entries:
            prefix, bits, org = entry[0], entry[1], shared.setdefault(entry[2], entry[2])
            # An IEEE CSV names the registry; a manuf file leaves it to be worked out.
            kind = shared.setdefault(entry[3], entry[3]) if len(entry) > 3 else registry_name(prefix, bits)
            match = VendorMatch(prefix, bits, org, kind, len(self.entries), format_prefix(prefix, bits))
            self.entries.append(match)
            by_bits[bits][prefix] = match
        self._m36 = by_bits[36]
        self._m28 = by_bits[28]
        self._m24 = by_bits[24]
        self._org_tokens: dict[str, tuple[str, ...]] | None = None
        self._search: _SearchIndex | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, mac: int) -> VendorMatch | None:
        """The assignment whose block holds ``mac``: 36-bit first, then 28, then 24."""
        return self._m36.get(mac >> 12) or self._m28.get(mac >> 20) or self._m24.get(mac >> 24)

    def get(self, prefix: int, bits: int) -> VendorMatch | None:
        """The assignment of exactly this block, if any."""
        return {36: self._m36, 28: self._m28, 24: self._m24}[bits].get(prefix)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.entries:
            out[entry.registry] = out.get(entry.registry, 0) + 1
        return out

    def organizations(self) -> dict[str, tuple[str, ...]]:
        """Each distinct organisation spelling → its normalised words (computed once)."""
        if self._org_tokens is None:
            findall = _TOKEN_RE.findall  # normalize_name's words, without the join and re-split
            orgs = dict.fromkeys(e.organization for e in self.entries)
            self._org_tokens = {org: tuple(findall(org.lower())) for org in orgs}
        return self._org_tokens

    def matching(self, text: str) -> Iterator[VendorMatch]:
        """Entries whose organisation contains ``text`` as whole words, in order.

        "huawei" matches "HUAWEI TECHNOLOGIES CO.,LTD" and "Huawei Device Co., Ltd." but not
        "Shuaweiyuan Ltd"; "dahua" matches "Shanghai Dahua Scale Factory" (vendor families
        carry the exclusions for such false friends).
        """
        words = normalize_name(text).split()
        if not words:
            return
        index = self._search_index()
        # Whole words in order, separated by anything but a letter, a digit or the newline that
        # ends each organisation: the same match as comparing normalize_name() word lists, done
        # by one regex pass in C over every name instead of Python code per organisation.
        phrase = _WORD_GAP.join(map(re.escape, words))
        pattern = re.compile(rf"(?<![0-9a-z]){phrase}(?![0-9a-z])")
        starts, first, order = index.starts, index.first, index.order
        hits = {bisect_right(starts, m.start()) - 1 for m in pattern.finditer(index.joined)}
        entries = self.entries
        for position in sorted(p for i in hits for p in order[first[i] : first[i + 1]]):
            yield entries[position]

    def _search_index(self) -> _SearchIndex:
        """Built once, on the first vendor lookup (see :class:`_SearchIndex`)."""
        if self._search is None:
            number: dict[str, int] = {}  # organisation -> its number, in order of first entry
            owner = [number.setdefault(entry.organization, len(number)) for entry in self.entries]
            sizes = [0] * len(number)
            for i in owner:
                sizes[i] += 1
            lowered = [org.lower().replace("\n", " ") for org in number]
            self._search = _SearchIndex(
                joined="\n".join(lowered),
                starts=array("I", accumulate((len(name) + 1 for name in lowered[:-1]), initial=0)),
                first=array("I", accumulate(sizes, initial=0)),
                # sorted() is stable: each organisation's positions stay in registry order.
                order=array("I", sorted(range(len(owner)), key=owner.__getitem__)),
            )
        return self._search


class _SearchIndex(NamedTuple):
    """Every organisation lower-cased in one string, one per line, and the entries of each.

    Organisation ``i`` (numbered in order of its first entry) starts at ``joined[starts[i]]``;
    its entries' positions are ``order[first[i] : first[i + 1]]``.  Flat arrays rather than a
    dict of lists of ints: far less memory, and the server keeps the index as long as the registry.
    """

    joined: str
    starts: array[int]
    first: array[int]
    order: array[int]


def parse_manuf(text: str, *, origin: str = "manuf") -> Iterator[tuple[int, int, str]]:
    """Entries of Wireshark's ``manuf`` file: ``00:55:DA:10/28<TAB>Short<TAB>Full name``.

    Raises :class:`PolicyError` naming the origin and line for a line that does not parse.
    """
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        block = fields[0].strip()
        name = fields[2].strip() if len(fields) > 2 and fields[2].strip() else fields[-1].strip()
        if _MANUF_24_RE.fullmatch(block):  # most lines: a plain MA-L prefix, parsed directly
            prefix, bits = int(block.replace(":", ""), 16), 24
        else:
            try:
                if "/" not in block:
                    block += "/24"
                prefix, bits = parse_prefix(block)
            except InvalidPrefixError as exc:
                raise PolicyError(f"{origin}, line {lineno}: {exc}") from None
        if not name or len(fields) < 2:
            raise PolicyError(f"{origin}, line {lineno}: no organisation name")
        yield prefix, bits, name


def registry_from_manuf(text: str, *, source: str, date: str) -> Registry:
    data = text.encode()
    entries = list(parse_manuf(text, origin=source))
    snapshot = Snapshot(source=source, date=date, sha256=hashlib.sha256(data).hexdigest())
    registry = Registry(entries, snapshot)
    object.__setattr__(snapshot, "counts", registry.counts())
    return registry
