"""CRC32C checksums that S3 stores verify and return: per part, per object, whole object.

Under SSE-KMS an ETag is no MD5, so it cannot prove that the store holds the bytes we sent,
and a store may ignore ``Content-MD5``. A full-object CRC32C can: an upload declared with
``ChecksumAlgorithm=CRC32C`` and ``ChecksumType=FULL_OBJECT`` carries each part's CRC (the
store refuses a part that does not match) and, at completion, the CRC of the whole object,
which the store compares with the one it derives from the parts it holds and returns. The
CRC32C itself (computed in C, extended part by part) is ``crc32c``'s, shared with GCS; its
names are kept here for the S3 modules.

``returned`` reads the store's answer: a whole-object CRC32C the store gave (not a COMPOSITE
one, which is a CRC of CRCs), or None when it gave none.
"""

from __future__ import annotations

from collections.abc import Mapping

from .crc32c import Running, available, encode, of

__all__ = ["ALGORITHM", "FULL_OBJECT", "Running", "available", "encode", "of", "returned"]

ALGORITHM = "CRC32C"
FULL_OBJECT = "FULL_OBJECT"


def returned(response: Mapping[str, object]) -> str | None:
    """The whole-object CRC32C in a store's answer, if it gave one."""
    value = response.get("ChecksumCRC32C")
    if not value or "-" in str(value) or response.get("ChecksumType", FULL_OBJECT) != FULL_OBJECT:
        return None
    return str(value)
