"""The hashed locks in requirements/ and every path that installs from them.

A fresh machine must get exactly what CI tested, so every Python install is two steps:
``pip install --require-hashes -r requirements/<lock>.txt``, then pgbackup itself with
``--no-deps``. These tests read the locks, ``pyproject.toml`` and the installed metadata only
(no index is asked), so they run in the fast lane; the last one repeats the image's install
steps outside a container and is slow.

What each guards against:
- a requirement added to ``pyproject.toml`` (an extra's included) without ``scripts/lock``;
- a lock the resolver left incomplete, or an environment that is not the lock;
- the image running other versions than the tests (runtime pins differ from test pins);
- an install path that resolves on its own (no hashes), an unpinned ``pip install --upgrade pip``,
  a base image pulled by tag.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_locks.py."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from devenv.locks import normalize

from ..kit.helpers import ROOT
from ..unit.test_locks import TARGETS, lock, pinned, shell_commands

# -- the image's install steps, outside a container ------------------------------------------


def test_the_image_install_steps_give_a_working_pgbackup(tmp_path: Path) -> None:
    """The Dockerfile's pip commands, run as written (paths mapped) into a new virtualenv."""
    python = next(
        p
        for p in ("python3.12", sys.executable)
        if shutil.which(p)
        and subprocess.run(
            [p, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"], capture_output=True
        ).returncode
        == 0
    )
    subprocess.run([python, "-m", "venv", tmp_path / "image"], check=True)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "backup_job", "operator", "requirements"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    mapping = {"/wheels": str(tmp_path / "wheels"), "/requirements": str(src / "requirements")}
    environment = {**os.environ, "PATH": f"{tmp_path / 'image' / 'bin'}:{os.environ['PATH']}"}
    commands = [c for f, c in shell_commands() if f == "Dockerfile"]
    steps = [c for c in commands if re.search(r"\bpip (install|wheel|download|uninstall)\b", c)]
    assert len(steps) == 6, steps
    for step in steps:
        argv = [
            mapping.get(a, re.sub(r"^/(wheels|requirements)/", lambda m: mapping["/" + m[1]] + "/", a))
            for a in shlex.split(step.split("pip ", 1)[1])
        ]
        argv = [str(match) for a in argv for match in (sorted(Path(a).parent.glob(Path(a).name)) if "*" in a else [a])]
        argv = [a for a in argv if a != "--no-cache-dir"]
        if argv[0] == "install":  # byte-compiling every dependency takes most of the install and no
            argv.insert(1, "--no-compile")  # check below needs it: the imports compile what they load
        result = subprocess.run(
            [str(tmp_path / "image" / "bin" / "python"), "-m", "pip", *argv],
            cwd=src,
            env=environment,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"pip {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    # And what the image then removes, as written, so that the imports below run without it.
    uninstalled = {
        normalize(a)
        for c in steps
        if "pip uninstall" in c
        for a in shlex.split(c.split(" uninstall ", 1)[1])
        if a[0] != "-"
    }
    assert uninstalled == {"setuptools"}
    (removal,) = [c for c in commands if c.startswith("rm ") and "kubernetes/aio" in c]
    subprocess.run(["sh", "-c", removal], env=environment, check=True)
    image_python = str(tmp_path / "image" / "bin" / "python")
    assert subprocess.run([image_python, "-c", "import kubernetes.aio"], capture_output=True).returncode == 1
    assert subprocess.run([image_python, "-c", "import setuptools"], capture_output=True).returncode == 1
    listed = subprocess.run(
        [image_python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    )
    versions = dict(line.split("==") for line in listed.stdout.split())
    env = {
        **TARGETS[0],
        "python_version": ".".join(
            subprocess.run(
                [image_python, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
                capture_output=True,
                text=True,
            ).stdout.split()
        ),
        "platform_machine": os.uname().machine,
    }
    assert {normalize(k): v for k, v in versions.items() if normalize(k) != "pgbackup"} == {
        name: pin.version for name, pin in pinned(lock("runtime"), env).items() if name not in uninstalled
    }
    # Every module of the shipped packages imports with the runtime lock alone (no test-only package).
    imports = (
        "import pkgutil, importlib, backup_job, pgbackup_operator\n"
        "for package in (backup_job, pgbackup_operator):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if not module.name.endswith('__main__'):\n"
        "            importlib.import_module(module.name)\n"
    )
    result = subprocess.run([image_python, "-c", imports], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([str(tmp_path / "image" / "bin" / "pgbackup"), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
