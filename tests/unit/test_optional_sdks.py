"""The cloud SDKs are optional extras (``pip install pgbackup[azure]``, ``[gcs]``): nothing
imports one before a destination of its kind is opened, and a missing one is one line naming
the extra to install. Each check runs in a fresh interpreter, so what the test process has
imported already cannot hide an import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backup_job.core.settings import BACKENDS, Backend

from ..kit.helpers import ROOT

SDKS = sorted(package for backend in BACKENDS.values() for package in backend.sdk)
WITH_SDK = [backend for backend in BACKENDS.values() if backend.sdk]

# A meta path finder that refuses the given packages, as on a machine without them.
BLOCK = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_destination_with_an_sdk_names_its_extra_and_an_example() -> None:
    assert WITH_SDK, "the registry lists the cloud destinations"
    for backend in WITH_SDK:
        assert backend.extra and backend.example.startswith(f"{backend.scheme}://"), backend.scheme


def test_no_sdk_is_imported_by_the_cli_the_commands_or_the_operator() -> None:
    code = (
        "import json, sys\n"
        "import backup_job.__main__, backup_job.cli, backup_job.commands.run, backup_job.commands.restore\n"
        "import backup_job.commands.prune, backup_job.storage, pgbackup_operator.render\n"
        f"print(json.dumps(sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in {SDKS!r}))))"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("backend", WITH_SDK, ids=lambda backend: backend.scheme)
def test_a_destination_whose_sdk_is_missing_says_which_extra_to_install(backend: Backend) -> None:
    code = (
        f"BLOCKED = {list(backend.sdk)!r}\n{BLOCK}\n"
        "from pathlib import Path\n"
        "from backup_job.core.errors import ConfigError\n"
        "from backup_job.core.settings import load_settings\n"
        "from backup_job.commands.destination import open_destination\n"
        f"settings = load_settings({{'BACKUP_DESTINATION': {backend.example!r}}}, dotenv_path=Path('/nonexistent'))\n"
        "try:\n"
        "    open_destination(settings)\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert f"pgbackup[{backend.extra}]" in message and "\n" not in message, message
