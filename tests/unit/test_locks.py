"""The hashed locks in requirements/, checked offline: the locks, ``pyproject.toml`` and the installed metadata.

What is guarded and why, and the tests that run pgbackup, real services or a control plane:
tests/integration/test_locks.py."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from devenv.locks import PIP, REQUIREMENTS, Pin, build_requirements, changes, normalize, read

from ..kit.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The targets every lock must hold for: CPython 3.11-3.13 on Linux, x86_64 and aarch64.
TARGETS = [
    {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    for version in ("3.11", "3.12", "3.13")
    for machine in ("x86_64", "aarch64")
]
TARGET_IDS = [f"py{t['python_version']}-{t['platform_machine']}" for t in TARGETS]


@functools.cache
def lock(name: str) -> list[Pin]:
    return read(REQUIREMENTS / f"{name}.txt")


def applies(marker: str, env: dict[str, str]) -> bool:
    return not marker or Marker(marker).evaluate(env)


def pinned(pins: list[Pin], env: dict[str, str]) -> dict[str, Pin]:
    chosen: dict[str, Pin] = {}
    for pin in pins:
        if applies(pin.marker, env):
            assert pin.name not in chosen, f"{pin.name} is pinned twice for {env['python_version']}"
            chosen[pin.name] = pin
    return chosen


def unmet(requirements: list[str], pins: list[Pin] | dict[str, Pin], env: dict[str, str]) -> list[str]:
    """The requirements (``extra`` markers included) that no pin of the lock satisfies in ``env``."""
    chosen = pins if isinstance(pins, dict) else pinned(pins, env)
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(env):
            continue
        pin = chosen.get(normalize(requirement.name))
        if pin is None or not requirement.specifier.contains(Version(pin.version), prereleases=True):
            missing.append(f"{text} (locked: {pin.version if pin else 'nothing'})")
    return missing


def project_requirements(*extras: str) -> list[str]:
    project = PYPROJECT["project"]
    requirements = [*project["dependencies"], *build_requirements(), PIP]
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return requirements


def extra_requirements(requirements: list[str], env: dict[str, str]) -> list[str]:
    """What the extras named in ``requirements`` (``moto[server]``) add, from installed metadata."""
    added = []
    for text in requirements:
        requirement = Requirement(text)
        for extra in requirement.extras:
            for dependency in importlib.metadata.requires(requirement.name) or []:
                marker = Requirement(dependency).marker
                if marker and marker.evaluate({**env, "extra": extra}) and not marker.evaluate(env):
                    added.append(str(Requirement(dependency)).split(";")[0].strip())
    return added


# -- the locks themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["runtime", "test", "uv"])
def test_every_entry_is_pinned_with_hashes(name: str) -> None:
    pins = lock(name)  # a line that is neither `name==version` nor a hash fails to read
    assert pins, name
    for pin in pins:
        assert pin.hashes, f"{name}.txt: {pin.name} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in pin.hashes), pin.name


def test_the_reader_refuses_an_unpinned_or_unhashed_line(tmp_path: Path) -> None:
    cases = {
        "boto3>=1.36 \\\n    --hash=sha256:" + "0" * 64 + "\n": "not a pinned, hashed requirement",
        "boto3==1.36.0\nmoto==5.2.5 \\\n    --hash=sha256:" + "0" * 64 + "\n": "boto3==1.36.0 has no hash",
    }
    for text, error in cases.items():
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(ValueError, match=error):
            read(tmp_path / "bad.txt")


@pytest.mark.parametrize("env", TARGETS, ids=TARGET_IDS)
def test_the_runtime_lock_meets_pyproject(env: dict[str, str]) -> None:
    """The image's lock holds the dependencies and the destinations' SDKs (the azure and gcs extras)."""
    assert unmet(project_requirements("azure", "gcs"), lock("runtime"), env) == []


@pytest.mark.parametrize("env", TARGETS, ids=TARGET_IDS)
def test_the_test_lock_meets_pyproject_with_its_test_extra(env: dict[str, str]) -> None:
    requirements = project_requirements("test")
    assert unmet(requirements + extra_requirements(requirements, env), lock("test"), env) == []


def test_the_check_sees_a_requirement_the_lock_misses() -> None:
    env = TARGETS[0]
    assert unmet(["boto3>=99"], lock("runtime"), env) == [
        f"boto3>=99 (locked: {pinned(lock('runtime'), env)['boto3'].version})"
    ]
    assert unmet(["left-pad>=1"], lock("runtime"), env) == ["left-pad>=1 (locked: nothing)"]
    assert "flask-cors" in extra_requirements(["moto[server]>=5.0"], env)  # moto's server extra, from its metadata


@pytest.mark.parametrize("env", TARGETS, ids=TARGET_IDS)
def test_every_locked_distribution_finds_its_own_dependencies_locked(env: dict[str, str]) -> None:
    """The lock is closed: what each locked package requires (by its installed metadata) is locked too."""
    chosen = pinned(lock("test"), env)
    missing = []
    for pin in chosen.values():
        requires = importlib.metadata.requires(pin.name) if installed_version(pin.name) else []
        missing += [f"{pin.name} -> {m}" for m in unmet(requires or [], chosen, env)]
    assert missing == []


def test_the_tests_run_what_the_image_runs() -> None:
    test_pins = {(pin.name, pin.marker): pin for pin in lock("test")}
    for pin in lock("runtime"):
        assert test_pins.get((pin.name, pin.marker)) == pin, f"{pin.name}: runtime.txt and test.txt differ"


def test_this_environment_is_the_test_lock() -> None:
    """The virtualenv the suite runs in holds exactly the locked versions (scripts/lib/bootstrap.sh)."""
    env = dict(TARGETS[0])
    env.update(
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        python_full_version=".".join(map(str, sys.version_info[:3])),
        platform_machine=os.uname().machine,
    )
    wrong = [
        f"{pin.name}: locked {pin.version}, installed {installed_version(pin.name)}"
        for pin in pinned(lock("test"), env).values()
        if installed_version(pin.name) != pin.version
    ]
    assert wrong == [], "the environment is not requirements/test.txt: let scripts/test make .venv anew"


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_pyproject_keeps_lower_bounds_and_the_holds_give_their_reason() -> None:
    project = PYPROJECT["project"]
    for text in [*project["dependencies"], *(r for e in project["optional-dependencies"].values() for r in e)]:
        specifier = Requirement(text).specifier
        # A ceiling below the next major release is a compatibility bound (MkDocs 2 drops the
        # theme API Material needs), not a pin; anything narrower belongs in the locks.
        ceiling = [s for s in specifier if s.operator == "<" and s.version.isdigit()]
        assert all(s.operator == ">=" for s in specifier if s not in ceiling), (
            f"{text}: pyproject.toml keeps lower bounds (and at most a next-major ceiling); pins live in the locks"
        )
        assert any(s.operator == ">=" for s in specifier) or not specifier, f"{text}: an honest lower bound"
    comment: list[str] = []
    for line in (REQUIREMENTS / "constraints.txt").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif line.strip():
            assert len(comment) >= 2, f"constraints.txt: say why {line} is held, and the upstream change"
            comment = []
    moto = Requirement("moto<5.2.6")
    assert moto.specifier.contains(pinned(lock("test"), TARGETS[0])["moto"].version)


def test_a_refresh_reports_what_moved() -> None:
    old = [Pin("moto", "5.2.5", "", ("a",)), Pin("gone", "1", "", ("b",)), Pin("same", "2", "", ("c",))]
    new = [
        Pin("moto", "5.2.6", "", ("d",)),
        Pin("new", "3", "sys_platform == 'win32'", ("e",)),
        Pin("same", "2", "", ("c",)),
    ]
    assert changes(old, new) == ["  - gone 1", "  ~ moto 5.2.5 -> 5.2.6", "  + new ; sys_platform == 'win32' 3"]


# -- every install path -----------------------------------------------------------------------


def shell_commands() -> list[tuple[str, str]]:
    """(file, command) for every shell command of the Dockerfile and scripts, continuations joined."""
    files = [ROOT / "Dockerfile", ROOT / ".ci" / "run", *sorted((ROOT / "scripts").rglob("*"))]
    commands = []
    for path in files:
        if path.is_file():
            text = re.sub(r"\\\n", " ", path.read_text())
            for line in text.splitlines():
                for command in re.split(r"&&|\|\||;|\{|\}", line.split(" #")[0]):
                    if command.strip() and not command.strip().startswith("#"):
                        commands.append((str(path.relative_to(ROOT)), command.strip()))
    return commands


def test_every_pip_install_takes_hashes_or_no_dependencies() -> None:
    installs = [(f, c) for f, c in shell_commands() if re.search(r"pip (install|wheel|download)\b", c)]
    assert {f for f, _ in installs} >= {"Dockerfile", "scripts/lib/bootstrap.sh", "scripts/lock"}
    for path, command in installs:
        locked = "--require-hashes" in command and re.search(r"-r \S+", command)
        assert locked or "--no-deps" in command, f"{path}: {command} resolves on its own"
        assert not re.search(r"(--upgrade|-U)\b.*\bpip\b", command), f"{path}: {command} takes whatever pip is newest"
    python_calls = [
        p for p in ROOT.glob("devenv/*.py") if re.search(r'"pip", "(install|download|wheel)"', p.read_text())
    ]
    for path in python_calls:
        assert "--require-hashes" in path.read_text(), f"{path.name} fetches from PyPI without a hash"


def test_the_dockerfile_pulls_base_images_by_digest_and_names_the_tag() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    froms = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(froms) == 3
    for i in froms:
        image = next(word for word in lines[i].split()[1:] if not word.startswith("--"))  # past --platform
        assert re.fullmatch(r"[a-z0-9/.-]+@sha256:[0-9a-f]{64}", image), f"{lines[i]}: pin the base image by digest"
        assert re.match(r"# [a-z0-9/.-]+:[\w.-]+ ", lines[i - 1]), f"{lines[i]}: name its tag in the comment above"
