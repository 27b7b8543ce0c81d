"""Manufacturer signatures, and who made a device by what it says: pure.

A signature names a field (``vendor_class``, ``hostname``, ``fingerprint``, ``user_class``,
``fqdn``), a case-insensitive glob pattern, the vendor family it indicates and its strength.
A *strong* signature decides alone (a vendor class that only one maker's software sends); a
*weak* one (a host name, which a user can set) decides only with support: weak matches for the
same family from two different kinds of signal (a name, a class string, a fingerprint) and no
match for any other family.  Two families with strong matches decide nothing: the evidence is
kept and shown, and the device is treated as unprofiled.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path
from typing import Any, Final

from nac.errors import ConfigError, PolicyError
from nac.registry.oui import normalize_name

FIELDS: Final = (
    "vendor_class",
    "hostname",
    "fingerprint",
    "user_class",
    "fqdn",
    "lldp_description",
    "cdp_platform",
    "device_type",
)
STRENGTHS: Final = ("strong", "weak")
#: Fields that carry the same signal: a client's FQDN usually repeats its host name, so the
#: two together are not independent support for a weak match.
_SIGNAL: Final = {
    "hostname": "name",
    "fqdn": "name",
    "vendor_class": "class",
    "user_class": "class",
    "fingerprint": "fingerprint",
    "lldp_description": "device",
    "cdp_platform": "device",
    "device_type": "device",
}
_KEYS: Final = {"family", "field", "pattern", "strength", "note"}
SHIPPED: Final = Path(__file__).resolve().parent.parent / "data" / "signatures.toml"


@dataclass(frozen=True, kw_only=True)
class Signature:
    family: str  # a vendor family key (nac/data/families.toml) or a normalised vendor name
    field: str
    pattern: str
    strength: str
    note: str = ""
    origin: str = ""  # the file it came from, for `nac profile signatures`

    def __post_init__(self) -> None:
        where = f"{self.origin}: signature {self.pattern!r}" if self.origin else f"signature {self.pattern!r}"
        if self.field not in FIELDS:
            raise PolicyError(f"{where}: field must be one of {', '.join(FIELDS)}, not {self.field!r}")
        if self.strength not in STRENGTHS:
            raise PolicyError(f"{where}: strength must be strong or weak, not {self.strength!r}")
        if not normalize_name(self.family):
            raise PolicyError(f"{where}: family must name a vendor")
        if not self.pattern.strip("*?"):
            raise PolicyError(f"{where}: a pattern of wildcards only would match every device")
        object.__setattr__(self, "_regex", re.compile(translate(self.pattern.lower()), re.DOTALL))

    def matches(self, value: str) -> bool:
        regex: re.Pattern[str] = self.__dict__["_regex"]
        return regex.match(value.lower()) is not None


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One field's value and the signature it matched."""

    field: str
    value: str
    family: str
    strength: str
    pattern: str
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who made the device, as far as its signals say (``family`` None: not decided)."""

    family: str | None
    evidence: tuple[Evidence, ...] = ()
    #: Strong signatures of two families matched: nothing is decided.
    ambiguous: bool = False

    def summary(self) -> str:
        """The deciding evidence in one line, for history's reason and `nac check`."""
        shown = [e for e in self.evidence if e.family == self.family] or list(self.evidence)
        return "; ".join(f"{e.field} {e.value!r} matches {e.pattern!r} ({e.strength})" for e in shown)


def load_signatures(extra: str | None = None) -> list[Signature]:
    """The shipped signatures (``nac/data/signatures.toml``), then an operator's file."""
    path = SHIPPED
    signatures = parse_signatures(path.read_text(encoding="utf-8"), origin=str(path))
    if extra is not None:
        try:
            text = Path(extra).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{extra}: cannot read the signatures file: {exc.strerror}") from None
        signatures += parse_signatures(text, origin=extra)
    return signatures


def identify(fields: Mapping[str, str], signatures: Iterable[Signature]) -> Identity:
    """The family that ``fields`` (field name -> value) indicate under ``signatures``."""
    evidence = tuple(
        Evidence(
            field=sig.field,
            value=fields[sig.field],
            family=sig.family,
            strength=sig.strength,
            pattern=sig.pattern,
            note=sig.note,
        )
        for sig in signatures
        if sig.field in fields and sig.matches(fields[sig.field])
    )
    strong = {e.family for e in evidence if e.strength == "strong"}
    if len(strong) == 1:
        return Identity(family=strong.pop(), evidence=evidence)
    if strong:
        return Identity(family=None, evidence=evidence, ambiguous=True)
    signals: dict[str, set[str]] = {}
    for e in evidence:
        signals.setdefault(e.family, set()).add(_SIGNAL[e.field])
    if len(signals) == 1:
        family, kinds = next(iter(signals.items()))
        if len(kinds) >= 2:
            return Identity(family=family, evidence=evidence)
    return Identity(family=None, evidence=evidence)


def parse_signatures(text: str, *, origin: str) -> list[Signature]:
    """A signatures file: ``[[signature]]`` tables with the keys of :class:`Signature`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    unknown = set(data) - {"signature"}
    if unknown:
        raise PolicyError(f"{origin}: unknown table(s) {', '.join(sorted(unknown))}; use [[signature]]")
    raw = data.get("signature", [])
    if not isinstance(raw, list):
        raise PolicyError(f"{origin}: signature must be an array of tables ([[signature]])")
    return [_signature(entry, origin, i) for i, entry in enumerate(raw, 1)]


def _signature(entry: Any, origin: str, number: int) -> Signature:
    where = f"{origin}: [[signature]] #{number}"
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    missing = {"family", "field", "pattern", "strength"} - set(entry)
    if missing:
        raise PolicyError(f"{where}: missing {', '.join(sorted(missing))}")
    if not all(isinstance(entry[key], str) for key in entry):
        raise PolicyError(f"{where}: every setting is a string")
    try:
        return Signature(
            family=normalize_name(entry["family"]),
            field=entry["field"],
            pattern=entry["pattern"],
            strength=entry["strength"],
            note=" ".join(entry.get("note", "").split()),
            origin=origin,
        )
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
