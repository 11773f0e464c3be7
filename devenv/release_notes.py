"""The release notes of one version, cut from CHANGELOG.md: what the release workflow publishes
as the GitHub release's text, and what the chart's ``artifacthub.io/changes`` annotation lists.

CHANGELOG.md keeps one ``## <version>`` section per release (``## 0.2.0 - 2027-01-15`` or
``## [0.2.0]``), newest first, and ``## Unreleased`` above them while a release is being made;
inside a section, ``### Added``, ``### Fixed``, ``### Security``... each hold ``- `` entries,
whose ``**bold lead**`` (or else first sentence) is their one-line summary.

    python -m devenv.release_notes 0.2.0     prints the section's body; exits 1 if it is missing

A release whose tag has no section of its own fails here rather than publishing empty notes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANGELOG = ROOT / "CHANGELOG.md"
UNRELEASED = "Unreleased"

# ArtifactHub's kinds of change; a heading that names none of them (upgrade notes,
# documentation) counts as "changed".
KINDS = {kind: kind for kind in ("added", "changed", "deprecated", "removed", "fixed", "security")}


class MissingSection(LookupError):
    """CHANGELOG.md has no section for the version asked for."""


def _heading_version(line: str) -> str | None:
    match = re.match(r"^## \[?v?([^\]\s]+)\]?(?:\s.*)?$", line)
    return match.group(1) if match else None


def sections(text: str) -> dict[str, str]:
    """Every ``## `` section's body (the text up to the next ``## `` heading), by version."""
    found: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for line in [*text.splitlines(), "## end-of-file"]:
        version = _heading_version(line)
        if version is None:
            body.append(line)
            continue
        if current is not None:
            found[current] = "\n".join(body).strip("\n") + "\n"
        current, body = version, []
    found.pop("end-of-file", None)
    return found


def section(version: str, text: str | None = None) -> str:
    """The body of ``version``'s section; MissingSection when there is none or it is empty."""
    body = sections(CHANGELOG.read_text() if text is None else text).get(version, "")
    if not body.strip():
        raise MissingSection(f"CHANGELOG.md has no '## {version}' section: add one (docs/releasing.md)")
    return body


def _summary(entry: str) -> str:
    """An entry's one-line summary: its bold lead, else its first sentence."""
    text = " ".join(entry.split())
    bold = re.match(r"^\*\*(.+?)\*\*", text)
    if bold:
        summary = bold.group(1)
    else:
        sentence = re.match(r"^(.+?\.)(\s|$)", text)
        summary = sentence.group(1) if sentence else text
    summary = summary.rstrip(":;.").strip()
    return summary if len(summary) <= 200 else summary[:199].rstrip() + "…"


def changes(body: str) -> list[dict[str, str]]:
    """The section's entries as ArtifactHub changes: ``{kind, description}``, in order."""
    result: list[dict[str, str]] = []
    kind = "changed"
    entry: list[str] | None = None

    def close() -> None:
        if entry:
            result.append({"kind": kind, "description": _summary(" ".join(entry))})

    for line in body.splitlines():
        if line.startswith("### "):
            close()
            entry = None
            words = re.findall(r"[a-z]+", line.lower())
            kind = next((KINDS[w] for w in words if w in KINDS), "changed")
        elif line.startswith("- "):
            close()
            entry = [line[2:]]
        elif entry is not None and line.startswith("  ") and line.strip():
            entry.append(line.strip())
        elif not line.strip():
            continue
        else:
            close()
            entry = None
    close()
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devenv.release_notes VERSION", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(section(argv[0].removeprefix("v")))
    except MissingSection as e:
        print(f"release_notes: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
