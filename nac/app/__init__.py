"""The library the CLI and the web page call: one method per thing an operator does.

``from nac.app import Nac`` (and ``open_store``) keep working for outside scripts; the names
load the facade on first use, so importing a module of this package does not."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("Nac", "open_store", "ImportRefusedError"):
        from nac.app import facade  # noqa: PLC0415 - on first use only

        return getattr(facade, name)
    raise AttributeError(f"module 'nac.app' has no attribute {name!r}")
