"""Static checks that belong to the suite: strict typing, lint and format, and what the wheel carries."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from ..kit.helpers import ROOT, dockerfile_final_stage


def test_backup_job_type_checks_strictly() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_repository_is_lint_clean_and_formatted() -> None:
    """ruff with pyproject.toml's settings, over every Python file the repository tracks."""
    for command in (["check", "--no-cache", "--output-format", "concise"], ["format", "--check", "--no-cache"]):
        result = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n" + result.stdout + result.stderr


def test_the_built_wheel_carries_every_module_and_the_command(tmp_path: Path) -> None:
    """What the container image installs: a regular (not editable) build of the project."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("pgbackup-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        assert "pgbackup = backup_job.__main__:main" in scripts
        assert "pgbackup-operator = pgbackup_operator.cli:main" in scripts
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "backup_job").rglob("*.py")}
    sources |= {str(p.relative_to(ROOT / "operator")) for p in (ROOT / "operator").rglob("*.py")}
    assert sources <= names
    assert not any(n.startswith("operator/") for n in names), "the operator must not shadow the stdlib module"


def test_the_repository_root_does_not_shadow_the_standard_library() -> None:
    """`python -m ...` from the repository root puts the root first on sys.path."""
    result = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.eq(1, 1))"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "True", result.stderr
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_the_image_runs_as_any_uid_with_group_root() -> None:
    """USER 10001:0, a passwd entry whose primary group is root, HOME on /tmp (the pods' emptyDir),
    and what the job writes group root's: so an assigned uid with GID 0 works as 10001 does."""
    stage = dockerfile_final_stage()
    assert [args for name, args in stage if name == "USER"] == ["10001:0"]
    env = dict(pair.split("=", 1) for name, args in stage if name == "ENV" for pair in args.split())
    assert env["HOME"] == "/tmp"
    runs = " ".join(args for name, args in stage if name == "RUN")
    assert re.search(r"useradd --uid 10001 --gid 0 --home-dir /tmp\b", runs)
    assert "chgrp 0 /backups" in runs and "chmod g=u /backups" in runs
