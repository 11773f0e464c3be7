"""Bytes altered between pgbackup and the store are caught: every part and manifest carries
its Content-MD5, and the store's MD5 ETags are compared with what was sent. Under SSE-KMS,
where ETags are no MD5s, CRC32C checksums do it: each part's and the whole object's, checked
by the store (SeaweedFS) or compared by pgbackup with what the store reports (moto). Faults
injected by a real HTTP proxy in front of the S3 server (which, like moto, need not check
anything).

The offline tests; those that run pgbackup or real services are in tests/faults/test_transit_corruption.py."""

from __future__ import annotations

import hashlib

from backup_job.storage import s3_crc, s3_reported


def test_crc32c_runs_in_c_and_the_whole_object_s_is_extended_part_by_part() -> None:
    assert s3_crc.available(), "google-crc32c without its C extension is far too slow for backups"
    assert s3_crc.of(b"123456789") == s3_crc.encode(0xE3069283)  # the check value of CRC-32C
    whole = s3_crc.Running()
    for part in (b"1234", b"", b"56789"):
        whole.add(part)
    assert whole.encoded() == s3_crc.of(b"123456789")
    assert s3_crc.returned({"ChecksumCRC32C": "AAAAAA==-2", "ChecksumType": "COMPOSITE"}) is None
    assert s3_crc.returned({"ChecksumCRC32C": "4waSgw==", "ChecksumType": "FULL_OBJECT"}) == "4waSgw=="


def test_a_multipart_object_s_reported_checksums_follow_from_its_parts_without_the_bytes() -> None:
    """What the store reports is recomputed only for the algorithms it names, and the whole
    object's follows from the parts': a full-object CRC by joining the parts' CRCs, a
    composite one as the checksum of their raw checksums with the part count."""
    parts_bytes = [b"first part " * 300, b"", b"x", bytes(range(256)) * 41]
    whole_bytes = b"".join(parts_bytes)
    answer = {"ChecksumCRC32": "AAAAAA==", "ChecksumSHA256": "AA==", "ChecksumCRC64NVME": "AA==", "ETag": '"e"'}
    assert set(s3_reported.reported(answer)) == {"CRC32", "SHA256"}, "CRC64NVME cannot be computed here"
    parts = [(len(p), s3_reported.of_part(["CRC32", "CRC32C", "SHA256"], p)) for p in parts_bytes]
    for name in ("CRC32", "CRC32C"):
        expected = s3_reported.encode(s3_reported.DIGESTS[name](whole_bytes))
        assert s3_reported.whole(name, "?", "FULL_OBJECT", parts) == expected
    sha_of_digests = hashlib.sha256(b"".join(d["SHA256"] for _, d in parts)).digest()
    assert s3_reported.whole("SHA256", "x-4", "COMPOSITE", parts) == f"{s3_reported.encode(sha_of_digests)}-4"
    assert s3_reported.whole("SHA256", "x", "FULL_OBJECT", parts) is None, "no full-object SHA without the bytes"
    assert s3_reported.whole("SHA1", "x-4", "COMPOSITE", parts) is None, "a part without it"
    assert s3_reported.of_part(["CRC32"], b"123456789")["CRC32"] == (0xCBF43926).to_bytes(4, "big")
