"""The suite's lanes: one directory each, and every test file in one of them.

A lane is where a test lives, and says what it needs (docs/development.md#tests):
``tests/unit`` is offline and is the fast lane; ``tests/integration``, ``tests/faults``,
``tests/hostile`` and ``tests/k8s`` test pgbackup against real services (faults injected in
``tests/faults``, attacks performed in ``tests/hostile``); ``tests/kit/selftest`` checks the kit the
others stand on. scripts/test names each lane in one of its two pytest processes, so a test
file outside every lane would be collected by a bare ``pytest`` yet never run by CI:
tests/conftest.py refuses one at collection, and tests/unit/test_lanes.py holds scripts/test
to this list (and every test file to a lane) in the fast lane.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

UNIT = "tests/unit"
INTEGRATION = "tests/integration"
FAULTS = "tests/faults"
HOSTILE = "tests/hostile"
K8S = "tests/k8s"
KIT = "tests/kit/selftest"
LANES = (UNIT, INTEGRATION, FAULTS, HOSTILE, K8S, KIT)


def lane_of(path: Path) -> str | None:
    """The lane a test file is in, or None."""
    resolved = path.resolve()
    for lane in LANES:
        if resolved.is_relative_to(ROOT / lane):
            return lane
    return None
