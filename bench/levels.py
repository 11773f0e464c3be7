"""What each compression level means: speed and size of pgbackup's compressors alone.

Builds a smaller copy of ``bench.compare``'s data set (pgbench plus the wide text table; by
default about 300 MB of plain dump), dumps it into memory once, then compresses it with
pgbackup's own compressor (``pipeline.compress.open_compressor``) at every gzip level and a
range of zstd levels, on one thread and on all usable CPUs. For each: the library and level
that ran, raw MB/s, and the output as a share of the dump and of ``gzip -6``'s output.
Compression alone: no pg_dump competing for the CPUs, no upload.

Usage: .venv/bin/python -m bench.levels [--scale 20] [--text-rows 100000] [--zstd 1,3,6,9,12]
Not part of the test suite; the level table of docs/performance.md comes from it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from backup_job.core import cpus
from backup_job.core.settings import Compression
from backup_job.pipeline.compress import open_compressor
from bench import dataset
from devenv.postgres import Cluster, debian_bindir

CHUNK = 1024 * 1024


def run(data: bytes, choice: Compression, threads: int) -> tuple[float, int, str]:
    started = time.monotonic()
    compressor = open_compressor(choice, lambda: threads, threads)
    try:
        size = sum(len(compressor.compress(data[i : i + CHUNK])) for i in range(0, len(data), CHUNK))
        size += len(compressor.finish())
    finally:
        compressor.close()
    engine = compressor.engine()
    return time.monotonic() - started, size, f"{engine.library} {engine.level}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.levels")
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--text-rows", type=int, default=100_000)
    parser.add_argument("--zstd", default="1,3,6,9,12")  # 19 runs at a few MB/s
    args = parser.parse_args()
    bindir = debian_bindir(15)
    with Cluster(bindir) as cluster:
        dataset.build_big(cluster, args.scale, args.text_rows)
        data = subprocess.run(
            [str(bindir / "pg_dump"), dataset.BIG_DATABASE],
            env={**os.environ, **cluster.env()},
            check=True,
            capture_output=True,
        ).stdout
    reference = len(subprocess.run(["gzip", "-6c"], input=data, check=True, capture_output=True).stdout)
    usable = cpus.usable()
    print(f"plain dump {len(data) / 1e6:.0f} MB; gzip -6 output {reference / 1e6:.1f} MB; {usable} usable CPUs\n")
    print(f"| format | level | runs as | MB/s, 1 thread | MB/s, {usable} threads | output, % of dump | vs gzip -6 |")
    print("|---|---:|---|---:|---:|---:|---:|")
    levels = [("gzip", level) for level in range(1, 10)] + [("zstd", int(z)) for z in args.zstd.split(",")]
    for fmt, level in levels:
        one, size, engine = run(data, Compression(fmt, level), 1)
        many, _, _ = run(data, Compression(fmt, level), usable)
        print(
            f"| {fmt} | {level} | {engine} | {len(data) / 1e6 / one:.0f} | {len(data) / 1e6 / many:.0f} | "
            f"{100 * size / len(data):.1f}% | {size / reference:.3f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
