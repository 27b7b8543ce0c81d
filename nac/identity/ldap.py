"""The LDAP client (ldap3): find a user's entry with the service account, bind as the user to
check a password, read the user's groups.  Blocking: nac/identity/lookups.py runs it on its own
threads, never on the event loop.

Each call borrows one of at most ``pool_size`` connections bound as the service account; a
password is checked on one of as many connections kept for users' binds (a bind changes who a
connection is).  The URLs are tried in order, the one that answered last first.  Every socket
operation has the configured timeout.  What fails is classified (nac/identity/query.py
FAILURES) and the reason never carries a password.
"""

from __future__ import annotations

import contextlib
import math
import queue
import ssl
import threading
from typing import Any, Final
from urllib.parse import urlsplit

from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPSocketReceiveError,
    LDAPStartTLSError,
)

from nac.identity.config import LdapConfig
from nac.identity.query import DirectoryAnswer, DirectoryQuery, failed, fill_filter, group_name

#: RFC 4511 §4.1.9 resultCode invalidCredentials: a wrong password (or a locked account).
INVALID_CREDENTIALS: Final = 49
#: Attributes asked for when none is needed: "1.1" (RFC 4511 §4.5.1.8).
NO_ATTRIBUTES: Final = "1.1"


class _DirectoryError(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Directory:
    """One directory, however many URLs it has; safe to call from several threads."""

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file, version=None)
        self._servers = [_server(url, tls, config.timeout) for url in config.urls]
        self._first = 0  # the server that answered last
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()  # bound as the service
        self._binders: queue.SimpleQueue[Connection] = queue.SimpleQueue()  # for users' binds
        self._lock = threading.Lock()

    def answer(self, query: DirectoryQuery) -> DirectoryAnswer:
        """Never raises for the directory's sake: a failure is an answer with ``failure`` set."""
        if query.kind == "bind" and not query.password:
            # RFC 4513 §5.1.2: a simple bind with an empty password is an unauthenticated bind,
            # which a directory may accept: never take it as a proved password.
            return DirectoryAnswer(ok=False, reason="empty password")
        try:
            for _ in range(2):
                conn, reused = self._borrow()
                try:
                    answer = self._ask(conn, query)
                except LDAPCommunicationError as exc:
                    _close(conn)
                    if reused and _classify(exc)[0] != "timeout":
                        # It went stale while idle (a restarted directory), and so did the
                        # other idle ones: drop them all, and try once more on a new one.
                        _drain(self._idle)
                        continue
                    raise
                except BaseException:
                    _close(conn)
                    raise
                self._idle.put(conn)
                return answer
            raise LDAPSocketReceiveError("the connection was lost twice")
        except _DirectoryError as exc:
            return failed(exc.kind, exc.reason)
        except LDAPException as exc:
            return failed(*_classify(exc))

    def close(self) -> None:
        _drain(self._idle)
        _drain(self._binders)

    # -- the steps ---------------------------------------------------------------------------

    def _ask(self, conn: Connection, query: DirectoryQuery) -> DirectoryAnswer:
        config = self.config
        attributes = [config.group_attribute] if config.group_attribute else [NO_ATTRIBUTES]
        entries = _search(
            conn, config.base, fill_filter(config.user_filter, user=query.user), attributes, limit=2
        )
        if not entries:
            return DirectoryAnswer(ok=False, reason=f"no directory entry for {query.user!r}")
        if len(entries) > 1:
            # Two entries for one name: binding as either could let one user in as the other.
            return DirectoryAnswer(ok=False, reason=f"{query.user!r} matches several directory entries")
        dn, attrs = entries[0]
        if query.kind == "bind" and not self._bind_as(dn, query.password):
            return DirectoryAnswer(ok=False, dn=dn, reason=f"wrong password for {query.user!r}")
        return DirectoryAnswer(ok=True, dn=dn, groups=self._groups(conn, dn, attrs))

    def _groups(self, conn: Connection, dn: str, attrs: dict[str, Any]) -> tuple[str, ...]:
        config = self.config
        if config.group_attribute:
            values = attrs.get(config.group_attribute) or []
            dns = [values] if isinstance(values, str) else list(values)
        elif config.group_base:
            found = _search(conn, config.group_base, fill_filter(config.group_filter, dn=dn), [NO_ATTRIBUTES])
            dns = [group_dn for group_dn, _ in found]
        else:
            return ()
        names = {name for name in map(group_name, dns) if name is not None}
        return tuple(sorted(names))

    def _bind_as(self, dn: str, password: str) -> bool:
        """Whether ``password`` is ``dn``'s: a bind on a connection kept for binds only (a
        bind makes the connection that user; RFC 4511 §4.2.1 lets the next bind replace it),
        so a password check costs no new TCP and TLS handshake."""
        for _ in range(2):
            try:
                conn, reused = self._binders.get_nowait(), True
            except queue.Empty:
                conn, reused = self._open(dn, password), False
            conn.user, conn.password = dn, password
            try:
                bound = conn.bind()
            except LDAPCommunicationError as exc:
                _close(conn)
                if reused and _classify(exc)[0] != "timeout":
                    _drain(self._binders)  # stale, as the others idle beside it: start afresh
                    continue
                raise
            conn.password = ""  # the user's password is not kept past its check
            result = conn.result.get("result") if conn.result else None
            if bound or result == INVALID_CREDENTIALS:
                self._binders.put(conn)
                return bool(bound)
            _close(conn)
            raise _DirectoryError("error", f"bind as the user: {_describe(conn.result)}")
        raise LDAPSocketReceiveError("the connection was lost twice")

    # -- connections -----------------------------------------------------------------------

    def _borrow(self) -> tuple[Connection, bool]:
        """A service-account connection, and whether it was idle in the pool."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            pass
        config = self.config
        conn = self._open(config.bind_dn, config.bind_password)
        try:
            bound = conn.bind()
        except LDAPException:
            _close(conn)
            raise
        if not bound:
            result = _describe(conn.result)
            _close(conn)
            raise _DirectoryError("service-bind", f"the service account's bind was refused: {result}")
        return conn, False

    def _open(self, user: str | None, password: str) -> Connection:
        """A connection to the first server that takes it, TLS up (StartTLS when configured)."""
        with self._lock:
            first = self._first
        order = self._servers[first:] + self._servers[:first]
        last: LDAPException | None = None
        for server in order:
            # ldap3 skips an address that failed in the last 5 s; the order above is ours, and
            # a directory that is back is used at once.
            server.reset_availability()
            conn = Connection(
                server,
                user=user,
                password=password,
                authentication=SIMPLE if user else "ANONYMOUS",
                # ldap3 sets SO_RCVTIMEO from whole seconds only
                receive_timeout=max(1, math.ceil(self.config.timeout)),
                read_only=True,
                raise_exceptions=False,
                auto_referrals=False,
            )
            try:
                conn.open()
                if self.config.starttls and not conn.start_tls():
                    raise LDAPStartTLSError(f"StartTLS refused: {_describe(conn.result)}")
            except LDAPException as exc:
                _close(conn)
                last = exc
                continue
            with self._lock:
                self._first = self._servers.index(server)
            return conn
        assert last is not None
        raise _DirectoryError(*_classify(last))


def _server(url: str, tls: Tls, timeout: float) -> Server:
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "ldaps"
    return Server(
        parts.hostname,
        port=parts.port or (636 if secure else 389),
        use_ssl=secure,
        tls=tls,
        connect_timeout=timeout,
        get_info=NONE,
    )


def _search(
    conn: Connection, base: str, search_filter: str, attributes: list[str], *, limit: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    ok = conn.search(base, search_filter, search_scope=SUBTREE, attributes=attributes, size_limit=limit)
    result = conn.result or {}
    # noSuchObject (32): the base is gone; sizeLimitExceeded (4): more than `limit`, which is
    # an answer (ambiguous) and not a failure.
    if not ok and result.get("result") not in (0, 4, 32):
        if conn.closed or result.get("result") is None:
            raise LDAPSocketReceiveError("the connection was lost")
        raise _DirectoryError("error", f"search under {base}: {_describe(result)}")
    return [
        (str(e["dn"]), dict(e.get("attributes") or {}))
        for e in (conn.response or [])
        if e.get("type") == "searchResEntry"
    ]


def _describe(result: dict[str, Any] | None) -> str:
    if not result:
        return "no answer"
    text = f"{result.get('description', 'error')} ({result.get('result')})"
    message = str(result.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def _classify(exc: LDAPException) -> tuple[str, str]:
    text = str(exc.args[0] if exc.args else exc).strip("()',\"") or type(exc).__name__
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timeout", text
    if isinstance(exc, LDAPStartTLSError) or "ssl" in lowered or "certificate" in lowered:
        return "tls", text
    if isinstance(exc, LDAPCommunicationError):  # refused, reset, closed by the server
        return "unreachable", text
    return "error", text


def _drain(idle: queue.SimpleQueue[Connection]) -> None:
    while True:
        try:
            _close(idle.get_nowait())
        except queue.Empty:
            return


def _close(conn: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
