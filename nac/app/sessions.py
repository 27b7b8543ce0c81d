"""Sessions and their Disconnect / re-authorize jobs for nac.app.Nac: one server's, in its
SQLite database (nac/sessions/), or every server's, in a shared PostgreSQL (nac/pg/sessions.py
and nac/pg/coa.py), where each job goes to the server that saw the session's accounting."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nac.pg import coa as pg_coa
from nac.pg import sessions as pg_sessions
from nac.pg.store import PgStore
from nac.sessions import enforce as session_enforce
from nac.sessions import store as session_store
from nac.store import os_user

if TYPE_CHECKING:
    import psycopg

    from nac.app.facade import Nac
    from nac.policy.decide import Policy
    from nac.sessions.enforce import Change


def _shared(nac: Nac) -> psycopg.Connection[Any] | None:
    """PostgreSQL's connection when the sessions are there (None: the SQLite database's)."""
    return nac.policy_store.conn if isinstance(nac.policy_store, PgStore) else None


def query(
    nac: Nac, *, active: bool = False, mac: str | None = None, client: str | None = None
) -> list[dict[str, Any]]:
    pg = _shared(nac)
    if pg is not None:
        return pg_sessions.query(pg, active=active, mac=mac, client=client)
    return session_store.query(nac.store.conn, active=active, mac=mac, client=client)


def request_action(nac: Nac, *, mac: str, kind: str, reason: str) -> list[int]:
    """Queue ``kind`` for every active session of ``mac``: the job ids (none: no session)."""
    pg, now = _shared(nac), time.time()
    if pg is not None:
        return pg_coa.request_action(pg, mac=mac, kind=kind, reason=reason, requested_by=os_user(), now=now)
    return session_store.request_action(
        nac.store.conn, mac=mac, kind=kind, reason=reason, requested_by=os_user(), now=now
    )


def wait_jobs(nac: Nac, ids: Sequence[int], *, wait: float) -> list[dict[str, Any]]:
    pg = _shared(nac)
    if pg is not None:
        return pg_coa.wait_jobs(pg, ids, wait=wait)
    return session_store.wait_jobs(nac.store.conn, ids, wait=wait)


def changes(nac: Nac, before: Policy) -> list[Change]:
    """Active sessions whose device the rules in force treat otherwise than ``before`` did."""
    pg, now = _shared(nac), time.time()
    if pg is not None:
        active = pg_sessions.query(pg, active=True)
        return session_enforce.changes_in(active, before, nac.policy(), now=now)
    return session_enforce.changes(nac.store.conn, before, nac.policy(), now=now)


def enforce_change(nac: Nac, before: Policy, *, reason: str) -> list[tuple[Change, list[int]]]:
    """Queue Disconnect / re-authorize for the active sessions the rules changed since
    ``before``; each change with its job ids."""
    pg, now = _shared(nac), time.time()
    if pg is not None:
        active = pg_sessions.query(pg, active=True)
        return pg_coa.enforce(
            pg, before, nac.policy(), reason=reason, requested_by=os_user(), now=now, sessions=active
        )
    return session_enforce.enforce(
        nac.store.conn, before, nac.policy(), reason=reason, requested_by=os_user(), now=now
    )
