"""The byte path of one backup: pg_dump stdout -> gzip -> fixed-size parts -> storage.

Read this module to follow a byte::

    PgDump.chunks()          up to 1 MiB per read from pg_dump's stdout
      (-> observe            the COPY row counter reads the raw chunk on its way)
      -> Compressor          gzip at BACKUP_COMPRESSION_LEVEL
      -> PartBuffer          cut into parts of exactly part_size(n) bytes; sha256 over all
      -> Upload.send_part    at most `concurrency` parts in flight (blocks when full)
    then, and only if every stage succeeded:
      PgDump.finish()        exit status 0 and output produced, else DumpError
      Compressor.finish()    the gzip trailer
      Upload.complete()      the object appears under its final key

Any exception on the way kills pg_dump and aborts the upload, so nothing is left under the
final key (the manifest, written by the caller afterwards, is the last step of all).

Memory is bounded by the parts in flight plus the one being filled:
``(concurrency + 1) * part_size(n) + CHUNK_SIZE`` (about 41 MiB with the defaults for any
stream below 8 GiB compressed). Part sizes start at ``base`` and double every 1,000 parts,
so an unknown-length stream never reaches S3's 10,000-part limit before its 5 TiB object
limit: 1,000 parts of 8 MiB, then 1,000 of 16 MiB, and so on.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import signals
from .compress import Compressor
from .dump import PgDump
from .storage.base import Upload
from .storage.s3 import MAX_PART_SIZE

PARTS_PER_STEP = 1_000


def part_size(number: int, base: int) -> int:
    """The size of part ``number`` (1-based): ``base`` doubled every 1,000 parts."""
    return min(base << ((number - 1) // PARTS_PER_STEP), MAX_PART_SIZE)


@dataclass
class StreamStats:
    """What one streamed backup measured."""

    raw_bytes: int = 0
    compressed_bytes: int = 0
    parts: int = 0
    sha256: str = ""
    seconds: float = 0.0


class PartBuffer:
    """Collects compressed bytes and sends them on in parts of the planned size."""

    def __init__(self, upload: Upload, base_part_size: int) -> None:
        self.upload = upload
        self.base = base_part_size
        self.buffer = bytearray()
        self.hasher = hashlib.sha256()
        self.sent_parts = 0
        self.total = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.hasher.update(data)
        self.total += len(data)
        self.buffer += data
        while len(self.buffer) >= part_size(self.sent_parts + 1, self.base):
            self._send(part_size(self.sent_parts + 1, self.base))

    def _send(self, size: int) -> None:
        part = bytes(self.buffer[:size])
        del self.buffer[:size]
        self.sent_parts += 1
        self.upload.send_part(self.sent_parts, part)

    def flush(self) -> None:
        """Send the last, possibly short, part (S3 allows that for the final part only)."""
        if self.buffer or self.sent_parts == 0:
            self._send(len(self.buffer))


Progress = Callable[[StreamStats], None]


class ProgressReporter:
    """Calls ``report`` every ``interval`` seconds from a thread until stopped.

    Time-driven rather than data-driven, so a dump that stalls (waiting on a lock, a slow
    bucket) keeps saying where it stands.
    """

    def __init__(self, stats: StreamStats, report: Progress | None, interval: float) -> None:
        self.stats = stats
        self.report = report
        self.interval = interval
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.stats.seconds = time.monotonic() - self.started
            assert self.report is not None
            self.report(self.stats)

    def __enter__(self) -> "ProgressReporter":
        if self.report is not None and self.interval > 0:
            signals.start(self._thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def stream_backup(
    dump: PgDump,
    compressor: Compressor,
    upload: Upload,
    *,
    base_part_size: int,
    progress: Progress | None = None,
    progress_interval: float = 30.0,
    observe: Callable[[bytes], None] | None = None,
) -> StreamStats:
    """Run one backup's bytes end to end; raise on any failure, leaving nothing behind."""
    stats = StreamStats()
    parts = PartBuffer(upload, base_part_size)
    started = time.monotonic()
    try:
        with ProgressReporter(stats, progress, progress_interval):
            for chunk in dump.chunks():
                stats.raw_bytes += len(chunk)
                if observe is not None:
                    observe(chunk)
                parts.write(compressor.compress(chunk))
                stats.compressed_bytes = parts.total
            dump.finish(stats.raw_bytes)
            parts.write(compressor.finish())
            parts.flush()
            upload.complete()
    except BaseException:
        dump.kill()
        dump.close()
        upload.abort()
        raise
    stats.compressed_bytes = parts.total
    stats.parts = parts.sent_parts
    stats.sha256 = parts.hasher.hexdigest()
    stats.seconds = time.monotonic() - started
    return stats
