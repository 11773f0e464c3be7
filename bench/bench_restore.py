"""Benchmark: restore and verify of one large backup from S3 (moto), time and peak memory.

Builds the same order-like database as ``bench_backup`` (about ``--gigabytes`` GB of plain
dump), backs it up to moto's S3 server with the real ``pgbackup run``, then measures:

- ``pgbackup restore --create`` into a new database: wall time, raw throughput, and the peak
  resident memory of the pgbackup process (it streams: no object is held in memory or disk);
- ``pgbackup verify``: the whole drill (scratch database, load, row counts, drop).

- decompression alone, in this process, over the stored object held in memory: pgbackup's
  reader for the format (``pipeline.decompress``: ISA-L inflate or zstd) against Python's zlib.

The backup is signed (``--unsigned`` leaves the keys out, as a pgbackup before signatures ran),
and every block is checked before use, so the figures include what verification costs. The
drill runs on the same server (``BACKUP_VERIFY_ON_BACKUP_SERVER``): this measures speed only.

Usage: .venv/bin/python -m bench.bench_restore [--gigabytes 0.5] [--compression gzip|zstd] [--unsigned]
Not part of the test suite; numbers go into the issue notes and docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from backup_job.core import settings as S
from backup_job.pipeline.decompress import open_decompressor
from bench.bench_backup import build_database
from devenv.postgres import Cluster, embedded_bindir
from devenv.s3 import S3Server

RUNNER = (
    "import resource, sys\n"
    "from backup_job.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def measure(env: dict[str, str], *args: str) -> dict[str, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"pgbackup {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    maxrss = next(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("MAXRSS_KIB"))
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(maxrss / 1024, 1)}


def decompress_alone(stored: bytes, compression: str) -> dict[str, float]:
    """Raw MB/s of pgbackup's reader for ``compression``, and of zlib for gzip, on one core."""

    def rate(read: Callable[[bytes], int]) -> float:
        started = time.monotonic()
        raw = read(stored)
        return round(raw / 1e6 / (time.monotonic() - started), 1)

    def ours(data: bytes) -> int:
        reader = open_decompressor(compression)
        raw = sum(
            len(piece)
            for start in range(0, len(data), 1 << 20)
            for piece in reader.feed(data[start : start + (1 << 20)])
        )
        reader.end("bench")
        return raw

    figures = {"pgbackup_raw_mb_per_s": rate(ours)}
    if compression == "gzip":
        figures["zlib_raw_mb_per_s"] = rate(lambda data: len(zlib.decompress(data, wbits=31)))
    return figures


def signed(directory: Path) -> dict[str, str]:
    """The settings of a signed deployment whose drill may run on the backed-up server."""
    from backup_job.core.signing import generate

    pem, public = generate()
    (directory / "signing.pem").write_bytes(pem)
    return {
        S.SIGNING_KEY_FILE.name: str(directory / "signing.pem"),
        S.SIGNING_PUBLIC_KEYS.name: str(public),
        S.VERIFY_ON_BACKUP_SERVER.name: "true",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=0.5)
    parser.add_argument("--compression", choices=["gzip", "zstd"], default="gzip")
    parser.add_argument("--unsigned", action="store_true", help="no signing keys (as before signatures)")
    args = parser.parse_args()
    bindir = embedded_bindir()
    with Cluster(bindir) as cluster, S3Server() as s3, tempfile.TemporaryDirectory() as keys:
        build_database(cluster, args.gigabytes)
        s3.client().create_bucket(Bucket="bench")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
        env.update(cluster.env(), **s3.env())
        env.update(
            {
                S.PG_BINDIR.name: str(bindir),
                S.DATABASES.name: "bench",
                S.DESTINATION.name: "s3://bench/run",
                S.GLOBALS.name: "false",
                S.LOG_FORMAT.name: "json",
                S.COMPRESSION.name: args.compression,
            }
        )
        if not args.unsigned:
            env.update(signed(Path(keys)))
        backup = measure(env, "run")
        facts = json.loads(
            subprocess.run(
                [sys.executable, "-m", "backup_job", "list", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )[0]
        restore = measure(env, "restore", "--database", "bench", "--target", "bench_copy", "--create")
        verify = measure(env, "verify")
        stored = s3.client().get_object(Bucket="bench", Key=facts["key"])["Body"].read()
        decompress = decompress_alone(stored, args.compression)
    raw_mb = facts["raw_bytes"] / 1e6
    restore["raw_mb_per_s"] = round(raw_mb / restore["seconds"], 1)
    print(
        json.dumps(
            {
                "gigabytes": args.gigabytes,
                "cores": os.cpu_count(),
                "raw_mb": round(raw_mb, 1),
                "compressed_mb": round(facts["compressed_bytes"] / 1e6, 1),
                "rows": facts["rows"],
                "compression": args.compression,
                "backup": backup,
                "restore": restore,
                "verify": verify,
                "decompress_alone": decompress,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
