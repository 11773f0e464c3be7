"""The three IAM policies of docs/iam-policies.md, proved against an S3 server that enforces IAM.

Each job runs as an IAM user whose only policy is one of ``deploy/iam/*.json``, verbatim
(bucket ``my-backups``, prefix ``prod/``), on ``devenv.s3.IamS3Server`` (moto's server with
IAM enforced), with real PostgreSQL 18 behind it:

- backup (``backup.json``): ``pgbackup run`` succeeds; the only requests refused are the two
  listings (stale-upload sweep, shrink alarm) and the existence checks, each degrading as
  designed; the identity can neither read nor delete, and ``pgbackup prune`` with it fails in
  one line naming s3:ListBucket, deleting nothing. A failed dump's upload is aborted. A
  retried pod of the same run cannot recognise its own backups and fails them, saying so;
- read (``read.json``): ``list``, ``verify`` and ``restore`` succeed without one refused
  request; deletes and writes are refused, and ``pgbackup prune`` with it deletes nothing;
- prune (``prune.json``): ``pgbackup prune`` deletes exactly the backups retention drops and
  nothing else under the prefix, cannot write, and cannot delete outside the prefix.

Every S3 request of a job goes through ``devenv.faultproxy`` (forwarding only), whose log
says which operations each job made and which were refused.

What moto does not enforce (moto 5.2, see ``devenv/s3.py``): a policy's ``Condition`` is
never evaluated, so the ``s3:prefix`` condition of the read and prune policies limits nothing
there; instead the prefix of every listing pgbackup sent is matched against the condition's
patterns here, as IAM's StringLike would. DeleteObjects (the batch call, which pgbackup does
not use) is checked against the bucket's ARN rather than each key's. Everything pgbackup
does use (PutObject with and without If-None-Match, the multipart calls, HeadObject as
s3:GetObject, GetObject, ListObjectsV2 as s3:ListBucket, ListMultipartUploads, DeleteObject)
is checked by action and resource.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_least_privilege.py."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.s3 import IamS3Server, Identity

from ..kit.helpers import UPLOAD_LISTING, fake_pg_dump, job_env, redated, run_pgbackup, wait_for_next_second
from ..unit.test_least_privilege import JOBS, SWEEP, admitted_prefixes, policy

BUCKET, PREFIX = "my-backups", "prod"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
READS = {"ListObjectsV2", "GetObject"}


def string_like(pattern: str, value: str) -> bool:
    """IAM's StringLike: ``*`` any run of characters, ``?`` any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def operation(method: str, path: str) -> str:
    """The S3 operation of a path-style request."""
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    key = parts.path.lstrip("/").partition("/")[2]
    if not key:
        if method == "GET":
            return "ListMultipartUploads" if "uploads" in query else "ListObjectsV2"
        return f"{method} bucket"
    upload = "uploadId" in query
    return {
        ("HEAD", False): "HeadObject",
        ("GET", False): "GetObject",
        ("GET", True): "ListParts",
        ("PUT", False): "PutObject",
        ("PUT", True): "UploadPart",
        ("POST", False): "CreateMultipartUpload",
        ("POST", True): "CompleteMultipartUpload",
        ("DELETE", False): "DeleteObject",
        ("DELETE", True): "AbortMultipartUpload",
    }[(method, upload)]


@dataclass
class Scene:
    """The bucket on the IAM-enforcing server, one identity per job, and the proxy's log."""

    server: IamS3Server
    proxy: FaultProxy
    identities: dict[str, Identity]

    def run(
        self, who: str | Identity, cluster: Cluster, bindir: Path, *args: str, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        identity = self.identities[who] if isinstance(who, str) else who
        env = {
            **identity.env(),
            "AWS_ENDPOINT_URL_S3": self.proxy.endpoint,
            "BACKUP_S3_ADDRESSING_STYLE": "path",
            **job_env(cluster, f"s3://{BUCKET}/{PREFIX}", bindir, **extra),
        }
        del self.proxy.requests[:]
        return run_pgbackup(env, *args)

    def client(self, who: str) -> Any:
        return self.identities[who].client()

    def keys(self) -> list[str]:
        pages = self.client("admin").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def open_uploads(self) -> list[str]:
        return [u["Key"] for u in self.client("admin").list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]

    def operations(self, status: int | None = None) -> set[str]:
        """The operations of the last run's requests (those answered ``status``, if given)."""
        return {
            operation(method, path)
            for method, path, answered in self.proxy.requests
            if status is None or answered == status
        }

    def refused(self) -> set[str]:
        return self.operations(403)

    def listed_prefixes(self) -> list[str]:
        return [
            parse_qs(urlsplit(path).query).get("prefix", [""])[0]
            for method, path, _ in self.proxy.requests
            if operation(method, path) == "ListObjectsV2"
        ]


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[IamS3Server]:
    with IamS3Server() as server:
        yield server


@pytest.fixture
def scene(iam_s3: IamS3Server) -> Iterator[Scene]:
    iam_s3.reset()
    iam_s3.create_bucket(BUCKET)
    identities = {job: iam_s3.identity(job, policy(job)) for job in JOBS}
    identities["admin"] = iam_s3.identity("admin", ADMIN)
    with FaultProxy(iam_s3.endpoint) as proxy:
        yield Scene(iam_s3, proxy, identities)


def make_database(cluster: Cluster, name: str, rows: int = 1000) -> None:
    cluster.sql(f"CREATE DATABASE {name}")
    cluster.sql(f"CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, {rows}) g", name)


def refused_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call(Bucket=BUCKET, **kwargs)
    return str(refused.value.response["Error"]["Code"])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line]


def backups(scene: Scene, cluster: Cluster, bindir: Path, database: str, count: int) -> list[str]:
    """``count`` runs as the backup identity, each at its own timestamp; the keys then stored."""
    for index in range(count):
        if index:
            wait_for_next_second()
        result = scene.run("backup", cluster, bindir, BACKUP_DATABASES=database)
        assert result.returncode == 0, result.stdout + result.stderr
    return scene.keys()


def test_the_server_enforces_policies(scene: Scene) -> None:
    """The proof is worth something only if moto refuses what a policy leaves out."""
    backup = scene.client("backup")
    backup.put_object(Bucket=BUCKET, Key=f"{PREFIX}/probe", Body=b"x")
    assert refused_code(backup.put_object, Key="elsewhere/probe", Body=b"x") == "AccessDenied"
    assert refused_code(backup.get_object, Key=f"{PREFIX}/probe") == "AccessDenied"
    assert refused_code(backup.list_objects_v2, Prefix=f"{PREFIX}/") == "AccessDenied"
    stranger = Identity("stranger", "AKIAUNKNOWNKEY000000", "nope", scene.server.endpoint).client()
    assert refused_code(stranger.list_objects_v2) == "InvalidAccessKeyId"
    assert scene.keys() == [f"{PREFIX}/probe"]


def test_backup_identity_backs_up_but_can_neither_read_nor_delete(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene
) -> None:
    make_database(pg18, dbname)

    first = scene.run("backup", pg18, bindir18, BACKUP_DATABASES=dbname)

    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "Traceback" not in output
    assert scene.refused() == {"ListMultipartUploads", "ListObjectsV2", "HeadObject"}, (
        "only the stale-upload sweep, the shrink alarm's listing and the existence checks are refused"
    )
    assert scene.operations(200) == WRITES
    sweep = [line for line in output.splitlines() if "s3:ListBucketMultipartUploads" in line]
    alarm = [line for line in output.splitlines() if "needs s3:ListBucket " in line]
    assert len(sweep) == 1 and "unfinished uploads of earlier runs not swept" in sweep[0], output
    assert " INFO " in sweep[0] or '"level": "INFO"' in sweep[0], "by design, not a warning every run"
    assert len(alarm) == 1 and "shrink alarm off for this run" in alarm[0], output
    assert error_lines(output) == []
    wait_for_next_second()
    assert scene.run("backup", pg18, bindir18, BACKUP_DATABASES=dbname).returncode == 0
    keys = scene.keys()
    assert len(keys) == 8 and sum(key.endswith(".manifest.json") for key in keys) == 4, keys

    backup = scene.client("backup")
    for key in keys:
        assert refused_code(backup.delete_object, Key=key) == "AccessDenied"
        assert refused_code(backup.get_object, Key=key) == "AccessDenied"
    pruned = scene.run("backup", pg18, bindir18, "prune", BACKUP_RETENTION="last=1")

    assert pruned.returncode == 1
    assert "Traceback" not in pruned.stdout + pruned.stderr
    [error] = error_lines(pruned.stdout)
    assert f"prune FAILED: the credentials may not list s3://{BUCKET}/{PREFIX}/ " in error
    assert "ListObjectsV2 needs s3:ListBucket" in error and "docs/iam-policies.md#iam-policies-per-job" in error
    assert scene.operations() == {"ListObjectsV2"} and scene.keys() == keys


def test_backup_identity_aborts_the_upload_of_a_failed_dump(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene, tmp_path: Path
) -> None:
    make_database(pg18, dbname)
    failing = fake_pg_dump(tmp_path / "bin", bindir18, '"$REAL" "$@"\nexit 1')

    result = scene.run("backup", pg18, failing, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")

    assert result.returncode == 1
    assert f"backup of '{dbname}' FAILED: pg_dump" in result.stdout
    assert ("DELETE", 204) in {(method, status) for method, _, status in scene.proxy.requests}, (
        "AbortMultipartUpload was allowed"
    )
    assert scene.open_uploads() == [] and scene.keys() == []


def test_without_the_abort_permission_a_failed_dump_says_its_parts_stay(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene, tmp_path: Path
) -> None:
    make_database(pg18, dbname)
    failing = fake_pg_dump(tmp_path / "bin", bindir18, '"$REAL" "$@"\nexit 1')
    document = policy("backup")
    put_only = scene.server.identity(
        "put-only", {**document, "Statement": [{**document["Statement"][0], "Action": ["s3:PutObject"]}]}
    )

    result = scene.run(put_only, pg18, failing, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")

    assert result.returncode == 1
    warning = [line for line in result.stdout.splitlines() if "s3:AbortMultipartUpload" in line]
    assert len(warning) == 1 and " WARNING " in warning[0], result.stdout
    assert "may not abort the unfinished upload of" in warning[0] and "lifecycle rule" in warning[0]
    assert len(scene.open_uploads()) == 1 and scene.keys() == []


def test_a_retried_pod_of_the_same_run_cannot_confirm_its_own_backups_write_only(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene
) -> None:
    """Write-only credentials cannot tell the first attempt's objects from another run's:
    the retry fails those databases, saying so, and changes nothing (the docs advise no
    Job retries, the operator's default, for this identity)."""
    make_database(pg18, dbname)
    same_run = {
        "BACKUP_DATABASES": dbname,
        "BACKUP_GLOBALS": "false",
        "BACKUP_RUN_ID": str(uuid.uuid4()),
        "BACKUP_RUN_TIMESTAMP": "20261130T020000Z",
    }
    assert scene.run("backup", pg18, bindir18, **same_run).returncode == 0
    stored = {key: scene.client("admin").get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in scene.keys()}

    retried = scene.run("backup", pg18, bindir18, **same_run)

    assert retried.returncode == 1
    failure = [line for line in error_lines(retried.stdout) if f"backup of '{dbname}' FAILED" in line]
    assert len(failure) == 1 and "probably" in failure[0] and "cannot read it back" in failure[0], retried.stdout
    assert {
        key: scene.client("admin").get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in scene.keys()
    } == stored
    assert scene.open_uploads() == []


def test_backup_identity_with_the_sweep_statements_aborts_a_killed_run_s_upload(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene
) -> None:
    """With the clean-up's clock probe (create, list, abort an upload of its own) allowed too;
    the proxy dates the uploads as an honest store would, which moto's server does not."""
    make_database(pg18, dbname)
    killed = f"{PREFIX}/{dbname}/20200101T000000Z.sql.gz"
    scene.client("admin").create_multipart_upload(Bucket=BUCKET, Key=killed)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    scene.proxy.add(
        Fault(
            "GET",
            UPLOAD_LISTING,
            "rewrite",
            times=None,
            rewrite=redated(lambda key: two_days_ago if key == killed else datetime.now(UTC)),
        )
    )
    document = policy("backup")
    sweeper = scene.server.identity("sweeper", {**document, "Statement": document["Statement"] + SWEEP})

    result = scene.run(sweeper, pg18, bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")

    assert result.returncode == 0, result.stdout
    assert f"aborted an unfinished upload left by an earlier run: s3://{BUCKET}/{killed}" in result.stdout
    assert "could not clean up" not in result.stdout
    assert scene.refused() == {"ListObjectsV2", "HeadObject"} and scene.open_uploads() == []
    assert {
        "CreateMultipartUpload",
        "ListMultipartUploads",
        "ListParts",
        "AbortMultipartUpload",
    } <= scene.operations(), "the probe and the sweep ran"


def test_read_identity_lists_verifies_and_restores_but_cannot_change_anything(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene
) -> None:
    make_database(pg18, dbname, rows=2500)
    keys = backups(scene, pg18, bindir18, dbname, 2)
    target = f"{dbname}_restored"

    listing = scene.run("read", pg18, bindir18, "list")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert [line.split("  ")[-1] for line in listing.stdout.splitlines()[1:]] == [
        "complete, signed (fc16885beacd577b)"
    ] * 4
    prefixes = scene.listed_prefixes()
    verified = scene.run("read", pg18, bindir18, "verify", BACKUP_DATABASES=dbname)
    assert verified.returncode == 0, verified.stdout
    assert "verify: 2 of 2 backups verified" in verified.stdout
    prefixes += scene.listed_prefixes()
    restored = scene.run("read", pg18, bindir18, "restore", "--database", dbname, "--target", target, "--create")
    assert restored.returncode == 0, restored.stdout
    assert pg18.sql("SELECT count(*) FROM orders", target) == [(2500,)]
    assert scene.refused() == set() and scene.operations() == READS
    prefixes += scene.listed_prefixes()
    assert prefixes and all(
        any(string_like(p, prefix) for p in admitted_prefixes(policy("read"))) for prefix in prefixes
    ), prefixes

    read = scene.client("read")
    assert refused_code(read.delete_object, Key=keys[0]) == "AccessDenied"
    assert refused_code(read.put_object, Key=f"{PREFIX}/{dbname}/forged.sql.gz", Body=b"x") == "AccessDenied"
    pruned = scene.run("read", pg18, bindir18, "prune", BACKUP_RETENTION="last=1")

    assert pruned.returncode == 1 and "Traceback" not in pruned.stdout + pruned.stderr
    failed = error_lines(pruned.stdout)
    assert len(failed) == 2 and all("DeleteObject needs s3:DeleteObject" in line for line in failed), pruned.stdout
    assert scene.refused() == {"DeleteObject"} and scene.keys() == keys


def test_prune_identity_deletes_exactly_what_retention_drops(
    pg18: Cluster, bindir18: Path, dbname: str, scene: Scene
) -> None:
    make_database(pg18, dbname)
    stored = backups(scene, pg18, bindir18, dbname, 3)
    admin = scene.client("admin")
    foreign = [f"{PREFIX}/notes.txt", f"{PREFIX}/{dbname}/readme.txt", f"archive/{dbname}/20200101T000000Z.sql.gz"]
    for key in foreign:
        admin.put_object(Bucket=BUCKET, Key=key, Body=b"not pgbackup's")
    oldest = min(re.search(r"\d{8}T\d{6}Z", key).group() for key in stored)  # type: ignore[union-attr]

    pruned = scene.run("prune", pg18, bindir18, "prune", BACKUP_RETENTION="last=2")

    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    gone = sorted(set(stored) - set(scene.keys()))
    assert gone == sorted(key for key in stored if oldest in key) and len(gone) == 4, gone
    assert scene.keys() == sorted((set(stored) - set(gone)) | set(foreign))
    assert scene.refused() == set() and scene.operations() == READS | {"DeleteObject"}
    prefixes = scene.listed_prefixes()
    assert prefixes and all(
        any(string_like(p, prefix) for p in admitted_prefixes(policy("prune"))) for prefix in prefixes
    ), prefixes

    prune = scene.client("prune")
    assert refused_code(prune.put_object, Key=f"{PREFIX}/{dbname}/forged.sql.gz", Body=b"x") == "AccessDenied"
    assert refused_code(prune.delete_object, Key=foreign[2]) == "AccessDenied"
    assert scene.keys() == sorted((set(stored) - set(gone)) | set(foreign))
