"""Bytes altered between pgbackup and the store are caught: every part and manifest carries
its Content-MD5, and the store's MD5 ETags are compared with what was sent. Faults injected
by a real HTTP proxy in front of the S3 server (which, like moto, need not check anything)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster

from .helpers import Bucket, run_pgbackup, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


REFUSED = ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest")  # how a checking store says no


def _env(bucket: Bucket, pg: Cluster, bindir: Path, proxy: FaultProxy, dbname: str, **extra: str) -> dict[str, str]:
    return bucket.proxied_env(pg, bindir, "tr", proxy, dbname, **extra)


def test_an_altered_part_fails_the_database_and_retention_keeps_the_last_good_backup(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 20000) g", dbname)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_RETENTION="last=1")
    assert run_pgbackup(env).returncode == 0
    good = bucket.keys(f"tr/{dbname}/")
    assert len(good) == 2
    wait_for_next_second()
    corrupt = proxy.add(Fault("PUT", rf"/tr/{dbname}/.*\.sql\.gz\?.*partNumber=1", "corrupt"))

    result = run_pgbackup(env)

    assert corrupt.hits and result.returncode == 1
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    # a store that checks what it receives (Content-MD5, the signed payload hash) refuses the
    # part itself; one that checks nothing is caught by the ETag it answers with
    assert any(word in failed for word in REFUSED) or ("part 1 of" in failed and "was altered on its way" in failed), \
        failed
    assert "retention skipped" in result.stdout
    assert bucket.keys(f"tr/{dbname}/") == good, "the altered backup left nothing, the good one stays"
    assert bucket.open_uploads() == []


def test_an_altered_manifest_is_removed_and_fails_the_database(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    corrupt = proxy.add(Fault("PUT", rf"/tr/{dbname}/.*\.manifest\.json$", "corrupt"))

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname))

    assert corrupt.hits and result.returncode == 1
    assert "PutObject of" in result.stdout
    assert any(word in result.stdout for word in REFUSED) or "was altered on its way" in result.stdout
    keys = bucket.keys(f"tr/{dbname}/")
    assert [k for k in keys if k.endswith(".manifest.json")] == [], "no manifest vouches for what the store holds"
    listing = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname), "list", "--database", dbname)
    assert "dump object without a manifest" in listing.stdout


def test_an_altered_part_of_a_sealed_backup_fails_it_and_leaves_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """The same fault while age seals the stream: the part is sent from the sealing thread, and
    its failure still fails the database, aborts the upload and writes no manifest."""
    import pyrage

    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 20000) g", dbname)
    public = str(pyrage.x25519.Identity.generate().to_public())
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_ENCRYPT_RECIPIENTS=public)
    corrupt = proxy.add(Fault("PUT", rf"/tr/{dbname}/.*\.sql\.gz\.age\?.*partNumber=1", "corrupt"))

    result = run_pgbackup(env)

    assert corrupt.hits and result.returncode == 1, result.stdout
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert any(word in failed for word in REFUSED) or ("part 1 of" in failed and "was altered on its way" in failed), \
        failed
    assert bucket.keys(f"tr/{dbname}/") == [] and bucket.open_uploads() == []
