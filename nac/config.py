"""Configuration: one frozen dataclass, built once at start-up from TOML and flags.

Errors name the file, the line and the setting (tomllib gives no positions for values, so the
line is found by reading the file's tables and keys).
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from nac.equipment.clients import REPLY_MESSAGE_MODES, Client, parse_network
from nac.equipment.coa import DISCONNECT as COA_DISCONNECT
from nac.equipment.coa import REAUTH as COA_REAUTH
from nac.equipment.coa import check_session
from nac.equipment.profiles import DEFAULT as DEFAULT_PROFILE
from nac.equipment.profiles import OVERRIDES, NasProfile, client_shape, load_profiles
from nac.equipment.reply import OVERRIDES as REPLY_OVERRIDES
from nac.equipment.reply import client_reply
from nac.errors import ConfigError, NacError
from nac.isotime import parse_span
from nac.tomlfile import Locator

if TYPE_CHECKING:
    from nac.eap.config import EapConfig
    from nac.identity.config import LdapConfig
    from nac.profiling.service import ProfilingConfig

DEFAULT_AUTH_PORT: Final = 1812
DEFAULT_ACCT_PORT: Final = 1813
DEFAULT_COA_PORT: Final = 3799
DEFAULT_BIND: Final = ("0.0.0.0", "::")
#: FreeRADIUS's well-known local test client; `nac serve` warns while it is in use.
TEST_SECRET: Final = "testing123"  # noqa: S105 (documented, warned about)
RULES_POLL_SECONDS: Final = 1.0  # a rule change applies within 2 seconds (README)

_SERVER_KEYS: Final = {
    "bind", "auth_port", "acct_port", "db", "duplicate_ttl", "on_history_failure", "equipment", "node",
    "journal",
}  # fmt: skip
_CLIENT_KEYS: Final = {
    "name",
    "address",
    "secret",
    "require_message_authenticator",
    "coa_port",
    "reauth",
    "rate_limit",
    "reject_delay",
    "eap_md5",
    "reply_message",
    "allow_mab_without_password",
    "profile",
    "coa_bounce",
    "coa_disconnect",
    "coa_session",
    *OVERRIDES,
    *REPLY_OVERRIDES,
}


@dataclass(frozen=True, kw_only=True)
class Config:
    bind: tuple[str, ...] = DEFAULT_BIND
    auth_port: int = DEFAULT_AUTH_PORT
    acct_port: int = DEFAULT_ACCT_PORT
    db: str | None = None  # None: $NAC_DB, else ./nac.db; or a postgresql:// URL (nac/pg/)
    #: With a PostgreSQL db: the local SQLite file this server decides and records from (its
    #: copy of the rules, its history and sessions); None: ./nac-journal.db.
    journal: str | None = None
    #: This server's name on every history row and session it records: which server a device
    #: asked, when several share a database.
    node: str = field(default_factory=lambda: socket.gethostname() or "nac")
    duplicate_ttl: float = 5.0
    rules_poll: float = RULES_POLL_SECONDS
    clients: tuple[Client, ...] = field(default_factory=tuple)
    log_format: str = "text"  # or "json": one object per line, for log shippers
    syslog_address: str | None = None  # decisions streamed as RFC 5424 messages
    syslog_facility: str = "local0"
    metrics_bind: str | None = None  # Prometheus text at http://ADDRESS:PORT/metrics
    history_retention: float | None = None  # seconds of history kept; None: everything
    policy_watch: str | None = None  # a policy file or directory to follow (nac/serve/watch.py)
    #: When history cannot be written: "withhold" replies (fail closed) or "answer" anyway and
    #: keep the rows in memory until the database takes them (fail open).
    on_history_failure: str = "withhold"
    source: str = "(built-in defaults)"
    eap: EapConfig | None = None  # [eap]: 802.1X is off without it
    ldap: LdapConfig | None = None  # [ldap]: 802.1X users from a directory too
    profiling: ProfilingConfig | None = None  # [profiling]: off without it

    @property
    def uses_test_client(self) -> bool:
        return any(c.secret == TEST_SECRET.encode() for c in self.clients)


def default_clients() -> tuple[Client, ...]:
    """127.0.0.1 and ::1 with FreeRADIUS's test secret (the embedded default, README)."""
    return tuple(
        Client(
            name=f"localhost-{version}",
            network=parse_network(address, where="default client"),
            secret=TEST_SECRET.encode(),
        )
        for version, address in (("ipv4", "127.0.0.1/32"), ("ipv6", "::1/128"))
    )


def load_config(
    path: str | Path | None = None,
    *,
    db: str | None = None,
    bind: list[str] | None = None,
    auth_port: int | None = None,
    acct_port: int | None = None,
    journal: str | None = None,
) -> Config:
    """Read ``path`` (if any), then apply the command-line overrides."""
    values: dict[str, Any] = {}
    clients: tuple[Client, ...] = ()
    source = "(built-in defaults)"
    if path is not None:
        source = str(path)
        text = _read(Path(path))
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        values, clients = _parse(data, Locator(str(path), text))
    if not clients:
        clients = default_clients()
    if db is not None:
        values["db"] = db
    if journal is not None:
        values["journal"] = journal
    if bind:
        values["bind"] = tuple(bind)
    if auth_port is not None:
        values["auth_port"] = _port(auth_port, "--auth-port")
    if acct_port is not None:
        values["acct_port"] = _port(acct_port, "--acct-port")
    return Config(clients=clients, source=source, **values)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _parse(data: Mapping[str, Any], loc: Locator) -> tuple[dict[str, Any], tuple[Client, ...]]:
    values: dict[str, Any] = {}
    for name in sorted(
        set(data)
        - {"server", "client", "log", "syslog", "metrics", "eap", "ldap", "history", "policy", "profiling"}
    ):
        raise ConfigError(f"{loc.where(name)}: unknown section")
    if "eap" in data:
        from nac.eap.config import parse_eap  # noqa: PLC0415 (OpenSSL only when 802.1X is on)

        values["eap"] = parse_eap(data["eap"], loc)
    if "ldap" in data:
        from nac.identity.config import parse_ldap  # noqa: PLC0415 (only when configured)

        values["ldap"] = parse_ldap(data["ldap"], loc)
    if "profiling" in data:
        from nac.profiling.service import parse_profiling  # noqa: PLC0415 (only when configured)

        values["profiling"] = parse_profiling(data["profiling"], loc)
    values.update(_observability(data, loc))
    server = data.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{loc.where('server')}: must be a table")
    for key in sorted(set(server) - _SERVER_KEYS):
        raise ConfigError(f"{loc.where('server', key)}: unknown setting")
    if "bind" in server:
        bind = server["bind"]
        bind = [bind] if isinstance(bind, str) else bind
        if not (isinstance(bind, list) and bind and all(isinstance(b, str) and b for b in bind)):
            raise ConfigError(f"{loc.where('server', 'bind')}: an address or a list of addresses")
        values["bind"] = tuple(bind)
    for key in ("auth_port", "acct_port"):
        if key in server:
            values[key] = _port(server[key], loc.where("server", key))
    if "db" in server:
        if not isinstance(server["db"], str) or not server["db"]:
            raise ConfigError(f"{loc.where('server', 'db')}: a file path or a postgresql:// URL")
        values["db"] = server["db"]
    if "journal" in server:
        if not isinstance(server["journal"], str) or not server["journal"]:
            raise ConfigError(f"{loc.where('server', 'journal')}: a file path")
        values["journal"] = server["journal"]
    if "node" in server:
        node = server["node"]
        if not isinstance(node, str) or not node.strip() or len(node) > 64 or not node.isprintable():
            raise ConfigError(f"{loc.where('server', 'node')}: a name of 1 to 64 printable characters")
        values["node"] = node.strip()
    if "on_history_failure" in server:
        if server["on_history_failure"] not in ("withhold", "answer"):
            raise ConfigError(f'{loc.where("server", "on_history_failure")}: "withhold" or "answer"')
        values["on_history_failure"] = server["on_history_failure"]
    if "duplicate_ttl" in server:
        ttl = server["duplicate_ttl"]
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= 30:
            raise ConfigError(f"{loc.where('server', 'duplicate_ttl')}: seconds from 1 to 30 (RFC 5080)")
        values["duplicate_ttl"] = float(ttl)
    raw_clients = data.get("client", [])
    if not isinstance(raw_clients, list):
        raise ConfigError(f"{loc.where('client')}: clients are [[client]] tables (one per client)")
    equipment = server.get("equipment")
    if equipment is not None and (not isinstance(equipment, str) or not equipment):
        raise ConfigError(f"{loc.where('server', 'equipment')}: a file of equipment profiles")
    try:
        profiles = load_profiles(equipment)
    except ConfigError as exc:
        where = loc.where("server", "equipment") if equipment else loc.where("server")
        raise ConfigError(f"{where}: {exc}") from None
    clients = []
    names: set[str] = set()
    for i, raw in enumerate(raw_clients):
        client = _client(raw, i, loc, profiles)
        if client.name in names:
            raise ConfigError(f"{loc.where('client', 'name', i)}: another client is named {client.name!r}")
        names.add(client.name)
        clients.append(client)
    return values, tuple(clients)


def _observability(data: Mapping[str, Any], loc: Locator) -> dict[str, Any]:
    """[log] format, [syslog] address and facility, [metrics] bind."""
    allowed = {
        "log": {"format"},
        "syslog": {"address", "facility"},
        "metrics": {"bind"},
        "history": {"retention"},
        "policy": {"watch"},
    }
    values: dict[str, Any] = {}
    for section, keys in allowed.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{loc.where(section)}: must be a table")
        for key in sorted(set(table) - keys):
            raise ConfigError(f"{loc.where(section, key)}: unknown setting")
        for key, value in table.items():
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{loc.where(section, key)}: must be a non-empty string")
    log_format = data.get("log", {}).get("format")
    if log_format is not None:
        if log_format not in ("text", "json"):
            raise ConfigError(f'{loc.where("log", "format")}: "text" or "json"')
        values["log_format"] = log_format
    syslog = data.get("syslog", {})
    if "address" in syslog:
        try:
            parse_syslog_address(syslog["address"])
        except ConfigError as exc:
            raise ConfigError(f"{loc.where('syslog', 'address')}: {exc}") from None
        values["syslog_address"] = syslog["address"]
    if "facility" in syslog:
        if syslog["facility"] not in FACILITIES:
            raise ConfigError(f"{loc.where('syslog', 'facility')}: one of {', '.join(FACILITIES)}")
        values["syslog_facility"] = syslog["facility"]
    if "watch" in data.get("policy", {}):
        values["policy_watch"] = data["policy"]["watch"]
    if "retention" in data.get("history", {}):
        try:
            values["history_retention"] = float(parse_span(data["history"]["retention"]))
        except NacError as exc:
            raise ConfigError(f"{loc.where('history', 'retention')}: {exc}") from None
    if "bind" in data.get("metrics", {}):
        values["metrics_bind"] = parse_bind(data["metrics"]["bind"], where=loc.where("metrics", "bind"))
    return values


def _client(raw: Mapping[str, Any], i: int, loc: Locator, profiles: Mapping[str, NasProfile]) -> Client:
    for key in sorted(set(raw) - _CLIENT_KEYS):
        raise ConfigError(f"{loc.where('client', key, i)}: unknown setting")
    for key in ("address", "secret"):
        if key not in raw:
            raise ConfigError(f"{loc.where('client', None, i)}: {key} is required")
        if not isinstance(raw[key], str) or not raw[key]:
            raise ConfigError(f"{loc.where('client', key, i)}: must be a non-empty string")
    name = raw.get("name", raw["address"])
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{loc.where('client', 'name', i)}: must be a non-empty string")
    strict = raw.get("require_message_authenticator", True)
    if not isinstance(strict, bool):
        raise ConfigError(f"{loc.where('client', 'require_message_authenticator', i)}: true or false")
    coa_port = _port(raw.get("coa_port", DEFAULT_COA_PORT), loc.where("client", "coa_port", i))
    profile_name = raw.get("profile", DEFAULT_PROFILE)
    profile = profiles.get(profile_name) if isinstance(profile_name, str) else None
    if profile is None:
        known = ", ".join(sorted(profiles))
        where = loc.where("client", "profile", i)
        raise ConfigError(f"{where}: unknown profile {profile_name!r} (known: {known})")
    overrides = {key: raw[key] for key in OVERRIDES if key in raw}
    where = loc.where("client", next(iter(overrides), "profile"), i)
    mab = client_shape(profile, overrides, where=where)
    replies = {key: raw[key] for key in REPLY_OVERRIDES if key in raw}
    where = loc.where("client", next(iter(replies), "profile"), i)
    reply = client_reply(profile.reply, replies, where=where)
    reauth = raw.get("reauth", profile.reauth)
    if reauth not in COA_REAUTH:
        allowed = ", ".join(f'"{v}"' for v in COA_REAUTH)
        raise ConfigError(f'{loc.where("client", "reauth", i)}: one of {allowed}')
    bounce, disconnect, coa_session = _coa(raw, i, loc, profile)
    rate_limit = raw.get("rate_limit")
    if rate_limit is not None and (
        isinstance(rate_limit, bool) or not isinstance(rate_limit, int | float) or rate_limit <= 0
    ):
        raise ConfigError(f"{loc.where('client', 'rate_limit', i)}: requests per second, above 0")
    reject_delay = raw.get("reject_delay", 0)
    if (
        isinstance(reject_delay, bool)
        or not isinstance(reject_delay, int | float)
        or not 0 <= reject_delay <= 10
    ):
        raise ConfigError(f"{loc.where('client', 'reject_delay', i)}: seconds from 0 to 10")
    eap_md5 = raw.get("eap_md5", False)
    if not isinstance(eap_md5, bool):
        raise ConfigError(f"{loc.where('client', 'eap_md5', i)}: true or false")
    reply_message = raw.get("reply_message", "reason")
    if reply_message not in REPLY_MESSAGE_MODES:
        modes = " or ".join(f'"{m}"' for m in REPLY_MESSAGE_MODES)
        raise ConfigError(f"{loc.where('client', 'reply_message', i)}: {modes}")
    no_password = raw.get("allow_mab_without_password", False)
    if not isinstance(no_password, bool):
        raise ConfigError(f"{loc.where('client', 'allow_mab_without_password', i)}: true or false")
    network = parse_network(raw["address"], where=loc.where("client", "address", i))
    return Client(
        name=name,
        network=network,
        secret=raw["secret"].encode(),
        require_message_authenticator=strict,
        coa_port=coa_port,
        reauth=reauth,
        bounce=bounce,
        disconnect=disconnect,
        coa_session=coa_session,
        rate_limit=float(rate_limit) if rate_limit is not None else None,
        reject_delay=float(reject_delay),
        eap_md5=eap_md5,
        reply_message=reply_message,
        allow_mab_without_password=no_password,
        profile=profile.name,
        mab=mab,
        reply=reply,
    )


def _coa(
    raw: Mapping[str, Any], i: int, loc: Locator, profile: NasProfile
) -> tuple[str, str, tuple[str, ...]]:
    """The client's CoA spelling: its profile's, with `coa_bounce`, `coa_disconnect` and
    `coa_session` overriding it."""
    bounce = profile.bounce
    if "coa_bounce" in raw:
        wanted = raw["coa_bounce"]
        if not isinstance(wanted, bool):
            raise ConfigError(f"{loc.where('client', 'coa_bounce', i)}: true or false")
        if wanted and profile.bounce == "none":
            where = loc.where("client", "coa_bounce", i)
            raise ConfigError(f"{where}: profile {profile.name!r} has no port bounce (coa.bounce)")
        bounce = profile.bounce if wanted else "none"
    disconnect = raw.get("coa_disconnect", profile.disconnect)
    if disconnect not in COA_DISCONNECT:
        modes = " or ".join(f'"{m}"' for m in COA_DISCONNECT)
        raise ConfigError(f"{loc.where('client', 'coa_disconnect', i)}: {modes}")
    session = profile.session
    if "coa_session" in raw:
        session = check_session(raw["coa_session"], where=loc.where("client", "coa_session", i))
    return bounce, disconnect, session


def _port(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ConfigError(f"{where}: a UDP port number from 0 to 65535")
    return value


# -- settings that nac/serve/observe.py acts on ------------------------------------------------

#: RFC 5424 §6.2.1 facilities by name (local0..local7 are what SIEM collectors expect).
FACILITIES: Final = {
    "user": 1,
    "daemon": 3,
    "auth": 4,
    "authpriv": 10,
    **{f"local{i}": 16 + i for i in range(8)},
}


def parse_syslog_address(text: str) -> tuple[int, Any]:
    """``unix:/dev/log``, ``udp:host:port``, ``host:port`` or ``[v6]:port`` → (family, address)."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    rest = text.removeprefix("udp:")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"syslog address {text!r}: use unix:/dev/log, udp:HOST:PORT or HOST:PORT")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


def parse_bind(text: str, *, where: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {text!r} is not ADDRESS:PORT (e.g. 127.0.0.1:9812)")
    return text if host else f"127.0.0.1:{port}"
