"""`[eap]` in the config file: checked at start-up, errors naming the file, line and key; and the
users store behind `nac users`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nac.config import load_config
from nac.eap.certs import init as certs_init
from nac.eap.mschapv2 import nt_hash
from nac.eap.users import UserDirectory, add_user, list_users, remove_user
from nac.errors import ConfigError, NacError


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    certs_init(path)
    return path


def write(tmp_path: Path, eap: str) -> Path:
    path = tmp_path / "nac.toml"
    path.write_text("[server]\nauth_port = 1812\n\n[eap]\n" + eap)
    return path


def test_eap_section_loads_with_relative_paths(tmp_path: Path, pki: Path) -> None:
    (tmp_path / "pki").symlink_to(pki)
    config = load_config(write(tmp_path, 'certificate = "pki/server.pem"\nprivate_key = "pki/server.key"\n'))
    assert config.eap is not None
    assert config.eap.methods == ("peap", "ttls")  # no CA for client certificates: no EAP-TLS
    assert config.eap.certificate == str(tmp_path / "pki" / "server.pem")


def test_no_eap_section_means_no_eap(tmp_path: Path) -> None:
    path = tmp_path / "nac.toml"
    path.write_text("[server]\nauth_port = 1812\n")
    assert load_config(path).eap is None


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            'certificate = "{pki}/server.pem"\nprivate_key = "{pki}/server.key"\ncolour = "blue"\n',
            7,
            "unknown",
        ),
        ('private_key = "{pki}/server.key"\n', 4, "certificate is required"),
        ('certificate = "{pki}/nope.pem"\nprivate_key = "{pki}/server.key"\n', 5, "cannot load"),
        ('certificate = "{pki}/server.pem"\nprivate_key = "{pki}/client.key"\n', 6, "cannot use"),
        (
            'certificate = "{pki}/server.pem"\nprivate_key = "{pki}/server.key"\nmethods = ["tls"]\n',
            7,
            "EAP-TLS",
        ),
        (
            'certificate = "{pki}/server.pem"\nprivate_key = "{pki}/server.key"\nmethods = ["md5"]\n',
            7,
            "methods",
        ),
    ],
    ids=["unknown-key", "no-certificate", "missing-file", "key-mismatch", "tls-without-ca", "bad-method"],
)
def test_eap_errors_name_file_line_and_key(
    tmp_path: Path, pki: Path, body: str, line: int, message: str
) -> None:
    path = write(tmp_path, body.format(pki=pki))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert f"{path}, line {line}: [eap]" in str(info.value)


def test_users_store_keeps_only_the_nt_hash(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "nac.db")
    assert add_user(conn, "alice", "correct horse") is False
    assert add_user(conn, "alice", "battery staple") is True  # a new password replaces the old
    directory = UserDirectory(conn)
    assert directory["alice"] == nt_hash("battery staple")
    assert "bob" not in directory
    row = conn.execute("SELECT * FROM eap_users").fetchone()
    assert b"battery staple" not in repr(row).encode()
    assert [u["name"] for u in list_users(conn)] == ["alice"]
    remove_user(conn, "alice")
    with pytest.raises(NacError, match="no user"):
        remove_user(conn, "alice")
    with pytest.raises(NacError, match="control characters"):
        add_user(conn, "bad\nname", "x")
