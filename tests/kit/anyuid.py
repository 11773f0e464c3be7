"""Running the project's commands as an arbitrary uid, as a pod under a strict policy does.

OpenShift's restricted-v2 runs a container as a uid picked from the namespace's range, with
GID 0 and no passwd entry. Tests that play such a pod (the stand-in kubelet,
``test_arbitrary_uid``) run ``pgbackup`` and the PostgreSQL client programs as that uid, so
each must be reachable by it: every directory on the way searchable, the program readable
and executable, and a script's interpreter too.

The test machine's virtualenv may be built on an interpreter below ``/root`` (pyenv), which no
other uid can reach; ``command_dir`` then builds, once, a small virtualenv of a system Python
of the same minor version in the shared test directory (where the PostgreSQL binaries are
copied for the same reason, ``devenv.postgres``). It reuses the project's virtualenv's
packages through a ``.pth`` file and carries copies of its console scripts, so the
``pgbackup`` it runs is the project's own code. When nothing can be made to work,
``Unreachable`` says which directory blocks which uid, instead of a bare "permission denied"
from inside a test.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devenv.postgres import SHARED_ROOT

ANY_UID = 1000680000  # the first uid of a typical OpenShift namespace range; no passwd entry
IMAGE_UID = 10001  # the image's USER (Dockerfile)
ROOT_GID = 0


class Unreachable(AssertionError):
    """A program the test runs as another uid is out of that uid's reach: the test cannot run."""


def _mode_bits(st: os.stat_result, uid: int, gids: Sequence[int]) -> int:
    """The rwx bits that apply to ``uid``/``gids`` (owner, else group, else other); uid 0 has all."""
    if uid == 0:
        return 0o7
    if st.st_uid == uid:
        return (st.st_mode >> 6) & 0o7
    if st.st_gid in gids:
        return (st.st_mode >> 3) & 0o7
    return st.st_mode & 0o7


def _describe(path: Path, st: os.stat_result) -> str:
    return f"{path} is {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"


def why_unreachable(path: Path, uid: int, gids: Sequence[int], need: int = os.R_OK) -> str | None:
    """Why ``uid`` (with groups ``gids``) cannot use ``path`` as ``need`` asks (``os.R_OK``,
    ``os.X_OK`` or both), following symlinks; None when it can."""
    seen: set[Path] = set()
    pending = [path.absolute()]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for parent in reversed(current.parents):
            st = os.stat(parent)
            if not _mode_bits(st, uid, gids) & 0o1:
                return f"{_describe(parent, st)}: not searchable"
        if current.is_symlink():
            target = Path(os.readlink(current))
            pending.append(target if target.is_absolute() else current.parent / target)
            continue
        if not current.exists():
            return f"{current} does not exist"
        st = os.stat(current)
        bits = _mode_bits(st, uid, gids)
        if need & os.R_OK and not bits & 0o4:
            return f"{_describe(current, st)}: not readable"
        if need & os.X_OK and not bits & 0o1:
            return f"{_describe(current, st)}: not executable"
    return None


def interpreter(program: Path) -> Path | None:
    """A script's ``#!`` interpreter, None for a binary."""
    with program.open("rb") as f:
        first = f.readline(256)
    if not first.startswith(b"#!"):
        return None
    return Path(first[2:].split()[0].decode())


def why_cannot_run(program: Path, uid: int, gids: Sequence[int]) -> str | None:
    """Why ``uid`` cannot execute ``program`` (and its interpreter, for a script), or None."""
    problem = why_unreachable(program, uid, gids, os.R_OK | os.X_OK)
    if problem is None and (shebang := interpreter(program)) is not None:
        problem = why_unreachable(shebang, uid, gids, os.R_OK | os.X_OK)
        problem = problem and f"its interpreter: {problem}"
    return problem and f"uid {uid} (groups {', '.join(map(str, gids))}) cannot run {program}: {problem}"


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _probe(bindir: Path) -> str | None:
    """Whether ``pgbackup`` in ``bindir`` really starts as ``ANY_UID``: its error, else None."""
    program = bindir / "pgbackup"
    problem = why_cannot_run(program, ANY_UID, [ROOT_GID])
    if problem:
        return problem
    probe = subprocess.run(
        [str(bindir / "python"), "-c", "import backup_job.cli, pgbackup_operator.cli"],
        user=ANY_UID,
        group=ROOT_GID,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        timeout=60,
    )
    return None if probe.returncode == 0 else f"{bindir}/python as uid {ANY_UID}: {probe.stderr.strip()[-500:]}"


def _system_python() -> Path | None:
    """A Python of this minor version that any uid can run, outside any home directory."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for directory in ("/usr/local/bin", "/usr/bin"):
        candidate = Path(directory) / name
        if candidate.exists() and why_cannot_run(candidate, ANY_UID, [ROOT_GID]) is None:
            return candidate
    return None


def _console_scripts(bindir: Path) -> dict[str, str]:
    """The virtualenv's scripts that run its interpreter, by name, without their ``#!`` line."""
    scripts = {}
    for path in sorted(bindir.iterdir()):
        if path.is_file() and not path.is_symlink() and interpreter(path) == bindir / "python":
            scripts[path.name] = path.read_text().split("\n", 1)[1]
    return scripts


def _build(python: Path, target: Path) -> None:
    """A virtualenv of ``python`` at ``target`` that imports this virtualenv's packages."""
    staging = Path(tempfile.mkdtemp(dir=SHARED_ROOT, prefix="python-staging-"))
    try:
        subprocess.run([str(python), "-m", "venv", "--without-pip", str(staging)], check=True, capture_output=True)
        packages = Path(sysconfig.get_paths()["purelib"])
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        (staging / "lib" / version / "site-packages" / "pgbackup-project-venv.pth").write_text(
            f"import site; site.addsitedir({str(packages)!r})\n"
        )
        for name, body in _console_scripts(_venv_bin()).items():
            script = staging / "bin" / name
            script.write_text(f"#!{target}/bin/python\n{body}")
            script.chmod(0o755)
        for directory, _dirs, files in os.walk(staging):
            os.chmod(directory, 0o755)
            for name in files:
                path = os.path.join(directory, name)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o444)
        staging.rename(target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename won


@functools.cache
def command_dir() -> Path:
    """A directory holding ``pgbackup`` (and the project's other commands) that any uid can run."""
    problem = _probe(_venv_bin())
    if problem is None:
        return _venv_bin()
    python = _system_python()
    if python is None:
        raise Unreachable(
            f"{problem}\nand no python{sys.version_info.major}.{sys.version_info.minor} in "
            "/usr/local/bin or /usr/bin that any uid can run to build a shared copy from: "
            "install one, or build the virtualenv from a Python outside /root"
        )
    key = hashlib.sha256(f"{python}\0{sys.prefix}\0{sorted(_console_scripts(_venv_bin()).items())}".encode())
    SHARED_ROOT.mkdir(parents=True, exist_ok=True)
    SHARED_ROOT.chmod(0o755)
    target = SHARED_ROOT / f"python-{key.hexdigest()[:12]}"
    if not target.exists():
        _build(python, target)
    problem = _probe(target / "bin")
    if problem:
        raise Unreachable(f"the shared virtualenv {target} does not work as uid {ANY_UID}: {problem}")
    return target / "bin"
