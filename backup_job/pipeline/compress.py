"""Compression: the middle stage of the pipeline, raw dump bytes in, compressed bytes out.

A ``Compressor`` is fed chunks and returns whatever compressed output is ready, in order;
``finish`` returns the rest, including the end of the stream (gzip's CRC and length trailer,
zstd's frame epilogue and checksum) without which ``gunzip -t`` / ``zstd -t`` fail, so a dump
that ends early can never pass as a finished object. ``close`` stops its threads; it is
always called, also when the stream is abandoned.

Both compressors run on threads that release the GIL, so the thread reading pg_dump keeps
reading while blocks are compressed:

- ``ParallelGzip`` (the default) is pigz's scheme on python-isal (Intel's ISA-L, about 3x
  zlib-ng's speed at the same size, measured): the stream is cut into 1 MiB blocks, each
  deflated on a worker with the previous block's last 32 KiB as its dictionary and ended
  with a sync flush, so the concatenation is one ordinary deflate stream; the CRC is
  combined in order. The result is one standard gzip member that ``gunzip``, ``gzip -t``
  and every older pgbackup read. ISA-L has levels 0-3; ``GZIP_LEVELS`` maps the user's gzip
  level 1-9 onto them (docs/performance.md has the measured speed and size).
  At most ``threads`` blocks are in flight (the pool may be larger, for when the run's other
  streams end), so that many run at once and memory is bounded; the reader fills the next
  block meanwhile.
- ``ZstdStream`` is python-zstandard's streaming compressor with zstd's own worker threads,
  writing one frame with a content checksum (``.sql.zst``, ``zstd -dc`` reads it). Its jobs
  are ``ZSTD_JOB`` (4 MiB) or the level's window if larger, not zstd's default of four
  windows: at level 3 that takes its buffers from about 65 to 35 MiB with two threads, at
  the same speed and size (measured on a 300 MB dump).

The thread count is fixed for a zstd stream when it starts; a gzip stream asks ``threads``
again for each block, so a large database that outlives the small ones beside it gets their
CPUs back (``pipeline.cpushare``).

The libraries are imported when a stream starts, not at import time: a run that never
compresses zstd never loads zstandard.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..core import signals
from ..core.settings import Compression

BLOCK = 1024 * 1024  # bytes of raw input per gzip block
WINDOW = 32 * 1024  # deflate's window: the dictionary a block inherits from the one before
GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255])  # deflate, no name, no mtime, OS unknown
# The user's gzip level (1-9) -> ISA-L's level (0-3).
GZIP_LEVELS = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3}
ZSTD_JOB = 4 * 1024 * 1024  # bytes of input per zstd worker job (at least the level's window)
CONTENT_TYPES = {"gzip": "application/gzip", "zstd": "application/zstd"}

Threads = Callable[[], int]


@dataclass(frozen=True)
class Engine:
    """What actually ran, for the manifest: the library, its own level, and its threads."""

    library: str
    level: int
    threads: int

    def as_dict(self) -> dict[str, Any]:
        return {"library": self.library, "level": self.level, "threads": self.threads}


class Compressor(Protocol):
    """Turns a stream of chunks into one compressed stream."""

    format: str

    def compress(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def close(self) -> None: ...

    def engine(self) -> Engine: ...


def _deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> tuple[bytes, int]:
    """One block as raw deflate (a worker's job), and its CRC-32."""
    from isal import isal_zlib

    if dictionary:
        deflater = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, zdict=dictionary)
    else:
        deflater = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    body = deflater.compress(block) + deflater.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)
    return body, isal_zlib.crc32(block)


class ParallelGzip:
    """gzip in independent-but-chained blocks on a thread pool, output in order."""

    format = "gzip"

    def __init__(self, level: int, threads: Threads, max_threads: int) -> None:
        from isal import isal_zlib

        self._crc32_combine = isal_zlib.crc32_combine
        self.level = GZIP_LEVELS[level]
        self._threads = threads
        self._most = 1
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_threads), thread_name_prefix="gzip")
        self._pending = bytearray()
        self._dictionary = b""
        self._inflight: deque[tuple[Future[tuple[bytes, int]], int]] = deque()
        self._crc = 0
        self._size = 0
        self._started = False

    def _submit(self, block: bytes, last: bool) -> None:
        with signals.held():  # pool threads start here and must never take a stop request
            future = self._pool.submit(_deflate, block, self._dictionary, self.level, last)
        self._inflight.append((future, len(block)))
        self._dictionary = block[-WINDOW:]
        self._size += len(block)

    def _collect(self, wait_beyond: int) -> bytes:
        """Completed blocks in order; waits while more than ``wait_beyond`` are in flight
        (``len(self._inflight)``: no wait, only what is done)."""
        out = []
        while self._inflight and (len(self._inflight) > wait_beyond or self._inflight[0][0].done()):
            future, length = self._inflight.popleft()
            body, crc = future.result()
            self._crc = self._crc32_combine(self._crc, crc, length)
            out.append(body)
        return b"".join(out)

    def compress(self, data: bytes) -> bytes:
        head = b""
        if not self._started:
            self._started, head = True, GZIP_HEADER
        self._pending += data
        while len(self._pending) >= BLOCK:
            threads = max(1, self._threads())
            self._most = max(self._most, threads)
            head += self._collect(threads - 1)  # a free thread for this block: never more at once
            block = bytes(self._pending[:BLOCK])
            del self._pending[:BLOCK]
            self._submit(block, last=False)
        return head + self._collect(len(self._inflight))  # whatever is done already, in order

    def finish(self) -> bytes:
        head = b"" if self._started else GZIP_HEADER
        self._started = True
        self._submit(bytes(self._pending), last=True)
        self._pending.clear()
        body = self._collect(0)
        return head + body + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def engine(self) -> Engine:
        return Engine("isal", self.level, self._most)


class ZstdStream:
    """One zstd frame with a content checksum, compressed on zstd's own worker threads."""

    format = "zstd"

    def __init__(self, level: int, threads: int) -> None:
        import zstandard

        self.level = level
        self.threads = max(1, threads)
        with signals.held():  # zstd starts its workers on the first call; they inherit the mask
            window = zstandard.ZstdCompressionParameters.from_level(level).window_log
            params = zstandard.ZstdCompressionParameters.from_level(
                level, threads=self.threads, write_checksum=1, job_size=max(ZSTD_JOB, 1 << window)
            )
            self._zstd = zstandard.ZstdCompressor(compression_params=params)
            self._stream = self._zstd.compressobj()

    def compress(self, data: bytes) -> bytes:
        with signals.held():
            return self._stream.compress(data)

    def finish(self) -> bytes:
        with signals.held():
            return self._stream.flush()

    def close(self) -> None:
        self._stream = None  # type: ignore[assignment]  # frees zstd's context and its threads
        self._zstd = None  # type: ignore[assignment]

    def engine(self) -> Engine:
        return Engine("zstd", self.level, self.threads)


def open_compressor(choice: Compression, threads: Threads, max_threads: int) -> Compressor:
    """The compressor for ``choice``; ``threads()`` is asked how many threads to use now."""
    if choice.format == "zstd":
        return ZstdStream(choice.level, threads())
    return ParallelGzip(choice.level, threads, max_threads)
