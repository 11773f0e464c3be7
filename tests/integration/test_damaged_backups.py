"""A damaged newest backup is reported by name, never silently replaced by an older one; and
what this version does not understand (a newer format) is never deleted."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devenv.postgres import Cluster

from ..kit.helpers import Bucket, job_env, run_pgbackup, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def _two_backups(env: dict[str, str], pg: Cluster, dbname: str) -> None:
    pg.sql(f"CREATE DATABASE {dbname}")
    pg.sql("CREATE TABLE v (n int); INSERT INTO v VALUES (1)", dbname)
    assert run_pgbackup(env).returncode == 0
    pg.sql("UPDATE v SET n = 2", dbname)
    wait_for_next_second()
    assert run_pgbackup(env).returncode == 0


def test_a_truncated_newest_backup_is_refused_by_name_on_s3(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    env = bucket.job_env(
        pg18,
        bindir18,
        "dmg",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_TERMINATION_LOG=str(tmp_path / "term"),
    )
    _two_backups(env, pg18, dbname)
    older, newer = sorted(k for k in bucket.keys(f"dmg/{dbname}/") if k.endswith(".sql.gz"))
    stamp_old, stamp_new = (k.split("/")[-1].removesuffix(".sql.gz") for k in (older, newer))
    bucket.put(newer, bucket.get(newer)[:-10])  # truncated in the bucket

    listing = run_pgbackup(env, "list", "--database", dbname)
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    verified = run_pgbackup(env, "verify", "--database", dbname)
    verify_told = (tmp_path / "term").read_text()  # each command leaves its own termination message
    chosen = run_pgbackup(
        env, "restore", "--database", dbname, "--target", f"{dbname}_old", "--create", "--at", stamp_old
    )

    newest_row = listing.stdout.splitlines()[1]
    assert stamp_new in newest_row and "DAMAGED: dump object has" in newest_row
    assert restored.returncode == 1 and len(restored.stdout.strip().splitlines()) == 1
    assert f"from {stamp_new} is DAMAGED" in restored.stdout and f"--at {stamp_old}" in restored.stdout
    assert pg18.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(f"{dbname}_r",)) == []
    assert verified.returncode == 1 and f"({stamp_new}) is DAMAGED" in verified.stdout
    assert "0 of 1 backups verified" in verify_told
    assert chosen.returncode == 0, chosen.stdout
    assert f'"timestamp":"{stamp_old}"' in (tmp_path / "term").read_text(), "the restore names the backup it loaded"
    assert pg18.sql("SELECT n FROM v", f"{dbname}_old") == [(1,)]


def test_a_missing_dump_is_damage_not_a_reason_to_fall_back(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(env, pg18, dbname)
    newest = max((tmp_path / "b" / dbname).glob("*.sql.gz"))
    newest.unlink()

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    verified = run_pgbackup(env, "verify", "--database", dbname)

    assert restored.returncode == 1 and "is DAMAGED: its dump object is missing" in restored.stdout
    assert verified.returncode == 1 and "its dump object is missing" in verified.stdout


def _age(path: Path, days: float) -> None:
    moment = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    os.utime(path, (moment, moment))


def test_retention_never_deletes_damaged_or_unknown_backups(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(env, pg18, dbname)
    folder = tmp_path / "b" / dbname
    older, newer = sorted(folder.glob("*.sql.gz"))
    newer.write_bytes(newer.read_bytes()[:-5])  # damaged, and the newest
    # What a newer pgbackup wrote: a zstd dump, and a manifest of a newer format.
    old_stamp = "20200101T000000Z"
    (folder / f"{old_stamp}.sql.zst").write_bytes(b"\x28\xb5\x2f\xfd not ours to judge")
    (folder / f"{old_stamp}.manifest.json").write_text(json.dumps({"tool": "pgbackup", "format_version": 99}))
    for path in folder.glob(f"{old_stamp}.*"):
        _age(path, 30)  # far beyond the leftover age (aging today's objects would make them suspect)

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")
    listing = run_pgbackup(env, "list", "--database", dbname)

    assert pruned.returncode == 0, pruned.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            older.name,
            older.name.replace(".sql.gz", ".manifest.json"),
            newer.name,
            newer.name.replace(".sql.gz", ".manifest.json"),
            f"{old_stamp}.sql.zst",
            f"{old_stamp}.manifest.json",
        ]
    ), "the newest complete backup stays, and nothing damaged or unknown is deleted"
    [warning] = [line for line in pruned.stdout.splitlines() if "WARNING" in line]
    assert "DAMAGED" in warning and "rm -- " in warning and str(newer) in warning.split("rm -- ", 1)[1]
    rows = listing.stdout.splitlines()
    assert any(old_stamp in row and "unknown:" in row for row in rows), listing.stdout
    assert any("DAMAGED" in row for row in rows)
