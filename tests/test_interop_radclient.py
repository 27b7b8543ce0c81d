"""`nac serve` as a process, driven by FreeRADIUS's radclient (a peer we did not write).

Tests that use radclient skip when it is missing, and fail instead under CI (interop.radclient).
Where radclient cannot do what a switch does (send from another source address, retransmit an
identical datagram), a small Python client in tests/interop.py does it, and the test says so.
"""

from __future__ import annotations

import signal
import threading
import time

from tests.interop import (
    MESSAGE_AUTHENTICATOR,
    PROXY_STATE,
    RELAXED_ADDRESS,
    RELAXED_SECRET,
    REPLY_MESSAGE,
    SECRET,
    UNKNOWN_ADDRESS,
    NacServer,
    NacServerFactory,
    RadclientResult,
    exchange,
    mab_attrs,
    mab_request,
    parse_reply,
    reply_signed,
    udp_socket,
    wait_for_decision,
)

ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
HUAWEI_MAC = "00e0fc112233"  # 00:E0:FC is Huawei Technologies (MA-L)
OTHER_HUAWEI_MAC = "00e0fc445566"
XIRCOM_MAC = "00:10:a4:23:19:c0"  # 00:10:A4 is Xircom (MA-L); PROTOCOL.md's example device
MAC_SPELLINGS = (
    "00-10-A4-23-19-C0",
    "00:10:a4:23:19:c0",
    "0010a42319c0",
    "0010.a423.19c0",
    "0010-a423-19c0",
    "0010a4-2319c0",
)


def _vlan(result: RadclientResult) -> tuple[str | None, str | None, str | None]:
    return (
        result.value("Tunnel-Type"),
        result.value("Tunnel-Medium-Type"),
        result.value("Tunnel-Private-Group-Id"),
    )


def _no_reply(result: RadclientResult) -> bool:
    return result.code is None and result.returncode != 0 and "No reply" in result.stdout


# -- decisions ----------------------------------------------------------------------------


def test_allowed_vendor_gets_access_accept_with_message_authenticator_first(nac_server: NacServer) -> None:
    result = nac_server.radclient(mab_attrs(HUAWEI_MAC))

    assert result.code == "Access-Accept", result.stdout
    assert result.returncode == 0
    assert result.reply, result.stdout
    assert result.reply[0].name == "Message-Authenticator", result.stdout
    assert _vlan(result) == (None, None, None)


def test_vendor_ban_added_while_running_rejects_within_two_seconds_with_reason(
    nac_server: NacServer,
) -> None:
    reason = "ministry ban 2026-04"
    assert nac_server.radclient(mab_attrs(HUAWEI_MAC)).code == "Access-Accept"

    nac_server.cli_ok("rules", "add", "--vendor", "huawei", "--action", "reject", "--reason", reason)
    code = wait_for_decision(lambda: nac_server.radclient(mab_attrs(HUAWEI_MAC)).code, "Access-Reject")

    assert code == "Access-Reject", f"no Access-Reject within 2.5 s; stderr:\n{nac_server.stderr()}"
    result = nac_server.radclient(mab_attrs(HUAWEI_MAC))
    assert result.code == "Access-Reject"
    assert result.reply[0].name == "Message-Authenticator", result.stdout
    assert any(reason in message for message in result.values("Reply-Message")), result.stdout
    # PROTOCOL.md: an Access-Reject carries no VLAN.
    assert _vlan(result) == (None, None, None)


def test_mab_without_any_password_is_refused_saying_only_authentication_failed(
    nac_server: NacServer,
) -> None:
    mac = "00:10:a4:00:00:99"
    attrs = f'User-Name = "{mac}", Calling-Station-Id = "{mac}", Message-Authenticator = 0x00'
    result = nac_server.radclient(attrs)

    assert result.code == "Access-Reject", result.stdout
    assert result.values("Reply-Message") == ["authentication failed"], result.stdout
    [row] = nac_server.history("--mac", mac)
    assert row["rule"] == "builtin:mab-no-password"
    assert "without User-Password or CHAP-Password" in row["reason"]


def test_quarantined_prefix_gets_access_accept_with_rfc3580_vlan(nac_server: NacServer) -> None:
    nac_server.cli_ok("rules", "add", "--oui", "00:10:A4", "--action", "quarantine", "--vlan", "666")
    wait_for_decision(lambda: _vlan(nac_server.radclient(mab_attrs(XIRCOM_MAC)))[2], "666")

    result = nac_server.radclient(mab_attrs(XIRCOM_MAC))

    assert result.code == "Access-Accept", result.stdout
    assert result.reply[0].name == "Message-Authenticator", result.stdout
    assert _vlan(result) == ("VLAN", "IEEE-802", "666"), result.stdout
    # RFC 2868 §3.1: all three tagged; one VLAN uses tag 0.
    tags = {a.name: a.tag for a in result.reply if a.name.startswith("Tunnel-")}
    assert tags == {"Tunnel-Type": 0, "Tunnel-Medium-Type": 0, "Tunnel-Private-Group-Id": 0}


def test_every_mac_spelling_gets_the_same_decision_and_canonical_history_mac(
    nac_server_factory: NacServerFactory,
) -> None:
    server = nac_server_factory(rules=[("--oui", "00:10:A4", "--action", "quarantine", "--vlan", "666")])

    decisions = {}
    for spelling in MAC_SPELLINGS:
        result = server.radclient(mab_attrs(spelling))
        decisions[spelling] = (result.code, _vlan(result))

    assert set(decisions.values()) == {("Access-Accept", ("VLAN", "IEEE-802", "666"))}, decisions
    rows = server.history("--limit", "100")
    assert sorted(row["user_name"] for row in rows) == sorted(MAC_SPELLINGS)
    assert {row["mac"] for row in rows} == {XIRCOM_MAC}
    assert {(row["action"], row["vlan"]) for row in rows} == {("quarantine", "666")}


def test_without_the_c_modules_the_python_path_gives_the_same_answers(
    nac_server_factory: NacServerFactory,
) -> None:
    # As on a machine where pip had no C compiler: nac._speedups and nac._udp refused at import.
    server = nac_server_factory(
        rules=[
            ("--vendor", "huawei", "--action", "reject", "--reason", "banned"),
            ("--oui", "00:10:A4", "--action", "quarantine", "--vlan", "666"),
        ],
        pure_python=True,
    )
    assert server.wait_for_log("nac._speedups is not built"), server.stderr()
    for spelling in MAC_SPELLINGS:
        result = server.radclient(mab_attrs(spelling))
        assert result.code == "Access-Accept", result.stdout
        assert result.reply[0].name == "Message-Authenticator", result.stdout
        assert _vlan(result) == ("VLAN", "IEEE-802", "666"), result.stdout
    banned = server.radclient(mab_attrs(HUAWEI_MAC))
    assert banned.code == "Access-Reject", banned.stdout
    assert banned.value("Reply-Message") == "banned (rule reject-vendor-huawei)", banned.stdout
    assert _no_reply(server.radclient(mab_attrs(HUAWEI_MAC), secret="wrong-secret"))
    assert len(server.history("--limit", "100")) == len(MAC_SPELLINGS) + 1


def test_exact_mac_accept_rule_is_an_exception_to_a_vendor_ban(nac_server_factory: NacServerFactory) -> None:
    server = nac_server_factory(
        rules=[
            ("--vendor", "huawei", "--action", "reject", "--reason", "vendor ban"),
            ("--mac", "00:E0:FC:11:22:33", "--action", "accept", "--reason", "lab exception"),
        ]
    )

    excepted = server.radclient(mab_attrs(HUAWEI_MAC))
    banned = server.radclient(mab_attrs(OTHER_HUAWEI_MAC))

    assert excepted.code == "Access-Accept", excepted.stdout
    assert banned.code == "Access-Reject", banned.stdout
    assert any("vendor ban" in m for m in banned.values("Reply-Message")), banned.stdout


def test_randomized_mac_rule_quarantines_locally_administered_macs_only(
    nac_server_factory: NacServerFactory,
) -> None:
    server = nac_server_factory(rules=[("--randomized", "--action", "quarantine", "--vlan", "900")])

    results = {
        mac: server.radclient(mab_attrs(mac))
        for mac in ("02:11:22:33:44:55", "7a:11:22:33:44:55", XIRCOM_MAC)
    }

    assert {mac: (r.code, _vlan(r)) for mac, r in results.items()} == {
        "02:11:22:33:44:55": ("Access-Accept", ("VLAN", "IEEE-802", "900")),
        "7a:11:22:33:44:55": ("Access-Accept", ("VLAN", "IEEE-802", "900")),
        XIRCOM_MAC: ("Access-Accept", (None, None, None)),
    }


# -- Status-Server (RFC 5997) -------------------------------------------------------------


def test_status_server_on_auth_port_gets_access_accept(nac_server: NacServer) -> None:
    result = nac_server.radclient("Message-Authenticator = 0x00", code="status")

    assert result.code == "Access-Accept", result.stdout
    assert result.reply[0].name == "Message-Authenticator", result.stdout
    # RFC 5997 §3: it may carry only Reply-Message and Message-Authenticator.
    assert {a.name for a in result.reply} <= {"Message-Authenticator", "Reply-Message"}


def test_status_server_reply_echoes_proxy_state_in_order(nac_server: NacServer) -> None:
    # RFC 2865 §5.33 and RFC 5997: FreeRADIUS echoes Proxy-State in its Status-Server replies.
    attrs = "Message-Authenticator = 0x00, Proxy-State = 0x6869, Proxy-State = 0x0102ff"
    for port in (nac_server.auth_port, nac_server.acct_port):
        result = nac_server.radclient(attrs, code="status", port=port)

        assert result.code in ("Access-Accept", "Accounting-Response"), result.stdout
        assert result.values("Proxy-State") == ["0x6869", "0x0102ff"], result.stdout


def test_status_server_on_acct_port_gets_accounting_response(nac_server: NacServer) -> None:
    result = nac_server.radclient("Message-Authenticator = 0x00", code="status", port=nac_server.acct_port)

    assert result.code == "Accounting-Response", result.stdout


# -- what gets no reply -------------------------------------------------------------------


def test_wrong_secret_gets_no_reply(nac_server: NacServer) -> None:
    result = nac_server.radclient(mab_attrs(HUAWEI_MAC), secret="not-the-secret")

    assert _no_reply(result), result.stdout


def test_missing_message_authenticator_gets_no_reply_from_a_strict_client(nac_server: NacServer) -> None:
    result = nac_server.radclient(mab_attrs(HUAWEI_MAC, message_authenticator=False))

    assert "Message-Authenticator" not in {a.name for a in result.sent}, result.stdout
    assert _no_reply(result), result.stdout


def test_dropped_requests_are_counted_and_logged(nac_server: NacServer) -> None:
    assert _no_reply(nac_server.radclient(mab_attrs(HUAWEI_MAC), secret="not-the-secret"))
    assert _no_reply(nac_server.radclient(mab_attrs(HUAWEI_MAC, message_authenticator=False)))

    assert nac_server.stop(signal.SIGTERM) == 0
    stderr = nac_server.stderr()

    drop_lines = [line for line in stderr.splitlines() if "dropped" in line and "stopped" not in line]
    assert any("bad-message-authenticator" in line for line in drop_lines), stderr
    assert any("missing-message-authenticator" in line for line in drop_lines), stderr
    counters = [line for line in stderr.splitlines() if "stopped" in line]
    assert counters, stderr
    assert "dropped:bad-message-authenticator=1" in counters[-1], counters[-1]
    assert "dropped:missing-message-authenticator=1" in counters[-1], counters[-1]


def test_request_from_an_unknown_address_gets_no_reply_and_is_logged(nac_server: NacServer) -> None:
    # radclient cannot choose its source address; a Python socket bound to 127.0.0.3 can.
    datagram, _ = mab_request(HUAWEI_MAC, secret=SECRET)
    with udp_socket(UNKNOWN_ADDRESS) as sock:
        reply = exchange(sock, datagram, nac_server.auth_port)

    assert reply is None
    assert nac_server.wait_for_log(UNKNOWN_ADDRESS), nac_server.stderr()
    logged = [line for line in nac_server.stderr().splitlines() if UNKNOWN_ADDRESS in line]
    assert any("unknown-client" in line for line in logged), logged
    assert nac_server.stop() == 0
    assert "dropped:unknown-client=1" in nac_server.stderr()


# -- duplicates, accounting, Proxy-State --------------------------------------------------


def test_retransmission_gets_the_same_reply_and_one_history_row(nac_server: NacServer) -> None:
    # radclient retransmits only when no reply came; a switch retransmits when its reply was
    # lost, so the identical datagram is sent twice from one socket (RFC 5080 §2.2.2).
    mac = "00:10:a4:00:00:01"
    datagram, authenticator = mab_request(mac, identifier=42)
    with udp_socket() as sock:
        first = exchange(sock, datagram, nac_server.auth_port)
        second = exchange(sock, datagram, nac_server.auth_port)

    assert first is not None
    assert second == first
    assert reply_signed(first, authenticator, SECRET)
    assert len(nac_server.history("--mac", mac)) == 1


def test_accounting_request_gets_accounting_response(nac_server: NacServer) -> None:
    attrs = f'User-Name = "{HUAWEI_MAC}", Acct-Status-Type = Start, Acct-Session-Id = "nac-test-1"'

    result = nac_server.radclient(attrs, code="acct")

    assert result.code == "Accounting-Response", result.stdout
    assert result.returncode == 0


def test_proxy_states_are_copied_in_order(nac_server: NacServer) -> None:
    states = ["0x70726f78792d31", "0x01", "0xabcdef0102"]
    extra = ", ".join(f"Proxy-State = {s}" for s in states)

    result = nac_server.radclient(mab_attrs(HUAWEI_MAC, extra=extra))

    assert result.code == "Access-Accept", result.stdout
    assert result.values("Proxy-State") == states
    assert result.reply[0].name == "Message-Authenticator"


# -- a relaxed client (require_message_authenticator = false) -----------------------------


def test_relaxed_client_request_without_message_authenticator_is_answered(nac_server: NacServer) -> None:
    datagram, authenticator = mab_request(HUAWEI_MAC, secret=RELAXED_SECRET, message_authenticator=False)
    with udp_socket(RELAXED_ADDRESS) as sock:
        data = exchange(sock, datagram, nac_server.auth_port)

    assert data is not None, nac_server.stderr()
    reply = parse_reply(data)
    assert reply.code == ACCESS_ACCEPT
    assert reply_signed(data, authenticator, RELAXED_SECRET)
    assert reply.attributes[0][0] == MESSAGE_AUTHENTICATOR
    rows = nac_server.history("--mac", HUAWEI_MAC)
    assert [row["client"] for row in rows] == ["legacy-switch"]


def test_relaxed_client_request_with_proxy_state_and_no_message_authenticator_is_dropped(
    nac_server: NacServer,
) -> None:
    # FreeRADIUS `limit_proxy_state`: the BlastRADIUS attack vector (CVE-2024-3596).
    datagram, _ = mab_request(
        HUAWEI_MAC, secret=RELAXED_SECRET, message_authenticator=False, proxy_states=[b"\x01\x02"]
    )
    with udp_socket(RELAXED_ADDRESS) as sock:
        reply = exchange(sock, datagram, nac_server.auth_port)

    assert reply is None
    assert nac_server.history("--mac", HUAWEI_MAC) == []


def test_relaxed_client_rejection_copies_reply_message_and_proxy_state_with_message_authenticator(
    nac_server_factory: NacServerFactory,
) -> None:
    server = nac_server_factory(rules=[("--vendor", "huawei", "--action", "reject", "--reason", "banned")])
    datagram, authenticator = mab_request(
        HUAWEI_MAC, secret=RELAXED_SECRET, message_authenticator=True, proxy_states=[b"a", b"b"]
    )
    with udp_socket(RELAXED_ADDRESS) as sock:
        data = exchange(sock, datagram, server.auth_port)

    assert data is not None
    reply = parse_reply(data)
    assert reply.code == ACCESS_REJECT
    assert reply_signed(data, authenticator, RELAXED_SECRET)
    assert [k for k, _ in reply.attributes] == [
        MESSAGE_AUTHENTICATOR,
        REPLY_MESSAGE,
        PROXY_STATE,
        PROXY_STATE,
    ]
    assert [v for k, v in reply.attributes if k == PROXY_STATE] == [b"a", b"b"]


# -- rule changes under load --------------------------------------------------------------


def test_no_request_is_dropped_while_rules_change(nac_server: NacServer) -> None:
    """300+ requests over ~3 s or more while a vendor ban is added and removed twice."""
    rule = ("--vendor", "huawei", "--action", "reject", "--id", "flapping-ban")
    # Hold each state longer than the server's 1 s rule poll so that it sees every change.
    hold = 1.1
    errors: list[str] = []

    def flap_rules() -> None:
        try:
            for _ in range(2):
                nac_server.cli_ok("rules", "add", *rule)
                time.sleep(hold)
                nac_server.cli_ok("rules", "remove", "flapping-ban")
                time.sleep(hold)
        except BaseException as exc:  # reported by the main thread
            errors.append(repr(exc))

    flapper = threading.Thread(target=flap_rules, daemon=True)
    unanswered: list[int] = []
    codes: list[int] = []
    started = time.monotonic()
    flapper.start()
    with udp_socket(timeout=2.0) as sock:
        n = 0
        while n < 300 or flapper.is_alive():
            if time.monotonic() - started > 30:
                break
            mac = f"00e0fc{n // 256:02x}{n % 256:02x}aa"
            datagram, authenticator = mab_request(mac, identifier=n % 256)
            data = exchange(sock, datagram, nac_server.auth_port)
            if data is None or not reply_signed(data, authenticator, SECRET):
                unanswered.append(n)
            else:
                codes.append(data[0])
            n += 1
            time.sleep(0.01)
    flapper.join(timeout=60)

    assert not errors, errors
    assert not flapper.is_alive(), "the rule changes did not finish within 30 s"
    assert n >= 300
    assert unanswered == [], f"{len(unanswered)} of {n} requests got no reply; stderr:\n{nac_server.stderr()}"
    # The stream spanned the changes: the server applied the ban and lifted it again.
    assert ACCESS_REJECT in codes
    assert codes[-1] == ACCESS_ACCEPT
