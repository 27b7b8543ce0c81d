"""nac/serve/guard.py: what unverifiable traffic may cost, with forged sources in mind."""

from __future__ import annotations

import logging
import struct

import pytest
from netaddr import IPNetwork

from nac.equipment import clients as clients_mod
from nac.equipment.clients import Client, ClientTable
from nac.serve.guard import LOG_KEYS_MAX, SOURCES_MAX, DropLog, RateLimits, Unverified, screen


def _header(code: int, length: int, size: int) -> bytes:
    return (struct.pack("!BBH", code, 7, length) + bytes(16) + bytes(size))[:size]


@pytest.mark.parametrize(
    ("datagram", "service", "reason"),
    [
        (bytes(19), "auth", "too-short"),
        (_header(1, 4097, 4097), "auth", "too-long"),
        (_header(1, 19, 20), "auth", "bad-length"),
        (_header(1, 21, 20), "auth", "bad-length"),  # the Length field lies past the datagram
        (_header(2, 20, 20), "auth", "unexpected-code"),  # an Access-Accept sent to the server
        (_header(4, 20, 20), "auth", "unexpected-code"),  # accounting on the auth port
        (_header(1, 20, 20), "acct", "unexpected-code"),
        (_header(1, 20, 20), "auth", None),
        (_header(12, 20, 20), "auth", None),
        (_header(4, 20, 30), "acct", None),  # octets past the Length are padding (RFC 2865 §3)
        (_header(1, 4096, 4096), "auth", None),
    ],
)
def test_screen_gives_the_reasons_decode_gives(datagram: bytes, service: str, reason: str | None) -> None:
    assert screen(datagram, service) == reason


def test_unverified_flags_a_source_past_its_budget_for_that_second_only() -> None:
    guard = Unverified(budget=3)
    assert [guard.count("10.0.0.1", 100.1) for _ in range(3)] == [1, 2, 3]
    assert guard.over("10.0.0.1", 100.9)
    assert not guard.over("10.0.0.2", 100.9)
    assert not guard.over("10.0.0.1", 101.0)  # a new second starts afresh
    assert guard.count("10.0.0.1", 101.0) == 1
    assert not guard.over("10.0.0.1", 101.5)


def test_unverified_stays_bounded_under_many_forged_sources() -> None:
    guard = Unverified(budget=2)
    guard.count("10.0.0.1", 5.0)
    guard.count("10.0.0.1", 5.0)
    for i in range(SOURCES_MAX * 3):
        guard.count(f"192.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 5.5)
    assert len(guard) == SOURCES_MAX
    assert "10.0.0.1" not in guard.windows  # the oldest went first
    assert "192.0.47.255" in guard.windows  # the newest stay
    assert guard.prune(5.9) == 0  # this second's windows stay
    assert guard.prune(6.0) == SOURCES_MAX  # and go with it
    assert len(guard) == 0


def test_unverified_prune_keeps_the_current_windows() -> None:
    guard = Unverified()
    guard.count("a", 10.0)
    guard.count("b", 11.0)
    guard.count("a", 11.2)  # a new window: re-inserted, so age order holds
    guard.count("c", 10.5)  # a late arrival from an earlier second sits behind a newer one
    assert guard.prune(11.5) == 0  # pruning stops at the first current window...
    assert guard.prune(12.0) == 3  # ...and all go once the second is over
    assert len(guard) == 0


def test_rate_limits_are_spent_only_by_what_the_caller_spends() -> None:
    limits = RateLimits()
    for _ in range(1000):  # datagrams that fail verification: looked at, never spent
        assert limits.allows("sw1", 5.0, 100.0)
    for _ in range(5):
        assert limits.allows("sw1", 5.0, 100.0)
        limits.spend("sw1", 5.0, 100.0)
    assert not limits.allows("sw1", 5.0, 100.0)
    assert not limits.allows("sw1", 5.0, 100.1)  # half a token refilled
    assert limits.allows("sw1", 5.0, 100.2)
    assert limits.allows("other", 5.0, 100.2)  # one bucket per client


def test_rate_limits_prune_only_buckets_that_are_full_again() -> None:
    limits = RateLimits()
    for name in ("sw1", "sw2"):
        limits.spend(name, 2.0, 10.0)
        limits.spend(name, 2.0, 10.0)
    assert limits.allows("sw2", 2.0, 10.5)  # one token back, refilled at 10.5
    assert limits.prune(10.9) == 0
    assert limits.prune(11.0) == 1  # sw1 idle for a second: full, the same as no bucket
    assert len(limits) == 1
    limits.spend("sw1", 2.0, 11.0)
    limits.spend("sw1", 2.0, 11.0)
    assert not limits.allows("sw1", 2.0, 11.0)  # a pruned bucket starts full, then empties


def test_drop_log_names_few_sources_per_reason_and_sums_up_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    drop_log = DropLog(interval=10.0, sources=3)
    with caplog.at_level(logging.WARNING, logger="nac.server"):
        for i in range(1000):  # a spread of forged sources, each new
            drop_log("unknown-client", f"10.9.{i >> 8}.{i & 255}", "not a configured client", 100.0)
        drop_log("bad-length", "sw1 (10.0.0.1)", "", 100.0)  # another reason has its own budget
        assert len(caplog.records) == 4
        assert len(drop_log) <= 3 + 1 + 2
        drop_log.prune(110.0)
    lines = [r.getMessage() for r in caplog.records]
    assert "dropped 997 more packets: unknown-client, from sources past the 3 named in 10 s" in lines
    assert len(drop_log) == 0


def test_drop_log_reports_what_it_suppressed_when_a_line_ages_out(caplog: pytest.LogCaptureFixture) -> None:
    drop_log = DropLog(interval=10.0)
    with caplog.at_level(logging.WARNING, logger="nac.server"):
        for second in range(5):
            drop_log("bad-message-authenticator", "sw1 (10.0.0.1)", "wrong secret", 100.0 + second)
        assert drop_log.prune(109.0) == 0
        assert drop_log.prune(110.0) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "dropped packet from sw1 (10.0.0.1): bad-message-authenticator: wrong secret",
        "dropped 4 more packets from sw1 (10.0.0.1): bad-message-authenticator"
        " in the 10 s after the last line",
    ]


def test_drop_log_stays_bounded_without_pruning(caplog: pytest.LogCaptureFixture) -> None:
    drop_log = DropLog(interval=10.0, sources=LOG_KEYS_MAX * 2)
    with caplog.at_level(logging.ERROR, logger="nac.server"):
        for i in range(LOG_KEYS_MAX + 500):
            drop_log("unknown-client", str(i), "", 100.0)
    assert len(drop_log.lines) == LOG_KEYS_MAX


def test_client_cache_stays_bounded_under_many_forged_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients_mod, "CLIENT_CACHE_MAX", 100)
    table = ClientTable([Client(name="sw", network=IPNetwork("10.0.0.0/16"), secret=b"s")])
    for i in range(1000):
        table.lookup(f"10.0.{i >> 8}.{i & 255}")
        table.lookup(f"192.0.{i >> 8}.{i & 255}")
    assert len(table._cache) <= 100
    assert table.lookup("10.0.0.1") is not None
