"""Bytes altered between pgbackup and the store are caught: every part and manifest carries
its Content-MD5, and the store's MD5 ETags are compared with what was sent. Under SSE-KMS,
where ETags are no MD5s, CRC32C checksums do it: each part's and the whole object's, checked
by the store (SeaweedFS) or compared by pgbackup with what the store reports (moto). Faults
injected by a real HTTP proxy in front of the S3 server (which, like moto, need not check
anything).

The offline tests; those that run pgbackup or real services are in tests/faults/test_transit_corruption.py."""

from __future__ import annotations

from backup_job.storage import s3_crc


def test_crc32c_runs_in_c_and_the_whole_object_s_is_extended_part_by_part() -> None:
    assert s3_crc.available(), "google-crc32c without its C extension is far too slow for backups"
    assert s3_crc.of(b"123456789") == s3_crc.encode(0xE3069283)  # the check value of CRC-32C
    whole = s3_crc.Running()
    for part in (b"1234", b"", b"56789"):
        whole.add(part)
    assert whole.encoded() == s3_crc.of(b"123456789")
    assert s3_crc.returned({"ChecksumCRC32C": "AAAAAA==-2", "ChecksumType": "COMPOSITE"}) is None
    assert s3_crc.returned({"ChecksumCRC32C": "4waSgw==", "ChecksumType": "FULL_OBJECT"}) == "4waSgw=="
