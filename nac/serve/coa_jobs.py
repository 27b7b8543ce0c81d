"""Queued Disconnect / re-authorize requests, sent from the server that holds the NAS secrets.

`nac disconnect` and `nac reauth` (and profiling, when a device's profile changes) queue jobs
in the database; the server's tick hands them to a CoaDispatcher, which sends each one as its
own task (nac/radius/dynauth.py) and records the answer in the job, in history and in the counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final

from nac.admission.engine import Engine
from nac.equipment import coa
from nac.equipment.clients import Client
from nac.history.record import HistoryRecord
from nac.history.writer import HistoryWriter
from nac.radius.dynauth import Answer, DynAuthClient, Target
from nac.sessions import store as session_store
from nac.store import Store, StoreError

#: The server's logger: these lines are the server's, whichever module writes them.
log = logging.getLogger("nac.server")

#: How often queued Disconnect / re-authorize requests are picked up (the CLI waits on them).
JOB_POLL: Final = 0.25


class CoaDispatcher:
    """Sends the queued jobs; owns the DynAuthClient and the tasks in flight."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        history: HistoryWriter,
        counters: Counter[str],
        clients: Callable[[], Iterable[Client]],
    ) -> None:
        self.store = store
        self.engine = engine
        self.history = history
        self.counters = counters
        self._clients = clients  # the configured clients now (a reload replaces them)
        self._dynauth: DynAuthClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def dispatch(self) -> None:
        """Send the Disconnect / re-authorize requests that `nac disconnect` and `nac reauth`
        queued: this process holds the NAS secrets, the CLI does not."""
        try:
            jobs = session_store.take_pending(self.store.conn)
        except StoreError as exc:
            log.warning("cannot read queued dynamic authorization requests: %s", exc)
            return
        for job in jobs:
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Cancel what is in flight and close the dynamic authorization socket."""
        for task in list(self._tasks):
            task.cancel()
        if self._dynauth is not None:
            self._dynauth.close()

    async def _run(self, job: dict[str, Any]) -> None:
        clients = {c.name: c for c in self._clients()}
        client = clients.get(job["client"])
        kind = job["kind"]
        if client is None:
            answer = Answer("error")
            detail = f"client {job['client']} is no longer configured"
        else:
            if self._dynauth is None:
                self._dynauth = DynAuthClient()
            target = Target(
                nas_ip=job["nas_ip"],
                port=client.coa_port,
                secret=client.secret,
                client=client.name,
                session_id=job["session_id"],
                calling_station_id=job["calling_station_id"],
                user_name=job["user_name"],
                nas_identifier=job["nas_identifier"],
                called_station_id=job["called_station_id"],
                nas_port=job["nas_port"],
                audit_session_id=job["audit_session_id"],
            )
            sent = coa.plan(
                kind, reauth=client.reauth, bounce=client.bounce, disconnect=client.disconnect, job=job
            )
            answer = await self._dynauth.send(
                sent.code, target, now=time.time(), command=sent.command, session=client.coa_session
            )
            # A bounce or a port shutdown is not what `nac reauth` / `nac disconnect` said: say so.
            plain = sent.command in (None, coa.REAUTHENTICATE)
            detail = answer.detail if plain else f"{sent.command} {answer.detail}"
        now = time.time()
        self.counters[f"coa:{kind}:{answer.status}"] += 1
        log.info("%s %s on %s (%s): %s", kind, job["mac"], job["client"], job["nas_ip"], detail)
        record = HistoryRecord(
            ts=now,
            mac=job["mac"],
            vendor=None,
            prefix=None,
            prefix_bits=None,
            action=kind,
            vlan=None,
            rule=f"coa:{job['reason']}",
            reason=f"{kind} {detail}",
            client=job["client"],
            nas_ip=job["nas_ip"],
            method="coa",
            user_name=job["user_name"],
            calling_station_id=job["calling_station_id"],
            called_station_id=None,
            nas_port=None,
            nas_port_id=None,
            nas_port_type=None,
            nas_identifier=job["nas_identifier"],
            src=f"{job['nas_ip']}:{client.coa_port if client else 0}",
            message_authenticator=1,
            reply=0,
            snapshot=self.engine.policy.snapshot_id,
        )
        try:
            session_store.finish(
                self.store.conn,
                job["job"],
                status=answer.status,
                attempts=answer.attempts,
                error_cause=answer.error_cause,
                detail=detail,
                now=now,
            )
            self.history.record(record)
        except StoreError as exc:
            log.error("cannot record the %s result for %s: %s", kind, job["mac"], exc)
