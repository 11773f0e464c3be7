"""Helpers shared by the benchmarks: measuring a command's process tree, and S3 bookkeeping.

``measure`` runs one command and reports its wall time, the CPU time of the whole process
tree (every descendant that was waited for) and the peak resident memory of the tree: a
thread samples ``/proc`` every 50 ms, sums the RSS of the root process and all its
descendants (found through the ppid field of ``/proc/<pid>/stat``) and keeps the largest sum.
Shared pages (libraries) are counted once per process, as ``ps`` would; the figure is an upper
bound that treats a shell pipeline and pgbackup with its pg_dump child alike.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from backup_job.core import settings as S
from devenv.postgres import Cluster
from devenv.s3 import S3Server

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.05
MIB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    """One finished command."""

    returncode: int
    seconds: float  # wall
    cpu_seconds: float  # user + system of the whole (reaped) process tree
    peak_rss_bytes: int  # the largest sum of RSS over the process tree
    stdout: str
    stderr: str


C = TypeVar("C")


@dataclass
class Runs(Generic[C]):
    """The figures of every round of one case of a benchmark (``C``: that benchmark's case)."""

    case: C
    measured: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.measured)

    def figure(self, key: str, how: Callable[[Iterable[float]], float] = max) -> float:
        """``how`` (max, min, ...) of ``key`` over the rounds."""
        return float(how(run[key] for run in self.measured))


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue  # exited meanwhile
        ppid = int(data[data.rindex(b")") + 2 :].split()[1])  # the command name may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    """The summed RSS of ``root`` and every process below it, now."""
    children = _children_by_parent()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss_bytes(pid)
        stack.extend(children.get(pid, ()))
    return total


class PeakSampler(threading.Thread):
    """Samples ``tree_rss_bytes(root)`` until stopped; ``peak`` is the largest sample."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            if self._stop_event.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], env: Mapping[str, str], cwd: str | None = None) -> Measured:
    """Run ``argv`` to completion; its output is kept in temporary files, not pipes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpu_before = _children_cpu()
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        returncode = proc.wait()
        seconds = time.monotonic() - started
        peak = sampler.stop()
        cpu = _children_cpu() - cpu_before
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode, seconds, cpu, peak, out.read().decode(errors="replace"), err.read().decode(errors="replace")
        )


def clean_env() -> dict[str, str]:
    """This process's environment without any PostgreSQL, AWS or pgbackup variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}


def pgbackup_env(
    cluster: Cluster, s3: S3Server | None, bindir: Path, destination: str, databases: str
) -> dict[str, str]:
    """What ``pgbackup run`` needs to back up ``databases`` of ``cluster`` to moto (or, without
    ``s3``, to a destination whose variables the caller adds), JSON logs, no globals."""
    env = clean_env()
    env.update(cluster.env())
    if s3 is not None:
        env.update(s3.env())
    env.update(
        {
            S.PG_BINDIR.name: str(bindir),
            S.DATABASES.name: databases,
            S.DESTINATION.name: destination,
            S.GLOBALS.name: "false",
            S.LOG_FORMAT.name: "json",
        }
    )
    return env


def objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    """Remove every object under ``prefix`` (keeps moto's memory flat across many runs)."""
    keys = [{"Key": item["Key"]} for item in objects(client, bucket, prefix)]
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
