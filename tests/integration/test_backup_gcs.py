"""``gs://`` destinations end to end: the real CLI against fake-gcs-server and PostgreSQL 18.

One database is backed up twice, listed, verified, restored under another name and pruned to
the newest backup, all through ``STORAGE_EMULATOR_HOST`` (the library's own variable, which
also makes its credentials anonymous). The conformance suite
(test_storage_conformance.py) holds the backend to the storage promises, faults included;
here the commands are held to them. Bad input is one line each, exit non-zero, no traceback:
a bucket name GCS refuses, a bucket that does not exist, credentials that cannot be loaded,
and credentials GCS refuses (the fault proxy answers 403 in front of the emulator).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from devenv.fakegcs import FakeGcsServer
from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster

from ..kit.helpers import comparable_dump, job_env, make_sample, run_pgbackup, wait_for_next_second


def _bucket(fake_gcs: FakeGcsServer) -> str:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    fake_gcs.client().create_bucket(name)
    return name


def _keys(fake_gcs: FakeGcsServer, bucket: str) -> list[str]:
    return sorted(blob.name for blob in fake_gcs.client().list_blobs(bucket))


def test_backup_list_verify_restore_and_prune_on_gcs(
    pg18: Cluster, bindir18: Path, dbname: str, fake_gcs: FakeGcsServer
) -> None:
    bucket = _bucket(fake_gcs)
    make_sample(pg18, dbname, rows=2000)
    env = {
        **fake_gcs.env(),
        **job_env(pg18, f"gs://{bucket}/prod", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"),
    }

    first = run_pgbackup(env)
    assert first.returncode == 0, first.stdout + first.stderr
    wait_for_next_second()
    second = run_pgbackup(env)
    assert second.returncode == 0, second.stdout + second.stderr
    keys = _keys(fake_gcs, bucket)
    assert len(keys) == 4 and all(key.startswith(f"prod/{dbname}/") for key in keys), keys

    listed = run_pgbackup(env, "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert dbname in listed.stdout

    verified = run_pgbackup(env, "verify", "--database", dbname)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "1 of 1 backups verified" in verified.stdout.splitlines()[-1]

    copy = f"{dbname}_copy"
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "sha256 verified" in restored.stdout
    assert comparable_dump(pg18, bindir18, copy) == comparable_dump(pg18, bindir18, dbname)

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    left = _keys(fake_gcs, bucket)
    assert len(left) == 2 and set(left) < set(keys) and max(keys) in left, left


def _one_line_failure(env: dict[str, str], *args: str) -> str:
    result = run_pgbackup(env, *args)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "ERROR" in line or "error" in line]
    assert len(errors) == 1, output
    return errors[0]


def test_bad_gcs_destinations_and_credentials_are_one_line_each(
    pg18: Cluster, bindir18: Path, fake_gcs: FakeGcsServer, tmp_path: Path
) -> None:
    def env(url: str, **extra: str) -> dict[str, str]:
        return {**fake_gcs.env(), **job_env(pg18, url, bindir18, **extra)}

    assert "does not name a valid GCS bucket" in _one_line_failure(env("gs://Bad_Bucket/prod"), "list")
    assert "the bucket gs://no-such-bucket-zz does not exist" in _one_line_failure(
        env("gs://no-such-bucket-zz/prod"), "list"
    )

    bucket = _bucket(fake_gcs)
    unreadable = {**env(f"gs://{bucket}/prod"), "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent.json")}
    del unreadable["STORAGE_EMULATOR_HOST"]
    assert "no Google credentials" in _one_line_failure(unreadable, "list")

    with FaultProxy(fake_gcs.endpoint) as proxy:
        proxy.add(Fault("*", ".", "deny", times=None))
        denied = _one_line_failure({**env(f"gs://{bucket}/prod"), "STORAGE_EMULATOR_HOST": proxy.endpoint}, "list")
    assert "may not list" in denied and "storage.objects.list" in denied and "docs/gcs.md#least-privilege" in denied
