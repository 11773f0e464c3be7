"""Benchmark: throughput and peak memory of one large backup, to S3 (moto) and to file://.

Builds a database whose plain dump is about ``--gigabytes`` GB on a throwaway PostgreSQL 18,
runs the real ``pgbackup run`` against it, and reports, for each destination:

- wall time and throughput over raw dump bytes (what pg_dump produced);
- the peak resident memory of the pgbackup process (``ru_maxrss``), which the pipeline
  bounds at ``(upload concurrency + 1) * part size`` plus the interpreter;
- the compression ratio.

Usage: .venv/bin/python -m bench.bench_backup [--gigabytes 1.0] [--level 6]
Not part of the test suite (it takes minutes); numbers go into the issue notes and docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from backup_job.core import settings as S
from devenv.postgres import Cluster, embedded_bindir
from devenv.s3 import S3Server

ROW_BYTES = 107  # one row of the bench table in the plain dump, measured
RUNNER = (
    "import resource, sys\n"
    "from backup_job.cli import main\n"
    "code = main(['run'])\n"
    "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def build_database(cluster: Cluster, gigabytes: float) -> None:
    rows = int(gigabytes * 1e9 / ROW_BYTES)
    cluster.sql("CREATE DATABASE bench")
    cluster.sql(
        # order-like rows: ids, a timestamp, money, a status word and a note with a hash in it
        "CREATE TABLE big AS SELECT g AS id, 1 + g % 50000 AS customer_id,"
        " timestamptz '2026-01-01' + g * interval '1 second' AS placed, (g % 99991) / 100.0 AS amount,"
        " (ARRAY['new','paid','shipped','returned'])[1 + g % 4] AS status, 'order note ' || md5(g::text) AS note"
        f" FROM generate_series(1, {rows}) g",
        "bench",
    )


def run_once(env: dict[str, str]) -> dict[str, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", RUNNER], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"backup failed:\n{result.stdout}\n{result.stderr}")
    maxrss = next(int(ln.split()[1]) for ln in result.stderr.splitlines() if ln.startswith("MAXRSS_KIB"))
    finished = next(json.loads(ln) for ln in result.stdout.splitlines() if '"backup.finished"' in ln)
    return {
        "seconds": round(seconds, 1),
        "raw_mb": round(finished["raw_bytes"] / 1e6, 1),
        "compressed_mb": round(finished["compressed_bytes"] / 1e6, 1),
        "raw_mb_per_s": round(finished["raw_bytes"] / 1e6 / finished["seconds"], 1),
        "peak_rss_mib": round(maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--level", default="6")
    args = parser.parse_args()
    bindir = embedded_bindir()
    with Cluster(bindir) as cluster, S3Server() as s3, tempfile.TemporaryDirectory() as out:
        build_database(cluster, args.gigabytes)
        s3.client().create_bucket(Bucket="bench")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
        base.update(cluster.env())
        base.update(
            {
                S.PG_BINDIR.name: str(bindir),
                S.DATABASES.name: "bench",
                S.COMPRESSION_LEVEL.name: args.level,
                S.GLOBALS.name: "false",
                S.LOG_FORMAT.name: "json",
            }
        )
        report = {
            "s3": run_once({**base, **s3.env(), S.DESTINATION.name: "s3://bench/run"}),
            "file": run_once({**base, S.DESTINATION.name: f"file://{out}"}),
        }
    print(json.dumps({"gigabytes": args.gigabytes, "level": args.level, "cores": os.cpu_count(), **report}, indent=2))


if __name__ == "__main__":
    main()
