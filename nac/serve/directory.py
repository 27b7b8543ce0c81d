"""EAP rounds that wait for the directory (`[ldap]`): the shell's side of a paused round.

The engine answers such a round with a question instead of a reply (nac/admission/waiting.py);
this asks it on nac/identity/lookups.py's threads, and when the answer is back on the event
loop has the engine finish the round, then hands the outcome to the server's group commit like
any other decision.  Without a directory (`[ldap]` added by a reload, read only at start) the
round fails closed.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable

from nac.admission.engine import Engine, Outcome
from nac.admission.waiting import Paused
from nac.errors import PacketError
from nac.identity.lookups import Lookups
from nac.identity.query import DirectoryAnswer, failed
from nac.serve.guard import DropLog

log = logging.getLogger("nac.server")

#: What the server commits and answers: the outcome, the NAS's address, the decision's
#: microseconds, the socket the reply leaves from.
Decided = Callable[[tuple[Outcome, tuple[str, int], int, socket.socket]], None]


class DirectoryRounds:
    def __init__(
        self,
        lookups: Lookups | None,
        *,
        engine: Engine,
        counters: Counter[str],
        drop_log: DropLog,
        decided: Decided,
    ) -> None:
        self.lookups = lookups
        self.engine = engine
        self.counters = counters
        self.drop_log = drop_log
        self.decided = decided

    @property
    def waiting(self) -> int:
        return self.lookups.waiting if self.lookups is not None else 0

    def ask(self, paused: Paused, addr: tuple[str, int], sock: socket.socket, started: float) -> None:
        """``started``: when the request was read (time.perf_counter), for its latency."""

        def answered(answer: DirectoryAnswer) -> None:
            self._resume(paused, answer, addr, sock, started)

        if self.lookups is None:
            self.counters["ldap_failures:not-configured"] += 1
            log.warning("an 802.1X user needs the directory, but [ldap] is read at start: restart nac serve")
            answered(failed("not-configured", "[ldap] is read at start: restart nac serve"))
        else:
            self.lookups.ask(paused.query, answered)

    def _resume(
        self,
        paused: Paused,
        answer: DirectoryAnswer,
        addr: tuple[str, int],
        sock: socket.socket,
        started: float,
    ) -> None:
        client = paused.round.client
        try:
            outcome = self.engine.resume(paused, answer, now=time.time())
        except PacketError as exc:  # e.g. no room left for the reply beside Proxy-State
            self.counters[f"dropped:{exc.reason}"] += 1
            self.drop_log(exc.reason, f"{client.name} ({addr[0]})", exc.detail, time.time())
            return
        if outcome.error is not None:
            self.counters["internal_errors"] += 1
            log.error(
                "internal error while deciding for %s; answered Access-Reject (fail closed)",
                client.name,
                exc_info=outcome.error,
            )
        self.counters[outcome.kind] += 1
        self.decided((outcome, addr, int((time.perf_counter() - started) * 1e6), sock))

    def close(self) -> None:
        if self.lookups is not None:
            self.lookups.close()
