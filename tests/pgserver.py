"""A real PostgreSQL for the tests: Debian's `initdb` and `pg_ctl` in a temporary directory,
listening on a Unix socket only, one cluster per test session (tests/conftest.py's `pg`).

initdb refuses to run as root, and CI runs as root: then the cluster is made and run by the
`postgres` user that Debian's package creates, in a directory it owns.  Without the binaries
the tests skip, except under CI, which installs them (.ci/run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import pytest

#: Binaries of Debian's `postgresql` package: `pg_config --bindir` names their folder on a
#: machine with the headers; otherwise Debian keeps them in /usr/lib/postgresql/N/bin.
_DEBIAN_BINDIRS: Final = "/usr/lib/postgresql/*/bin"
_PORT: Final = 5432  # the socket's name in our own directory; no TCP port is opened
_TIMEOUT: Final = 60
#: A throwaway cluster: durability is not what these tests are about.
_SETTINGS: Final = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        proc = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(proc.stdout.strip())
    candidates += sorted(glob.glob(_DEBIAN_BINDIRS), key=lambda p: int(Path(p).parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(str(Path(initdb).resolve().parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def require_bindir() -> Path:
    found = bindir()
    if found is None:
        reason = "PostgreSQL's initdb/pg_ctl (Debian package postgresql) are not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI is set and CI installs them", pytrace=False)
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg (nac[pg]) is not installed")
    return found


class PgServer:
    """One cluster: ``start``, ``stop`` (and start again), ``new_database`` per test."""

    def __init__(self, bin_dir: Path, *, settings: str = _SETTINGS) -> None:
        self.bin = bin_dir
        self.settings = settings  # bench/pg_bench.py keeps PostgreSQL's durable defaults
        self.root = Path(tempfile.mkdtemp(prefix="nac-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._databases = 0
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", str(self.data), "-U", "nac", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            cwd=self.root,
        )
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}\n{log}")

    def start(self) -> None:
        options = f"-c listen_addresses='' -c unix_socket_directories='{self.root}' -p {_PORT}"
        options += f" {self.settings}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://nac@/{database}?host={self.root}&port={_PORT}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        self._databases += 1
        name = f"nac_test_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
