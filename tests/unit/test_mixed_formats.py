"""A history that mixes gzip and zstd backups (the setting changed between runs) is one
history: list shows both as complete, restore and verify read each in its own format,
retention counts and deletes across them, and the zstd tool reads a stored object by hand,
as docs/restore.md's manual restore says. Real PostgreSQL 18, real S3 servers, the real command.

The offline tests; those that run pgbackup or real services are in tests/integration/test_mixed_formats.py."""

from __future__ import annotations

from backup_job.core.manifest import Manifest, shrink_alarm


def test_the_shrink_alarm_compares_raw_sizes_across_a_change_of_format() -> None:
    """zstd is smaller than gzip for the same data: that is no reason to alarm. Real loss is."""
    gzip_before = Manifest(
        database="d",
        key="p/d/20260101T000000Z.sql.gz",
        run_timestamp="20260101T000000Z",
        raw_bytes=1000,
        compressed_bytes=400,
        sha256="0" * 64,
        parts=1,
        pg_dump_version="18",
        server_version="18",
        started_at="",
        finished_at="",
        duration_seconds=1.0,
        compression_level=6,
        compression="gzip",
    )
    assert shrink_alarm(0.9, gzip_before, 300, 1000, "zstd") is None
    alarm = shrink_alarm(0.9, gzip_before, 300, 500, "zstd")
    assert alarm is not None and alarm["compared"] == "raw_bytes" and alarm["previous_raw_bytes"] == 1000
    assert shrink_alarm(0.9, gzip_before, 300, 1000, "gzip") is not None, "same format: compressed sizes"
