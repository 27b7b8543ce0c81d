"""`nac users test` for a user who is not in nac's own table: ask the directory as the server
would (a bind as the user's entry), and show what an Access-Accept would carry."""

from __future__ import annotations

import sqlite3
from typing import Any

from pyrad.dictionary import Dictionary

from nac.eap.groups import DIRECTORY, directory_authorization
from nac.errors import NacError
from nac.identity.config import LdapConfig
from nac.identity.query import DirectoryQuery


def try_directory_user(
    conn: sqlite3.Connection, dictionary: Dictionary, config: LdapConfig, name: str, password: str
) -> dict[str, Any]:
    """The same keys as nac.eap.groups.try_user, with the entry's ``dn`` and its
    ``directory_groups``; NacError when the directory cannot be asked."""
    from nac.identity.ldap import Directory  # noqa: PLC0415 (ldap3 only when configured)

    if not password:
        raise NacError("the password is empty")
    directory = Directory(config)
    try:
        answer = directory.answer(DirectoryQuery(kind="bind", user=name, password=password))
    finally:
        directory.close()
    if answer.failure is not None:
        raise NacError(answer.reason)
    if answer.dn is None:
        raise NacError(f"{answer.reason} (nor in nac's users table)")
    authz = directory_authorization(conn, dictionary, name, answer.groups)
    return {
        "user": name,
        "authenticated": answer.ok,
        "source": DIRECTORY,
        "dn": answer.dn,
        "directory_groups": list(answer.groups),
        "groups": list(authz.groups),
        "profile": authz.profile,
        "vlan": authz.settings.vlan,
        "attributes": [list(pair) for pair in authz.settings.attributes],
        "reply": authz.settings.describe() if authz.profile is not None else None,
    }
