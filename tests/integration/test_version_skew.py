"""Version skew with Debian's PostgreSQL 15: older servers dump fine, newer ones fail clearly."""

from __future__ import annotations

import gzip
from pathlib import Path

from devenv.postgres import Cluster

from ..kit.helpers import Bucket, comparable_dump, manifest, restore, run_pgbackup


def test_pg_dump_18_backs_up_a_postgresql_15_server(
    pg15: Cluster, pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    assert pg15.version().startswith("15.")
    pg15.sql(f"CREATE DATABASE {dbname}")
    pg15.sql("CREATE TABLE items AS SELECT g AS id, 'item ' || g AS name FROM generate_series(1, 5000) g", dbname)

    result = run_pgbackup(bucket.job_env(pg15, bindir18, "v15", BACKUP_DATABASES=dbname))

    assert result.returncode == 0, result.stdout + result.stderr
    [dump_key] = [k for k in bucket.keys() if k.endswith(".sql.gz") and "/_globals/" not in k]
    facts = manifest(bucket.get(dump_key.replace(".sql.gz", ".manifest.json")))
    assert facts["server_version"].startswith("15.") and facts["pg_dump_version"].startswith("18.")
    data = bucket.get(dump_key)
    assert "item 5000" in gzip.decompress(data).decode()
    # pg_dump 18 always writes `SET transaction_timeout`, which servers before 17 reject, so the
    # round trip goes where such dumps are meant to go: the same or a newer server.
    restore(pg18, bindir18, data, f"{dbname}_from15")
    assert comparable_dump(pg18, bindir18, f"{dbname}_from15") == comparable_dump(pg15, bindir18, dbname)


def test_older_pg_dump_against_a_newer_server_fails_up_front(
    pg18: Cluster, bindir15: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")

    result = run_pgbackup(bucket.job_env(pg18, bindir15, "skew", BACKUP_DATABASES=dbname))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stdout
    assert "pg_dump 15." in errors[0] and "cannot dump PostgreSQL 18." in errors[0]
    assert "use pg_dump 18 or newer" in errors[0] and "BACKUP_PG_BINDIR" in errors[0]
    assert bucket.keys() == [] and bucket.open_uploads() == []
