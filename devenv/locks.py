"""The hashed dependency locks in ``requirements/``: read, compared, and their inputs.

Every install of pgbackup's Python dependencies (``scripts/lib/bootstrap.sh``, the image's
wheel stage) is ``pip install --require-hashes -r requirements/<lock>.txt`` followed by the
project itself with ``--no-deps``, so a fresh machine gets exactly the files CI tested.
``scripts/lock`` regenerates the locks with uv from ``pyproject.toml``'s ranges and calls this
module for what pip alone cannot say:

- ``python -m devenv.locks inputs``: the requirements that are not the project's own
  dependencies but must be locked too: the build backend (``build-system.requires``) and pip;
- ``python -m devenv.locks diff OLD_DIR NEW_DIR``: what a refresh changed, one line a package.

``tests/unit/test_locks.py`` reads the locks through ``read`` as well. Standard library only:
``scripts/lock`` runs this before any virtualenv exists.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
LOCKS = ("runtime", "test", "uv")  # requirements/<name>.txt

# pip installs everything else and so is locked like everything else; it is in no
# pyproject.toml field, so it is named here. The lower bound is the oldest pip these locks and
# `--no-build-isolation` editable installs were tried with.
PIP = "pip>=23.2"

_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    """One locked distribution: ``name==version ; marker`` and the hashes of its files."""

    name: str  # normalized (PEP 503)
    version: str
    marker: str  # "" when it applies everywhere
    hashes: tuple[str, ...]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read(path: Path) -> list[Pin]:
    """The pins of a lock written by ``uv pip compile --generate-hashes``."""
    pins: list[Pin] = []
    current: dict[str, object] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _ENTRY.match(line)
        if entry:
            if current:
                pins.append(_pin(current, path))
            current = {
                "name": normalize(entry["name"]),
                "version": entry["version"],
                "marker": (entry["marker"] or "").strip(),
                "hashes": [],
            }
            continue
        found = _HASH.findall(line)
        if not found or current is None:
            raise ValueError(f"{path.name}: not a pinned, hashed requirement: {raw!r}")
        hashes = current["hashes"]
        assert isinstance(hashes, list)
        hashes.extend(found)
    if current:
        pins.append(_pin(current, path))
    return pins


def _pin(fields: dict[str, object], path: Path) -> Pin:
    hashes = fields["hashes"]
    assert isinstance(hashes, list)
    if not hashes:
        raise ValueError(f"{path.name}: {fields['name']}=={fields['version']} has no hash")
    return Pin(str(fields["name"]), str(fields["version"]), str(fields["marker"]), tuple(hashes))


def build_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``build-system.requires``: what `pip install --no-build-isolation` of the project needs."""
    data = tomllib.loads(pyproject.read_text())
    return [str(requirement) for requirement in data["build-system"]["requires"]]


def changes(old: list[Pin], new: list[Pin]) -> list[str]:
    """One line per package added, removed or moved between two versions of a lock."""
    before = {(pin.name, pin.marker): pin.version for pin in old}
    after = {(pin.name, pin.marker): pin.version for pin in new}
    lines = []
    for key in sorted(before.keys() | after.keys()):
        name = key[0] + (f" ; {key[1]}" if key[1] else "")
        if key not in before:
            lines.append(f"  + {name} {after[key]}")
        elif key not in after:
            lines.append(f"  - {name} {before[key]}")
        elif before[key] != after[key]:
            lines.append(f"  ~ {name} {before[key]} -> {after[key]}")
    return lines


def _diff(old_dir: Path, new_dir: Path) -> None:
    for lock in LOCKS:
        old_path, new_path = old_dir / f"{lock}.txt", new_dir / f"{lock}.txt"
        old = read(old_path) if old_path.exists() else []
        lines = changes(old, read(new_path))
        print(f"requirements/{lock}.txt: " + (f"{len(lines)} changed" if lines else "unchanged"))
        for line in lines:
            print(line)


def main(argv: list[str]) -> int:
    if argv[:1] == ["inputs"]:
        print("\n".join([*build_requirements(), PIP]))
        return 0
    if argv[:1] == ["diff"] and len(argv) == 3:
        _diff(Path(argv[1]), Path(argv[2]))
        return 0
    print("usage: python -m devenv.locks inputs | diff OLD_DIR NEW_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
