"""Unit tests of the byte path with fake ends: part sizes, back-pressure, all-or-nothing."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from backup_job.core.errors import DumpError, StorageError
from backup_job.core.settings import Compression
from backup_job.pipeline.compress import open_compressor
from backup_job.pipeline.stream import PartBuffer, stream_backup
from backup_job.storage.base import PARTS_PER_STEP, Upload
from backup_job.storage.s3 import LIMITS, MAX_PART_SIZE, MAX_PARTS, S3Upload

MIB = 1024 * 1024


def GzipCompressor(level: int):  # type: ignore[no-untyped-def]
    return open_compressor(Compression("gzip", level), lambda: 2, 2)


class FakeDump:
    """Yields given chunks, then reports a given outcome."""

    def __init__(self, chunks: list[bytes], failure: Exception | None = None) -> None:
        self._chunks = chunks
        self.failure = failure
        self.killed = False
        self.closed = False

    def chunks(self) -> Iterator[bytes]:
        yield from self._chunks

    def finish(self, produced: int) -> None:
        self.closed = True
        if self.failure:
            raise self.failure

    def kill(self) -> None:
        self.killed = True

    def close(self) -> int:
        self.closed = True
        return 0


class RecordingUpload(Upload):
    def __init__(self, fail_on_part: int | None = None) -> None:
        self.key = "k"
        self.parts: list[tuple[int, bytes]] = []
        self.completed = False
        self.aborted = False
        self.fail_on_part = fail_on_part

    def send_part(self, number: int, data: bytes) -> None:
        if number == self.fail_on_part:
            raise StorageError("part upload failed")
        self.parts.append((number, data))

    def complete(self) -> None:
        self.completed = True

    def abort(self) -> None:
        self.aborted = True


def test_part_size_doubles_every_thousand_parts_and_covers_s3_limits() -> None:
    base = 8 * MIB
    assert LIMITS.part_size(1, base) == LIMITS.part_size(PARTS_PER_STEP, base) == base
    assert LIMITS.part_size(PARTS_PER_STEP + 1, base) == 2 * base
    total = sum(LIMITS.part_size(n, base) for n in range(1, MAX_PARTS + 1))
    assert total > 5 * 1024**4, "10,000 parts must reach S3's 5 TiB object limit"
    assert max(LIMITS.part_size(n, base) for n in range(1, MAX_PARTS + 1)) <= MAX_PART_SIZE


def test_parts_are_exactly_sized_except_the_last() -> None:
    upload = RecordingUpload()
    buffer = PartBuffer(upload, 5 * MIB, LIMITS)
    for _ in range(23):
        buffer.write(b"x" * (MIB // 2 + 7))  # odd sizes: parts must still be exact
    buffer.flush()
    sizes = [len(data) for _, data in upload.parts]
    assert sizes[:-1] == [5 * MIB] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= 5 * MIB
    assert [n for n, _ in upload.parts] == list(range(1, len(sizes) + 1))


def test_stream_produces_a_valid_gzip_with_matching_checksum() -> None:
    raw = [f"line {i}\n".encode() * 1000 for i in range(200)]
    upload = RecordingUpload()
    stats = stream_backup(FakeDump(raw), GzipCompressor(6), upload, base_part_size=5 * MIB, limits=LIMITS)  # type: ignore[arg-type]
    body = b"".join(data for _, data in upload.parts)
    assert upload.completed and not upload.aborted
    assert gzip.decompress(body) == b"".join(raw)
    assert stats.sha256 == hashlib.sha256(body).hexdigest()
    assert (stats.raw_bytes, stats.compressed_bytes) == (len(b"".join(raw)), len(body))


def test_failed_dump_aborts_the_upload_and_never_completes() -> None:
    upload = RecordingUpload()
    dump = FakeDump([b"partial"], failure=DumpError("pg_dump failed (exit 1): boom"))
    with pytest.raises(DumpError):
        stream_backup(dump, GzipCompressor(6), upload, base_part_size=5 * MIB, limits=LIMITS)  # type: ignore[arg-type]
    assert upload.aborted and not upload.completed and dump.killed


def test_failed_part_stops_the_dump_and_aborts() -> None:
    upload = RecordingUpload(fail_on_part=2)
    data = [os.urandom(MIB) for _ in range(16)]  # incompressible: several 5 MiB parts
    dump = FakeDump(data)
    with pytest.raises(StorageError):
        stream_backup(dump, GzipCompressor(1), upload, base_part_size=5 * MIB, limits=LIMITS)  # type: ignore[arg-type]
    assert upload.aborted and not upload.completed and dump.killed


class SlowClient:
    """Stands in for boto3: records how many parts are in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def upload_part(self, **kwargs: object) -> dict[str, str]:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(0.02)
        with self.lock:
            self.in_flight -= 1
        return {"ETag": f"etag-{kwargs['PartNumber']}"}


class FakeStorage:
    def __init__(self, client: SlowClient, concurrency: int) -> None:
        self.client = client
        self.concurrency = concurrency
        self.bucket = "b"

    def call(self, what: str, key: str, operation, **kwargs):  # type: ignore[no-untyped-def]
        return operation(Bucket=self.bucket, **kwargs)

    def describe(self, key: str) -> str:
        return key

    def check_etag(self, *_args: object) -> None:
        pass  # the slow client's ETags are not MD5s

    def check_reported(self, *_args: object) -> dict[str, bytes]:
        return {}  # the slow client reports no checksums


def test_parts_in_flight_never_exceed_the_concurrency() -> None:
    client = SlowClient()
    upload = S3Upload(FakeStorage(client, concurrency=3), "k", "upload-1", {})  # type: ignore[arg-type]
    for number in range(1, 31):
        upload.send_part(number, b"x")
    upload.pool.results()
    assert client.peak == 3
