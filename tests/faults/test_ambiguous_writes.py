"""A write the store applied while its answer was lost (a 500 or a reset after the store
acted) must never cost a backup: faults injected by a real HTTP proxy in front of the S3
server, a real PostgreSQL, the real ``pgbackup`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster

from ..kit.helpers import Bucket, manifest, run_pgbackup


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def _env(bucket: Bucket, pg: Cluster, bindir: Path, proxy: FaultProxy, dbname: str) -> dict[str, str]:
    return bucket.proxied_env(pg, bindir, "amb", proxy, dbname)


def _objects(bucket: Bucket, dbname: str) -> dict[str, str]:
    """suffix -> key of this database's objects, read directly from the store (no proxy)."""
    return {("manifest" if k.endswith(".manifest.json") else "dump"): k for k in bucket.keys(f"amb/{dbname}/")}


DENY_READS = [Fault("GET", "", "deny", times=None), Fault("HEAD", "", "deny", times=None)]  # write-only credentials


@pytest.mark.parametrize("action", ["applied-500", "applied-reset"])
def test_a_manifest_write_whose_answer_was_lost_is_confirmed_not_undone(
    action: str, pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    fault = proxy.add(Fault("PUT", rf"/amb/{dbname}/\d{{8}}T\d{{6}}Z\.manifest\.json", action))

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname))

    assert fault.hits, "the fault was injected"
    assert result.returncode == 0, result.stdout + result.stderr
    objects = _objects(bucket, dbname)
    assert set(objects) == {"dump", "manifest"}, "the dump the manifest points at is still there"
    facts = manifest(bucket.get(objects["manifest"]))
    assert facts["key"] == objects["dump"] and len(facts["run_id"]) == 16
    listing = run_pgbackup({**_env(bucket, pg18, bindir18, proxy, dbname)}, "list", "--database", dbname)
    assert "complete" in listing.stdout.splitlines()[1]


def test_with_write_only_credentials_an_unconfirmed_manifest_keeps_both_objects(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    for fault in DENY_READS:
        proxy.add(fault)
    injected = proxy.add(Fault("PUT", rf"/amb/{dbname}/.*\.manifest\.json", "applied-500"))

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname))

    assert injected.hits and result.returncode == 1
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert "probably complete but unconfirmed" in failed and "pgbackup list" in failed, failed
    assert set(_objects(bucket, dbname)) == {"dump", "manifest"}, "nothing was deleted"


COMPLETE = r"\.sql\.gz\?uploadId="


def _lost_completion(proxy: FaultProxy, dbname: str, action: str, strict: bool) -> Fault:
    """The first completion is applied but its answer lost; with ``strict``, the retry gets
    the 412 a store that enforces If-None-Match gives (moto lets the retry through)."""
    fault = proxy.add(Fault("POST", rf"/amb/{dbname}/.*{COMPLETE}", action))
    if strict:
        proxy.add(Fault("POST", rf"/amb/{dbname}/.*{COMPLETE}", "answer", status=412, code="PreconditionFailed"))
    return fault


@pytest.mark.parametrize(
    ("action", "strict"),
    [("applied-500", False), ("applied-reset", False), ("applied-500", True), ("applied-reset", True)],
)
def test_a_completion_whose_answer_was_lost_is_confirmed_by_the_run_id(
    action: str, strict: bool, pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    fault = _lost_completion(proxy, dbname, action, strict)

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname))

    assert fault.hits and result.returncode == 0, result.stdout + result.stderr
    objects = _objects(bucket, dbname)
    assert set(objects) == {"dump", "manifest"}
    head = bucket.server.client().head_object(Bucket=bucket.name, Key=objects["dump"])
    assert head["Metadata"]["pgbackup-run-id"] == manifest(bucket.get(objects["manifest"]))["run_id"]


def test_with_write_only_credentials_an_unconfirmed_completion_keeps_the_dump(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    for fault in DENY_READS:
        proxy.add(fault)
    injected = _lost_completion(proxy, dbname, "applied-500", strict=True)

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname))

    assert injected.hits and result.returncode == 1
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert "probably completed" in failed and "cannot read it back" in failed, failed
    assert set(_objects(bucket, dbname)) == {"dump"}, "the dump stays; no manifest vouches for what is unconfirmed"


def test_another_runs_object_in_the_way_is_neither_overwritten_nor_deleted(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """A manifest that appears between our check and our write (another run at the same
    second) makes this database fail; both runs' objects are left alone."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    theirs = b'{"tool": "pgbackup", "run_id": "another-run"}'

    class Racing(Fault):
        def matches(self, method: str, path: str) -> bool:
            if super().matches(method, path):
                bucket.put(path.split(f"/{bucket.name}/", 1)[1], theirs)  # the other run wins the race
                return True
            return False

    proxy.add(Racing("PUT", rf"/amb/{dbname}/.*\.manifest\.json", "forward"))

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname))

    assert result.returncode == 1
    assert "was written by another run meanwhile" in result.stdout or "exists already" in result.stdout
    objects = _objects(bucket, dbname)
    assert bucket.get(objects["manifest"]) == theirs and "dump" in objects, "nothing was overwritten or deleted"
