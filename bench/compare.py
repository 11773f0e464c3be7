"""Benchmark: pgbackup against the shell one-liners people would otherwise run.

Builds a data set on a throwaway Debian PostgreSQL 15 (``bench.dataset``: ``pgbench -i`` plus a
table of hex text, about 900 MB of plain dump at the defaults, and 200 small databases), starts
moto's S3 server on loopback, then runs the cases round robin (round 1 runs every case once,
then round 2, ...), each to a fresh prefix:

- ``dump``: ``pg_dump bench > /dev/null`` (the floor);
- ``gzip`` / ``pigz``: ``pg_dump bench | gzip -6 | python -c <boto3 upload_fileobj>`` (pigz
  with one thread per usable core);
- ``default`` / ``zstd`` / ``level1`` / ``sealed``: ``pgbackup run`` of ``bench``: defaults, zstd,
  level 1, and the defaults sealed with age to one recipient;
- ``smallloop``: a bash loop over the small databases, ``pg_dump | gzip -6 | upload`` each;
- ``small``: ``pgbackup run`` of ``small_*``.

Every run reports wall time, CPU time and the peak RSS of its whole process tree
(``bench.common.measure``) and its output bytes (the objects under its prefix, manifests
left out). The table gives medians and ratios, then the targets are checked (PASS/FAIL).
``--memory-scaling`` instead backs up one table at about 1 GB and then 4 GB of dump and
compares the peak RSS of the two runs.

``--split`` instead compares split backups with plain ones and with ``pg_dump -Fd -j 2``, dump
and restore, on a database shaped like a real big one (``bench.split``; ``--scale`` is then the
size of that data set, 1 by default: about 2.5 GB of plain dump).

``--backends`` instead backs one smaller database up to each kind of object store (moto,
SeaweedFS, Azurite, fake-gcs-server) side by side (``bench.backends``).

Usage: .venv/bin/python -m bench.compare [--quick] [--rounds 3] [--cases default,gzip,...] [--json out.json]
       .venv/bin/python -m bench.compare --split [--scale 1] [--repeat 3] [--markdown out.md]
Not part of the test suite (the defaults take about 10 minutes on 2 cores; --quick about 30 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backup_job.core import settings as S
from bench import dataset
from bench.common import MIB, Measured, Runs, delete_prefix, measure, objects, pgbackup_env, tail
from devenv.postgres import Cluster, debian_bindir
from devenv.s3 import S3Server

COMPRESSION_NAME = S.COMPRESSION.name
ROOT = Path(__file__).resolve().parent.parent
INSTALL_TOOLS = ROOT / "scripts" / "lib" / "install-bench-tools.sh"
PGBACKUP = Path(sys.executable).parent / "pgbackup"
BUCKET = "bench"
UPLOAD = "import sys, boto3; boto3.client('s3').upload_fileobj(sys.stdin.buffer, sys.argv[1], sys.argv[2])"
CORES = len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Case:
    name: str  # as given to --cases
    title: str
    shell: str = ""  # a bash script ({prefix} filled in), or empty for pgbackup
    overrides: tuple[tuple[str, str], ...] = ()  # pgbackup only: extra variables
    small: bool = False  # the small-databases group (else database bench)
    not_gz: bool = False  # its dump objects must not be gzip (a check that the setting took)
    sealed: bool = False  # its dump objects must be sealed with age (likewise)


def one_liner(compressor: str, pg_dump: str, key: str, database: str = dataset.BIG_DATABASE) -> str:
    upload = f"{shlex.quote(sys.executable)} -c {shlex.quote(UPLOAD)} {BUCKET} {key}"
    return f"{pg_dump} {database} | {compressor} | {upload}"


def bench_recipient() -> str:
    """A throwaway age recipient: the benchmark never decrypts."""
    import pyrage

    return str(pyrage.x25519.Identity.generate().to_public())


def make_cases(pg_dump: str, small: list[str]) -> list[Case]:
    each = one_liner("gzip -6", pg_dump, "{prefix}/$db.sql.gz", database='"$db"')
    loop = f"for db in {' '.join(small)}; do {each}; done"
    return [
        Case("dump", "pg_dump > /dev/null", shell=f"{pg_dump} {dataset.BIG_DATABASE} > /dev/null"),
        Case(
            "gzip",
            "one-liner: pg_dump | gzip -6 | upload",
            shell=one_liner("gzip -6", pg_dump, "{prefix}/bench.sql.gz"),
        ),
        Case(
            "pigz",
            f"one-liner: pg_dump | pigz -6 -p {CORES} | upload",
            shell=one_liner(f"pigz -6 -p {CORES}", pg_dump, "{prefix}/bench.sql.gz"),
        ),
        Case("default", "pgbackup run (defaults)"),
        Case("zstd", "pgbackup run (zstd)", overrides=((COMPRESSION_NAME, "zstd"),), not_gz=True),
        Case("level1", "pgbackup run (level 1)", overrides=((S.COMPRESSION_LEVEL.name, "1"),)),
        Case(
            "sealed",
            "pgbackup run (defaults, sealed with age)",
            overrides=((S.ENCRYPT_RECIPIENTS.name, bench_recipient()),),
            sealed=True,
        ),
        Case("smallloop", f"{len(small)} small dbs: shell loop gzip -6", shell=loop, small=True),
        Case("small", f"{len(small)} small dbs: pgbackup run", small=True),
    ]


class Bench:
    """The running cluster and S3 server, and how to run one case against them."""

    def __init__(self, cluster: Cluster, s3: S3Server, workdir: str, tree: str | None = None) -> None:
        self.cluster, self.s3, self.workdir, self.tree = cluster, s3, workdir, tree
        self.client = s3.client()
        self.client.create_bucket(Bucket=BUCKET)

    def run(self, case: Case, prefix: str) -> dict[str, float]:
        databases = "small_*" if case.small else dataset.BIG_DATABASE
        env = pgbackup_env(self.cluster, self.s3, self.cluster.bindir, f"s3://{BUCKET}/{prefix}", databases)
        if case.shell:
            argv = ["bash", "-e", "-o", "pipefail", "-c", case.shell.format(prefix=prefix)]
        else:
            argv = self.pgbackup(env)
            env.update(case.overrides)
        result = measure(argv, env, cwd=self.workdir)  # no stray .env file is read from a temporary cwd
        if result.returncode != 0:
            raise SystemExit(
                f"{case.title} failed with exit code {result.returncode}:\n{tail(result.stdout)}\n{tail(result.stderr)}"
            )
        output = self.output_bytes(case, prefix, result)
        delete_prefix(self.client, BUCKET, prefix)
        return {
            "seconds": result.seconds,
            "cpu_seconds": result.cpu_seconds,
            "peak_rss_mib": result.peak_rss_bytes / MIB,
            "output_bytes": output,
        }

    def pgbackup(self, env: dict[str, str]) -> list[str]:
        """The real CLI: the venv's ``pgbackup``, or ``python -m backup_job`` from ``--pgbackup-tree``."""
        if not self.tree:
            return [str(PGBACKUP), "run"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.tree, env.get("PYTHONPATH")]))
        return [sys.executable, "-m", "backup_job", "run"]

    def output_bytes(self, case: Case, prefix: str, result: Measured) -> int:
        dumps = [
            item for item in objects(self.client, BUCKET, prefix + "/") if not item["Key"].endswith(".manifest.json")
        ]
        if case.sealed != any(item["Key"].endswith(".age") for item in dumps):
            raise SystemExit(f"{case.title}: the objects are {'not ' if case.sealed else ''}sealed with age")
        if case.not_gz and any(item["Key"].endswith(".gz") for item in dumps):
            raise SystemExit(
                f"{case.title}: pgbackup ignored {COMPRESSION_NAME}=zstd (it wrote .gz objects); "
                "leave the case out with --cases"
            )
        if not case.shell:
            logged = [json.loads(line) for line in result.stdout.splitlines() if '"backup.finished"' in line]
            if len(logged) != len(dumps):
                raise SystemExit(f"{case.title}: {len(logged)} backup.finished lines but {len(dumps)} objects")
        return sum(int(item["Size"]) for item in dumps)


def ratio(runs: dict[str, Runs[Case]], case: str, base: str) -> float | None:
    if case not in runs or base not in runs:
        return None
    return runs[case].median("seconds") / runs[base].median("seconds")


def baseline(case: Case) -> str:
    return "smallloop" if case.small else "gzip"


def table(runs: dict[str, Runs[Case]]) -> list[str]:
    lines = [
        "| case | median s | min-max s | CPU s (median) | peak RSS MiB (max) | output MB | vs gzip -6 | vs pigz |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, group in runs.items():
        base = baseline(group.case)
        vs_base = ratio(runs, name, base) if name != base else None
        vs_pigz = ratio(runs, name, "pigz") if not group.case.shell and not group.case.small else None
        lines.append(
            f"| {_cell(group.case.title)} | {group.median('seconds'):.1f} | {group.figure('seconds', min):.1f}-"
            f"{group.figure('seconds'):.1f} | {group.median('cpu_seconds'):.1f} | {group.figure('peak_rss_mib'):.0f} | "
            f"{group.median('output_bytes') / 1e6:.1f} | {_x(vs_base, group.case.small)} | {_x(vs_pigz)} |"
        )
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe inside a markdown table cell


def _x(value: float | None, small: bool = False) -> str:
    return "" if value is None else f"{value:.2f}x" + (" (vs loop)" if small else "")


def targets(runs: dict[str, Runs[Case]]) -> list[tuple[str, bool | None]]:
    """Each target with what was measured, and whether it was met (None: a case it needs did not run)."""

    def check(case: str, base: str, limit: float, key: str = "seconds") -> tuple[str, bool | None]:
        if case not in runs or base not in runs:
            return f"{case} or {base} not run", None
        value = runs[case].median(key) / runs[base].median(key)
        return f"{'output ' if key == 'output_bytes' else ''}{value:.2f}x {base}", value <= limit

    def line(target: str, *checks: tuple[str, bool | None]) -> tuple[str, bool | None]:
        passed = [ok for _text, ok in checks]
        measured = ", ".join(text for text, _ok in checks)
        return f"{target} (measured: {measured})", None if None in passed else all(passed)

    rss: tuple[str, bool | None] = ("default not run", None)
    if "default" in runs:
        peak = runs["default"].figure("peak_rss_mib")
        rss = (f"{peak:.0f} MiB", peak <= 160)
    sealed_rss: tuple[str, bool | None] = ("sealed or default not run", None)
    if "sealed" in runs and "default" in runs:
        extra = runs["sealed"].figure("peak_rss_mib") - runs["default"].figure("peak_rss_mib")
        sealed_rss = (f"{extra:+.0f} MiB peak RSS", extra <= 16)
    return [
        line(
            "default pgbackup <= 0.5x gzip one-liner, <= 0.7x pigz one-liner, output <= 1.03x gzip -6",
            check("default", "gzip", 0.5),
            check("default", "pigz", 0.7),
            check("default", "gzip", 1.03, "output_bytes"),
        ),
        line("zstd pgbackup <= 0.35x gzip one-liner", check("zstd", "gzip", 0.35)),
        line("small databases: pgbackup <= 0.15x shell loop", check("small", "smallloop", 0.15)),
        line("peak RSS of default pgbackup <= 160 MiB", rss),
        line(
            "sealing with age adds <= 10% time and <= 16 MiB peak RSS to the default run",
            check("sealed", "default", 1.10),
            sealed_rss,
        ),
    ]


def build(cluster: Cluster, args: argparse.Namespace) -> tuple[int, list[str]]:
    dataset.build_big(cluster, args.scale, args.text_rows)
    small = dataset.build_small(cluster, args.small_databases)
    return dataset.dump_bytes(cluster, dataset.BIG_DATABASE), small


def compare(args: argparse.Namespace) -> dict[str, Any]:
    bindir = debian_bindir(15)
    with Cluster(bindir) as cluster, S3Server() as s3, tempfile.TemporaryDirectory() as workdir:
        started = time.monotonic()
        dump_size, small = build(cluster, args)
        build_seconds = time.monotonic() - started
        print(f"data set built in {build_seconds:.0f} s", flush=True)
        cases = [c for c in make_cases(str(bindir / "pg_dump"), small) if c.name in args.cases]
        bench, runs = Bench(cluster, s3, workdir, args.pgbackup_tree), {c.name: Runs(c) for c in cases}
        for round_number in range(1, args.rounds + 1):
            for case in cases:
                figures = bench.run(case, f"{case.name}-{round_number}")
                runs[case.name].measured.append(figures)
                print(
                    f"round {round_number}: {case.name}: {figures['seconds']:.1f} s, {figures['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        machine = (
            f"machine: {CORES} cores (sched_getaffinity), Python {platform.python_version()}, "
            f"{dataset.pg_dump_version(bindir)}, plain dump of `bench` {dump_size / 1e6:.0f} MB, "
            f"{len(small)} small databases, {args.rounds} round(s)"
        )
    print("\n" + machine + "\n")
    print("\n".join(table(runs)) + "\n")
    checks = targets(runs)
    for text, passed in checks:
        print(f"{'SKIP' if passed is None else 'PASS' if passed else 'FAIL'}: {text}")
    return {
        "machine": machine,
        "cores": CORES,
        "dump_bytes": dump_size,
        "build_seconds": build_seconds,
        "args": vars(args),
        "cases": {n: {"case": asdict(r.case), "runs": r.measured} for n, r in runs.items()},
        "targets": dict(checks),
    }


def memory_scaling(args: argparse.Namespace) -> dict[str, Any]:
    bindir = debian_bindir(15)
    with Cluster(bindir) as cluster, S3Server() as s3, tempfile.TemporaryDirectory() as workdir:
        bench, results = Bench(cluster, s3, workdir, args.pgbackup_tree), []
        rows = dataset.build_scaling(cluster, 1.0)
        for size, factor in (("1 GB", 1), ("4 GB", 4)):
            if factor > 1:
                dataset.grow_scaling(cluster, rows, factor)
            env = pgbackup_env(cluster, s3, bindir, f"s3://{BUCKET}/scaling-{factor}", dataset.BIG_DATABASE)
            result = measure(bench.pgbackup(env), env, cwd=workdir)
            if result.returncode != 0:
                raise SystemExit(f"pgbackup run ({size}) failed:\n{tail(result.stdout)}\n{tail(result.stderr)}")
            finished = next(json.loads(ln) for ln in result.stdout.splitlines() if '"backup.finished"' in ln)
            results.append(
                {
                    "size": size,
                    "raw_bytes": finished["raw_bytes"],
                    "seconds": result.seconds,
                    "peak_rss_mib": result.peak_rss_bytes / MIB,
                }
            )
            delete_prefix(bench.client, BUCKET, f"scaling-{factor}")
            print(
                f"{size}: raw dump {finished['raw_bytes'] / 1e9:.2f} GB in {result.seconds:.1f} s, "
                f"peak RSS of the process tree {result.peak_rss_bytes / MIB:.0f} MiB",
                flush=True,
            )
    low, high = results[0]["peak_rss_mib"], results[1]["peak_rss_mib"]
    within = abs(high - low) <= 0.10 * low
    print(f"{'PASS' if within else 'FAIL'}: peak RSS at 4 GB is within +-10% of 1 GB ({high / low - 1:+.1%})")
    return {"cores": CORES, "runs": results, "within_10_percent": within}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [c.name for c in make_cases("pg_dump", [])]
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        type=float,
        help="pgbench scale of database bench (default 60); with --split, the size of its data set (default 1: "
        "about 2.5 GB of plain dump)",
    )
    parser.add_argument("--text-rows", type=int, default=300_000, help="rows of ~1 KB text in bench")
    parser.add_argument("--small-databases", type=int, default=200)
    parser.add_argument("--rounds", "--repeat", type=int, default=3, help="rounds; the medians are reported")
    parser.add_argument("--quick", action="store_true", help="scale 5, 30000 text rows, 20 small dbs, 1 round")
    parser.add_argument("--cases", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    parser.add_argument(
        "--split",
        action="store_true",
        help="split backups against plain ones and pg_dump -Fd -j 2, dump and restore, instead (bench.split)",
    )
    parser.add_argument("--markdown", metavar="PATH", help="with --split, also write the result tables here")
    parser.add_argument("--memory-scaling", action="store_true", help="peak RSS at 1 GB and 4 GB of dump instead")
    parser.add_argument(
        "--backends",
        action="store_true",
        help="the default run to moto, SeaweedFS, Azurite and fake-gcs-server instead (scale 10, 50000 text rows)",
    )
    parser.add_argument(
        "--pgbackup-tree",
        metavar="DIR",
        help="run pgbackup from this source tree (a directory "
        "holding backup_job/, e.g. from git archive) instead of the venv's pgbackup",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every raw figure here")
    args = parser.parse_args(argv)
    if args.split:
        args.scale = 0.05 if args.quick else 1.0 if args.scale is None else args.scale
        args.rounds = 1 if args.quick else args.rounds
        if not 0 < args.scale <= 8:
            parser.error("--scale with --split must be above 0 and at most 8")
        if args.rounds < 1:
            parser.error("--repeat must be at least 1")
        return args
    if args.scale is not None and args.scale != int(args.scale):
        parser.error("--scale is a whole pgbench scale (fractions apply with --split)")
    args.scale = 60 if args.scale is None else int(args.scale)
    if args.backends and "--scale" not in (argv if argv is not None else sys.argv):
        args.scale, args.text_rows = 10, 50_000  # the emulators hold every object in memory
    if args.quick:
        args.scale, args.text_rows, args.small_databases, args.rounds = 5, 30_000, 20, 1
    if args.pgbackup_tree:
        args.pgbackup_tree = str(Path(args.pgbackup_tree).resolve())
    args.cases = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = sorted(set(args.cases) - set(names))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {','.join(names)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    subprocess.run(["bash", str(INSTALL_TOOLS)], check=True)
    started = time.monotonic()
    if args.backends:
        from bench.backends import compare_backends

        report = compare_backends(args)
    elif args.split:
        from bench.split import run_split

        report = run_split(args)
    else:
        report = memory_scaling(args) if args.memory_scaling else compare(args)
    report["total_seconds"] = time.monotonic() - started
    print(f"\ntotal run time {report['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
