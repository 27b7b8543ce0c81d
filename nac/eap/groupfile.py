"""User groups in policy files: ``[user_groups.NAME]`` tables with ``vlan`` and ``attrs``,
the same two settings as `nac groups add NAME --vlan V --attr NAME=VALUE`, checked by the same
code (nac/eap/profiles.py) against the dictionary, every error with its file, line and group.

``[groups]`` already means groups of NAS clients (sites), hence the longer name.  A file with
no ``[user_groups]`` table leaves the database's user groups alone; a file with one (even an
empty ``[user_groups]``) makes them exactly the file's.  Pure: the caller reads the file and
the database.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from typing import Final

from pyrad.dictionary import Dictionary

from nac.errors import PolicyError
from nac.policy.file import GroupChange, SettingChange, UserGroupsDiff
from nac.tomlfile import Locator

from .profiles import Profile, check_group, check_profile, parse_attribute, snapshot

#: The policy file's table of user groups.
SECTION: Final = "user_groups"
#: A group's settings, in the order they are written: `--vlan` and the `--attr` list.
_KEYS: Final = ("vlan", "attrs")


def parse_user_groups(text: str, *, origin: str, dictionary: Dictionary) -> dict[str, Profile] | None:
    """The file's user groups by name (in file order), or None when it has no ``[user_groups]``
    table; a :class:`PolicyError` lists every bad group, one a line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    if SECTION not in data:
        return None
    loc = Locator(origin, text)
    raw_groups = data[SECTION]
    if not isinstance(raw_groups, dict):
        raise PolicyError(f"{loc.where(SECTION)}: must be tables [{SECTION}.NAME] with vlan and attrs")
    groups: dict[str, Profile] = {}
    errors: list[str] = []
    for name, raw in raw_groups.items():
        profile = _group(name, raw, dictionary, loc=loc, errors=errors)
        if profile is not None:
            groups[name] = profile
    if errors:
        raise PolicyError("\n".join(errors))
    return groups


def _group(
    name: str, raw: object, dictionary: Dictionary, *, loc: Locator, errors: list[str]
) -> Profile | None:
    """One group's profile, or None with each of its problems (at its line) added to ``errors``."""
    where, table = f"user group {name}", f"{SECTION}.{_key(name)}"
    if not isinstance(raw, dict):
        errors.append(f"{loc.where(SECTION, name)}: must be a table [{table}] with vlan and attrs")
        return None
    found: list[str] = []

    def bad(key: str | None, message: str) -> None:
        found.append(f"{loc.where(table, key)}: {message}")

    try:
        check_group(name)
    except PolicyError as exc:
        bad(None, str(exc))
    for key in sorted(set(raw) - set(_KEYS)):
        bad(key, f"unknown setting (a user group has {' and '.join(_KEYS)})")
    vlan = raw.get("vlan")
    if isinstance(vlan, int) and not isinstance(vlan, bool):  # `vlan = 100` as `--vlan 100`
        vlan = str(vlan)
    if vlan is not None and not isinstance(vlan, str):
        bad("vlan", "must be a VLAN id or name")
        vlan = None
    attrs = raw.get("attrs", [])
    pairs: list[tuple[str, str]] = []
    if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
        bad("attrs", 'must be a list of "NAME=VALUE" strings, e.g. ["Filter-Id=staff"]')
        attrs = []
    for text in attrs:
        try:
            pairs.append(parse_attribute(text))
        except PolicyError as exc:
            bad("attrs", str(exc).removeprefix("--attr "))
    # The checks `nac groups add` makes, the VLAN and the attributes apart to name their line.
    for key, part in (("vlan", Profile(vlan=vlan)), ("attrs", Profile(attributes=tuple(pairs)))):
        try:
            check_profile(dictionary, part, where=where)
        except PolicyError as exc:
            bad(key, str(exc))
    if found:
        errors += found
        return None
    return Profile(vlan=vlan, attributes=tuple(pairs))


def diff_user_groups(old: Mapping[str, Profile], new: Mapping[str, Profile]) -> UserGroupsDiff:
    """What replacing the ``old`` user groups with ``new`` changes, group by group (by name)."""
    before, after = snapshot(old), snapshot(new)
    changed = []
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            fields = {
                key: SettingChange(before=before[name].get(key), after=after[name].get(key))
                for key in _KEYS
                if before[name].get(key) != after[name].get(key)
            }
            changed.append(GroupChange(name=name, fields=fields))
    return UserGroupsDiff(
        added=[{"name": name, **after[name]} for name in after if name not in before],
        removed=[{"name": name, **before[name]} for name in before if name not in after],
        changed=changed,
        unchanged=sum(1 for name in before.keys() & after.keys() if before[name] == after[name]),
    )


def dump_user_groups(groups: Mapping[str, Profile]) -> str:
    """The ``[user_groups.NAME]`` tables that :func:`parse_user_groups` reads back to the same;
    nothing when there are none (a file without them leaves a database's user groups alone)."""
    out: list[str] = []
    for name, table in snapshot(groups).items():
        out += ["", f"[{SECTION}.{_key(name)}]"]
        out += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in table.items()]
    return "\n".join(out) + "\n" if out else ""


def _key(name: str) -> str:
    """A group name as a TOML key: bare when it can be (names may hold dots, which nest)."""
    return name if name.replace("-", "").replace("_", "").isalnum() and name.isascii() else json.dumps(name)
