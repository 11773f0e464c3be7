"""The GitHub Actions workflows pass actionlint (built from the Go module proxy by
``scripts/tools-build actionlint``): expressions, contexts, the inputs of the actions they use,
job dependencies, and, where shellcheck is on PATH (GitHub's runners have it), every ``run:``.

The structural rules (pinned actions, permissions per job) are checked offline in
tests/unit/test_workflows.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..kit.helpers import ROOT


@pytest.fixture(scope="module")
def actionlint() -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), "actionlint"], stdout=subprocess.PIPE, text=True)
    assert built.returncode == 0, "scripts/tools-build actionlint failed (its output is above)"
    return Path(built.stdout.strip().splitlines()[-1])


def test_the_workflows_pass_actionlint(actionlint: Path, tmp_path: Path) -> None:
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) == 2
    checked = subprocess.run([str(actionlint), "-no-color", *workflows], cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # It finds what it is here for: an undefined step output, a misspelt permission scope.
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    broken.write_text(
        text.replace("steps.build.outputs.digest", "steps.built.outputs.digest").replace(
            "packages: write", "package: write"
        )
    )
    failed = subprocess.run([str(actionlint), "-no-color", str(broken)], capture_output=True, text=True)
    assert failed.returncode == 1
    assert 'property "built" is not defined' in failed.stdout and '"package"' in failed.stdout, failed.stdout
