"""The `[ldap]` settings: parsed and checked at start-up, errors naming the file, line and key.

    [ldap]
    url = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org"]   # tried in order
    bind_dn = "cn=nac,ou=services,dc=example,dc=org"
    bind_password_file = "/etc/nac/ldap-password"   # the password itself never sits here
    base = "ou=people,dc=example,dc=org"
    user_filter = "(uid={user})"
    group_attribute = "memberOf"        # or group_base + group_filter, a search for groups
    ca_file = "/etc/nac/ldap-ca.pem"

Reads the password file and checks the CA file here (the shell's side): a bad one stops
start-up, not the first authentication.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from nac.errors import ConfigError
from nac.tomlfile import Locator

_KEYS: Final = {
    "url", "bind_dn", "bind_password_file", "base", "user_filter", "group_attribute", "group_base",
    "group_filter", "starttls", "ca_file", "timeout", "pool_size", "tls_identity",
}  # fmt: skip
#: Where EAP-TLS finds the name it looks up: the subject CN, or a SAN (RFC 5280 §4.2.1.6).
TLS_IDENTITIES: Final = ("cn", "san_email", "san_upn")
DEFAULT_TIMEOUT: Final = 5.0
#: Seconds a directory may take at most: a NAS retransmits after 5-30 s and gives up after a
#: few tries, so an answer later than that reaches no one.
MAX_TIMEOUT: Final = 30.0
#: Connections (and threads) to the directory: FreeRADIUS rlm_ldap starts 5 by default.
DEFAULT_POOL: Final = 4
MAX_POOL: Final = 64


@dataclass(frozen=True, kw_only=True)
class LdapConfig:
    urls: tuple[str, ...]
    base: str
    bind_dn: str | None = None  # None: search anonymously
    bind_password: str = field(default="", repr=False)  # read from bind_password_file
    user_filter: str = "(uid={user})"
    group_attribute: str | None = None
    group_base: str | None = None
    group_filter: str = "(member={dn})"
    starttls: bool = False
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    pool_size: int = DEFAULT_POOL
    tls_identity: str = "cn"


def parse_ldap(table: Mapping[str, Any], loc: Locator) -> LdapConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{loc.where('ldap')}: must be a table")
    for key in sorted(set(table) - _KEYS):
        raise ConfigError(f"{loc.where('ldap', key)}: unknown setting")

    def where(key: str) -> str:
        return loc.where("ldap", key)

    urls = table.get("url")
    urls = [urls] if isinstance(urls, str) else urls
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"{where('url')}: an ldap:// or ldaps:// URL, or a list of them (tried in order)")
    for url in urls:
        _check_url(url, where("url"))
    values: dict[str, Any] = {"urls": tuple(urls)}
    for key in ("base", "bind_dn", "user_filter", "group_attribute", "group_base", "group_filter"):
        if key in table:
            if not isinstance(table[key], str) or not table[key].strip():
                raise ConfigError(f"{where(key)}: a non-empty string")
            values[key] = table[key].strip()
    if "base" not in values:
        raise ConfigError(f"{loc.where('ldap')}: base is required (where the users are)")
    for key, placeholder in (("user_filter", "{user}"), ("group_filter", "{dn}")):
        text = values.get(key)
        parenthesised = text is not None and text.startswith("(") and text.endswith(")")
        if text is not None and (placeholder not in text or not parenthesised):
            raise ConfigError(f"{where(key)}: a parenthesised LDAP filter with {placeholder} in it")
    if "group_attribute" in values and "group_base" in values:
        raise ConfigError(f"{where('group_base')}: either group_attribute or group_base, not both")
    if "group_filter" in values and "group_base" not in values:
        raise ConfigError(f"{where('group_filter')}: needs group_base (where to search for groups)")
    if "bind_dn" in values:
        values["bind_password"] = _password(table.get("bind_password_file"), loc)
    elif "bind_password_file" in table:
        raise ConfigError(f"{where('bind_password_file')}: needs bind_dn")
    for key in ("starttls",):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(f"{where(key)}: true or false")
            values[key] = table[key]
    if values.get("starttls") and any(u.lower().startswith("ldaps://") for u in urls):
        raise ConfigError(f"{where('starttls')}: ldaps:// URLs are TLS already; starttls is for ldap://")
    if "ca_file" in table:
        values["ca_file"] = _ca_file(table["ca_file"], loc)
    if "timeout" in table:
        timeout = table["timeout"]
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not number or not 0 < timeout <= MAX_TIMEOUT:
            raise ConfigError(f"{where('timeout')}: seconds, more than 0 and at most {MAX_TIMEOUT:g}")
        values["timeout"] = float(timeout)
    if "pool_size" in table:
        size = table["pool_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_POOL:
            raise ConfigError(f"{where('pool_size')}: connections, 1 to {MAX_POOL}")
        values["pool_size"] = size
    if "tls_identity" in table:
        if table["tls_identity"] not in TLS_IDENTITIES:
            raise ConfigError(f"{where('tls_identity')}: one of {', '.join(TLS_IDENTITIES)}")
        values["tls_identity"] = table["tls_identity"]
    return LdapConfig(**values)


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an ldap:// or ldaps:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{where}: {url!r} has a bad port") from None
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"{where}: {url!r}: give the base and filters as their own settings")


def _path(value: object, loc: Locator, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{loc.where('ldap', key)}: a file path")
    path = Path(value)
    return path if path.is_absolute() else Path(loc.path).parent / path  # beside the config


def _password(value: object, loc: Locator) -> str:
    if value is None:
        raise ConfigError(f"{loc.where('ldap', 'bind_dn')}: needs bind_password_file")
    path = _path(value, loc, "bind_password_file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{loc.where('ldap', 'bind_password_file')}: cannot read {path}: {why}") from None
    password = text.rstrip("\r\n")  # the file's one line, as `echo` writes it
    if not password:
        raise ConfigError(f"{loc.where('ldap', 'bind_password_file')}: {path} is empty")
    return password


def _ca_file(value: object, loc: Locator) -> str:
    path = _path(value, loc, "ca_file")
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{loc.where('ldap', 'ca_file')}: cannot load {path}: {why}") from None
    return str(path)
