"""Finding the PostgreSQL client programs, and their versions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ..core.errors import RunError
from ..core.settings import GLOBALS, PG_BINDIR


def find_tool(name: str, bindir: Path | None) -> str:
    """The path of a PostgreSQL client program, from the configured bin directory or ``PATH``."""
    if bindir is not None:
        if not (bindir / name).is_file():
            hint = f"set {GLOBALS.name}=false to skip the roles" if name == "pg_dumpall" else None
            raise RunError(f"{PG_BINDIR.name}={str(bindir)!r} holds no {name}", hint=hint)
        return str(bindir / name)
    found = shutil.which(name)
    if found is None:
        raise RunError(
            f"{name} was not found on PATH",
            hint="install the PostgreSQL client tools (the pgbackup image ships them) "
            f"or set {PG_BINDIR.name} to the directory that holds them",
        )
    return found


def tool_version(path: str) -> str:
    """``18.1`` from ``pg_dump (PostgreSQL) 18.1 (Debian ...)``."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RunError(f"cannot run {path} --version: {exc}") from exc
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", out)
    if not match:
        raise RunError(f"cannot read the version of {path} from {out.strip()!r}")
    return match.group(1) + (f".{match.group(2)}" if match.group(2) else "")


def major(version: str) -> int:
    return int(version.split(".")[0])
