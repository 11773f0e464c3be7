"""Retention under faults that hide damage from a listing: it keeps what restores.

- A bit flipped at rest in the newest dump keeps its size, so the catalog calls the backup
  complete; prune must prove the newest backup it keeps (read it whole, checked against the
  manifest) before deleting older ones, and keep them when the proof fails.

Both run against moto's S3 server and SeaweedFS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core.logs import human_bytes
from devenv.postgres import Cluster

from .helpers import Bucket, run_pgbackup, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def _two_backups(pg: Cluster, env: dict[str, str], dbname: str) -> None:
    pg.sql(f"CREATE DATABASE {dbname}")
    pg.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 20000) g", dbname)
    assert run_pgbackup(env).returncode == 0
    wait_for_next_second()
    pg.sql("INSERT INTO t VALUES (0, 'second')", dbname)
    assert run_pgbackup(env).returncode == 0


def _flip_one_bit_at_rest(bucket: Bucket, key: str) -> None:
    """Replace the stored object with the same bytes but one bit (the same size, so every
    listing and manifest size still agrees)."""
    data = bytearray(bucket.get(key))
    data[len(data) // 2] ^= 0x01
    bucket.put(key, bytes(data))


def test_prune_keeps_the_older_backup_when_the_newest_is_damaged_at_rest(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    env = bucket.job_env(pg18, bindir18, "rest", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(pg18, env, dbname)
    older, newer = sorted(k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz"))
    _flip_one_bit_at_rest(bucket, newer)
    before = bucket.keys(f"rest/{dbname}/")
    listing = run_pgbackup(env, "list", "--database", dbname)
    assert listing.stdout.count("complete") >= 2, listing.stdout  # sizes alone cannot tell

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert pruned.returncode == 1, pruned.stdout + pruned.stderr
    assert bucket.keys(f"rest/{dbname}/") == before, "nothing deleted: the older backup is the only good one"
    stamp = newer.rsplit("/", 1)[-1][:16]
    [error] = [line for line in pruned.stdout.splitlines() if "could not prove" in line]
    assert stamp in error and "checksum mismatch" in error and f"pgbackup verify --database {dbname}" in error
    assert "DAMAGED" in pruned.stdout and "its stored bytes do not match its manifest" in pruned.stdout
    restored = run_pgbackup(env, "restore", "--database", dbname, "--at", older.rsplit("/", 1)[-1][:16],
                            "--target", f"{dbname}_r", "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(20000,)]


def test_prune_proves_the_newest_backup_before_deleting_older_ones(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    env = bucket.job_env(pg18, bindir18, "rest", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(pg18, env, dbname)
    _, newer = sorted(k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz"))
    size = len(bucket.get(newer))

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert [k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz")] == [newer]
    [proved] = [line for line in pruned.stdout.splitlines() if "retention proved" in line]
    assert newer.rsplit("/", 1)[-1][:16] in proved
    assert f"1 proven ({human_bytes(size)} read)" in pruned.stdout

