"""The rooms of backup_job import one way only: commands -> pipeline -> pg | storage | report -> core.

A module may import from its own room and from the rooms below it; ``pg`` and ``storage``
stand side by side and never import each other. The operator imports only ``backup_job.core``
(the settings schema, cron, termination message) and the package version. Read from the
source with ``ast``, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..kit.helpers import ROOT

RANK = {"core": 0, "pg": 1, "storage": 1, "report": 1, "pipeline": 2, "commands": 3, "cli": 4, "__main__": 5}
OPERATOR_MAY_USE = {"", "core"}  # "" is backup_job itself: the version


def room(module: str) -> str:
    """``backup_job.pg.dump`` -> ``pg``; ``backup_job`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported(path: Path, package: str, source: str | None = None) -> set[str]:
    """The backup_job modules (or rooms) a file imports, absolute."""
    tree = ast.parse(source if source is not None else path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found |= {_module_or_attribute(name, alias.name) for alias in node.names}
    return {name for name in found if name == "backup_job" or name.startswith("backup_job.")}


def _module_or_attribute(package: str, name: str) -> str:
    """``from package import name``: the module ``package.name`` if there is one, else ``package``."""
    candidate = ROOT.joinpath(*f"{package}.{name}".split("."))
    if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
        return f"{package}.{name}"
    return package


def violations(path: Path, module: str, source: str | None = None) -> list[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    mine = room(module)
    wrong = []
    for target in sorted(imported(path, package, source)):
        theirs = room(target)
        if theirs in ("", mine):
            continue
        if theirs not in RANK or RANK[theirs] >= RANK.get(mine, 0):
            wrong.append(f"{module} imports {target}: {mine or 'backup_job'} may not use {theirs}")
    return wrong


def modules() -> list[tuple[Path, str]]:
    found = []
    for path in sorted((ROOT / "backup_job").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return found


def test_every_module_lives_in_a_known_room() -> None:
    rooms = {room(module) for _, module in modules()}
    assert rooms <= set(RANK) | {""}, rooms - set(RANK)


def test_imports_go_one_way() -> None:
    wrong = [line for path, module in modules() for line in violations(path, module)]
    assert wrong == []


def test_the_check_catches_an_upward_import() -> None:
    """The checker itself can fail: an upward and a sideways import are both reported."""
    path = ROOT / "backup_job" / "core" / "logs.py"
    assert violations(path, "backup_job.core.logs", "from ..commands.run import run\n") == [
        "backup_job.core.logs imports backup_job.commands.run: core may not use commands"
    ]
    storage = ROOT / "backup_job" / "storage" / "s3.py"
    assert violations(storage, "backup_job.storage.s3", "from backup_job.pg import dump\n") == [
        "backup_job.storage.s3 imports backup_job.pg.dump: storage may not use pg"
    ]
    assert violations(storage, "backup_job.storage.s3", "from ..core import signals\nfrom .base import Storage\n") == []


def test_the_operator_uses_only_the_core() -> None:
    wrong = []
    for path in sorted((ROOT / "operator" / "pgbackup_operator").rglob("*.py")):
        for target in imported(path, "pgbackup_operator"):
            if room(target) not in OPERATOR_MAY_USE:
                wrong.append(f"{path.name} imports {target}")
    assert wrong == []
