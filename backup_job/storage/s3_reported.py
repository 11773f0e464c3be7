"""Checksums an S3 store reports of what it received, recomputed over what pgbackup sent.

A store may answer an UploadPart, a PutObject or a CompleteMultipartUpload with checksums of
the bytes it received (``ChecksumCRC32``, ``ChecksumCRC32C``, ``ChecksumSHA1``,
``ChecksumSHA256``, ``ChecksumCRC64NVME``) even when pgbackup sent none: in the compatibility
mode (no CRC32C headers) they are the only thing besides an MD5 ETag that can show the store
holds the bytes that were sent, and under SSE-KMS the only thing at all. Each algorithm a
store reports is computed over the part pgbackup still holds (only those it reports: nothing
is computed for a store that reports nothing) and compared.

A multipart object's checksum is derived from its parts' without the bytes again:

- ``COMPOSITE`` (a value ending in ``-N``): the checksum of the parts' raw checksums, one
  after the other, as S3 defines it;
- ``FULL_OBJECT`` CRCs: the parts' CRCs joined (``crc_join``): a CRC of two pieces is the
  first's CRC carried past the second's length, XOR the second's, and carrying a CRC past
  ``n`` bytes is a multiplication by ``x^(8n)`` modulo the CRC's polynomial (done in the
  reflected bit order these CRCs use, with the power found by repeated squaring and kept for
  the parts' common size), so a join costs a few hundred integer operations, whatever the
  part's size.

CRC64NVME is not computed: neither the standard library nor the CRC32C module has it
(botocore's needs awscrt, which pgbackup does not ship), and it is too slow in pure Python.
A CRC64NVME the store reports is left unchecked, as if none had been reported.

Values are compared in the form the stores write them: base64 of the raw digest (a CRC's
bytes big-endian).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence

from . import crc32c

# Reflected CRC polynomials (bit 31 stands for x^0).
_POLYNOMIALS = {"CRC32": 0xEDB88320, "CRC32C": 0x82F63B78}
COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _crc32c(data: bytes) -> bytes:
    return base64.b64decode(crc32c.of(data))


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data, usedforsecurity=False).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# The algorithms pgbackup can recompute, by the name S3 gives them (``Checksum<name>``).
DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "CRC32": _crc32,
    "CRC32C": _crc32c,
    "SHA1": _sha1,
    "SHA256": _sha256,
}


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def reported(response: Mapping[str, object]) -> dict[str, str]:
    """The checksums pgbackup can recompute in a store's answer: algorithm -> value as given."""
    return {name: str(response[f"Checksum{name}"]) for name in DIGESTS if response.get(f"Checksum{name}")}


def of_part(names: Sequence[str], data: bytes) -> dict[str, bytes]:
    """The raw digests of ``data`` for each algorithm named."""
    return {name: DIGESTS[name](data) for name in names}


def _multiply(a: int, b: int, polynomial: int) -> int:
    """a * b modulo the polynomial, both in reflected order (bit 31 is x^0)."""
    product = 0
    bit = 1 << 31
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ polynomial if b & 1 else b >> 1  # b * x
    return product


@functools.lru_cache(maxsize=16)  # an upload's parts share one size, but for the last
def _x_power_bytes(length: int, polynomial: int) -> int:
    """x^(8 * length) modulo the polynomial, reflected."""
    result = 1 << 31  # x^0
    square = 1 << 23  # x^8: one byte
    while length:
        if length & 1:
            result = _multiply(result, square, polynomial)
        square = _multiply(square, square, polynomial)
        length >>= 1
    return result


def crc_join(name: str, first: int, second: int, second_length: int) -> int:
    """The CRC of two pieces from their CRCs and the second's length."""
    polynomial = _POLYNOMIALS[name]
    return _multiply(_x_power_bytes(second_length, polynomial), first, polynomial) ^ second


def whole(name: str, value: str, kind: object, parts: Sequence[tuple[int, Mapping[str, bytes]]]) -> str | None:
    """What a multipart object's ``name`` checksum must be, from its parts (length, raw digests)
    in order; None when it cannot be derived (a part without it, a full-object SHA)."""
    if not parts or any(name not in digests for _, digests in parts):
        return None
    if "-" in value or kind == COMPOSITE:
        joined = b"".join(digests[name] for _, digests in parts)
        return f"{encode(DIGESTS[name](joined))}-{len(parts)}"
    if name not in _POLYNOMIALS:
        return None
    crc = int.from_bytes(parts[0][1][name], "big")
    for length, digests in parts[1:]:
        crc = crc_join(name, crc, int.from_bytes(digests[name], "big"), length)
    return encode(crc.to_bytes(4, "big"))


def decode(value: str) -> bytes:
    return base64.b64decode(value)
