"""The DHCP-profiling drop-in: the unit with it is still valid and tightly sandboxed, and
grants only the one capability that binding port 67 needs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from test_systemd import UNIT, _systemd_analyze

DROP_IN = UNIT.parent / "nac-dhcp-profiling.conf"


def _combined(tmp_path: Path) -> Path:
    """The unit as systemd reads it with the drop-in: the drop-in's [Service] lines after the
    unit's own (a later assignment wins; a capability list adds to the empty one)."""
    unit = tmp_path / "nac.service"
    unit.write_text(UNIT.read_text() + "\n" + DROP_IN.read_text())
    return unit


def test_drop_in_grants_only_net_bind_service() -> None:
    settings = [line for line in DROP_IN.read_text().splitlines() if line and not line.startswith(("#", "["))]
    assert settings == [
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "PrivateUsers=no",
    ]


def test_unit_with_drop_in_verifies_and_stays_exposed_at_most_2(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    unit = _combined(tmp_path)
    verify = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert verify.returncode == 0, verify.stderr
    assert not [line for line in verify.stderr.splitlines() if line.startswith("nac.service")]
    security = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = security.stdout + security.stderr
    match = re.search(r"Overall exposure level for nac\.service: (\d+\.\d+)", output)
    assert match, output
    assert float(match[1]) <= 2.0  # as the unit alone must be
