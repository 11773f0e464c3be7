"""How many CPUs this process may really use: the default for compression threads.

``os.cpu_count()`` is the machine's count, which is wrong in a container: a Kubernetes pod
with ``resources.limits.cpu: 2`` on a 64-core node is throttled to two CPUs' worth of time
per period, and 64 compression threads there would only add context switches and memory.
The usable count is the smallest of:

- the CPUs in this process's affinity mask (``taskset``, cpusets; ``sched_getaffinity``);
- the cgroup v2 quota, ``cpu.max`` = ``"<quota> <period>"`` (or ``"max <period>"`` for none),
  rounded up: a limit of 1.5 CPUs gives 2 threads, which the quota then shares;
- the cgroup v1 quota, ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (``-1`` for none), for
  older nodes.

The cgroup files are read from this process's own cgroup (``/proc/self/cgroup``) under
``/sys/fs/cgroup``; the root is a parameter so tests can point it at a fixture tree.
Anything unreadable means "no limit from there", never an error: the answer only tunes speed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup(proc_self_cgroup: Path) -> tuple[str, dict[str, str]]:
    """This process's v2 path and its v1 paths by controller, from ``/proc/self/cgroup``."""
    v2 = ""
    v1: dict[str, str] = {}
    for line in (_read(proc_self_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            v2 = path
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return v2, v1


def _candidates(root: Path, path: str) -> list[Path]:
    """The cgroup's directory and its ancestors, innermost first (a parent's limit binds too);
    the root itself as well, which is what a container with a private cgroup namespace sees."""
    directory = root / path.lstrip("/")
    found = [directory, *directory.parents]
    return [d for d in found if d == root or root in d.parents]


def quota_v2(root: Path, path: str) -> float | None:
    limits = []
    for directory in _candidates(root, path):
        words = (_read(directory / "cpu.max") or "").split()
        if len(words) == 2 and words[0] != "max":
            try:
                quota, period = int(words[0]), int(words[1])
            except ValueError:
                continue
            if quota > 0 and period > 0:
                limits.append(quota / period)
    return min(limits) if limits else None


def quota_v1(root: Path, path: str) -> float | None:
    limits = []
    for base in (root / "cpu", root / "cpu,cpuacct"):
        for directory in _candidates(base, path):
            try:
                quota = int(_read(directory / "cpu.cfs_quota_us") or "-1")
                period = int(_read(directory / "cpu.cfs_period_us") or "0")
            except ValueError:
                continue
            if quota > 0 and period > 0:
                limits.append(quota / period)
    return min(limits) if limits else None


def usable(root: Path | None = None, proc_self_cgroup: Path | None = None) -> int:
    """The CPUs this process may use: affinity, capped by a cgroup CPU quota; at least 1."""
    root = root or CGROUP_ROOT
    count = affinity()
    v2, v1 = _own_cgroup(proc_self_cgroup or PROC_SELF_CGROUP)
    for quota in (quota_v2(root, v2), quota_v1(root, v1.get("cpu", v1.get("cpuacct", "")))):
        if quota is not None:
            count = min(count, math.ceil(quota))
    return max(1, count)
