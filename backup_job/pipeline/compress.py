"""Compression: the middle stage of the pipeline, raw dump bytes in, gzip bytes out.

A ``Compressor`` is fed chunks and returns whatever compressed output is ready; ``finish``
returns the rest, including the gzip trailer (CRC and length) that makes the stream
complete. A stream without its trailer fails ``gunzip -t``, so a dump that ends early can
never pass as a finished object.

Compression is the bottleneck of a backup (gzip -6 runs at about 55 MB/s on one core), so
the stage is an interface rather than a call buried in the loop: a parallel implementation
can compress independent blocks on a thread pool (zlib releases the GIL) and emit them in
order, pigz-style, without any change to the reader before it or the uploader after it.
The output is always one standard gzip stream that ``gunzip`` and ``psql`` tooling read.
"""

from __future__ import annotations

import zlib
from typing import Protocol

GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib writes a gzip header and trailer


class Compressor(Protocol):
    """Turns a stream of chunks into one compressed stream."""

    name: str

    def compress(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class GzipCompressor:
    """Single-threaded gzip at a given level (1-9)."""

    name = "gzip"

    def __init__(self, level: int = 6) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._zlib.compress(data)

    def finish(self) -> bytes:
        return self._zlib.flush(zlib.Z_FINISH)
