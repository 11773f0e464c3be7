"""A history that mixes gzip and zstd backups (the setting changed between runs) is one
history: list shows both as complete, restore and verify read each in its own format,
retention counts and deletes across them, and the zstd tool reads a stored object by hand,
as docs/restore.md's manual restore says. Real PostgreSQL 18, real S3 servers, the real command.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_mixed_formats.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from devenv.postgres import Cluster

from ..kit.helpers import VARYING, Bucket, comparable_dump, make_sample, manifest, run_pgbackup, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def listing(env: dict[str, str]) -> list[dict[str, object]]:
    result = run_pgbackup(env, "list", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return list(json.loads(result.stdout))


def test_gzip_and_zstd_backups_restore_verify_and_prune_as_one_history(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=20_000)
    env = bucket.job_env(pg18, bindir18, "mix", BACKUP_DATABASES=dbname)
    first = run_pgbackup(env)
    assert first.returncode == 0, first.stdout
    wait_for_next_second()
    second = run_pgbackup({**env, "BACKUP_COMPRESSION": "zstd"})
    assert second.returncode == 0, second.stdout

    rows = [r for r in listing(env) if r["kind"] == "database"]
    assert [(r["status"], r["compression"], str(r["key"]).rsplit(".", 2)[-2:]) for r in rows] == [
        ("complete", "zstd", ["sql", "zst"]),
        ("complete", "gzip", ["sql", "gz"]),
    ]
    globals_keys = [k for k in bucket.keys("mix/_globals/") if not k.endswith(".json")]
    assert sorted(k.rsplit(".", 1)[1] for k in globals_keys) == ["gz", "zst"]
    zst_key = str(rows[0]["key"])
    facts = manifest(bucket.get(zst_key.replace(".sql.zst", ".manifest.json")))
    assert (facts["format"], facts["compression"], facts["compression_level"]) == ("plain", "zstd", 3)
    assert facts["compression_engine"]["library"] == "zstd"

    zstd = shutil.which("zstd")
    assert zstd, "zstd is not installed; scripts/test installs it"
    by_hand = subprocess.run([zstd, "-dc"], input=bucket.get(zst_key), check=True, capture_output=True).stdout
    assert [line for line in by_hand.decode().splitlines() if not line.startswith(VARYING)] == comparable_dump(
        pg18, bindir18, dbname
    )

    verified = run_pgbackup(env, "verify")
    assert verified.returncode == 0, verified.stdout
    assert f"{rows[0]['timestamp']}" in verified.stdout

    for backup, target in ((rows[0], f"{dbname}_from_zstd"), (rows[1], f"{dbname}_from_gzip")):
        restored = run_pgbackup(
            env, "restore", "--database", dbname, "--at", str(backup["timestamp"]), "--target", target, "--create"
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert pg18.sql("SELECT count(*) FROM shop.orders", target) == pg18.sql(
            "SELECT count(*) FROM shop.orders", dbname
        )
        assert comparable_dump(pg18, bindir18, target) == comparable_dump(pg18, bindir18, dbname)

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")
    assert pruned.returncode == 0, pruned.stdout
    left = [r for r in listing(env) if r["kind"] == "database"]
    assert [(r["status"], r["compression"]) for r in left] == [("complete", "zstd")]
    assert bucket.keys(f"mix/{dbname}/") == sorted([zst_key, zst_key.replace(".sql.zst", ".manifest.json")])
