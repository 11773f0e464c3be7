"""Static checks that belong to the suite: strict typing, and what the wheel carries."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .helpers import ROOT


def test_backup_job_type_checks_strictly() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_built_wheel_carries_every_module_and_the_command(tmp_path: Path) -> None:
    """What the container image installs: a regular (not editable) build of the project."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    [wheel] = tmp_path.glob("pgbackup-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        assert "pgbackup = backup_job.cli:main" in scripts
        assert "pgbackup-operator = pgbackup_operator.cli:main" in scripts
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "backup_job").rglob("*.py")}
    sources |= {str(p.relative_to(ROOT / "operator")) for p in (ROOT / "operator").rglob("*.py")}
    assert sources <= names
    assert not any(n.startswith("operator/") for n in names), "the operator must not shadow the stdlib module"


def test_the_repository_root_does_not_shadow_the_standard_library() -> None:
    """`python -m ...` from the repository root puts the root first on sys.path."""
    result = subprocess.run([sys.executable, "-c", "import operator; print(operator.eq(1, 1))"],
                            cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr
    assert not (ROOT / "operator" / "__init__.py").exists()
