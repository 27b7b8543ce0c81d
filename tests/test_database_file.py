"""The database file, opened right: created private (0600, it and every file beside it), one
clear line when it cannot be used, read-only commands that work where they may not write, and
the database the packaged layout uses found by default."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nac import dbfile
from nac.cli.main import app
from nac.store import SCHEMA_VERSION, Store
from tests import helpdesk_rows
from tests.interop import exchange, mab_request, start_server, subprocess_env, udp_socket

MAC = "00:10:a4:23:19:c0"
#: (command, whether it only reads) as an operator types them.
READERS = (
    ("history", "--mac", MAC),
    ("why", MAC),
    ("stats",),
    ("check", MAC),
    ("vendors", "search", "xircom"),
    ("vendors", "show", "huawei"),
    ("vendors", "review"),
    ("audit",),
    ("audit", "verify"),
    ("rules", "list"),
    ("oui", "status"),
)
WRITER = ("rules", "add", "--mac", "00:10:a4:00:00:01", "--action", "accept")
FILES = ("", *dbfile.SIDE_SUFFIXES)


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _unprivileged() -> list[str]:
    """A prefix that makes the command obey file modes: root ignores them (CAP_DAC_OVERRIDE),
    so as root the command runs with those capabilities dropped from its bounding set."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run a command without CAP_DAC_OVERRIDE as root")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def _nac(*args: str, cwd: Path, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = _unprivileged() if unprivileged else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "nac", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=subprocess_env(),
        check=False,
    )


def _one_error(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The command failed with exactly one `nac: error:` line holding ``expected``, no traceback."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nac: error: ")]
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1, proc.stderr
    for text in expected:
        assert text in errors[0], proc.stderr
    return errors[0]


def _make_db(path: Path) -> None:
    """A nac database with a rule, two decisions about MAC, and a clean close (no -wal left)."""
    result = CliRunner().invoke(
        app, ["rules", "add", "--vendor", "huawei", "--action", "reject", "--db", str(path)]
    )
    assert result.exit_code == 0, result.output
    now = time.time()
    helpdesk_rows.write(str(path), [helpdesk_rows.decision(now - 60, MAC), helpdesk_rows.decision(now, MAC)])
    assert not Path(f"{path}-wal").exists()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 1. private files ---------------------------------------------------------------------


def test_database_and_every_side_file_are_0600_under_umask_022(tmp_path: Path) -> None:
    with _umask(0o022):
        server = start_server(tmp_path / "s", rules=[("--vendor", "huawei", "--action", "reject")])
        try:
            with udp_socket() as sock:
                request, _ = mab_request("3c22fb000101", identifier=1)
                assert exchange(sock, request, server.auth_port) is not None  # history written
            modes = {
                suffix: stat.S_IMODE(os.stat(f"{server.db}{suffix}").st_mode)
                for suffix in FILES
                if os.path.exists(f"{server.db}{suffix}")
            }
        finally:
            assert server.stop(signal.SIGTERM) == 0
    assert set(modes) == set(FILES)  # the server had all of them open
    assert modes == dict.fromkeys(FILES, 0o600)
    assert "has mode" not in server.stderr()


def test_serve_warns_once_per_file_others_can_read(tmp_path: Path) -> None:
    workdir = tmp_path / "s"
    workdir.mkdir()
    _make_db(workdir / "nac.db")
    os.chmod(workdir / "nac.db", 0o644)
    server = start_server(workdir)
    try:
        assert server.wait_for_log("nac.db has mode 0644")
    finally:
        assert server.stop(signal.SIGTERM) == 0
    warned = [line for line in server.stderr().splitlines() if "has mode" in line]
    db = str(workdir / "nac.db")
    assert sum(f"{db} has mode 0644: other users may read" in line for line in warned) == 1
    assert not any(f"{db}-recent has mode" in line for line in warned)  # 0600: not warned about
    assert len(warned) == len({line.split(" WARNING ")[1] for line in warned})  # one line per file


def test_users_store_is_private_and_certs_keys_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    db = tmp_path / "nac.db"
    with _umask(0):
        added = CliRunner().invoke(app, ["users", "add", "alice", "--db", str(db)], input="secret\n")
        made = CliRunner().invoke(app, ["certs", "init", str(tmp_path / "pki")])
    assert added.exit_code == 0, added.output
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(db.stat().st_mode) == 0o600  # the users' NT hashes live here
    keys = sorted((tmp_path / "pki").glob("*.key"))
    assert len(keys) == 3
    assert {stat.S_IMODE(key.stat().st_mode) for key in keys} == {0o600}


# -- 2. one clear line --------------------------------------------------------------------


def _missing_directory(tmp: Path) -> Path:
    return tmp / "no-such-dir" / "nac.db"


def _no_permission(tmp: Path) -> Path:
    path = tmp / "nac.db"
    _make_db(path)
    path.chmod(0o000)
    return path


def _text_file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("not a database\n" * 20)
    return path


def _other_app(tmp: Path) -> Path:
    path = tmp / "places.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")  # as Chromium's
        conn.execute("INSERT INTO meta VALUES ('version', '3')")
        conn.execute("CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT)")
    conn.close()
    return path


def _newer_schema(tmp: Path) -> Path:
    path = tmp / "nac.db"
    _make_db(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    return path


def _read_only_file(tmp: Path) -> Path:
    path = tmp / "nac.db"
    _make_db(path)
    for suffix in ("", "-recent"):
        Path(f"{path}{suffix}").chmod(0o444)
    return path


def _read_only_directory(tmp: Path) -> Path:
    directory = tmp / "ro"
    directory.mkdir()
    _make_db(directory / "nac.db")
    directory.chmod(0o555)
    return directory / "nac.db"


# (how to make it, whether root must obey modes, a writer's cause, a reader's cause or None: works)
CASES: dict[str, tuple[Callable[[Path], Path], bool, str, str | None]] = {
    "missing directory": (_missing_directory, False, "does not exist", "no database at"),
    "no permission": (_no_permission, True, "permission denied", "permission denied"),
    "text file": (_text_file, False, "not a nac database (not an SQLite file", "not an SQLite file"),
    "another application's SQLite": (
        _other_app,
        False,
        "another application, with tables meta, urls",
        "another",
    ),
    "newer schema": (_newer_schema, False, f"newer nac (schema version {SCHEMA_VERSION + 1}", "newer nac"),
    "read-only file": (_read_only_file, True, "nac.db is read-only", None),
    "read-only directory": (_read_only_directory, True, "directory", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unusable_database_is_one_line_for_every_command_and_serve(tmp_path: Path, case: str) -> None:
    make, unprivileged, writer_cause, reader_cause = CASES[case]
    path = make(tmp_path)
    try:
        line = _one_error(
            _nac(*WRITER, "--db", str(path), cwd=tmp_path, unprivileged=unprivileged), writer_cause
        )
        assert str(path) in line
        served = _nac(
            "serve", "--db", str(path), "--bind", "127.0.0.1", "--auth-port", "0", "--acct-port", "0",
            cwd=tmp_path, unprivileged=unprivileged,
        )  # fmt: skip
        assert str(path) in _one_error(served, writer_cause)
        for command in (("rules", "list"), ("stats",)):  # answered by nac/entry.py, and by typer
            reader = _nac(*command, "--db", str(path), cwd=tmp_path, unprivileged=unprivileged)
            if reader_cause is None:
                assert reader.returncode == 0, reader.stderr
            else:
                assert str(path) in _one_error(reader, reader_cause)
    finally:
        if path.parent.exists():
            path.parent.chmod(0o755)
    assert not _missing_directory(tmp_path).parent.exists()  # nothing was created on the way


def test_read_only_directory_names_the_side_files(tmp_path: Path) -> None:
    path = _read_only_directory(tmp_path)
    try:
        proc = _nac(*WRITER, "--db", str(path), cwd=tmp_path, unprivileged=True)
    finally:
        path.parent.chmod(0o755)
    _one_error(proc, f"its directory {path.parent} is read-only", "nac.db-wal")


# -- read-only commands -------------------------------------------------------------------


@pytest.mark.parametrize("make", [_read_only_file, _read_only_directory], ids=["file 0444", "directory 0555"])
def test_read_only_commands_work_on_a_database_they_cannot_write(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    before = _digest(path)
    try:
        outputs = {}
        for command in READERS:
            proc = _nac(*command, "--db", str(path), cwd=tmp_path, unprivileged=True)
            assert proc.returncode == 0, f"nac {' '.join(command)}: {proc.stderr}"
            assert "Traceback" not in proc.stderr
            outputs[command[0]] = proc.stdout
        _one_error(_nac(*WRITER, "--db", str(path), cwd=tmp_path, unprivileged=True), "read-only")
    finally:
        path.parent.chmod(0o755)
    assert MAC in outputs["history"]  # both decisions, from the recent tier
    assert "reject-vendor-huawei" in outputs["rules"]
    assert _digest(path) == before


def test_read_only_commands_never_take_the_write_lock(tmp_path: Path) -> None:
    """A reader opens with mode=ro: it does not wait for (or fail on) a writer holding the
    database, as an open for writing would (its schema check writes)."""
    path = tmp_path / "nac.db"
    _make_db(path)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # a writer mid-transaction (the indexer, an import)
    try:
        runner = CliRunner()
        for command in (("rules", "list"), ("history", "--mac", MAC), ("check", MAC)):
            result = runner.invoke(app, [*command, "--db", str(path)])
            assert result.exit_code == 0, result.output
    finally:
        holder.rollback()
        holder.close()


def test_reader_brings_an_older_database_up_to_date_when_it_may(tmp_path: Path) -> None:
    path = tmp_path / "nac.db"
    _make_db(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("ALTER TABLE rules DROP COLUMN expires")  # as a nac from before validity
    conn.close()
    result = CliRunner().invoke(app, ["rules", "list", "--json", "--db", str(path)])
    assert result.exit_code == 0, result.output
    store = Store.readonly(path)
    try:
        assert "expires" in {row[1] for row in store.conn.execute("PRAGMA table_info(rules)")}
    finally:
        store.close()


# -- 3. the right database by default -----------------------------------------------------


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The packaged layout in ``tmp_path``: etc/nac.toml and a state directory, cwd elsewhere."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setattr(dbfile, "PACKAGED_CONFIG", str(tmp_path / "etc" / "nac.toml"))
    monkeypatch.setattr(dbfile, "PACKAGED_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("NAC_DB", raising=False)
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_uses_the_db_of_the_packaged_config(packaged: Path) -> None:
    db = packaged / "state" / "site.db"
    (packaged / "etc" / "nac.toml").write_text(f'[server]\ndb = "{db}"\n')
    assert _run(*WRITER)[0] == 0
    assert db.is_file()
    assert not (packaged / "cwd" / "nac.db").exists()
    code, out = _run("rules", "list")
    assert code == 0
    assert "00:10:a4:00:00:01" in out


def test_packaged_config_without_db_means_the_state_directory(packaged: Path) -> None:
    (packaged / "etc" / "nac.toml").write_text("[server]\nauth_port = 1812\n")
    assert _run(*WRITER)[0] == 0
    assert (packaged / "state" / "nac.db").is_file()


def test_nac_db_and_flag_win_over_the_packaged_config(
    packaged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (packaged / "etc" / "nac.toml").write_text(f'[server]\ndb = "{packaged / "state" / "site.db"}"\n')
    monkeypatch.setenv("NAC_DB", str(packaged / "env.db"))
    assert _run(*WRITER)[0] == 0
    assert _run(*WRITER, "--db", str(packaged / "flag.db"))[0] == 0
    assert (packaged / "env.db").is_file()
    assert (packaged / "flag.db").is_file()
    assert not (packaged / "state" / "site.db").exists()


def test_without_packaged_config_the_default_is_dot_nac_db(packaged: Path) -> None:
    assert _run(*WRITER)[0] == 0
    assert (packaged / "cwd" / "nac.db").is_file()


@pytest.mark.parametrize("command", READERS, ids=[" ".join(c[:2]) for c in READERS])
def test_reader_without_a_database_says_where_it_looked_and_creates_none(
    packaged: Path, command: tuple[str, ...]
) -> None:
    code, out = _run(*command)
    assert code == 1
    assert "nac: error: no database at nac.db (the default: no --db, no $NAC_DB" in out
    assert "--db PATH or NAC_DB=PATH" in out
    assert not list((packaged / "cwd").iterdir())


def test_reader_names_the_packaged_config_it_followed(packaged: Path) -> None:
    db = packaged / "state" / "nac.db"
    (packaged / "etc" / "nac.toml").write_text("[server]\n")
    code, out = _run("history")
    assert code == 1
    assert f"no database at {db} (the db of {packaged / 'etc' / 'nac.toml'})" in out
    assert not db.exists()


def test_why_fast_path_without_a_database(tmp_path: Path) -> None:
    proc = _nac("why", MAC, cwd=tmp_path)  # nac/entry.py answers `why` without typer
    _one_error(proc, "no database at nac.db", "--db PATH")
    assert not (tmp_path / "nac.db").exists()


def test_unreadable_packaged_config_is_one_line(packaged: Path) -> None:
    (packaged / "etc" / "nac.toml").write_text('[server]\ndb = "x\n')
    code, out = _run("rules", "list")
    assert code == 2
    assert str(packaged / "etc" / "nac.toml") in out
    assert "Traceback" not in out


def test_systemd_unit_and_cli_agree_on_the_packaged_layout() -> None:
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "nac.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(f"nac serve --config {dbfile.PACKAGED_CONFIG}")  # no --db to disagree
    assert f"WorkingDirectory={dbfile.PACKAGED_STATE_DIR}\n" in unit  # where a config without db keeps it
