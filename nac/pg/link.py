"""A connection to PostgreSQL that comes back by itself, for one background thread.

A server keeps deciding while PostgreSQL is away, so losing it is an expected state, not an
error: the first failure of an outage is logged once (a warning), retries back off from
BACKOFF_FIRST to BACKOFF_MAX, and the return is logged with how long it lasted.  ``up`` and
``reconnects`` are what /metrics shows (``nac_pg_up``, ``nac_pg_reconnects``).  Each thread
that talks to PostgreSQL (the rules follower now, the history shipper next) holds its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from nac.errors import NacError
from nac.pg import connect, first_line, redact

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("nac.pg")

#: Seconds before the first retry of an outage; doubled per failure up to BACKOFF_MAX, so a
#: short restart is noticed at once and a long outage costs a connection attempt every 5 s.
BACKOFF_FIRST: Final = 0.25
BACKOFF_MAX: Final = 5.0


class Link:
    """One connection, opened on demand: :meth:`connection` gives it (or None while backing
    off), :meth:`lost` closes it after an error.  Not shared between threads."""

    def __init__(
        self,
        url: str,
        *,
        purpose: str,
        setup: Callable[[psycopg.Connection[Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.where = redact(url)
        self.purpose = purpose  # what this connection is for, in log lines
        self._setup = setup  # run on each new connection (LISTEN, schema check...)
        self._clock = clock
        self.conn: psycopg.Connection[Any] | None = None
        self.up = False
        self.reconnects = 0
        self._failures = 0
        self._retry_at = 0.0
        self._down_since: float | None = None

    def connection(self) -> psycopg.Connection[Any] | None:
        """The open connection, a new one, or None (PostgreSQL unreachable: retry later)."""
        if self.conn is not None:
            return self.conn
        now = self._clock()
        if now < self._retry_at:
            return None
        try:
            conn = connect(self.url)
        except NacError as exc:
            self._failed(str(exc), now)
            return None
        self.conn = conn
        import psycopg  # noqa: PLC0415 - connect() loaded it

        try:
            if self._setup is not None:
                self._setup(conn)
        except (psycopg.Error, NacError) as exc:  # the driver's, or the schema check's: retried
            self.lost(exc)
            return None
        self.up = True
        self._failures = 0
        if self._down_since is not None:
            self.reconnects += 1
            log.info(
                "PostgreSQL %s is back for the %s after %.1f s",
                self.where,
                self.purpose,
                now - self._down_since,
            )
            self._down_since = None
        return conn

    def lost(self, exc: BaseException) -> None:
        """The connection failed (or its setup did): close it and back off."""
        self.close()
        self._failed(f"{self.where}: {first_line(exc)}", self._clock())

    def _failed(self, why: str, now: float) -> None:
        self.up = False
        self._failures += 1
        self._retry_at = now + min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        if self._down_since is None:  # once per outage
            self._down_since = now
            log.warning(
                "PostgreSQL unreachable for the %s (%s); keeping the last rules, retrying", self.purpose, why
            )
        else:
            log.debug("PostgreSQL still unreachable for the %s: %s", self.purpose, why)

    def retry_in(self) -> float:
        """Seconds until the next connection attempt (0: now)."""
        return max(0.0, self._retry_at - self._clock())

    def close(self) -> None:
        """Close the connection, if open (``up`` stays what it was: closing is not an outage)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            import psycopg  # noqa: PLC0415 - loaded with the connection

            try:
                conn.close()
            except psycopg.Error:  # closing a broken connection may fail too
                log.debug("closing the PostgreSQL connection failed", exc_info=True)
