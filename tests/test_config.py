"""nac.config and nac.clients: the TOML file, the flags that override it, and client lookup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from netaddr import IPNetwork

from nac.config import Config, default_clients, load_config
from nac.equipment.clients import Client, ClientTable, parse_network
from nac.errors import ConfigError

VALID = """\
# nac.toml
[server]
bind = ["0.0.0.0", "::"]
auth_port = 11812
acct_port = 11813
db = "/var/lib/nac/nac.db"
duplicate_ttl = 10

[[client]]
name = "core-sw1"
address = "10.1.0.0/24"
secret = "s3cret-1"

[[client]]
name = "old-fortigate"
address = "10.2.0.7"
secret = "s3cret-2"
require_message_authenticator = false
coa_port = 13799

[[client]]
address = "2001:db8::/64"
secret = "s3cret-3"
"""


def write(tmp_path: Path, text: str, name: str = "nac.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_valid(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert isinstance(cfg, Config)
    assert cfg.bind == ("0.0.0.0", "::")
    assert (cfg.auth_port, cfg.acct_port) == (11812, 11813)
    assert cfg.db == "/var/lib/nac/nac.db"
    assert cfg.duplicate_ttl == 10.0
    assert [c.name for c in cfg.clients] == ["core-sw1", "old-fortigate", "2001:db8::/64"]
    core, old, v6 = cfg.clients
    assert core.network == IPNetwork("10.1.0.0/24")
    assert core.secret == b"s3cret-1"
    assert core.require_message_authenticator is True
    assert core.coa_port == 3799
    assert old.require_message_authenticator is False
    assert old.coa_port == 13799
    assert old.network == IPNetwork("10.2.0.7/32")
    assert v6.network == IPNetwork("2001:db8::/64")
    assert not cfg.uses_test_client
    assert cfg.source.endswith("nac.toml")


def test_load_config_bind_as_one_string(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[server]\nbind = "127.0.0.1"\n'))
    assert cfg.bind == ("127.0.0.1",)


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    with pytest.raises(AttributeError):
        cfg.auth_port = 1  # type: ignore[misc]


def test_load_config_without_file_uses_defaults() -> None:
    cfg = load_config()
    assert (cfg.auth_port, cfg.acct_port) == (1812, 1813)
    assert cfg.db is None
    assert {str(c.network) for c in cfg.clients} == {"127.0.0.1/32", "::1/128"}
    assert all(c.secret == b"testing123" for c in cfg.clients)
    assert cfg.uses_test_client
    table = ClientTable(cfg.clients)
    assert table.lookup("127.0.0.1") is not None
    assert table.lookup("::1") is not None
    assert table.lookup("10.0.0.1") is None


def test_load_config_file_without_clients_uses_default_clients(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[server]\nauth_port = 1645\n"))
    assert cfg.auth_port == 1645
    assert {str(c.network) for c in cfg.clients} == {str(c.network) for c in default_clients()}


@pytest.mark.parametrize("with_file", [True, False])
def test_load_config_command_line_overrides_win(tmp_path: Path, with_file: bool) -> None:
    path = write(tmp_path, VALID) if with_file else None
    cfg = load_config(path, db="/tmp/other.db", bind=["192.0.2.1", "::1"], auth_port=2812, acct_port=2813)
    assert cfg.db == "/tmp/other.db"
    assert cfg.bind == ("192.0.2.1", "::1")
    assert (cfg.auth_port, cfg.acct_port) == (2812, 2813)


def test_load_config_overrides_left_unset_keep_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID), auth_port=2812)
    assert (cfg.auth_port, cfg.acct_port) == (2812, 11813)
    assert cfg.bind == ("0.0.0.0", "::")
    assert cfg.db == "/var/lib/nac/nac.db"


@pytest.mark.parametrize("port", [-1, 65536])
def test_load_config_bad_override_port(port: int) -> None:
    with pytest.raises(ConfigError, match="--auth-port"):
        load_config(auth_port=port)


# (description, file text, line the error must name, setting the error must name)
ERRORS = [
    (
        "unknown key in [server]",
        '[server]\nauth_port = 1812\nlisten = "0.0.0.0"\n',
        3,
        "listen",
    ),
    (
        "unknown key in a client",
        '[[client]]\naddress = "10.0.0.1"\nsecret = "s"\nshared_secret = "x"\n',
        4,
        "shared_secret",
    ),
    (
        "unknown key in the second client",
        '[[client]]\naddress = "10.0.0.1"\nsecret = "s"\n\n[[client]]\naddress = "10.0.0.2"\n'
        'secret = "t"\nrequire_ma = false\n',
        8,
        "require_ma",
    ),
    ("unknown section", "[server]\nauth_port = 1812\n\n[sever]\nacct_port = 1813\n", 4, "sever"),
    (
        "[client] instead of [[client]]",
        '[server]\nauth_port = 1812\n\n[client]\nname = "sw"\naddress = "10.0.0.1"\nsecret = "s"\n',
        4,
        "client",
    ),
    ("port too large", "[server]\nauth_port = 70000\n", 2, "auth_port"),
    ("port negative", "[server]\n\nacct_port = -1\n", 3, "acct_port"),
    ("port as text", '[server]\nauth_port = "1812"\n', 2, "auth_port"),
    ("port as boolean", "[server]\nauth_port = true\n", 2, "auth_port"),
    (
        "client coa_port",
        '[[client]]\naddress = "10.0.0.1"\nsecret = "s"\ncoa_port = 99999\n',
        4,
        "coa_port",
    ),
    ("bad CIDR", '[[client]]\nname = "sw"\naddress = "10.1.0.0/33"\nsecret = "s"\n', 3, "address"),
    ("not an address", '[[client]]\naddress = "core-switch"\nsecret = "s"\n', 2, "address"),
    ("missing secret", '[[client]]\nname = "sw"\naddress = "10.0.0.1"\n', 1, "secret"),
    ("empty secret", '[[client]]\nname = "sw"\naddress = "10.0.0.1"\nsecret = ""\n', 4, "secret"),
    ("missing address", '[[client]]\nname = "sw"\nsecret = "s"\n', 1, "address"),
    (
        "duplicate client name",
        '[[client]]\nname = "sw"\naddress = "10.0.0.1"\nsecret = "s"\n\n'
        '[[client]]\nname = "sw"\naddress = "10.0.0.2"\nsecret = "t"\n',
        7,
        "name",
    ),
    (
        "require_message_authenticator not a boolean",
        '[[client]]\naddress = "10.0.0.1"\nsecret = "s"\nrequire_message_authenticator = "no"\n',
        4,
        "require_message_authenticator",
    ),
    (
        "reply_message not a mode",
        '[[client]]\naddress = "10.0.0.1"\nsecret = "s"\nreply_message = "verbose"\n',
        4,
        "reply_message",
    ),
    (
        "allow_mab_without_password not a boolean",
        '[[client]]\naddress = "10.0.0.1"\nsecret = "s"\nallow_mab_without_password = "yes"\n',
        4,
        "allow_mab_without_password",
    ),
    ("duplicate_ttl out of range", "[server]\nduplicate_ttl = 60\n", 2, "duplicate_ttl"),
    ("empty bind", "[server]\nbind = []\n", 2, "bind"),
]


@pytest.mark.parametrize(
    ("text", "line", "setting"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS]
)
def test_load_config_error_names_file_line_and_setting(
    tmp_path: Path, text: str, line: int, setting: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert re.search(rf"\bline {line}\b", message), message
    assert setting in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[server]\nauth_port = \n", 2),
        ('[server]\nauth_port = 1812\nbind = "0.0.0.0\n', 3),
        ("[server\n", 1),
        ("[server]\nauth_port = 1812\nauth_port = 1813\n", 3),
    ],
)
def test_load_config_bad_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert re.search(rf"\bline {line}\b", message), message


def test_load_config_missing_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_load_config_not_utf8_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[[client]]\nname = "caf\xe9"\naddress = "10.0.0.1"\nsecret = "s"\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


# -- clients -------------------------------------------------------------------------------------


def _client(name: str, network: str, secret: bytes = b"s") -> Client:
    return Client(name=name, network=IPNetwork(network), secret=secret)


@pytest.fixture
def table() -> ClientTable:
    return ClientTable(
        [
            _client("campus", "10.0.0.0/8"),
            _client("building", "10.1.0.0/16"),
            _client("core-sw1", "10.1.0.1/32"),
            _client("floor", "10.1.2.0/24"),
            _client("v6-campus", "2001:db8::/32"),
            _client("v6-sw", "2001:db8:1::1/128"),
        ]
    )


LOOKUPS = [
    ("10.1.0.1", "core-sw1"),
    ("10.1.2.3", "floor"),
    ("10.1.3.3", "building"),
    ("10.200.0.1", "campus"),
    ("::ffff:10.1.0.1", "core-sw1"),
    ("::ffff:10.1.2.9", "floor"),
    ("2001:db8:1::1", "v6-sw"),
    ("2001:db8:1::2", "v6-campus"),
    ("2001:db8:1::1%eth0", "v6-sw"),
    ("192.0.2.1", None),
    ("2001:db9::1", None),
    ("::ffff:192.0.2.1", None),
    ("not-an-address", None),
    ("", None),
]


@pytest.mark.parametrize(("address", "name"), LOOKUPS)
def test_client_table_most_specific_wins(table: ClientTable, address: str, name: str | None) -> None:
    client = table.lookup(address)
    assert (client.name if client else None) == name
    # The cached answer is the same.
    again = table.lookup(address)
    assert (again.name if again else None) == name


def test_client_table_order_does_not_matter() -> None:
    clients = [_client("specific", "10.1.0.1/32"), _client("broad", "10.0.0.0/8")]
    for ordering in (clients, clients[::-1]):
        hit = ClientTable(ordering).lookup("10.1.0.1")
        assert hit is not None
        assert hit.name == "specific"


def test_client_requires_a_secret() -> None:
    with pytest.raises(ConfigError, match="secret"):
        _client("sw", "10.0.0.1/32", secret=b"")


def test_client_repr_hides_secret() -> None:
    assert "topsecret" not in repr(_client("sw", "10.0.0.1/32", secret=b"topsecret"))


@pytest.mark.parametrize("text", ["10.0.0.0/33", "300.1.1.1", "fe80::/129", "x"])
def test_parse_network_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="where"):
        parse_network(text, where="where")
