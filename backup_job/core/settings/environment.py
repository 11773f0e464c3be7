"""The effective environment: the process's variables over ``.env``, secret files read, and
the ``BACKUP_*`` / ``PGBACKUP_*`` variables nothing reads.

Sources, strongest first:

1. the process environment;
2. an optional ``.env`` file in the working directory (python-dotenv; it never overrides a
   variable that is already set);
3. for the variables declared with ``file_form``, ``<NAME>_FILE`` names a file holding the
   value (Kubernetes Secrets, Docker secrets). The AWS SDK's own ``*_FILE`` variables
   (``AWS_WEB_IDENTITY_TOKEN_FILE`` and friends) keep their SDK meaning and are left to it.

A misspelt variable is otherwise silent: a typo in the retention setting's name would mean
no retention at all. ``unknown`` names every ``BACKUP_*`` / ``PGBACKUP_*`` variable that is neither a
declared setting (nor its ``_FILE`` form) nor one of ``ELSEWHERE``, the few the repository
sets or reads outside the settings, with the closest known name. Only names: a value may be
a secret.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from ..errors import ConfigError
from ..schema import Variable

OURS = re.compile(r"(PG)?BACKUP_[A-Z0-9_]+")  # the prefixes pgbackup's own variables start with
ELSEWHERE = {  # BACKUP_/PGBACKUP_ variables set or read outside the settings schema, and by what
    "PGBACKUP_SHARD_INDEX": "the operator's helper variable: the shard index its pods expand into their shard",
    "BACKUP_BUCKET": "docker-compose.yml: the bucket compose creates and backs up into",
    "BACKUP_PREFIX": "docker-compose.yml: the prefix inside BACKUP_BUCKET",
    "PGBACKUP_VENV": "scripts/: the development virtualenv",
    "PGBACKUP_CACHE": "scripts/: the cache of development tools",
    "PGBACKUP_K8S_STATE": "devenv/kube.py: the development cluster's state",
}


def known_names(variables: Iterable[Variable[Any]]) -> set[str]:
    """Every name a process of this repository may legitimately carry under our prefixes."""
    names = set(ELSEWHERE)
    for variable in variables:
        names.add(variable.name)
        if variable.file_form:
            names.add(variable.file_name)
    return names


def unknown(environ: Mapping[str, str], known: set[str]) -> list[tuple[str, str | None]]:
    """Each ``BACKUP_*`` / ``PGBACKUP_*`` name in ``environ`` that is not ``known``, with the
    closest known name (None when nothing is close), sorted by name."""
    found = []
    for name in sorted(environ):
        if OURS.fullmatch(name) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)  # past the shared prefix
            found.append((name, close[0] if close else None))
    return found


def describe_unknown(name: str, closest: str | None) -> str:
    """The warning for one unknown variable: its name only, never its value."""
    guess = f"; did you mean {closest}?" if closest else "; check its spelling in docs/configuration.md#configuration"
    return f"{name} is not a pgbackup setting and is ignored{guess}"


def dotenv_names(path: Path) -> dict[str, str]:
    """The variables a ``.env`` file at ``path`` sets (none when there is no file)."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_environment(
    environ: Mapping[str, str], dotenv_path: Path | None, file_forms: Iterable[Variable[Any]]
) -> dict[str, str]:
    """The effective variables: the environment over the ``.env`` file, secret files read."""
    merged = dotenv_names(dotenv_path) if dotenv_path is not None else {}
    merged.update(environ)
    for variable in (v for v in file_forms if v.file_form):
        path = merged.get(variable.file_name, "")
        if not path:
            continue
        if merged.get(variable.name):
            raise ConfigError(
                f"configuration error: both {variable.name} and {variable.file_name} are set; set only one of them"
            )
        try:
            merged[variable.name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"configuration error: {variable.file_name}={path!r} cannot be read ({exc.strerror}); "
                f"point it at a readable file that holds the value of {variable.name}"
            ) from exc
    return merged


def export_environment(effective: Mapping[str, str]) -> None:
    """Make the effective variables visible to botocore (and to what the job starts)."""
    for name, value in effective.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
