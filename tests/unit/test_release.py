"""One version everywhere, the release notes cut from CHANGELOG.md, and the chart's ArtifactHub
metadata: what the release workflow publishes, checked before a tag is pushed."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from backup_job import __version__
from devenv import chart_meta, release_notes

from ..kit.helpers import ROOT

CHART = ROOT / "charts" / "pgbackup"
IMAGE = re.compile(r"ghcr\.io/pgbackup/pgbackup:([\w.+-]+)")


def _chart() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_chart_values_and_manifests_carry_the_one_committed_version() -> None:
    chart = _chart()
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__)
    image = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    assert image["repository"] == "ghcr.io/pgbackup/pgbackup"
    assert image["tag"] in ("", __version__)  # "" deploys the chart's appVersion
    tags = [
        (path.relative_to(ROOT), tag)
        for path in sorted((ROOT / "deploy").rglob("*.yaml"))
        for tag in IMAGE.findall(path.read_text())
    ]
    assert tags and all(tag == __version__ for _, tag in tags), tags
    images = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    assert [i["image"] for i in images] == [f"ghcr.io/pgbackup/pgbackup:{__version__}"]


def test_a_version_disagreement_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart is generated from the version: a bump without scripts/sync-chart differs."""
    monkeypatch.setattr(chart_meta, "__version__", "9.9.9")
    assert chart_meta.chart_yaml() != (CHART / "Chart.yaml").read_text()
    assert "version: 9.9.9" in chart_meta.chart_yaml() and "pgbackup:9.9.9" in chart_meta.chart_yaml()


CHANGELOG = """# Changelog

## Unreleased

### Added

- Something new.

## 1.2.0 - 2027-01-15

### Added

- **A new destination**: with details
  over two lines.
- Another thing. With a second sentence.

### Upgrading: what changes

- **Set a key** before upgrading.

### Security

- A fix that matters.

## [1.1.0]

### Fixed

- An old bug.
"""


def test_release_notes_are_the_version_section_exactly() -> None:
    body = release_notes.section("1.2.0", CHANGELOG)
    assert body.startswith("### Added\n\n- **A new destination**") and body.endswith("- A fix that matters.\n")
    assert "Something new" not in body and "An old bug" not in body
    assert release_notes.section("1.1.0", CHANGELOG) == "### Fixed\n\n- An old bug.\n"
    with pytest.raises(release_notes.MissingSection, match=r"no '## 1.3.0' section"):
        release_notes.section("1.3.0", CHANGELOG)


def test_release_notes_refuse_a_version_without_a_section_in_one_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "devenv.release_notes", "v99.0.0"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip() == "release_notes: CHANGELOG.md has no '## 99.0.0' section: add one (docs/releasing.md)"


def test_changes_are_each_entrys_summary_by_artifacthub_kind() -> None:
    assert release_notes.changes(release_notes.section("1.2.0", CHANGELOG)) == [
        {"kind": "added", "description": "A new destination"},
        {"kind": "added", "description": "Another thing"},
        {"kind": "changed", "description": "Set a key"},
        {"kind": "security", "description": "A fix that matters"},
    ]


def test_the_chart_annotations_describe_the_crds_examples_and_changes() -> None:
    annotations = _chart()["annotations"]
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    crds = yaml.safe_load(annotations["artifacthub.io/crds"])
    assert [(c["kind"], c["name"], c["version"]) for c in crds] == [
        ("PgBackup", "pgbackups.pgbackup.io", "v1alpha1"),
        ("PgRestore", "pgrestores.pgbackup.io", "v1alpha1"),
    ]
    examples = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert [e["kind"] for e in examples] == ["PgBackup", "PgRestore"] and all(e["spec"] for e in examples)
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    assert changes and {c["kind"] for c in changes} <= {
        "added",
        "changed",
        "deprecated",
        "removed",
        "fixed",
        "security",
    }
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert {link["name"] for link in links} >= {"Documentation", "Source"}


def test_the_chart_readme_documents_every_value_with_its_schema_type() -> None:
    page = (CHART / "README.md").read_text()
    assert page == chart_meta.readme(), "charts/pgbackup/README.md is out of date: run scripts/sync-chart"
    rows = {line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `")}

    def keys(value: Any, prefix: str = "") -> list[str]:
        if not isinstance(value, dict) or not value:
            return []
        return [k for key, child in value.items() for k in [prefix + key, *keys(child, prefix + key + ".")]]

    with_default = {key for key, line in rows.items() if line.split("|")[3].strip()}

    def documented(key: str) -> bool:  # its own row, or inside a default shown whole ({cpu: 50m, ...})
        return (key in rows and (key in with_default or any(k.startswith(key + ".") for k in rows))) or any(
            key.startswith(k + ".") for k in with_default
        )

    missing = [k for k in keys(yaml.safe_load((CHART / "values.yaml").read_text())) if not documented(k)]
    assert rows and missing == []
    assert "| `Always` \\| `IfNotPresent` \\| `Never` |" in rows["image.pullPolicy"]
    assert "| integer | `9090` |" in rows["metrics.port"]
    assert "defaults to the release's full name" in rows["serviceAccount.name"]
    assert f"oci://ghcr.io/pgbackup/charts/pgbackup --version {__version__}" in page


def test_artifacthub_repository_metadata_names_its_owners() -> None:
    metadata = yaml.safe_load((ROOT / "artifacthub-repo.yml").read_text())
    assert "repositoryID" in metadata and metadata["owners"] and all(o["email"] for o in metadata["owners"])
