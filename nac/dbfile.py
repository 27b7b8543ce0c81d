"""The database file itself: which one a command uses, making it private, and saying in one
line why one cannot be used.

The database holds the users' NT hashes (password equivalents for MS-CHAPv2) and every
device's history, so it and each file beside it are created 0600.  SQLite gives the -wal and
-shm files it creates the main file's mode (unix VFS, ``findCreateFileMode``), so creating
the main file and the recent tier's file 0600 before SQLite opens them is enough.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Final

from nac.errors import ConfigError, DatabaseFileError

DEFAULT_DB: Final = "nac.db"
#: The packaged layout: systemd/nac.service runs `nac serve --config PACKAGED_CONFIG` in
#: PACKAGED_STATE_DIR, so the CLI finds the server's database through the same file.
PACKAGED_CONFIG: Final = "/etc/nac/nac.toml"
PACKAGED_STATE_DIR: Final = "/var/lib/nac"
#: Files beside the database ``nac.db``: SQLite's WAL and shared-memory index, the recent
#: history tier (nac/history/tiers.py) with its own, and the lock of `nac serve` (nac/serve/server.py).
SIDE_SUFFIXES: Final = ("-wal", "-shm", "-recent", "-recent-wal", "-recent-shm", ".serve-lock")
PRIVATE_MODE: Final = 0o600
#: How long a writer waits for another (the CLI while the server commits) before failing.
BUSY_TIMEOUT_MS: Final = 5000
#: The WAL files are reused from the start after each checkpoint; past this size a rewound one
#: is also truncated, so a burst's WAL does not keep its disk (or WAL-index memory) for ever.
#: Above the server's own rewind mark (nac/history/indexer.py WAL_HARD, checked there), so no
#: group commit ever has to truncate (a stall of tens of milliseconds on some file systems).
WAL_SIZE_LIMIT: Final = 128 * 1024 * 1024
_HINT: Final = "point at the server's database with --db PATH or NAC_DB=PATH"


def locate(db: str | None) -> tuple[str, str]:
    """The database a command uses, and where that choice came from (for messages): ``--db``,
    else ``$NAC_DB``, else the ``db`` of the packaged config when that file exists, else
    ./nac.db."""
    if db:
        return db, "--db"
    env = os.environ.get("NAC_DB")
    if env:
        return env, "$NAC_DB"
    config = Path(PACKAGED_CONFIG)
    if config.is_file():
        return _configured_db(config), f"the db of {config}"
    return DEFAULT_DB, f"the default: no --db, no $NAC_DB, no {config}"


def _configured_db(config: Path) -> str:
    """``[server] db`` of the packaged config; without one, where the unit's `nac serve` keeps
    it (./nac.db in its working directory, the state directory)."""
    import tomllib  # noqa: PLC0415 - only on a packaged machine

    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ConfigError(f"{config}: cannot read it to find the database ({why}); {_HINT}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config}: {exc}") from None
    server = data.get("server")
    db = server.get("db") if isinstance(server, dict) else None
    if db is None:
        db = DEFAULT_DB
    if not isinstance(db, str) or not db:
        raise ConfigError(f"{config}: [server] db must be a file path or a postgresql:// URL")
    if db.startswith(("postgresql://", "postgres://")):  # nac/pg/: a shared database
        return db
    return str(Path(PACKAGED_STATE_DIR) / db)  # an absolute db stays as it is


def existing(path: str, origin: str) -> str:
    """``path`` if there is a database there; a reader never creates an empty one."""
    if not os.path.lexists(path):
        raise DatabaseFileError(f"no database at {path} ({origin}); {_HINT}")
    return path


def create_private(path: str) -> None:
    """Create ``path`` empty and 0600 unless it exists (an OSError says why it cannot)."""
    if path == ":memory:":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def exposed(path: str) -> list[tuple[str, int]]:
    """The database's files (it and those beside it) that group or others may read or write,
    with their modes."""
    found = []
    for name in (path, *(path + suffix for suffix in SIDE_SUFFIXES)):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except OSError:
            continue
        if mode & 0o077:
            found.append((name, mode))
    return found


def readonly_uri(path: str) -> str:
    """An SQLite URI that opens ``path`` read-only.  A WAL database needs its -shm; in a
    directory this process cannot write, with no -wal there (no connection is open), nothing
    is in flight, and ``immutable`` reads the file without one (a reader that stays open, such
    as `nac web`, then sees the file as it was until it is restarted)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    directory = Path(path).resolve().parent
    if not os.access(directory, os.W_OK) and not os.path.exists(path + "-wal"):
        uri += "&immutable=1"
    return uri


def check_nac(conn: sqlite3.Connection, path: str, *, schema_version: int) -> bool:
    """Refuse a file that is not a nac database, or one from a newer nac; False if it has no
    tables yet (new)."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if "not a database" not in str(exc):
            raise
        raise DatabaseFileError(f"{path}: not a nac database (not an SQLite file at all)") from None
    if not tables:
        return False
    version: str | None = None
    if "meta" in tables:
        try:
            row = conn.execute("SELECT value FROM main.meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # a `meta` table of some other layout
            row = None
        version = None if row is None else str(row[0])
    if version is None or not version.isdigit():
        names = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
        raise DatabaseFileError(
            f"{path}: not a nac database (an SQLite database of another application, with tables {names})"
        )
    if int(version) > schema_version:
        raise DatabaseFileError(
            f"{path}: made by a newer nac (schema version {version}; this nac knows {schema_version}"
            " and older): upgrade nac, or point --db at another database"
        )
    return True


def open_error(path: str, exc: OSError | sqlite3.Error) -> DatabaseFileError:
    """One line naming the file and why it cannot be opened as asked."""
    return DatabaseFileError(f"{path}: {_cause(path, exc)}")


def _cause(path: str, exc: OSError | sqlite3.Error) -> str:
    parent = Path(path).parent
    text = str(exc)
    if not parent.is_dir():
        return f"cannot create the database: the directory {parent} does not exist"
    if isinstance(exc, OSError):  # creating the file ourselves (create_private)
        return f"cannot create the database: {(exc.strerror or text).lower()}"
    if "readonly" in text or "read-only" in text:
        return f"this command writes to the database, but {_read_only(path)}"
    if Path(path).is_dir():
        return "cannot open the database: it is a directory"
    if "unable to open" in text:
        if not os.access(path, os.R_OK) or not os.access(parent, os.X_OK):
            return "cannot open the database: permission denied"
        return "cannot open the database (SQLite: unable to open database file)"
    if "locked" in text:
        return "the database is locked: another process holds it (is a long transaction running?)"
    if "malformed" in text or "not a database" in text:
        return f"the database is damaged (SQLite: {text})"
    return f"cannot use the database (SQLite: {text})"


def _read_only(path: str) -> str:
    parent = Path(path).parent
    for name in (path, path + "-recent"):
        if os.path.exists(name) and not os.access(name, os.W_OK):
            return f"{name} is read-only"
    if not os.access(parent, os.W_OK):
        name = Path(path).name
        return f"its directory {parent} is read-only (SQLite writes {name}-wal and {name}-shm there)"
    return "it is read-only"


def writable(path: str) -> bool:
    """Whether this process may write the database at ``path`` (and create its side files)."""
    return os.access(path, os.W_OK) and os.access(Path(path).resolve().parent, os.W_OK)


def use_wal(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process (the OS has the pages); FULL would also
    # survive a power cut at the cost of an fsync per commit.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
