"""What the EAP core asks the directory and what it is told: plain values, no I/O, so the core
can pause a conversation on a question and resume it with the answer (nac/identity/lookups.py
asks off the event loop).  Also the two pieces of LDAP text handling that must be exact: filter
escaping (RFC 4515 §3) and the group name an LDAP group's DN maps to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: Kinds of directory failure, as counted (nac_ldap_failures) and logged.
FAILURES: Final = ("unreachable", "timeout", "tls", "service-bind", "error", "overloaded", "not-configured")

#: RFC 4515 §3: these octets must be escaped as \XX in an assertion value.
_FILTER_SPECIAL: Final = {"\\": "\\5c", "*": "\\2a", "(": "\\28", ")": "\\29", "\0": "\\00"}


@dataclass(frozen=True, kw_only=True)
class DirectoryQuery:
    """``bind``: check ``password`` by binding as the user's entry (TTLS-PAP); ``entry``: find
    the entry of an already authenticated identity (EAP-TLS's certificate) and its groups."""

    kind: str
    user: str
    password: str = field(default="", repr=False)  # never in a log line or a traceback

    def __post_init__(self) -> None:
        if self.kind not in ("bind", "entry"):
            raise ValueError(f"directory query kind {self.kind!r}")


@dataclass(frozen=True, kw_only=True)
class DirectoryAnswer:
    """``ok``: the user is who it says (bind) or has an entry (entry).  Not ok with ``failure``
    None: the directory answered no (no entry, wrong password); with ``failure`` set: the
    directory could not be asked (one of FAILURES), and the request fails closed."""

    ok: bool
    reason: str = ""
    dn: str | None = None
    groups: tuple[str, ...] = ()  # the group names (group_name of each group's DN)
    failure: str | None = None

    def __post_init__(self) -> None:
        if self.failure is not None and (self.ok or self.failure not in FAILURES):
            raise ValueError(f"directory failure {self.failure!r}")


def failed(failure: str, reason: str) -> DirectoryAnswer:
    return DirectoryAnswer(ok=False, failure=failure, reason=f"directory unavailable ({failure}): {reason}")


def escape_filter_value(value: str) -> str:
    """An assertion value for an LDAP filter (RFC 4515 §3), so a user name such as `*)(uid=*`
    matches only itself."""
    return "".join(_FILTER_SPECIAL.get(char, char) for char in value)


def fill_filter(template: str, **values: str) -> str:
    """``template`` with each ``{name}`` replaced by its escaped value (not str.format: a brace
    in a value must stay text)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", escape_filter_value(value))
    return template


def group_name(dn: str) -> str | None:
    """The nac group an LDAP group's DN maps to: the value of its first RDN (RFC 4514), e.g.
    `cn=staff,ou=groups,dc=example,dc=org` -> `staff`; None for a DN that is not one."""
    attr, sep, rest = dn.partition("=")
    if not sep or not attr.strip():
        return None
    out: list[str] = []
    i = 0
    while i < len(rest):
        char = rest[i]
        if char in ",+":
            break
        if char == "\\" and i + 1 < len(rest):
            pair = rest[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(chr(int(pair, 16)))  # a hex pair: ASCII in a group name nac accepts
                i += 3
                continue
            out.append(rest[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    value = "".join(out).strip()
    return value or None
