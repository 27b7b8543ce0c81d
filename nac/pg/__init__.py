"""nac on a shared PostgreSQL: several servers, one source of truth for the rules.

Each server still decides from memory and from its own SQLite file (its journal), exactly as
a single server does; PostgreSQL holds the rules, the policy defaults, the audit chain and the
IEEE registry in force, and a follower thread in each server copies them into the journal when
they change (nac/pg/follow.py).  The CLI's rules, policy, audit and registry commands write
PostgreSQL directly
(nac/pg/store.py); what is not shared yet is refused with :class:`PgUnsupportedError`.

Importing this package loads no driver: psycopg is imported when a connection is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from nac.errors import ConfigError, DatabaseFileError

if TYPE_CHECKING:
    import psycopg

#: The URL schemes libpq takes (``postgres://`` is its older spelling).
SCHEMES: Final = ("postgresql://", "postgres://")
#: Seconds a connection attempt may take: a server starting while PostgreSQL is unreachable
#: starts on its journal's rules after this long.
CONNECT_TIMEOUT: Final = 3
#: TCP keepalives and a user timeout (libpq's, ignored on a Unix socket), so a peer that
#: vanished without a FIN is noticed in seconds, not after the kernel's two hours.
_LIVENESS: Final[dict[str, int]] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 10_000,
}
#: The channel a rules change is announced on (its payload: the new rules version).
RULES_CHANNEL: Final = "nac_rules"
#: The channel a registry import or rollback is announced on (its payload: the registry version).
REGISTRY_CHANNEL: Final = "nac_registry"


class PgUnreachableError(DatabaseFileError):
    """PostgreSQL cannot be reached (or the connection broke): a server keeps its rules."""


class PgUnsupportedError(ConfigError):
    """A command that does not run on PostgreSQL yet; the CLI names the command (exit 2)."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"not yet supported on PostgreSQL ({where}): only the rules, policy, audit, oui, history,"
            " why, stats, web, sessions, disconnect, reauth and `db upgrade` commands are; run it"
            " with --db on a server's journal file"
        )


def is_url(db: str | None) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than an SQLite file."""
    return db is not None and db.startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def connect(url: str, *, autocommit: bool = True, timeout: int = CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
    """A connection to the database at ``url``; DatabaseFileError says in one line why not."""
    try:
        import psycopg  # noqa: PLC0415 - only where a PostgreSQL database is used
    except ImportError:
        raise ConfigError(
            f"{redact(url)}: a PostgreSQL database needs psycopg: pip install 'nac[pg]'"
        ) from None
    try:
        conninfo = psycopg.conninfo.make_conninfo(
            url, connect_timeout=timeout, application_name="nac", **_LIVENESS
        )
        return psycopg.connect(conninfo, autocommit=autocommit)
    except psycopg.Error as exc:
        raise PgUnreachableError(f"{redact(url)}: cannot connect to PostgreSQL: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """libpq's messages run over several lines; a log line or an error takes the first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
