"""The directory client (nac/identity/ldap.py) against a real OpenLDAP (tests/slapd.py), its
settings (nac/identity/config.py), and the pure pieces: filter escaping, group names."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nac.errors import ConfigError
from nac.identity.config import LdapConfig, parse_ldap
from nac.identity.ldap import Directory
from nac.identity.lookups import Lookups
from nac.identity.query import DirectoryAnswer, DirectoryQuery, escape_filter_value, fill_filter, group_name
from nac.serve.observe import LatencyHistogram, Metrics
from nac.tomlfile import Locator
from tests.slapd import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, USERS, Slapd, free_tcp_port


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def config(slapd: Slapd, **overrides: Any) -> LdapConfig:
    values: dict[str, Any] = {
        "urls": (slapd.url,),
        "base": PEOPLE,
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "group_attribute": "memberOf",
        "timeout": 2.0,
        "pool_size": 2,
    }
    values.update(overrides)
    return LdapConfig(**values)


def ask(cfg: LdapConfig, kind: str, user: str, password: str = "") -> DirectoryAnswer:
    directory = Directory(cfg)
    try:
        return directory.answer(DirectoryQuery(kind=kind, user=user, password=password))
    finally:
        directory.close()


# -- binds and groups -------------------------------------------------------------------------


def test_bind_as_the_user_with_the_right_password(slapd: Slapd) -> None:
    answer = ask(config(slapd), "bind", "carol", USERS["carol"][0])
    assert answer == DirectoryAnswer(ok=True, dn=f"uid=carol,{PEOPLE}", groups=("Printers", "staff"))


def test_wrong_password_is_a_refusal_not_a_failure(slapd: Slapd) -> None:
    answer = ask(config(slapd), "bind", "carol", "not carol's")
    assert (answer.ok, answer.failure, answer.reason) == (False, None, "wrong password for 'carol'")


def test_binds_one_after_another_reuse_connections_and_stay_right(slapd: Slapd) -> None:
    directory = Directory(config(slapd, pool_size=1))
    carol, dave = USERS["carol"][0], USERS["dave"][0]
    checks = [("carol", "nope", False), ("carol", carol, True), ("dave", carol, False),
              ("dave", dave, True), ("carol", dave, False)]  # fmt: skip
    try:
        for user, password, ok in checks:
            answer = directory.answer(DirectoryQuery(kind="bind", user=user, password=password))
            assert (answer.ok, answer.failure) == (ok, None), (user, answer)
    finally:
        directory.close()


def test_empty_password_is_refused_without_asking(slapd: Slapd) -> None:
    # RFC 4513 §5.1.2: an empty password would be an unauthenticated bind, which succeeds.
    answer = ask(config(slapd), "bind", "carol", "")
    assert (answer.ok, answer.reason) == (False, "empty password")


def test_unknown_user_has_no_entry(slapd: Slapd) -> None:
    answer = ask(config(slapd), "bind", "mallory", "x")
    assert (answer.ok, answer.failure, answer.reason) == (False, None, "no directory entry for 'mallory'")


def test_a_filter_in_the_user_name_matches_nothing(slapd: Slapd) -> None:
    # Unescaped, `*` would match every entry and `)(uid=*` would widen the filter.
    assert ask(config(slapd), "entry", "*").reason == "no directory entry for '*'"
    assert not ask(config(slapd), "entry", "carol)(uid=*").ok


def test_groups_by_a_group_search(slapd: Slapd) -> None:
    cfg = config(slapd, group_attribute=None, group_base=GROUPS)
    assert ask(cfg, "entry", "carol").groups == ("Printers", "staff")
    assert ask(cfg, "entry", "dave") == DirectoryAnswer(ok=True, dn=f"uid=dave,{PEOPLE}", groups=())


def test_entry_lookup_for_a_certificate_name(slapd: Slapd) -> None:
    cfg = config(slapd, user_filter="(mail={user})")
    answer = ask(cfg, "entry", "client.nac.lab@nac.test")
    assert (answer.ok, answer.groups) == (True, ("devices",))


def test_a_wrong_service_password_is_a_failure(slapd: Slapd) -> None:
    answer = ask(config(slapd, bind_password="wrong"), "bind", "carol", USERS["carol"][0])
    assert answer.failure == "service-bind"
    assert "invalidCredentials" in answer.reason


# -- TLS --------------------------------------------------------------------------------------


def test_ldaps_with_the_ca(slapd: Slapd) -> None:
    cfg = config(slapd, urls=(slapd.ldaps_url,), ca_file=str(slapd.pki / "ca.pem"))
    assert ask(cfg, "bind", "carol", USERS["carol"][0]).ok


def test_starttls_with_the_ca(slapd: Slapd) -> None:
    cfg = config(slapd, starttls=True, ca_file=str(slapd.pki / "ca.pem"))
    assert ask(cfg, "bind", "carol", USERS["carol"][0]).ok


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
def test_a_server_certificate_from_another_ca_is_refused(
    slapd: Slapd, tmp_path: Path, starttls: bool
) -> None:
    from nac.eap.certs import init

    init(tmp_path / "other")
    url = slapd.url if starttls else slapd.ldaps_url
    cfg = config(slapd, urls=(url,), starttls=starttls, ca_file=str(tmp_path / "other" / "ca.pem"))
    answer = ask(cfg, "bind", "carol", USERS["carol"][0])
    assert answer.failure == "tls", answer
    assert "certificate verify failed" in answer.reason


# -- failures and failover --------------------------------------------------------------------


def test_nothing_listening_is_unreachable() -> None:
    cfg = LdapConfig(urls=(f"ldap://127.0.0.1:{free_tcp_port()}",), base=PEOPLE, timeout=1.0)
    answer = ask(cfg, "bind", "carol", "x")
    assert (answer.ok, answer.failure) == (False, "unreachable")
    assert answer.reason.startswith("directory unavailable (unreachable): ")


def test_a_directory_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts (the kernel does), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"ldap://127.0.0.1:{listener.getsockname()[1]}"
        cfg = LdapConfig(urls=(url,), base=PEOPLE, bind_dn=SERVICE_DN, bind_password="x", timeout=0.5)
        answer = ask(cfg, "bind", "carol", "x")
    assert answer.failure == "timeout", answer


def test_the_next_url_answers_when_the_first_is_down(slapd: Slapd) -> None:
    cfg = config(slapd, urls=(f"ldap://127.0.0.1:{free_tcp_port()}", slapd.url))
    assert ask(cfg, "bind", "carol", USERS["carol"][0]).ok


def test_a_pooled_connection_survives_a_directory_restart(slapd: Slapd) -> None:
    directory = Directory(config(slapd))
    query = DirectoryQuery(kind="bind", user="carol", password=USERS["carol"][0])
    try:
        assert directory.answer(query).ok
        slapd.stop()
        assert directory.answer(query).failure == "unreachable"
        slapd.start()
        assert directory.answer(query).ok  # the stale connection was dropped, a new one made
    finally:
        directory.close()
        if slapd.proc is None:
            slapd.start()


def test_lookups_answer_on_the_event_loop_and_count(slapd: Slapd) -> None:
    counters: Counter[str] = Counter()
    answers: list[tuple[DirectoryAnswer, bool]] = []
    directory = Directory(config(slapd, urls=(f"ldap://127.0.0.1:{free_tcp_port()}",), timeout=1.0))
    lookups = Lookups(directory, counters=counters, workers=2, clock=lambda: 0.0)
    main = threading.get_ident()

    async def run() -> None:
        done = asyncio.Event()

        def answered(answer: DirectoryAnswer) -> None:
            answers.append((answer, threading.get_ident() == main))
            if len(answers) == 2:
                done.set()

        lookups.ask(DirectoryQuery(kind="bind", user="carol", password="x"), answered)
        lookups.ask(DirectoryQuery(kind="entry", user="carol"), answered)
        await asyncio.wait_for(done.wait(), timeout=10)

    asyncio.run(run())
    lookups.close()
    assert [(a.failure, on_loop) for a, on_loop in answers] == [("unreachable", True)] * 2
    assert counters == Counter(
        {"ldap_requests:bind": 1, "ldap_requests:entry": 1, "ldap_failures:unreachable": 2}
    )
    assert lookups.waiting == 0


def test_metrics_show_directory_requests_and_failures_by_kind() -> None:
    counters = Counter({"ldap_requests:bind": 7, "ldap_requests:entry": 2, "ldap_failures:timeout": 3})
    families = {f.name: f for f in Metrics(counters, LatencyHistogram()).collect()}
    requests = {s.labels["kind"]: s.value for s in families["nac_ldap_requests"].samples}
    failures = {s.labels["reason"]: s.value for s in families["nac_ldap_failures"].samples}
    assert (requests, failures) == ({"bind": 7, "entry": 2}, {"timeout": 3})


# -- settings -----------------------------------------------------------------------------------


def parse(text: str, tmp_path: Path) -> LdapConfig:
    import tomllib

    path = tmp_path / "nac.toml"
    path.write_text(text)
    return parse_ldap(tomllib.loads(text)["ldap"], Locator(str(path), text))


def test_settings_read_the_password_file_and_keep_it_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = parse(
        '[ldap]\nurl = ["ldaps://a.example", "ldaps://b.example:1636"]\nbind_dn = "cn=nac"\n'
        'bind_password_file = "pw"\nbase = "dc=example"\ngroup_base = "ou=groups,dc=example"\n'
        'tls_identity = "san_email"\ntimeout = 3\npool_size = 8\n',
        tmp_path,
    )
    assert cfg.urls == ("ldaps://a.example", "ldaps://b.example:1636")
    assert (cfg.bind_password, cfg.timeout, cfg.pool_size) == ("s3cret", 3.0, 8)
    assert cfg.tls_identity == "san_email"
    assert (cfg.user_filter, cfg.group_filter) == ("(uid={user})", "(member={dn})")
    assert "s3cret" not in repr(cfg)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('url = "http://x"\nbase = "dc=x"', "is not an ldap:// or ldaps:// URL"),
        ('url = "ldap://x"', "base is required"),
        ('url = "ldap://x"\nbase = "dc=x"\nbind_dn = "cn=nac"', "needs bind_password_file"),
        ('url = "ldap://x"\nbase = "dc=x"\nbind_dn = "cn=nac"\nbind_password_file = "none"', "cannot read"),
        ('url = "ldap://x"\nbase = "dc=x"\nuser_filter = "uid={user}"', "parenthesised LDAP filter"),
        ('url = "ldap://x"\nbase = "dc=x"\nuser_filter = "(uid=alice)"', "with {user} in it"),
        ('url = "ldap://x"\nbase = "dc=x"\ngroup_attribute = "memberOf"\ngroup_base = "ou=g"', "not both"),
        ('url = "ldaps://x"\nbase = "dc=x"\nstarttls = true', "TLS already"),
        ('url = "ldap://x"\nbase = "dc=x"\ntimeout = 0', "seconds"),
        ('url = "ldap://x"\nbase = "dc=x"\npool_size = 0', "connections, 1 to 64"),
        ('url = "ldap://x"\nbase = "dc=x"\ntls_identity = "dns"', "one of cn, san_email, san_upn"),
        ('url = "ldap://x"\nbase = "dc=x"\nca_file = "missing.pem"', "cannot load"),
        ('url = "ldap://x"\nbase = "dc=x"\npassword = "inline"', "unknown setting"),
    ],
)
def test_bad_settings_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"nac\.toml, line \d+") as err:
        parse(f"[ldap]\n{body}\n", tmp_path)
    assert message in str(err.value)


# -- the pure pieces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("alice", "alice"), ("*", "\\2a"), ("a)(uid=*", "a\\29\\28uid=\\2a"), ("back\\slash", "back\\5cslash"),
     ("nul\0", "nul\\00"), ("zoë", "zoë")],
)  # fmt: skip
def test_filter_values_are_escaped_per_rfc_4515(value: str, escaped: str) -> None:
    assert escape_filter_value(value) == escaped


def test_fill_filter_leaves_braces_in_values_alone() -> None:
    assert fill_filter("(&(uid={user})(x=1))", user="{dn}") == "(&(uid={dn})(x=1))"


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        ("cn=staff,ou=groups,dc=example,dc=org", "staff"),
        ("CN=Wi-Fi Users,OU=Groups,DC=corp", "Wi-Fi Users"),
        ("cn=a\\,b,ou=g", "a,b"),
        ("cn=x\\2cy,ou=g", "x,y"),
        ("cn=multi+ou=valued,dc=x", "multi"),
        ("not a dn", None),
        ("cn=,dc=x", None),
    ],
)
def test_an_ldap_group_maps_to_its_first_rdn_value(dn: str, name: str | None) -> None:
    assert group_name(dn) == name
