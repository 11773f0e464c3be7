"""The byte path of one backup: pg_dump stdout -> compressor -> fixed-size parts -> storage.

Read this module to follow a byte::

    PgDump.chunks()          1 MiB chunks gathered from pg_dump's stdout (``pg.dump``)
      (-> Sidecar            the COPY row counter sees each chunk on its own thread)
      -> Compressor          gzip in 1 MiB blocks on a thread pool, or zstd (``compress``)
      (-> Sealer             age encryption to the recipients, when configured (``seal``))
      -> PartBuffer          cut into parts of exactly part_size(n) bytes; sha256 over all,
                             and over each BLOCK_BYTES block (restore checks each before use)
      -> Upload.send_part    at most `concurrency` parts in flight (blocks when full)
    then, and only if every stage succeeded:
      PgDump.finish()        exit status 0 and output produced, else DumpError
      Compressor.finish()    the end of the stream (gzip trailer, zstd epilogue)
      Upload.complete()      the object appears under its final key

Any exception on the way kills pg_dump and aborts the upload, so nothing is left under the
final key. What a finished stream becomes (its manifest, the run around it) is
``pipeline.backup``.

The thread reading pg_dump does little per byte: it hands each chunk to the sidecar (by
reference) and to the compressor (a copy into the current block), and takes back compressed
pieces to hash and join into parts. Compression, row counting, part checksums (Content-MD5)
and uploads each run on other threads, with the GIL released for the heavy work.

Memory is bounded by the parts in flight plus the one being filled:
``(concurrency + 1) * part_size(n)``, plus the compressor's blocks in flight and the
sidecar's queue (about 61 MiB with the defaults for any stream below 8 GiB compressed).
Part sizes come from the destination's ``PartLimits``: they start at the configured size
and double every 1,000 parts, so an unknown-length stream never reaches S3's 10,000-part
limit before its 5 TiB object limit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..pg.dump import PgDump
from ..storage.base import PartLimits, Upload
from .compress import Compressor
from .progress import ProgressReporter
from .seal import Sealer
from .sidecar import Sidecar

# The stored object is hashed in blocks of this size as well as whole: restore and verify
# hold one block, check it against the manifest and only then pass it on. 16 MiB keeps the
# digests of a 1 TiB object at 2 MiB (65,536 blocks) and what a restore holds at one block.
BLOCK_BYTES = 16 * 1024 * 1024


@dataclass
class StreamStats:
    """What one streamed backup measured."""

    raw_bytes: int = 0
    compressed_bytes: int = 0
    parts: int = 0
    sha256: str = ""
    block_bytes: int = BLOCK_BYTES
    blocks: list[bytes] | None = None  # the sha256 of each block of the stored object
    seconds: float = 0.0
    waiting_on: str = "the database"  # what the byte path is blocked on when it does not move
    engine: dict[str, Any] | None = None  # what compressed it (library, its level, threads)


class PartBuffer:
    """Collects compressed bytes and sends them on in parts of the planned size.

    The pieces are kept as they came and joined once per part: one copy per byte, and no
    growing buffer to reallocate (which, with parts of megabytes, fragments the heap)."""

    def __init__(self, upload: Upload, base_part_size: int, limits: PartLimits) -> None:
        self.upload = upload
        self.base = base_part_size
        self.limits = limits
        self.pieces: list[bytes] = []
        self.pending = 0  # bytes in pieces
        self.hasher = hashlib.sha256()
        self.blocks = BlockHasher(BLOCK_BYTES)
        self.sent_parts = 0
        self.total = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.hasher.update(data)
        self.blocks.update(data)
        self.total += len(data)
        self.pieces.append(data)
        self.pending += len(data)
        while self.pending >= (size := self.limits.part_size(self.sent_parts + 1, self.base)):
            self._send(size)

    def _send(self, size: int) -> None:
        over = self.pending - size  # bytes of the last piece that belong to the next part
        last = self.pieces[-1]
        if over:
            self.pieces[-1] = last[: len(last) - over]
        part = b"".join(self.pieces)
        self.pieces = [last[len(last) - over :]] if over else []
        self.pending = over
        self.sent_parts += 1
        self.upload.send_part(self.sent_parts, part)

    def flush(self) -> None:
        """Send the last, possibly short, part (S3 allows that for the final part only)."""
        if self.pending or self.sent_parts == 0:
            self._send(self.pending)


class BlockHasher:
    """The sha256 of each ``size``-byte block of a stream (the last one may be short; an empty
    stream has one empty block)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.digests: list[bytes] = []
        self._current = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(self.size - self._filled, len(view))
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.size:
                self.digests.append(self._current.digest())
                self._current, self._filled = hashlib.sha256(), 0

    def finish(self) -> list[bytes]:
        if self._filled or not self.digests:
            self.digests.append(self._current.digest())
            self._current, self._filled = hashlib.sha256(), 0
        return self.digests


Progress = Callable[[StreamStats], None]


def stream_backup(
    dump: PgDump,
    compressor: Compressor,
    upload: Upload,
    *,
    base_part_size: int,
    limits: PartLimits,
    progress: Progress | None = None,
    progress_interval: float = 30.0,
    observe: Callable[[bytes], None] | None = None,
    seal_to: tuple[str, ...] = (),
) -> StreamStats:
    """Run one backup's bytes end to end; raise on any failure, leaving nothing behind.

    ``observe`` sees every raw chunk on a ``Sidecar`` thread, off the byte path. With
    ``seal_to``, the compressed stream is sealed with age before it is cut into parts, and
    every size and the sha256 describe the sealed object, as stored."""
    stats = StreamStats()
    parts = PartBuffer(upload, base_part_size, limits)
    sealer = Sealer(seal_to, parts.write) if seal_to else None
    out = sealer.write if sealer is not None else parts.write
    sidecar = Sidecar(observe, "observe") if observe is not None else None

    def report(seconds: float) -> None:
        stats.seconds = seconds
        assert progress is not None
        progress(stats)

    started = time.monotonic()
    try:
        with ProgressReporter(report if progress else None, progress_interval):
            for chunk in dump.chunks():
                stats.raw_bytes += len(chunk)
                if sidecar is not None:
                    sidecar.feed(chunk)
                stats.waiting_on = "storage"
                out(compressor.compress(chunk))
                stats.waiting_on = "the database"
                stats.compressed_bytes = parts.total
            dump.finish(stats.raw_bytes)
            stats.waiting_on = "storage"
            out(compressor.finish())
            if sealer is not None:
                sealer.finish()
            if sidecar is not None:
                sidecar.finish()
            parts.flush()
            upload.complete()
    except BaseException:
        dump.kill()
        dump.close()
        upload.abort()
        raise
    finally:
        if sidecar is not None:
            sidecar.close()
        if sealer is not None:
            sealer.close()
        compressor.close()
    stats.compressed_bytes = parts.total
    stats.parts = parts.sent_parts
    stats.sha256 = parts.hasher.hexdigest()
    stats.blocks = parts.blocks.finish()
    stats.seconds = time.monotonic() - started
    stats.engine = compressor.engine().as_dict()
    return stats
