"""Benchmark: split backups against plain ones and against ``pg_dump -Fd -j 2``, dump and restore.

``python -m bench.compare --split [--scale 1] [--repeat 3]`` runs on the data set of
``bench.split_data`` (Debian PostgreSQL 15, kept between runs): one database shaped like a real
big one, about 2.5 GB of plain dump at ``--scale 1``, with one table holding most of the data
(primary key, two secondary indexes, a foreign key to a mid-sized table), five mid-sized tables
and 200 small ones; moto's S3 server on loopback is the store, as in ``bench.compare``.

The cases run round robin (round 1 runs every case once, then round 2, ...); medians of the
rounds are reported:

- dump: ``pgbackup run`` with ``BACKUP_FORMAT=split`` and 2 jobs, the same with 1 job, a plain
  ``pgbackup run``, and ``pg_dump -Fd -j 2`` to local disk (its default compression: gzip at
  zlib's default level, the level pgbackup uses): wall time, CPU seconds of the client's
  process tree, peak RSS of that tree, bytes stored;
- restore of round 1's backups into a new database: ``pgbackup restore --jobs 2`` of the split
  backup, ``pgbackup restore`` of the plain one, ``createdb`` then ``pg_restore -j 2`` of the
  ``pg_dump -Fd`` directory;
- ``restore --table`` of one small table into an empty database, from the split backup of
  ``big`` and from one of ``big_quarter`` (a quarter of the size): the time should not grow
  with the backup's size.

Where the time goes: for every run, the CPU seconds of three process groups are taken apart:
the client (pgbackup or pg_dump/pg_restore and their children, from ``getrusage``), the
PostgreSQL server (the postmaster's tree: each process's own time plus what it reaped, from
``/proc``) and the S3 server (moto's process). Their sum against wall time x cores shows how
busy the machine was.

The 1- and 2-job dump times are fitted to Amdahl's law, ``T(n) = T1 x (s + (1 - s) / n)``, which
gives ``s = 2 x T2 / T1 - 1``, and predict 8 and 16 jobs from it. On a 2-core machine the
server, the S3 server and pgbackup share the same two cores, so the fit describes this machine
as a whole, not pgbackup alone; the prediction assumes the server's cores grow with the jobs.

Not part of the test suite. At ``--scale 1`` with 3 rounds it takes about 17 minutes on two
cores (plus about 90 seconds the first time, to build the data set).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backup_job.core import settings as S
from bench import split_data
from bench.common import MIB, Measured, Runs, delete_prefix, measure, objects, pgbackup_env, tail
from bench.dataset import pg_dump_version
from devenv.postgres import debian_bindir
from devenv.s3 import S3Server

PGBACKUP = Path(sys.executable).parent / "pgbackup"
BUCKET = "bench"
CORES = len(os.sched_getaffinity(0))
TICKS = os.sysconf("SC_CLK_TCK")
JOBS = 2
ONE_TABLE = split_data.small_table(7)
FORMAT, DUMP_JOBS = S.DumpSettings.format.name, S.DumpSettings.dump_jobs.name
KEPT = 1  # the round whose backups the restores read


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    kind: str  # "dump", "restore" or "table"


CASES = (
    Case("split2", f"split, {JOBS} jobs (pgbackup run)", "dump"),
    Case("split1", "split, 1 job (pgbackup run)", "dump"),
    Case("plain", "plain (pgbackup run)", "dump"),
    Case("pgdump", f"pg_dump -Fd -j {JOBS} to local disk", "dump"),
    Case("rsplit", f"pgbackup restore --jobs {JOBS} (split)", "restore"),
    Case("rplain", "pgbackup restore (plain, one transaction)", "restore"),
    Case("pgrestore", f"pg_restore -j {JOBS} (pg_dump -Fd)", "restore"),
    Case("tquarter", f"restore --table {ONE_TABLE}, backup of big_quarter", "table"),
    Case("tfull", f"restore --table {ONE_TABLE}, backup of big", "table"),
)
GROUPS = ("client", "postgres", "s3")


def group_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, each with what it reaped (cutime, cstime):
    every process that ran under ``root`` counts once, ended or not."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(value) for value in stats[pid][11:15])  # utime stime cutime cstime
        todo.extend(children.get(pid, ()))
    return total / TICKS


class SplitBench:
    """The kept cluster, the S3 server, and how to run and measure one case against them."""

    def __init__(self, cluster: split_data.CachedCluster, s3: S3Server, workdir: str) -> None:
        self.cluster, self.s3, self.workdir = cluster, s3, workdir
        self.client = s3.client()
        self.client.create_bucket(Bucket=BUCKET)
        self.raw_bytes: dict[str, int] = {}  # database -> plain dump bytes, from the backups' own logs
        self.stored_bytes: dict[str, int] = {}  # database -> bytes of its kept split backup

    def env(self, prefix: str, database: str = split_data.BIG, **extra: str) -> dict[str, str]:
        bindir = self.cluster.bindir
        env = pgbackup_env(self.cluster, self.s3, bindir, f"s3://{BUCKET}/{prefix}", database)
        env.update(extra)
        return env

    def measured(self, what: str, argv: list[str], env: dict[str, str]) -> tuple[Measured, dict[str, float]]:
        """Run ``argv`` and measure it with the CPU of the server and of the S3 server meanwhile."""
        pids = {"postgres": self.cluster.postmaster_pid(), "s3": int(self.s3._proc.pid)}  # type: ignore[union-attr]
        before = {name: group_cpu_seconds(pid) for name, pid in pids.items()}
        result = measure(argv, env, cwd=self.workdir)
        after = {name: group_cpu_seconds(pid) for name, pid in pids.items()}
        if result.returncode != 0:
            raise SystemExit(
                f"{what} failed with exit code {result.returncode}:\n{tail(result.stdout)}\n{tail(result.stderr)}"
            )
        return result, {
            "seconds": result.seconds,
            "peak_rss_mib": result.peak_rss_bytes / MIB,
            "cpu_client": result.cpu_seconds,
            **{f"cpu_{name}": after[name] - before[name] for name in pids},
        }

    def stored(self, prefix: str) -> int:
        keys = objects(self.client, BUCKET, prefix + "/")
        return sum(int(item["Size"]) for item in keys if not item["Key"].endswith(".manifest.json"))

    def backup(self, prefix: str, database: str, jobs: int | None) -> dict[str, float]:
        extra = {FORMAT: "split", DUMP_JOBS: str(jobs)} if jobs else {}
        result, figures = self.measured(
            f"pgbackup run of {database}", [str(PGBACKUP), "run"], self.env(prefix, database, **extra)
        )
        read = re.search(r"(\d+) objects read over (\d+) connection", result.stdout)
        if jobs and (read is None or int(read[2]) != jobs):
            raise SystemExit(
                f"the split backup of {database} did not read over {jobs} connection(s):\n{tail(result.stdout)}"
            )
        raw = _raw_bytes(result.stdout)
        if raw and not jobs:
            self.raw_bytes[database] = raw
        figures["stored_bytes"] = self.stored(prefix)
        figures["objects"] = int(read[1]) if jobs and read else 1
        return figures

    def pg_dump(self, directory: Path) -> dict[str, float]:
        argv = [str(self.cluster.bindir / "pg_dump"), "-Fd", "-j", str(JOBS), "-f", str(directory), split_data.BIG]
        _result, figures = self.measured("pg_dump -Fd", argv, {**os.environ, **self.cluster.env()})
        figures["stored_bytes"] = sum(path.stat().st_size for path in directory.iterdir())
        return figures

    def restore(self, prefix: str, target: str, *options: str, database: str = split_data.BIG) -> dict[str, float]:
        argv = [str(PGBACKUP), "restore", "--database", database, "--target", target, *options]
        _result, figures = self.measured(f"pgbackup restore {' '.join(options)}", argv, self.env(prefix))
        return figures

    def pg_restore(self, directory: Path, target: str) -> dict[str, float]:
        self.cluster.sql(f"CREATE DATABASE {target}")
        argv = [str(self.cluster.bindir / "pg_restore"), "-j", str(JOBS), "-d", target, str(directory)]
        _result, figures = self.measured("pg_restore -j", argv, {**os.environ, **self.cluster.env()})
        return figures

    def one_table(self, prefix: str, database: str) -> dict[str, float]:
        target = "bench_one"
        self.cluster.sql(f"CREATE DATABASE {target}")
        self.cluster.sql(f"CREATE SCHEMA {split_data.SMALL_SCHEMA}", target)
        figures = self.restore(prefix, target, "--table", ONE_TABLE, "--allow-unsigned", database=database)
        if self.cluster.sql(f"SELECT count(*) FROM {ONE_TABLE}", target) != [(5,)]:
            raise SystemExit(f"restore --table {ONE_TABLE} did not restore its 5 rows")
        return figures

    def drop(self) -> None:
        self.cluster.drop_databases("bench_")

    def run(self, case: Case, round_number: int) -> dict[str, float]:
        prefix, kept = f"{case.name}-{round_number}", round_number == KEPT
        fd = Path(self.workdir) / f"fd-{round_number}"
        steps: dict[str, Callable[[], dict[str, float]]] = {
            "split2": lambda: self.backup(prefix, split_data.BIG, JOBS),
            "split1": lambda: self.backup(prefix, split_data.BIG, 1),
            "plain": lambda: self.backup(prefix, split_data.BIG, None),
            "pgdump": lambda: self.pg_dump(fd),
            "rsplit": lambda: self.restore(f"split2-{KEPT}", "bench_split", "--create", "--jobs", str(JOBS)),
            "rplain": lambda: self.restore(f"plain-{KEPT}", "bench_plain", "--create"),
            "pgrestore": lambda: self.pg_restore(Path(self.workdir) / f"fd-{KEPT}", "bench_pgrestore"),
            "tquarter": lambda: self.one_table("quarter", split_data.QUARTER),
            "tfull": lambda: self.one_table(f"split2-{KEPT}", split_data.BIG),
        }
        try:
            return steps[case.name]()
        finally:
            self.drop()
            if case.kind == "dump" and not (kept and case.name in ("split2", "plain", "pgdump")):
                delete_prefix(self.client, BUCKET, prefix)
                shutil.rmtree(fd, ignore_errors=True)


def _raw_bytes(stdout: str) -> int:
    import json

    for line in stdout.splitlines():
        if '"backup.finished"' in line:
            return int(json.loads(line).get("raw_bytes") or 0)
    return 0


def amdahl(one: float, two: float) -> tuple[float, dict[int, float]]:
    """The serial fraction fitted to the 1- and 2-job times, and the predicted times at 8 and 16 jobs."""
    serial = min(1.0, max(0.0, 2 * two / one - 1))
    return serial, {n: one * (serial + (1 - serial) / n) for n in (8, 16)}


def _ratio(runs: dict[str, Runs[Case]], case: str, base: str) -> float:
    return runs[case].median("seconds") / runs[base].median("seconds")


def report(runs: dict[str, Runs[Case]], bench: SplitBench) -> list[str]:
    lines = [
        "| case | median s | min-max s | client CPU s | PostgreSQL CPU s | S3 server CPU s | busy cores |"
        " peak RSS MiB | stored MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group in runs.values():
        cpu = sum(group.median(f"cpu_{name}") for name in GROUPS)
        stored = f"{group.median('stored_bytes') / 1e6:.0f}" if group.case.kind == "dump" else ""
        lines.append(
            f"| {group.case.title} | {group.median('seconds'):.1f} | {group.figure('seconds', min):.1f}-"
            f"{group.figure('seconds'):.1f} | {group.median('cpu_client'):.1f} | {group.median('cpu_postgres'):.1f} | "
            f"{group.median('cpu_s3'):.1f} | {cpu / group.median('seconds'):.2f} | "
            f"{group.figure('peak_rss_mib'):.0f} | {stored} |"
        )
    checks = [
        ("split 2 jobs / pg_dump -Fd -j 2 (dump)", _ratio(runs, "split2", "pgdump"), 0.7),
        ("split 2 jobs / plain (dump)", _ratio(runs, "split2", "plain"), None),
        ("split restore / pg_restore -j 2", _ratio(runs, "rsplit", "pgrestore"), 1.0),
        ("split restore / plain restore", _ratio(runs, "rsplit", "rplain"), None),
        ("restore --table: big / big_quarter", _ratio(runs, "tfull", "tquarter"), None),
    ]
    lines += ["", "| ratio of wall times | measured | target |", "|---|---:|---|"]
    for text, value, target in checks:
        verdict = "" if target is None else f"<= {target:.1f}: {'met' if value <= target else 'MISSED'}"
        lines.append(f"| {text} | {value:.2f} | {verdict} |")
    one, two = runs["split1"].median("seconds"), runs["split2"].median("seconds")
    serial, predicted = amdahl(one, two)
    lines += [
        "",
        f"Scaling of the split dump: 1 job {one:.1f} s, 2 jobs {two:.1f} s ({one / two:.2f}x). Amdahl fit on those "
        f"two, T(n) = T1 x (s + (1 - s) / n): serial fraction s = {serial:.2f}; predicted "
        + ", ".join(f"{n} jobs {t:.1f} s ({one / t:.1f}x)" for n, t in predicted.items())
        + " (if the server's and the store's cores grow with the jobs).",
    ]
    lines.append(
        f"The split backup of `big` is {runs['split2'].median('objects'):.0f} objects: the schema archives, the "
        "sequences, the bundles of small tables, one per other table and one per range of pages of the big table."
    )
    quarter, full = bench.stored_bytes.get(split_data.QUARTER, 0), bench.stored_bytes.get(split_data.BIG, 0)
    lines.append(
        f"One-table restore: {runs['tquarter'].median('seconds'):.1f} s from a backup of {quarter / 1e6:.0f} MB, "
        f"{runs['tfull'].median('seconds'):.1f} s from one of {full / 1e6:.0f} MB."
    )
    return lines


def summary(
    args: argparse.Namespace, bench: SplitBench, runs: dict[str, Runs[Case]], rounds: int
) -> tuple[str, str, list[str]]:
    """The data set's line, the machine's line and the tables, from the first ``rounds`` rounds."""
    raw = bench.raw_bytes.get(split_data.BIG, 0)
    shape = (
        f"data set (scale {args.scale:g}): {split_data.SHAPE}; plain dump of `big` {raw / 1e9:.2f} GB; "
        f"{pg_dump_version(bench.cluster.bindir)}, moto S3 on loopback"
    )
    machine = f"machine: {CORES} cores (sched_getaffinity), Python {platform.python_version()}, {rounds} round(s)"
    return shape, machine, report(runs, bench)


def run_split(args: argparse.Namespace) -> dict[str, Any]:
    bindir = debian_bindir(15)
    cluster = split_data.CachedCluster(bindir, args.scale)
    started = time.monotonic()
    with cluster, S3Server() as s3, tempfile.TemporaryDirectory() as workdir:
        build_seconds = time.monotonic() - started
        print(
            f"data set {'built' if cluster.built_now else 'reused'} in {build_seconds:.0f} s: {cluster.base}",
            flush=True,
        )
        bench = SplitBench(cluster, s3, workdir)
        bench.drop()  # what an interrupted run left
        bench.backup("quarter", split_data.QUARTER, JOBS)
        bench.stored_bytes[split_data.QUARTER] = bench.stored("quarter")
        runs = {c.name: Runs(c) for c in CASES}
        for round_number in range(1, args.rounds + 1):
            for case in CASES:
                figures = bench.run(case, round_number)
                runs[case.name].measured.append(figures)
                if case.name == "split2" and round_number == KEPT:
                    bench.stored_bytes[split_data.BIG] = int(figures["stored_bytes"])
                print(
                    f"round {round_number}: {case.name}: {figures['seconds']:.1f} s, client CPU "
                    f"{figures['cpu_client']:.1f} s, PostgreSQL CPU {figures['cpu_postgres']:.1f} s, "
                    f"S3 CPU {figures['cpu_s3']:.1f} s, {figures['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
            shape, machine, lines = summary(args, bench, runs, round_number)
            if args.markdown:  # after every round: a run stopped early still leaves its figures so far
                Path(args.markdown).write_text("\n".join([shape, "", machine, "", *lines]) + "\n")
    print("\n" + shape + "\n" + machine + "\n")
    print("\n".join(lines))
    return {
        "shape": shape,
        "machine": machine,
        "cores": CORES,
        "build_seconds": build_seconds,
        "raw_bytes": bench.raw_bytes,
        "stored_bytes": bench.stored_bytes,
        "cases": {n: {"title": r.case.title, "runs": r.measured} for n, r in runs.items()},
        "table": lines,
    }
