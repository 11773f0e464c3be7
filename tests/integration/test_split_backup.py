"""Acceptance tests of split backups (``BACKUP_FORMAT=split``) against real PostgreSQL and S3:
the objects, the manifest, and the round trip."""

from __future__ import annotations

from pathlib import Path

from devenv.postgres import Cluster

from ..kit.helpers import Bucket, manifest, run_pgbackup
from .test_backup_s3 import make_sample


def test_split_backup_stores_every_table_as_its_own_object(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=5000)
    env = bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname, BACKUP_FORMAT="split", BACKUP_DUMP_JOBS="2")
    result = run_pgbackup(env)
    assert result.returncode == 0, result.stdout + result.stderr
    keys = bucket.keys()
    print("\n".join(keys))
    facts = manifest(bucket.get(next(k for k in keys if k.endswith(".manifest.json") and dbname in k)))
    print(facts["objects"], facts["row_counts"])
    assert facts["format"] == "split"
    assert facts["row_counts"] == {"public.bulk": 5000, "shop.orders": 3}
