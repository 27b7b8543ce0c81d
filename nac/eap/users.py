"""The 802.1X user store: one table in nac's database, managed by `nac users add/list/remove`.

What is stored, and why only that: for each user, the NT hash of the password (MD4 of its
UTF-16LE form, RFC 2759 §8.3).  MS-CHAPv2 (inside PEAP and EAP-TTLS) can be checked with it
and with nothing weaker; TTLS-PAP is checked by hashing the password the peer sends.  The
password itself is never stored.  The NT hash is password-equivalent for MS-CHAPv2, as it is
in FreeRADIUS's NT-Password and Active Directory: protect the database file accordingly.
The one exception: a user added with `--eap-md5` also keeps the password itself, because
EAP-MD5 (offered only to clients with `eap_md5 = true`) cannot be checked any other way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from nac.errors import NacError

#: RADIUS carries the name in User-Name and MS-CHAPv2 in one attribute: 253 octets at most.
MAX_NAME: Final = 253
_DDL: Final = """CREATE TABLE IF NOT EXISTS eap_users (
    name TEXT PRIMARY KEY,
    nt_hash BLOB NOT NULL,
    created TEXT NOT NULL
)"""


#: Authorization (nac/eap/groups.py): groups with a profile each, the groups of each user in
#: the user's order, and a user's own profile.  Profiles are JSON (nac/eap/profiles.py).
_AUTHZ_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS eap_groups (
    name TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    created TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS eap_user_groups (
    user TEXT NOT NULL,
    grp TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user, grp)
)""",
    "CREATE TABLE IF NOT EXISTS eap_user_profiles (user TEXT PRIMARY KEY, profile TEXT NOT NULL)",
)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """The users' tables, inside the caller's transaction (nac/store.py makes them on open)."""
    conn.execute(_DDL)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(eap_users)")}
    if "md5_password" not in columns:
        # EAP-MD5 needs the password itself; kept only for users enrolled with --eap-md5.
        conn.execute("ALTER TABLE eap_users ADD COLUMN md5_password TEXT")
    for ddl in _AUTHZ_DDL:
        conn.execute(ddl)


def ensure_table(conn: sqlite3.Connection) -> None:
    with conn:
        ensure_schema(conn)


def check_name(name: str) -> str:
    if not name or len(name.encode()) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise NacError(f"user names are 1 to {MAX_NAME} octets with no control characters: {name!r}")
    return name


def add_user(conn: sqlite3.Connection, name: str, password: str, *, eap_md5: bool = False) -> bool:
    """Add or replace ``name``; True if it replaced an existing user.  With ``eap_md5`` the
    password itself is kept too (EAP-MD5 cannot work from a hash)."""
    from nac.eap.mschapv2 import nt_hash  # noqa: PLC0415 - nac/store.py imports this module

    check_name(name)
    if not password:
        raise NacError("the password is empty")
    ensure_table(conn)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with conn:
        existed = conn.execute("SELECT 1 FROM eap_users WHERE name = ?", (name,)).fetchone() is not None
        conn.execute(
            "INSERT OR REPLACE INTO eap_users (name, nt_hash, created, md5_password) VALUES (?, ?, ?, ?)",
            (name, nt_hash(password), created, password if eap_md5 else None),
        )
    return existed


def remove_user(conn: sqlite3.Connection, name: str) -> None:
    ensure_table(conn)
    with conn:
        if conn.execute("DELETE FROM eap_users WHERE name = ?", (name,)).rowcount == 0:
            raise NacError(f"no user {name!r}")
        conn.execute("DELETE FROM eap_user_groups WHERE user = ?", (name,))
        conn.execute("DELETE FROM eap_user_profiles WHERE user = ?", (name,))


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    ensure_table(conn)
    rows = conn.execute(
        "SELECT name, created, md5_password IS NOT NULL FROM eap_users ORDER BY name"
    ).fetchall()
    return [{"name": name, "created": created, "eap_md5": bool(md5)} for name, created, md5 in rows]


def md5_password(conn: sqlite3.Connection, name: str) -> str | None:
    """The password of a user enrolled for EAP-MD5, else None."""
    row = conn.execute("SELECT md5_password FROM eap_users WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


class UserDirectory(Mapping[str, bytes]):
    """Name -> NT hash, read from the database at each lookup, so `nac users add` takes effect
    in a running server at once.  One indexed read per PEAP/TTLS authentication."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        ensure_table(conn)
        self._conn = conn

    def md5_password(self, name: str) -> str | None:
        return md5_password(self._conn, name)

    def __getitem__(self, name: str) -> bytes:
        row = self._conn.execute("SELECT nt_hash FROM eap_users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(name)
        return bytes(row[0])

    def __iter__(self) -> Iterator[str]:
        return iter([r[0] for r in self._conn.execute("SELECT name FROM eap_users ORDER BY name")])

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM eap_users").fetchone()[0])
