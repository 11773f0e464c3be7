"""Bytes altered between pgbackup and the store are caught: every part and manifest carries
its Content-MD5, and the store's MD5 ETags are compared with what was sent. Under SSE-KMS,
where ETags are no MD5s, CRC32C checksums do it: each part's and the whole object's, checked
by the store (SeaweedFS) or compared by pgbackup with what the store reports (moto). Faults
injected by a real HTTP proxy in front of the S3 server (which, like moto, need not check
anything).

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_transit_corruption.py."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from backup_job.core.settings import S3Settings
from backup_job.storage.s3 import S3Storage
from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.seaweed import SeaweedServer

from ..kit.helpers import Bucket, run_pgbackup, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


REFUSED = ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest")  # how a checking store says no
KMS = {"BACKUP_S3_SSE": "aws:kms", "BACKUP_S3_KMS_KEY_ID": "alias/pgbackup-tests"}
PART_CHECKSUMS = ("x-amz-checksum-", "x-amz-sdk-checksum-")  # the request headers that carry a part's CRC
UNDETECTABLE = "cannot be detected under SSE-KMS"


def _env(bucket: Bucket, pg: Cluster, bindir: Path, proxy: FaultProxy, dbname: str, **extra: str) -> dict[str, str]:
    return bucket.proxied_env(pg, bindir, "tr", proxy, dbname, **extra)


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
    """A part altered on its way while age seals the stream (without SSE-KMS: a store that checks
    nothing is caught by the part's MD5 ETag): the part is sent from the sealing thread, and its
    failure still fails the database, aborts the upload and writes no manifest."""
    import pyrage

    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 20000) g", dbname)
    public = str(pyrage.x25519.Identity.generate().to_public())
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_ENCRYPT_RECIPIENTS=public)
    corrupt = proxy.add(Fault("PUT", rf"/tr/{dbname}/.*\.sql\.gz\.age\?.*partNumber=1", "corrupt"))

    result = run_pgbackup(env)

    assert corrupt.hits and result.returncode == 1, result.stdout
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert any(word in failed for word in REFUSED) or ("part 1 of" in failed and "was altered on its way" in failed), (
        failed
    )
    assert bucket.keys(f"tr/{dbname}/") == [] and bucket.open_uploads() == []


def _altered_part(dbname: str, *strip: str) -> Fault:
    """Part 1 of the dump altered on its way, past a store that ignores Content-MD5 (and ``strip``),
    with the payload unsigned as over HTTPS (else SeaweedFS's check of its SHA-256 catches it first)."""
    return Fault(
        "PUT", rf"/tr/{dbname}/.*\.sql\.gz\?.*partNumber=1", "corrupt", strip=("content-md5", *strip), unsigned=True
    )


def _failed_line(result: CompletedProcess[str], dbname: str) -> str:
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    return failed


def test_under_sse_kms_an_altered_part_fails_the_run_and_prune_keeps_the_last_good_backup(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """An altered part fails its database and retention keeps the last good backup, under
    SSE-KMS (where ETags prove nothing) and in the worst case: the store checks neither
    Content-MD5 nor the part's CRC32C (neither reaches it). What the store reports catches it:
    SeaweedFS answers the part with the CRC32C of the bytes it received (and would refuse the
    whole object's at completion), moto, which checks nothing, reports the whole object's
    CRC32C when asked; pgbackup compares each with its own."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", dbname)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_RETENTION="last=1", **KMS)
    first = run_pgbackup(env)
    assert first.returncode == 0 and UNDETECTABLE not in first.stdout + first.stderr, first.stdout + first.stderr
    good = bucket.keys(f"tr/{dbname}/")
    assert len(good) == 2
    wait_for_next_second()
    corrupt = proxy.add(_altered_part(dbname, *PART_CHECKSUMS))

    result = run_pgbackup(env)

    assert corrupt.hits and result.returncode == 1, result.stdout + result.stderr
    failed = _failed_line(result, dbname)
    assert "BadDigest" in failed or "was altered on its way: the store holds bytes with CRC32C" in failed, failed
    assert "retention skipped" in result.stdout
    assert bucket.keys(f"tr/{dbname}/") == good, "nothing of the altered backup stays, the good one does"
    assert bucket.open_uploads() == []
    pruned = run_pgbackup(env, "prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert bucket.keys(f"tr/{dbname}/") == good


def test_under_sse_kms_a_store_that_checks_crc32c_refuses_the_altered_part(
    pg18: Cluster, bindir18: Path, seaweed: SeaweedServer, dbname: str
) -> None:
    """The realistic case: the part's CRC32C reaches a store that checks it (SeaweedFS, like AWS),
    which refuses the part itself. (On moto, which checks nothing, this is the case above.)"""
    pg18.sql(f"CREATE DATABASE {dbname}")
    bucket = Bucket(seaweed, f"backups-{uuid.uuid4().hex[:12]}")
    seaweed.client().create_bucket(Bucket=bucket.name)
    with FaultProxy(seaweed.endpoint) as proxy:
        corrupt = proxy.add(_altered_part(dbname))

        result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname, **KMS))

    assert corrupt.hits and result.returncode == 1, result.stdout + result.stderr
    failed = _failed_line(result, dbname)
    assert "UploadPart of" in failed and "BadDigest" in failed, failed
    assert bucket.keys(f"tr/{dbname}/") == [] and bucket.open_uploads() == []
    [create] = [headers for method, path, headers in proxy.seen if method == "POST" and path.endswith("?uploads")]
    assert (create.get("x-amz-checksum-algorithm"), create.get("x-amz-checksum-type")) == ("CRC32C", "FULL_OBJECT")
    assert all("x-amz-checksum-crc32c" in headers for _, path, headers in proxy.seen if "partNumber=" in path), (
        "the store refused the part by its CRC32C"
    )


def test_in_compatibility_mode_a_checksum_the_store_reports_of_an_altered_part_fails_the_run(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """The compatibility mode (no CRC32C sent) under SSE-KMS, past a store that ignores
    Content-MD5: the store answers the altered part with the CRC32 of the bytes it received, as
    a store that computes its own checksums does unasked (the proxy adds that header: neither
    moto nor SeaweedFS reports a checksum to a request that carries none). pgbackup computes the
    CRC32 of what it sent, and the mismatch fails the database with no manifest written."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = _env(bucket, pg18, bindir18, proxy, dbname, AWS_REQUEST_CHECKSUM_CALCULATION="when_required", **KMS)
    corrupt = proxy.add(
        Fault(
            "PUT",
            rf"/tr/{dbname}/.*\.sql\.gz\?.*partNumber=1",
            "corrupt",
            strip=("content-md5",),
            unsigned=True,
            report="crc32",
        )
    )

    result = run_pgbackup(env)

    assert corrupt.hits and result.returncode == 1, result.stdout + result.stderr
    failed = _failed_line(result, dbname)
    assert "part 1 of" in failed and "was altered on its way: the store holds bytes with CRC32 " in failed, failed
    assert not any("x-amz-checksum-crc32c" in headers for _, _, headers in proxy.seen), "no CRC32C was sent"
    assert bucket.keys(f"tr/{dbname}/") == [] and bucket.open_uploads() == []


class _Caught(logging.Handler):
    """The records of the logger it is added to (whether or not they propagate)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("how", ["store refuses them", "AWS_REQUEST_CHECKSUM_CALCULATION=when_required"])
def test_without_checksums_parts_keep_content_md5_and_one_warning_says_what_cannot_be_detected(
    how: str, bucket: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compatibility mode, for stores that reject CRC32C headers: told so, or finding out at
    the first CreateMultipartUpload. Parts and PUTs carry Content-MD5 as before, and one WARNING
    says that under SSE-KMS nothing shows the store holds what was sent (neither store reports a
    checksum of its own to a request that carries none)."""
    name = bucket.name
    logger, caught = logging.getLogger("pgbackup.storage"), _Caught()
    for variable, value in {**bucket.server.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION", raising=False)
    if how.startswith("AWS_"):
        monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    refusal = proxy.add(
        Fault(
            "POST",
            r"\?uploads$",
            "answer",
            times=None,
            status=400,
            code="InvalidArgument",
            carrying="x-amz-checksum-algorithm",
        )
    )
    options = S3Settings(addressing_style="path", sse="aws:kms", kms_key_id="alias/pgbackup-tests")
    storage = S3Storage(name, options, concurrency=2)
    logger.addHandler(caught)
    try:
        for key in ("a.sql.gz", "b.sql.gz"):
            upload = storage.start_upload(key, "application/gzip", {})
            upload.send_part(1, b"x" * 1000)
            upload.complete()
        storage.put("a.manifest.json", b"{}", "application/json")
    finally:
        logger.removeHandler(caught)

    assert len(refusal.hits) == (1 if how.startswith("store") else 0)
    writes = [headers for method, _, headers in proxy.seen if method == "PUT"]
    assert len(writes) == 3 and all("content-md5" in h and "x-amz-checksum-crc32c" not in h for h in writes), writes
    warnings = [r.getMessage() for r in caught.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and UNDETECTABLE in warnings[0], warnings
