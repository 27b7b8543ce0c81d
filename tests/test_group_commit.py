"""The group commit's pacing (nac/serve/server.py, Server.flush): a request after a quiet spell is
committed and answered at once; requests that follow within COMMIT_SPACING wait for one
shared commit, and no reply leaves before its decision's history row is committed."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from nac.bench import load as bench
from nac.config import load_config
from nac.history import tiers
from nac.radius.accounting import SessionEvent
from nac.serve import run, server
from tests.interop import SECRET, free_udp_ports


@pytest.fixture
def nac(tmp_path: Path) -> Iterator[server.Server]:
    auth, acct = free_udp_ports(2)
    config = load_config(db=str(tmp_path / "nac.db"), bind=["127.0.0.1"], auth_port=auth, acct_port=acct)
    built = run.build_server(config, run.load_shared(config), lambda: config)
    built.open()
    yield built
    built.close()
    built.close_store()


def _auth_client(nac: server.Server) -> tuple[server.Listener, socket.socket]:
    """The server's auth listener and a non-blocking client socket connected to it."""
    listener = next(lst for lst in nac.listeners if lst.service == "auth")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(listener.sock.getsockname())
    client.setblocking(False)
    return listener, client


def _replies(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


def _count_commits(nac: server.Server) -> list[int]:
    """The number of history rows in each group commit from now on."""
    commits: list[int] = []
    write = nac.history._write

    def counting(
        rows: Sequence[Sequence[object]], events: Sequence[SessionEvent], collect: tuple[int, int] | None
    ) -> int:
        commits.append(len(rows))
        return write(rows, events, collect)

    nac.history._write = counting  # type: ignore[method-assign]
    return commits


def _request(client: socket.socket, n: int) -> None:
    """MAB Access-Request number ``n`` (identifier and MAC both from n)."""
    client.send(bench.build_request(f"00:1e:10:12:34:{n:02x}", SECRET.encode(), n, os.urandom(16)))


def test_requests_close_together_share_one_commit_and_wait_for_it(nac: server.Server) -> None:
    listener, client = _auth_client(nac)
    commits = _count_commits(nac)

    def request(n: int) -> None:
        _request(client, n)

    async def exchange() -> None:
        request(1)
        await asyncio.sleep(0.01)
        nac.drain(listener)  # the first in a while: committed and answered at once
        assert commits == [1]
        await asyncio.sleep(0.01)
        assert len(_replies(client)) == 1
        # Two more right behind it: decided, but waiting for the next commit.
        nac.flush()
        request(2)
        request(3)
        await asyncio.sleep(0.001)
        # As if a commit had just ended (and had taken 20 ms: the test has time to look).
        nac._last_commit = asyncio.get_running_loop().time() + 0.02
        nac.drain(listener)
        assert commits == [1]
        await asyncio.sleep(0.005)
        assert _replies(client) == []  # no reply before its commit
        await asyncio.sleep(server.COMMIT_SPACING + 0.05)
        assert commits == [1, 2]  # one commit for both
        assert len(_replies(client)) == 2

    try:
        asyncio.run(exchange())
    finally:
        client.close()
    assert tiers.history_count(nac.store.conn) == 3


def test_decisions_waiting_for_their_commit_are_committed_and_answered_at_stop(
    nac: server.Server,
) -> None:
    listener, client = _auth_client(nac)

    async def exchange() -> None:
        nac._last_commit = asyncio.get_running_loop().time() + 60  # the next commit is far off
        client.send(bench.build_request("00:1e:10:12:34:56", SECRET.encode(), 9, os.urandom(16)))
        await asyncio.sleep(0.01)
        nac.drain(listener)
        await asyncio.sleep(0.01)
        assert _replies(client) == []
        nac.flush()  # what serve() does as it stops
        await asyncio.sleep(0.01)
        assert len(_replies(client)) == 1

    try:
        asyncio.run(exchange())
    finally:
        client.close()
    assert tiers.history_count(nac.store.conn) == 1


def test_under_steady_load_the_sockets_wait_for_the_commit_and_what_arrived_joins_it(
    nac: server.Server,
) -> None:
    _, client = _auth_client(nac)
    commits = _count_commits(nac)

    def request(n: int) -> None:
        _request(client, n)

    async def exchange() -> None:
        ready = asyncio.Event()
        serving = asyncio.create_task(nac.serve(on_ready=ready.set))
        await asyncio.wait_for(ready.wait(), 10)
        request(1)
        await asyncio.sleep(0.05)
        assert commits == [1]  # after a quiet spell: at once
        assert len(_replies(client)) == 1
        nac._last_commit = asyncio.get_running_loop().time() + 0.2  # the next commit is 200 ms off
        for n in range(2, 2 + server.PAUSE_PENDING):  # steady load: decided, waiting for the commit
            request(n)
        await asyncio.sleep(0.05)
        assert nac.counters["received"] == 1 + server.PAUSE_PENDING
        assert not nac._watching  # and the sockets are left alone until then
        request(20)
        request(21)
        await asyncio.sleep(0.05)
        assert nac.counters["received"] == 1 + server.PAUSE_PENDING
        assert _replies(client) == []
        await asyncio.sleep(0.2)
        assert commits == [1, server.PAUSE_PENDING + 2]  # all of them in one commit
        assert len(_replies(client)) == server.PAUSE_PENDING + 2
        assert nac._watching
        request(22)  # and the sockets are watched again
        await asyncio.sleep(0.05)
        assert len(_replies(client)) == 1
        # A lone request put off by the spacing: the sockets stay watched (light load).
        nac._last_commit = asyncio.get_running_loop().time() + 0.1
        request(23)
        await asyncio.sleep(0.05)
        assert nac.counters["received"] == server.PAUSE_PENDING + 5
        assert nac._watching
        await asyncio.sleep(0.1)
        assert len(_replies(client)) == 1
        assert nac._stopping is not None
        nac._stopping.set()
        await asyncio.wait_for(serving, 30)

    before = sys.getswitchinterval()
    try:
        asyncio.run(exchange())
    finally:
        client.close()
    assert tiers.history_count(nac.store.conn) == server.PAUSE_PENDING + 5
    assert sys.getswitchinterval() == before  # set for the indexer thread's life only


def test_a_queue_is_decided_and_answered_a_bounded_batch_at_a_time(nac: server.Server) -> None:
    """After a stall the socket holds a queue: the first MAX_BATCH of it are committed and
    answered before the rest is even read, so no reply waits for the whole queue's decisions."""
    listener, client = _auth_client(nac)
    commits = _count_commits(nac)
    queued = server.MAX_BATCH + 5

    async def exchange() -> None:
        for n in range(queued):
            _request(client, n)
        await asyncio.sleep(0.05)
        nac.drain(listener)  # the first in a while: no spacing to wait out
        assert commits == [server.MAX_BATCH]
        await asyncio.sleep(0.01)
        assert len(_replies(client)) == server.MAX_BATCH
        assert nac.counters["received"] == server.MAX_BATCH  # the rest still in the socket
        nac._last_commit = 0.0  # as if the spacing were over
        nac.drain(listener)
        assert commits == [server.MAX_BATCH, 5]
        await asyncio.sleep(0.01)
        assert len(_replies(client)) == 5

    try:
        asyncio.run(exchange())
    finally:
        client.close()
    assert tiers.history_count(nac.store.conn) == queued
