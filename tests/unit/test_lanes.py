"""scripts/test runs every lane, each once, and every test file is in a lane.

The lanes are listed in ``tests/kit/lanes.py``. The whole run names them in its two pytest
processes; a lane left out of both would be collected by a bare ``pytest`` and counted, yet
never run by CI. Read from scripts/test's text, so the fast lane catches it without running
the suite.
"""

from __future__ import annotations

import re

from ..kit.helpers import ROOT
from ..kit.lanes import LANES, UNIT, lane_of


def _pytest_commands() -> list[tuple[bool, list[str]]]:
    """Each ``python -m pytest`` line of scripts/test: whether it is an ``exec``, and the test paths it names."""
    commands = []
    for line in (ROOT / "scripts" / "test").read_text().splitlines():
        found = re.match(r"\s*(exec\s+)?python -m pytest\b(.*)", line)
        if found:
            paths = [word for word in found.group(2).split() if word.startswith("tests/")]
            commands.append((bool(found.group(1)), paths))
    return commands


def test_the_whole_run_runs_every_lane_once() -> None:
    whole = [path for is_exec, paths in _pytest_commands() if not is_exec for path in paths]
    assert sorted(whole) == sorted(LANES), "scripts/test's two processes must name each lane of tests/kit/lanes.py once"


def test_the_fast_lane_is_tests_unit_alone() -> None:
    assert [paths for is_exec, paths in _pytest_commands() if is_exec and paths] == [[UNIT]]


def test_every_test_file_is_in_a_lane() -> None:
    files = sorted((ROOT / "tests").rglob("test_*.py"))
    assert len(files) > 50
    assert [str(path.relative_to(ROOT)) for path in files if lane_of(path) is None] == []
