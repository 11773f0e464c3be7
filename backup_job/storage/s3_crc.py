"""CRC32C checksums that S3 stores verify and return: per part, per object, whole object.

Under SSE-KMS an ETag is no MD5, so it cannot prove that the store holds the bytes we sent,
and a store may ignore ``Content-MD5``. A full-object CRC32C can: an upload declared with
``ChecksumAlgorithm=CRC32C`` and ``ChecksumType=FULL_OBJECT`` carries each part's CRC (the
store refuses a part that does not match) and, at completion, the CRC of the whole object,
which the store compares with the one it derives from the parts it holds and returns. The
pipeline hands parts over in order, so the whole-object CRC is extended part by part
(``Running``) and never needs the bytes again.

google-crc32c (Google's C library with wheels) computes it at several GB/s; it is imported
on first use, so runs that never write to S3 do not load it. ``available`` is False when only
its pure-Python fallback is there, far too slow for backups: checksums are then left out.

``returned`` reads the store's answer: a whole-object CRC32C the store gave (not a COMPOSITE
one, which is a CRC of CRCs), or None when it gave none.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

ALGORITHM = "CRC32C"
FULL_OBJECT = "FULL_OBJECT"


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
    """The base64 form S3 headers and answers carry (big-endian, 4 bytes)."""
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def of(data: bytes) -> str:
    """The CRC32C of ``data`` in S3's form."""
    return encode(int(_module().value(data)))


class Running:
    """The CRC32C of everything passed to ``add``, in order."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, data: bytes) -> None:
        self.value = int(_module().extend(self.value, data))

    def encoded(self) -> str:
        return encode(self.value)


def returned(response: Mapping[str, object]) -> str | None:
    """The whole-object CRC32C in a store's answer, if it gave one."""
    value = response.get("ChecksumCRC32C")
    if not value or "-" in str(value) or response.get("ChecksumType", FULL_OBJECT) != FULL_OBJECT:
        return None
    return str(value)
