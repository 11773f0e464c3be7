"""The configuration reference's tables (docs/configuration.md), made from the settings schema.

Each table stands between ``<!-- settings:GROUP -->`` and ``<!-- /settings -->`` on that page,
one per group; ``python -m devenv.settings_docs`` rewrites them from ``backup_job.core.settings``,
and ``.env.example`` whole (``devenv.env_example``). ``tests/unit/test_settings_schema.py``
fails while either differs from what this makes, so a setting is one declaration and this command.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from backup_job.core.schema import Variable
from backup_job.core.settings import GROUPS
from devenv import env_example

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BLOCK = re.compile(r"(<!-- settings:(\w+) -->\n).*?(<!-- /settings -->)", re.S)


def _code(values: list[str]) -> str:
    return ", ".join(f"`{value}`" for value in values if value)


def rows(variable: Variable[Any]) -> list[str]:
    """The variable's row, and its ``_FILE`` form's."""
    example = "" if variable.secret else _code(variable.examples() if variable.example else [])
    lines = [f"| `{variable.name}` | {variable.documented_default} | {example} | {variable.doc} |"]
    if variable.file_form:
        lines.append(
            f"| `{variable.file_name}` | none | `{variable.example}` | "
            f"`{variable.name}` read from this file (a mounted secret). |"
        )
    return lines


def table(group: str) -> str:
    lines = ["| Variable | Default | Example | Meaning |", "|---|---|---|---|"]
    for variable in GROUPS[group]:
        lines += rows(variable)
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    """``page`` with every settings block made anew."""
    return BLOCK.sub(lambda m: m.group(1) + table(m.group(2)) + m.group(3), page)


def _write(path: Path, old: str, new: str) -> None:
    if new != old:
        path.write_text(new)
        print(f"updated {path}")


def main() -> int:
    page = PAGE.read_text()
    _write(PAGE, page, render(page))
    example = env_example.FILE.read_text() if env_example.FILE.exists() else ""
    _write(env_example.FILE, example, env_example.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
