"""What `pip install .` installs: every package of nac, and the data it reads at run time."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_python_package_of_nac_is_listed_for_installation() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "nac").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_data_folders_are_mapped_into_the_package() -> None:
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapping == {"nac.dictionaries": "dictionaries", "nac.policies": "policies"}
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "data/*" in data["nac"]  # families.toml
    assert "examples/*.toml" in data["nac.policies"]
