"""CRC32C of whole objects, as S3 and GCS both check and return it.

CRC32C is the checksum both stores compute over what they hold: S3 as a ``FULL_OBJECT``
checksum of a multipart upload, GCS as every object's ``crc32c``. The pipeline hands parts over
in order, so the whole object's CRC32C is extended part by part (``Running``) and never needs
the bytes again.

google-crc32c (Google's C library with wheels) computes it at several GB/s; it is imported on
first use, so runs that never need it do not load it. ``available`` is False when only its
pure-Python fallback is there, far too slow for backups.

Both stores write a CRC32C as base64 of its four big-endian bytes (``encode``).
"""

from __future__ import annotations

import base64
from typing import Any


def _module() -> Any:
    import google_crc32c

    return google_crc32c


def available() -> bool:
    """Whether CRC32C runs in C here (the only speed fit for backups)."""
    try:
        return str(_module().implementation) == "c"
    except ImportError:
        return False


def encode(value: int) -> str:
    """The base64 form the stores' headers and answers carry (big-endian, 4 bytes)."""
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def of(data: bytes) -> str:
    """The CRC32C of ``data`` in the stores' form."""
    return encode(int(_module().value(data)))


class Running:
    """The CRC32C of everything passed to ``add``, in order."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, data: bytes) -> None:
        self.value = int(_module().extend(self.value, data))

    def encoded(self) -> str:
        return encode(self.value)
