"""Groups and authorization profiles of 802.1X users, in nac's database (`nac groups`, `nac
users add/set --vlan/--group/--attr`), and the lookup the server makes after a successful
authentication.  Profiles are checked against the dictionary before they are stored, so the
server only ever reads profiles it can send.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pyrad.dictionary import Dictionary

from nac.eap.mschapv2 import nt_hash
from nac.eap.profiles import (
    Authorization,
    Profile,
    check_group,
    check_profile,
    encode_attributes,
    merge,
    snapshot,
)
from nac.eap.users import ensure_table, list_users
from nac.errors import NacError, PolicyError
from nac.identity.query import DirectoryAnswer

#: Where the users come from: nac's own table, or an LDAP directory (nac/identity/).
SOURCE: Final = "users"
DIRECTORY: Final = "ldap"
#: Encoded profiles kept by their JSON: the server encodes each distinct profile once.
_ENCODED_MAX: Final = 1024


def add_group(conn: sqlite3.Connection, dictionary: Dictionary, name: str, profile: Profile) -> bool:
    """Add or replace group ``name`` and its profile; True if it replaced one."""
    check_group(name)
    check_profile(dictionary, profile, where=f"group {name}")
    ensure_table(conn)
    with conn:
        existed = conn.execute("SELECT 1 FROM eap_groups WHERE name = ?", (name,)).fetchone() is not None
        conn.execute(
            "INSERT OR REPLACE INTO eap_groups (name, profile, created) VALUES (?, ?, ?)",
            (name, json.dumps(profile.to_json()), _now()),
        )
    return existed


def remove_group(conn: sqlite3.Connection, name: str) -> None:
    """Remove a group that no user belongs to (a user would silently lose its VLAN)."""
    ensure_table(conn)
    with conn:
        members = [
            r[0]
            for r in conn.execute("SELECT user FROM eap_user_groups WHERE grp = ? ORDER BY user", (name,))
        ]
        if members:
            raise NacError(
                f"group {name} has members ({', '.join(members)}): move them first"
                f" (nac users set NAME --group OTHER, or --no-groups)"
            )
        if conn.execute("DELETE FROM eap_groups WHERE name = ?", (name,)).rowcount == 0:
            raise NacError(f"no group {name!r}")


def list_groups(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    ensure_table(conn)
    rows = conn.execute("SELECT name, profile, created FROM eap_groups ORDER BY name").fetchall()
    out = []
    for name, raw, created in rows:
        profile = Profile.from_json(json.loads(raw))
        members = [
            r[0]
            for r in conn.execute("SELECT user FROM eap_user_groups WHERE grp = ? ORDER BY user", (name,))
        ]
        out.append(
            {
                "name": name,
                **profile.to_json(),
                "profile": profile.describe(),
                "members": members,
                "created": created,
            }
        )
    return out


def read_groups(conn: sqlite3.Connection) -> dict[str, Profile]:
    """Every group's profile, by name in name order."""
    rows = conn.execute("SELECT name, profile FROM eap_groups ORDER BY name").fetchall()
    return {name: Profile.from_json(json.loads(raw)) for name, raw in rows}


def members_of(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, list[str]]:
    """The users of each of ``names`` that has any."""
    out: dict[str, list[str]] = {}
    for name in names:
        rows = conn.execute("SELECT user FROM eap_user_groups WHERE grp = ? ORDER BY user", (name,))
        members = [row[0] for row in rows]
        if members:
            out[name] = members
    return out


def refuse_removing_members(conn: sqlite3.Connection, names: Iterable[str], *, origin: str) -> None:
    """PolicyError when a group to be removed has users: they would silently lose its VLAN."""
    busy = members_of(conn, names)
    if busy:
        listed = "; ".join(f"{group} ({', '.join(users)})" for group, users in busy.items())
        raise PolicyError(
            f"{origin}: removes user group(s) that users belong to: {listed}; keep them in the file"
            " or move the users first (nac users set NAME --group OTHER, or --no-groups)"
        )


def replace_groups(
    conn: sqlite3.Connection, groups: Mapping[str, Profile], *, origin: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make the groups exactly ``groups`` (already checked), inside the caller's transaction;
    a group whose profile is unchanged keeps its row and creation time.  Returns the groups
    before and after, for the audit row."""
    old = read_groups(conn)
    refuse_removing_members(conn, old.keys() - groups.keys(), origin=origin)
    conn.executemany("DELETE FROM eap_groups WHERE name = ?", [(n,) for n in old.keys() - groups.keys()])
    conn.executemany(
        "INSERT OR REPLACE INTO eap_groups (name, profile, created) VALUES (?, ?, ?)",
        [(n, json.dumps(p.to_json()), _now()) for n, p in groups.items() if old.get(n) != p],
    )
    return snapshot(old), snapshot(groups)


def check_groups(conn: sqlite3.Connection, groups: Sequence[str]) -> None:
    """Every group exists, each named once (NacError, PolicyError)."""
    known = {r[0] for r in conn.execute("SELECT name FROM eap_groups")}
    for group in groups:
        if group not in known:
            raise NacError(f"no group {group!r} (add it first: nac groups add {group} --vlan V)")
    if len(set(groups)) != len(groups):
        raise PolicyError(f"a group is named twice: {', '.join(groups)}")


def set_user(
    conn: sqlite3.Connection,
    dictionary: Dictionary,
    name: str,
    *,
    groups: Sequence[str] | None = None,
    profile: Profile | None = None,
) -> None:
    """Set an existing user's groups (in order; None: unchanged) and own profile (None:
    unchanged; an empty profile: none of its own)."""
    ensure_table(conn)
    if profile is not None:
        check_profile(dictionary, profile, where=f"user {name}")
    with conn:
        if conn.execute("SELECT 1 FROM eap_users WHERE name = ?", (name,)).fetchone() is None:
            raise NacError(f"no user {name!r}")
        if groups is not None:
            check_groups(conn, groups)
            conn.execute("DELETE FROM eap_user_groups WHERE user = ?", (name,))
            conn.executemany(
                "INSERT INTO eap_user_groups (user, grp, seq) VALUES (?, ?, ?)",
                [(name, group, seq) for seq, group in enumerate(groups)],
            )
        if profile is not None:
            conn.execute("DELETE FROM eap_user_profiles WHERE user = ?", (name,))
            if not profile.empty:
                conn.execute(
                    "INSERT INTO eap_user_profiles (user, profile) VALUES (?, ?)",
                    (name, json.dumps(profile.to_json())),
                )


def user_settings(
    conn: sqlite3.Connection, name: str
) -> tuple[tuple[str, ...], Profile, list[tuple[str, Profile]]]:
    """(the user's groups in order, its own profile, each group's profile)."""
    rows = conn.execute(
        "SELECT g.grp, p.profile FROM eap_user_groups g JOIN eap_groups p ON p.name = g.grp"
        " WHERE g.user = ? ORDER BY g.seq",
        (name,),
    ).fetchall()
    own = conn.execute("SELECT profile FROM eap_user_profiles WHERE user = ?", (name,)).fetchone()
    mine = Profile.from_json(json.loads(own[0])) if own is not None else Profile()
    group_profiles = [(group, Profile.from_json(json.loads(raw))) for group, raw in rows]
    return tuple(group for group, _ in group_profiles), mine, group_profiles


def authorization(
    conn: sqlite3.Connection, dictionary: Dictionary, name: str, *, encoded: dict[str, bytes] | None = None
) -> Authorization:
    """What applies to ``name``: its own settings first, then its groups' in its order."""
    groups, mine, group_profiles = user_settings(conn, name)
    return _authorization(dictionary, name, SOURCE, groups, mine, group_profiles, encoded)


def directory_authorization(
    conn: sqlite3.Connection,
    dictionary: Dictionary,
    name: str,
    groups: Sequence[str],
    *,
    encoded: dict[str, bytes] | None = None,
) -> Authorization:
    """What applies to a user the directory vouched for: the nac groups that its directory
    groups name (compared without regard to case, as LDAP compares cn), merged in the
    alphabetical order of their names; a directory user has no profile of its own."""
    wanted = {group.lower() for group in groups}
    rows = conn.execute("SELECT name, profile FROM eap_groups ORDER BY name").fetchall()
    group_profiles = [(g, Profile.from_json(json.loads(raw))) for g, raw in rows if g.lower() in wanted]
    matched = tuple(group for group, _ in group_profiles)
    return _authorization(dictionary, name, DIRECTORY, matched, Profile(), group_profiles, encoded)


def _authorization(
    dictionary: Dictionary,
    name: str,
    source: str,
    groups: tuple[str, ...],
    mine: Profile,
    group_profiles: list[tuple[str, Profile]],
    encoded: dict[str, bytes] | None,
) -> Authorization:
    sources = [(name, mine)] if not mine.empty else []
    sources += [(group, profile) for group, profile in group_profiles if not profile.empty]
    settings = merge([profile for _, profile in sources])
    body = b""
    if settings.attributes:
        key = json.dumps(settings.to_json())
        cached = encoded.get(key) if encoded is not None else None
        if cached is None:
            cached = encode_attributes(dictionary, settings.attributes, where=f"user {name}")
            if encoded is not None:
                if len(encoded) >= _ENCODED_MAX:
                    encoded.clear()
                encoded[key] = cached
        body = cached
    return Authorization(
        user=name,
        source=source,
        groups=groups,
        profile="+".join(source for source, _ in sources) or None,
        settings=settings,
        body=body,
    )


class Authorizer:
    """Name -> Authorization (None: no groups and no profile), read from the database at each
    successful authentication, so `nac users set` and `nac groups add` take effect at once."""

    def __init__(self, conn: sqlite3.Connection, dictionary: Dictionary) -> None:
        ensure_table(conn)
        self._conn = conn
        self._dictionary = dictionary
        self._encoded: dict[str, bytes] = {}

    def __call__(self, name: str) -> Authorization | None:
        authz = authorization(self._conn, self._dictionary, name, encoded=self._encoded)
        return authz if authz.groups or authz.profile is not None else None

    def directory(self, answer: DirectoryAnswer, name: str) -> Authorization:
        """For a user the directory vouched for: always an Authorization, so history says
        the user came from the directory even when none of its groups is a nac group."""
        conn, dictionary = self._conn, self._dictionary
        return directory_authorization(conn, dictionary, name, answer.groups, encoded=self._encoded)


def try_user(conn: sqlite3.Connection, dictionary: Dictionary, name: str, password: str) -> dict[str, Any]:
    """`nac users test`: whether ``password`` is ``name``'s, where the user was found, its
    groups and the profile an Access-Accept would carry (when the vendor policy accepts)."""
    ensure_table(conn)
    row = conn.execute("SELECT nt_hash FROM eap_users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NacError(f"no user {name!r} in nac's users table")
    authz = authorization(conn, dictionary, name)
    return {
        "user": name,
        "authenticated": hmac.compare_digest(bytes(row[0]), nt_hash(password)),
        "source": authz.source,
        "groups": list(authz.groups),
        "profile": authz.profile,
        "vlan": authz.settings.vlan,
        "attributes": [list(pair) for pair in authz.settings.attributes],
        "reply": authz.settings.describe() if authz.profile is not None else None,
    }


def user_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """`nac users list`: each user with its groups and own profile."""
    rows = list_users(conn)
    for row in rows:
        groups, mine, _ = user_settings(conn, row["name"])
        row["groups"] = list(groups)
        row["profile"] = None if mine.empty else mine.describe()
    return rows


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
