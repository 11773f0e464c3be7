"""The documentation site builds, strictly, and every pointer into it lands.

``mkdocs build --strict`` fails on a link to a missing page or anchor between the pages
(mkdocs.yml turns each validation into a warning, and --strict makes a warning fatal). What
the build cannot see are the pointers from outside the site: runtime messages, alert
annotations, the chart, ``.env.example``, the README, the tests and the scripts name
``docs/<page>.md#<anchor>``.
Each is looked up in the built HTML, so an anchor is checked exactly as MkDocs makes it from
its heading, not as a test guesses it would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..kit.helpers import ROOT

REFERENCE = re.compile(r"docs/([a-z0-9-]+)\.md(?:#([A-Za-z0-9_-]+))?")
# Where a user meets a pointer into the docs: the job's and the operator's messages, what the
# chart and the manifests show (alert annotations, NOTES.txt, CRD descriptions), .env.example
# and the README; and, for whoever works on the project, the tests and scripts (DEVELOPMENT).
SOURCES = ["backup_job", "operator", "charts", "deploy", ".env.example", "README.md"]
SUFFIXES = {".py", ".yaml", ".yml", ".txt", ".tpl", ".json", ".md", ".example"}
DEVELOPMENT = ["tests", "scripts"]
DATA = ROOT / "tests" / "kit" / "data"  # copies of what earlier releases shipped, kept as they were
README_POINTER = re.compile(r"\bREADME(?:\.md)?(?:'s\b|#)|\b(?:see|in) (?:the )?README\b", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return target


def files(sources: list[str]) -> list[Path]:
    """The text files under ``sources`` (files or directories)."""
    paths = [ROOT / source for source in sources]
    return [p for p in paths if p.is_file()] + [
        f for p in paths if p.is_dir() for f in sorted(p.rglob("*")) if f.is_file() and f.suffix in SUFFIXES
    ]


def development_files() -> list[Path]:
    """The text files under ``DEVELOPMENT``: scripts too, which have no suffix."""
    return [
        f
        for source in DEVELOPMENT
        for f in sorted((ROOT / source).rglob("*"))
        if f.is_file() and f.suffix in SUFFIXES | {".sh", ""} and DATA not in f.parents
    ]


def references() -> dict[tuple[str, str], list[str]]:
    """``(page, anchor) -> the files naming it``; anchor ``""`` for a page named alone."""
    found: dict[tuple[str, str], list[str]] = {}
    for file in files(SOURCES) + development_files():
        for match in REFERENCE.finditer(file.read_text()):
            found.setdefault((match.group(1), match.group(2) or ""), []).append(str(file.relative_to(ROOT)))
    return found


def missing(site: Path, wanted: dict[tuple[str, str], list[str]]) -> list[str]:
    """Each reference whose page is not in the built site, or whose anchor is not an id on it."""
    problems = []
    for (page, anchor), files in sorted(wanted.items()):
        html = site / ("index.html" if page == "index" else f"{page}/index.html")
        if not html.exists():
            problems.append(f"docs/{page}.md (named in {', '.join(files)}) is not a page")
        elif anchor and f'id="{anchor}"' not in html.read_text():
            problems.append(f"docs/{page}.md#{anchor} (named in {', '.join(files)}) has no such heading")
    return problems


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").exists() and (site / "configuration" / "index.html").exists()


def test_every_pointer_into_the_docs_names_a_page_and_heading_that_exist(site: Path) -> None:
    wanted = references()
    named_in = {file.split("/")[0] for files in wanted.values() for file in files}
    assert {"backup_job", "deploy", "README.md", ".env.example", "tests"} <= named_in, "the collection finds them"
    assert missing(site, wanted) == []
    # The check can fail: a heading renamed, and a page gone.
    gone = {("security", "passwords-in-the-clear"): ["x.py"], ("nowhere", ""): ["y.py"]}
    assert len(missing(site, gone)) == 2


def lines_matching(paths: list[Path], pattern: re.Pattern[str]) -> list[str]:
    """``file:line`` of each line in ``paths`` that ``pattern`` finds something in."""
    return [
        f"{path.relative_to(ROOT)}:{number}"
        for path in paths
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_nothing_points_at_the_readme_for_what_moved_to_the_docs() -> None:
    """The README is short now; a pointer into it would lead nowhere. What users read never
    names it; tests and scripts, read by whoever works on the project, may name the file (a
    test copies it) but send no reader into it."""
    outside = files([source for source in SOURCES if source != "README.md"])
    assert len(outside) > 100 and lines_matching(outside, re.compile("README")) == []
    ours = [f for f in development_files() if f != Path(__file__)]  # not the samples below
    assert ROOT / "scripts" / "test" in ours and lines_matching(ours, README_POINTER) == []
    # The check can fail, and naming the file is no pointer.
    pointers = ["(see the README's development section)", "README.md#tests", "as described in README"]
    assert all(README_POINTER.search(line) for line in pointers)
    assert not README_POINTER.search('for name in ("pyproject.toml", "README.md"):')
