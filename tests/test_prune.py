"""History retention: `nac history prune --older-than SPAN` and nac.history.prune (batched)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nac.cli.main import app
from nac.history import prune, tiers
from nac.store import Store
from tests.helpdesk_rows import decision, write

DAY = 86400.0
MAC = "00:10:a4:23:19:c0"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    return str(tmp_path / "prune.db")


def ages(db: str) -> list[int]:
    now = time.time()
    with tiers.connect(db) as conn:
        return sorted(round((now - ts) / DAY) for (ts,) in conn.execute("SELECT ts FROM history"))


def index_all(db: str) -> None:
    """Move every decision into the MAC-indexed tier, where prune works row by row."""
    with tiers.connect(db) as conn:
        tiers.move_recent(conn, 10**9)


def test_prune_deletes_only_older_rows(db: str) -> None:
    now = time.time()
    for d in (1, 50, 89, 91, 100, 200):  # one group commit each
        write(db, [decision(now - d * DAY, MAC)])
    result = CliRunner().invoke(app, ["history", "prune", "--older-than", "90d", "--db", db])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "deleted 3 decisions older than 90d"
    assert ages(db) == [1, 50, 89]
    result = CliRunner().invoke(app, ["history", "prune", "--older-than", "90d", "--db", db])
    assert result.stdout.strip() == "deleted 0 decisions older than 90d"


@pytest.mark.parametrize("span", ["90", "90 days", "0d", "-1d", "soon"])
def test_prune_refuses_a_bad_span(db: str, span: str) -> None:
    write(db, [decision(time.time() - 200 * DAY, MAC)])
    result = CliRunner().invoke(app, ["history", "prune", "--older-than", span, "--db", db])
    assert result.exit_code == 2
    assert span in result.stderr
    assert ages(db) == [200]


def test_prune_works_in_batches(db: str) -> None:
    now = time.time()
    write(db, [decision(now - 100 * DAY - i, MAC) for i in range(10)] + [decision(now, MAC)])
    index_all(db)
    pauses: list[float] = []
    store = Store(db)
    try:
        deleted = prune.prune(store.conn, 90 * DAY, batch=3, sleep=pauses.append)
    finally:
        store.close()
    assert deleted == 10
    assert len(pauses) == 3  # batches of 3, 3, 3 and 1
    assert ages(db) == [0]


def test_prune_lets_a_writer_in_between_batches(db: str) -> None:
    """The server's group commit must not wait for a whole prune: another connection with a
    short busy timeout writes while a long prune runs."""
    now = time.time()
    write(db, [decision(now - 100 * DAY - i * 0.001, MAC) for i in range(60_000)])
    index_all(db)
    done = threading.Event()
    result: list[int] = []

    def run_prune() -> None:
        store = Store(db)
        try:
            result.append(prune.prune(store.conn, 90 * DAY, batch=1000))
        finally:
            store.close()
            done.set()

    thread = threading.Thread(target=run_prune)
    writer = tiers.connect(db)  # the server's group commits go to the recent tier
    writer.execute("PRAGMA busy_timeout=500")
    thread.start()
    written = 0
    try:
        while not done.is_set():
            with writer:
                tiers.append_history(writer, [decision(time.time(), MAC)])
            written += 1
            time.sleep(0.002)
    finally:
        thread.join(timeout=60)
        writer.close()
    assert result == [60_000]
    assert written > 0
    assert len(ages(db)) == written
