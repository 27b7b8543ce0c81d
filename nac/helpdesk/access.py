"""Who may use `nac web`: the access token and the Host header, checked without a server.

Only loopback may be served without a token; a token given empty (an unset shell variable) is
an error, not "no token".  The Host check is the DNS-rebinding guard: a page on evil.example
whose name now resolves to us makes the visitor's browser send ``Host: evil.example``, which
is neither the address the connection came in on nor a name the operator configured.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from nac.errors import ConfigError


def check_token(token: str | None) -> str | None:
    """The access token as given, or None for none; an empty one is the operator's error (an
    unset shell variable expands to ``--token ""``, which must not serve an open page)."""
    if token is None:
        return None
    if not token.strip():
        raise ConfigError(
            "the access token is empty (an unset variable?): give --token-file FILE, or leave "
            "--token and $NAC_WEB_TOKEN out to serve 127.0.0.1 without a token"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in token):
        raise ConfigError("the access token contains a control character (a line break?)")
    return token


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` (surrounding whitespace and the final newline dropped)."""
    if not str(path).strip():
        raise ConfigError("the token file's name is empty (an unset variable?)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {path} is not UTF-8 text") from None
    if not text.strip():
        raise ConfigError(f"the token file {path} is empty")
    token = text.strip()
    check_token(token)
    return token


def host_names(names: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """``--host-name`` values as (name, port or None for any port), checked."""
    out = set()
    for name in names:
        parsed = _split_host(name.strip().lower())
        if parsed is None or not parsed[0] or not re.fullmatch(r"[a-z0-9._:-]+", parsed[0]):
            raise ConfigError(f"--host-name {name!r} is not a host name (NAME or NAME:PORT)")
        out.add(parsed)
    return frozenset(out)


def is_loopback(bind: str) -> bool:
    """Whether every address ``bind`` names is a loopback address (resolved if it is a name)."""
    try:
        return _ip(bind).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bind, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(_ip(str(info[4][0])).is_loopback for info in infos)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return ip


def _split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header's (name or address, port or None); None if it is not one (RFC 9110 §7.2)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        rest = ":" + port
    else:
        host, rest = value, ""  # a name, or an IPv6 address without brackets (no port)
    host = host.rstrip(".")
    if not rest:
        return host, None
    digits = rest[1:]
    if not rest.startswith(":") or not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        return None
    return host, int(digits)


def host_allowed(
    header: str | None, *, local_ip: str, port: int, names: frozenset[tuple[str, int | None]]
) -> bool:
    """Whether a request's Host header names this server: the address the connection came in on
    (``localhost`` too if that is loopback) with our port, or a configured name."""
    parsed = _split_host(header.strip().lower()) if header else None
    if parsed is None:
        return False
    host, given_port = parsed
    given_port = 80 if given_port is None else given_port  # RFC 9110 §4.2.1: http's default
    if any(host == name and (want is None or want == given_port) for name, want in names):
        return True
    if given_port != port:
        return False
    local = _ip(local_ip.split("%", 1)[0])
    if host == "localhost":
        return local.is_loopback
    try:
        return _ip(host) == local
    except ValueError:
        return False
