"""Compression: every format and level reads back with the reference tools, threads are what
was asked for, and the CPU count follows the cgroup quota a Kubernetes CPU limit sets.

The input is a real pg_dump of a real database; the reference readers are the system's
``gzip`` and ``zstd`` (Debian's), and the output must equal pg_dump's bytes exactly.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_compression.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_job.core.errors import RestoreError
from backup_job.core.settings import Compression
from backup_job.pipeline import compress
from backup_job.pipeline.compress import open_compressor
from backup_job.pipeline.decompress import open_decompressor
from devenv.postgres import Cluster


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed; scripts/test installs it (scripts/lib/install-bench-tools.sh)"
    return found


@pytest.fixture(scope="module")
def dump(pg18: Cluster, bindir18: Path) -> bytes:
    """About 6 MB of plain dump: several 1 MiB gzip blocks, rows of varied compressibility."""
    pg18.sql("CREATE DATABASE compress_src")
    pg18.sql(
        "CREATE TABLE orders AS SELECT g AS id, timestamptz '2026-01-01' + g * interval '1 minute' AS at,"
        " md5(g::text) AS note, repeat('x', g % 50) AS pad FROM generate_series(1, 80000) g",
        "compress_src",
    )
    env = {**os.environ, **pg18.env("compress_src")}
    out = subprocess.run([str(bindir18 / "pg_dump")], env=env, check=True, capture_output=True).stdout
    assert len(out) > 5 * compress.BLOCK
    return out


def pieces(data: bytes, size: int = 65536 + 17) -> Iterator[bytes]:
    """Uneven chunks, as a pipe hands them over."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def compressed(data: bytes, choice: Compression, threads: int) -> bytes:
    compressor = open_compressor(choice, lambda: threads, threads)
    try:
        return b"".join(compressor.compress(chunk) for chunk in pieces(data)) + compressor.finish()
    finally:
        compressor.close()


def reference_read(program: str, data: bytes) -> bytes:
    subprocess.run([tool(program), "-t"], input=data, check=True, capture_output=True)
    return subprocess.run([tool(program), "-dc"], input=data, check=True, capture_output=True).stdout


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("level", range(1, 10))
def test_every_gzip_level_is_one_standard_stream_of_pg_dumps_bytes(dump: bytes, level: int, threads: int) -> None:
    out = compressed(dump, Compression("gzip", level), threads)
    assert out[:2] == b"\x1f\x8b"
    assert reference_read("gzip", out) == dump


@pytest.mark.parametrize(("level", "threads"), [(1, 1), (3, 2), (19, 2)])
def test_zstd_levels_read_back_with_the_zstd_tool(dump: bytes, level: int, threads: int) -> None:
    out = compressed(dump, Compression("zstd", level), threads)
    assert reference_read("zstd", out) == dump


@pytest.mark.parametrize("choice", [Compression("gzip", 6), Compression("zstd", 3)], ids=["gzip", "zstd"])
def test_our_reader_reads_what_our_writer_wrote_and_refuses_a_cut(dump: bytes, choice: Compression) -> None:
    out = compressed(dump, choice, 2)
    reader = open_decompressor(choice.format)
    assert b"".join(b"".join(reader.feed(chunk)) for chunk in pieces(out, 1 << 20)) == dump
    reader.end("whole")
    cut = open_decompressor(choice.format)
    for chunk in pieces(out[: len(out) // 2], 1 << 20):
        list(cut.feed(chunk))
    with pytest.raises(RestoreError, match="is not one complete"):
        cut.end("db/20260101T000000Z")


def test_the_gzip_tool_output_of_older_versions_still_reads(dump: bytes) -> None:
    """Backups written before ISA-L (zlib, one block) and by hand (gzip -9) restore too."""
    by_hand = subprocess.run([tool("gzip"), "-9c"], input=dump, check=True, capture_output=True).stdout
    reader = open_decompressor("gzip")
    assert b"".join(reader.feed(by_hand)) == dump
    reader.end("by hand")


def test_gzip_runs_as_many_blocks_at_once_as_threads_asked(dump: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three threads: the first three blocks meet inside the compressor at the same time. Two
    threads: they cannot, and the barrier breaks."""
    real = compress._deflate

    def together(barrier: threading.Barrier) -> None:
        def deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> tuple[bytes, int]:
            if not last:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            return real(block, dictionary, level, last)

        monkeypatch.setattr(compress, "_deflate", deflate)

    three = threading.Barrier(3, timeout=30)
    together(three)
    assert reference_read("gzip", compressed(dump, Compression("gzip", 6), 3)) == dump
    assert not three.broken

    two = threading.Barrier(3, timeout=1)
    together(two)
    assert reference_read("gzip", compressed(dump, Compression("gzip", 6), 2)) == dump
    assert two.broken, "three blocks ran at once on two threads"

    # The pool is sized for the most this stream may get; while the run's other streams
    # share the CPUs it is given one thread, and one block runs at a time.
    shared = threading.Barrier(2, timeout=1)
    together(shared)
    compressor = open_compressor(Compression("gzip", 6), lambda: 1, 3)
    try:
        out = b"".join(compressor.compress(chunk) for chunk in pieces(dump)) + compressor.finish()
    finally:
        compressor.close()
    assert reference_read("gzip", out) == dump
    assert shared.broken, "two blocks ran at once on a stream given one thread"


def test_the_engine_reports_the_library_its_level_and_threads(dump: bytes) -> None:
    gzip = open_compressor(Compression("gzip", 9), lambda: 3, 3)
    gzip.compress(dump)
    gzip.finish()
    gzip.close()
    assert gzip.engine().as_dict() == {"library": "isal", "level": 3, "threads": 3}
    zstd = open_compressor(Compression("zstd", 7), lambda: 2, 2)
    zstd.finish()
    zstd.close()
    assert zstd.engine().as_dict() == {"library": "zstd", "level": 7, "threads": 2}
