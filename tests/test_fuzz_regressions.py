"""Every crash the fuzzers found (fuzz/crashes/TARGET/*) replays cleanly through its target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
CRASHES = sorted(p for p in (FUZZ / "crashes").glob("*/*") if p.is_file())


def _targets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nac_fuzz_targets", FUZZ / "targets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_there_are_crash_inputs_to_replay() -> None:
    assert CRASHES, "fuzz/crashes holds the inputs that once crashed a target"


@pytest.mark.parametrize("path", CRASHES, ids=[f"{p.parent.name}/{p.name[:18]}" for p in CRASHES])
def test_crash_input_no_longer_crashes(path: Path) -> None:
    targets = _targets()
    target = targets.TARGETS[path.parent.name]
    target(path.read_bytes())  # raises (AssertionError or the original exception) if it regressed
