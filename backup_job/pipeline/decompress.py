"""Decompression for restore and verify: stored bytes in, the plain dump out, in bounded steps.

``open_decompressor(compression)`` gives an object fed the stored object's chunks in order;
each ``feed`` yields the dump's bytes in pieces of at most ``STEP`` (gzip) or a few MiB
(zstd), so a very compressible chunk cannot balloon memory, and ``end`` raises unless the
stream ended exactly where the object did. Both use the libraries the backup side uses:
python-isal's inflate (several times zlib's speed; it reads any standard gzip stream,
also those written by older pgbackup versions with zlib) and python-zstandard, which checks
the frame's content checksum. Invalid data raises ``RestoreError`` naming the format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..core.errors import RestoreError

STEP = 8 * 1024 * 1024  # the most gzip output produced per step
ZSTD_SLICE = 32 * 1024  # zstd input per step: its output is bounded by the frame's ratio


class Decompressor(Protocol):
    def feed(self, chunk: bytes | memoryview) -> Iterator[bytes]: ...

    def end(self, key: str) -> None: ...


class GzipInflater:
    def __init__(self) -> None:
        from isal import isal_zlib

        self._error: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # mis-annotated
        self._inflater = isal_zlib.decompressobj(wbits=31)

    def feed(self, chunk: bytes | memoryview) -> Iterator[bytes]:
        inflater = self._inflater
        try:
            data = inflater.decompress(chunk, STEP)
            while data:
                yield data
                data = inflater.decompress(inflater.unconsumed_tail, STEP) if inflater.unconsumed_tail else b""
        except self._error as exc:
            raise RestoreError(f"the object is not valid gzip data: {exc}") from exc

    def end(self, key: str) -> None:
        if not self._inflater.eof or self._inflater.unused_data:
            raise RestoreError(f"{key} is not one complete gzip stream")


class ZstdInflater:
    def __init__(self) -> None:
        import zstandard

        self._error: type[Exception] = zstandard.ZstdError
        self._inflater = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, chunk: bytes | memoryview) -> Iterator[bytes]:
        view = memoryview(chunk)
        try:
            for start in range(0, len(view), ZSTD_SLICE):
                if self._inflater.eof:
                    raise RestoreError("the object has bytes after the end of its zstd frame")
                data = self._inflater.decompress(view[start : start + ZSTD_SLICE])
                if data:
                    yield data
        except self._error as exc:
            raise RestoreError(f"the object is not valid zstd data: {exc}") from exc

    def end(self, key: str) -> None:
        if not self._inflater.eof or self._inflater.unused_data:
            raise RestoreError(f"{key} is not one complete zstd frame")


def open_decompressor(compression: str) -> Decompressor:
    if compression == "zstd":
        return ZstdInflater()
    if compression == "gzip":
        return GzipInflater()
    raise RestoreError(f"the backup is compressed with {compression!r}, which this pgbackup does not read")
