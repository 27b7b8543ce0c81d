"""Directory questions asked off the event loop: a bounded pool of threads (one LDAP connection
each) runs them, and each answer is handed back to the loop, where the server resumes the
paused request with it.  Counts every question (nac_ldap_requests) and every failure by its
kind (nac_ldap_failures), and logs a failure kind once a minute at most, with how many more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, Protocol

from nac.identity.query import DirectoryAnswer, DirectoryQuery, failed

log = logging.getLogger("nac.ldap")

#: Questions waiting for a thread at most: past it a request fails closed at once, rather than
#: queueing behind a directory that is slow for everyone (the NAS would have given up anyway).
MAX_WAITING: Final = 1024
#: Seconds between two log lines of one failure kind.
LOG_INTERVAL: Final = 60.0


class Answers(Protocol):
    def answer(self, query: DirectoryQuery) -> DirectoryAnswer: ...

    def close(self) -> None: ...


class Lookups:
    def __init__(
        self,
        directory: Answers,
        *,
        counters: Counter[str],
        workers: int,
        clock: Callable[[], float],
    ) -> None:
        self._directory = directory
        self._counters = counters
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nac-ldap")
        self._clock = clock
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (logged at, suppressed since)
        self.waiting = 0

    def ask(self, query: DirectoryQuery, done: Callable[[DirectoryAnswer], None]) -> None:
        """Ask on a pool thread; ``done`` runs on the event loop with the answer."""
        loop = asyncio.get_running_loop()
        self._counters[f"ldap_requests:{query.kind}"] += 1
        if self.waiting >= MAX_WAITING:
            loop.call_soon(self._finish, failed("overloaded", f"{MAX_WAITING} questions waiting"), done)
            return
        self.waiting += 1
        future = self._executor.submit(self._directory.answer, query)

        def handed_back(fut: Future[DirectoryAnswer]) -> None:  # on the pool's thread
            # RuntimeError: the loop closed while the directory answered; no one waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._resolved, fut, done)

        future.add_done_callback(handed_back)

    def _resolved(self, future: Future[DirectoryAnswer], done: Callable[[DirectoryAnswer], None]) -> None:
        self.waiting -= 1
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:  # a bug in the client, not the directory's answer: fail closed
            log.error("directory lookup failed; the request is refused (fail closed)", exc_info=error)
            answer = failed("error", f"internal error: {type(error).__name__}")
        else:
            answer = future.result()
        self._finish(answer, done)

    def _finish(self, answer: DirectoryAnswer, done: Callable[[DirectoryAnswer], None]) -> None:
        if answer.failure is not None:
            self._counters[f"ldap_failures:{answer.failure}"] += 1
            self._log(answer.failure, answer.reason)
        done(answer)

    def _log(self, kind: str, reason: str) -> None:
        now = self._clock()
        last = self._logged.get(kind)
        if last is not None and now - last[0] < LOG_INTERVAL:
            self._logged[kind] = (last[0], last[1] + 1)
            return
        more = f" ({last[1]} more since the last line)" if last is not None and last[1] else ""
        log.warning("LDAP: %s; refused (fail closed)%s", reason, more)
        self._logged[kind] = (now, 0)

    def close(self) -> None:
        """At shutdown: questions not yet started are dropped (their NAS asks again elsewhere)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._directory.close()
