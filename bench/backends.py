"""Benchmark: the default backup of one database to each kind of object store, side by side.

One data set (``bench.dataset``, as ``bench.compare`` builds it; small by default, since two of
the stores are emulators that hold everything in memory) on a throwaway Debian PostgreSQL 15,
and four stores on loopback, each started here: moto's S3 server, SeaweedFS, Azurite and
fake-gcs-server. ``pgbackup run`` with the defaults backs the database up to each in turn,
round robin, to a fresh prefix. For every run: wall time, CPU seconds and peak RSS of the
pgbackup process tree (``bench.common.measure``), and the CPU seconds the store's own process
spent meanwhile, which shows when the store, not pgbackup, is the bottleneck (an emulator
that rehashes every chunk it receives). pgbackup's peak RSS is checked against the bound
docs/performance.md states (160 MiB for the default run), on every store.

Usage: .venv/bin/python -m bench.compare --backends [--scale 10] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_job.core import settings as S
from bench import dataset
from bench.common import MIB, measure, pgbackup_env, tail
from devenv.azurite import AzuriteServer
from devenv.fakegcs import FakeGcsServer
from devenv.postgres import Cluster, debian_bindir
from devenv.s3 import S3Server
from devenv.seaweed import SeaweedServer

ROOT = Path(__file__).resolve().parent.parent
RSS_BOUND_MIB = 160  # docs/performance.md: the default run's peak RSS
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Store:
    """One store under test: its server process, and the variables that send a run to it."""

    name: str
    pid: int
    env: Callable[[str], dict[str, str]]  # prefix -> BACKUP_DESTINATION and the SDK's variables
    runs: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(children.get(current, []))
    return total


def _tool(name: str) -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), name], stdout=subprocess.PIPE, text=True, check=True)
    return Path(built.stdout.strip().splitlines()[-1])


@contextmanager
def stores() -> Iterator[list[Store]]:
    """The four stores, started, each with a bucket or container for the runs."""
    with ExitStack() as stack:
        moto = stack.enter_context(S3Server())
        weed = stack.enter_context(SeaweedServer(_tool("seaweedfs")))
        azurite = stack.enter_context(AzuriteServer(_tool("azurite")))
        gcs = stack.enter_context(FakeGcsServer(_tool("fake-gcs-server")))
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        for server in (moto, weed):
            server.client().create_bucket(Bucket=bucket)
        azurite.client().create_container(bucket)
        gcs.client().create_bucket(bucket)

        def s3(server: S3Server | SeaweedServer) -> Callable[[str], dict[str, str]]:
            return lambda prefix: {
                **server.env(),
                S.S3_ADDRESSING_STYLE.name: "path",
                S.DESTINATION.name: f"s3://{bucket}/{prefix}",
            }

        yield [
            Store("moto", _pid(moto), s3(moto)),
            Store("SeaweedFS", _pid(weed), s3(weed)),
            Store(
                "Azurite",
                _pid(azurite),
                lambda prefix: {**azurite.env(), S.DESTINATION.name: f"azure://{azurite.account}/{bucket}/{prefix}"},
            ),
            Store(
                "fake-gcs-server",
                _pid(gcs),
                lambda prefix: {**gcs.env(), S.DESTINATION.name: f"gs://{bucket}/{prefix}"},
            ),
        ]


def _pid(server: Any) -> int:
    """The server's process (every devenv server keeps its ``Popen`` as ``_proc``)."""
    return int(server._proc.pid)


def run_once(cluster: Cluster, store: Store, prefix: str, workdir: str) -> dict[str, float]:
    env = pgbackup_env(cluster, None, cluster.bindir, "", dataset.BIG_DATABASE)
    env.update(store.env(prefix))
    before = tree_cpu_seconds(store.pid)
    result = measure([str(Path(sys.executable).parent / "pgbackup"), "run"], env, cwd=workdir)
    store_cpu = tree_cpu_seconds(store.pid) - before
    if result.returncode != 0:
        raise SystemExit(f"pgbackup run to {store.name} failed:\n{tail(result.stdout)}\n{tail(result.stderr)}")
    return {
        "seconds": result.seconds,
        "cpu_seconds": result.cpu_seconds,
        "peak_rss_mib": result.peak_rss_bytes / MIB,
        "store_cpu_seconds": store_cpu,
    }


def table(runs: list[Store]) -> list[str]:
    lines = [
        "| store | median s | pgbackup CPU s | store CPU s | peak RSS MiB (max) | bottleneck |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for store in runs:
        mine, theirs = store.median("cpu_seconds"), store.median("store_cpu_seconds")
        bottleneck = "the store" if theirs > mine else "pgbackup and PostgreSQL"
        lines.append(
            f"| {store.name} | {store.median('seconds'):.1f} | {mine:.1f} | {theirs:.1f} | "
            f"{max(r['peak_rss_mib'] for r in store.runs):.0f} | {bottleneck} |"
        )
    return lines


def compare_backends(args: argparse.Namespace) -> dict[str, Any]:
    bindir = debian_bindir(15)
    with Cluster(bindir) as cluster, stores() as runs, tempfile.TemporaryDirectory() as workdir:
        dataset.build_big(cluster, args.scale, args.text_rows)
        size = dataset.dump_bytes(cluster, dataset.BIG_DATABASE)
        print(f"plain dump of `{dataset.BIG_DATABASE}`: {size / 1e6:.0f} MB", flush=True)
        for round_number in range(1, args.rounds + 1):
            for store in runs:
                figures = run_once(cluster, store, f"r{round_number}-{time.monotonic_ns()}", workdir)
                store.runs.append(figures)
                print(
                    f"round {round_number}: {store.name}: {figures['seconds']:.1f} s, "
                    f"{figures['peak_rss_mib']:.0f} MiB, store CPU {figures['store_cpu_seconds']:.1f} s",
                    flush=True,
                )
    print("\n" + "\n".join(table(runs)) + "\n")
    verdicts = {}
    for store in runs:
        peak = max(r["peak_rss_mib"] for r in store.runs)
        verdicts[store.name] = peak <= RSS_BOUND_MIB
        verdict = "PASS" if verdicts[store.name] else "FAIL"
        print(f"{verdict}: peak RSS of the run to {store.name} <= {RSS_BOUND_MIB} MiB (measured: {peak:.0f} MiB)")
    return {
        "dump_bytes": size,
        "stores": {store.name: store.runs for store in runs},
        "rss_within_bound": verdicts,
    }
