"""The GitHub Actions workflows, read as data: every action pinned by commit, every job with
its own least-privilege permissions, and a release that cannot start from the wrong tag.
actionlint checks them fully in tests/integration/test_workflows.py (it is a Go-built tool)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from backup_job import __version__

from ..kit.helpers import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}\s+#\s+v\d+(?:\.\d+){0,2}\s*$")


def _load(path: Path) -> dict[Any, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def unpinned(text: str) -> list[str]:
    """Every ``uses:`` line that is not ``owner/repo[/path]@<40 hex>  # vX.Y.Z``."""
    return [
        line.strip() for line in text.splitlines() if re.match(r"^\s*(-\s+)?uses:", line) and not PINNED.match(line)
    ]


def test_there_are_the_ci_and_release_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "release.yml"]


def test_every_action_is_pinned_by_commit_with_its_version() -> None:
    for path in WORKFLOWS:
        assert unpinned(path.read_text()) == [], path.name
    # What the check refuses: a tag, a branch, a short SHA, a SHA without the version comment.
    sha = "3d3c42e5aac5ba805825da76410c181273ba90b1"
    assert unpinned(f"      - uses: actions/checkout@{sha}  # v7.0.1\n        uses: a/b/c@{sha}  # v1") == []
    bad = ["- uses: actions/checkout@v7", "- uses: actions/checkout@main", f"- uses: actions/checkout@{sha[:12]}  # v7"]
    assert unpinned("\n".join([*bad, f"- uses: actions/checkout@{sha}"])) == [*bad, f"- uses: actions/checkout@{sha}"]


def test_every_job_states_its_permissions_and_the_workflow_grants_none() -> None:
    for path in WORKFLOWS:
        workflow = _load(path)
        assert workflow["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        for name, job in workflow["jobs"].items():
            assert isinstance(job.get("permissions"), dict) and job["permissions"], f"{path.name}: job {name}"
            assert "write-all" not in str(job["permissions"])


def test_only_the_jobs_that_publish_may_write() -> None:
    writers = {
        (path.name, name, scope)
        for path in WORKFLOWS
        for name, job in _load(path)["jobs"].items()
        for scope, level in job["permissions"].items()
        if level == "write"
    }
    assert writers == {
        ("release.yml", "image", "packages"),
        ("release.yml", "image", "id-token"),
        ("release.yml", "chart", "packages"),
        ("release.yml", "chart", "id-token"),
        ("release.yml", "release", "contents"),
        ("release.yml", "pages", "pages"),
        ("release.yml", "pages", "id-token"),
    }


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def test_the_release_runs_on_v_tags_and_publishes_nothing_before_the_version_check() -> None:
    release = _load(ROOT / ".github" / "workflows" / "release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as true
    jobs = release["jobs"]
    check = "\n".join(step.get("run", "") for step in jobs["version"]["steps"])
    assert "backup_job.__version__" in check and '"$TAG" != "v$version"' in check
    for name, job in jobs.items():
        seen, todo = set(), _needs(job)
        while todo:
            seen.add(need := todo.pop())
            todo += _needs(jobs[need])
        assert name == "version" or "version" in seen, f"job {name} does not wait for the version check"


def test_the_version_check_passes_only_v_and_the_committed_version_with_its_changelog(tmp_path: Path) -> None:
    """The release's first step, run as written on a copy of what it reads."""
    (step,) = [
        s["run"]
        for s in _load(ROOT / ".github" / "workflows" / "release.yml")["jobs"]["version"]["steps"]
        if s.get("id") == "version"
    ]
    for name in (
        "backup_job/__init__.py",
        "charts/pgbackup/Chart.yaml",
        "devenv/__init__.py",
        "devenv/release_notes.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    changelog = (ROOT / "CHANGELOG.md").read_text()

    def check(tag: str, heading: str) -> tuple[int, str, str]:
        (tmp_path / "CHANGELOG.md").write_text(changelog.replace("## Unreleased", heading, 1))
        output = tmp_path / "github-output"
        output.write_text("")
        environment = {"PATH": os.environ["PATH"], "TAG": tag, "GITHUB_OUTPUT": str(output)}
        run = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step], cwd=tmp_path, env=environment, capture_output=True, text=True
        )
        return run.returncode, run.stdout + run.stderr, output.read_text()

    released = f"## {__version__} - 2027-01-15"
    assert check(f"v{__version__}", released) == (0, "", f"version={__version__}\n")
    code, printed, written = check("v9.9.9", released)
    assert (code, written) == (1, "") and f"::error::tag v9.9.9 is not v{__version__}" in printed
    code, printed, written = check(__version__, released)  # no v
    assert (code, written) == (1, "")
    code, printed, written = check(f"v{__version__}", "## Unreleased")  # the CHANGELOG section not yet named
    assert (code, written) == (1, "") and f"no '## {__version__}' section" in printed
