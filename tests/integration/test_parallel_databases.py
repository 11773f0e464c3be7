"""Databases in parallel (BACKUP_PARALLEL_DATABASES) against real PostgreSQL and real S3: no
more streams at once than asked, one database's failure touches no other, one timestamp for
the run, SIGTERM stops every stream, and the thread settings reach the compressor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backup_job.core import cpus
from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..faults.test_interruption import assert_stopped_cleanly, stalling_pg_dump, started_run, terminate_when
from ..kit.helpers import Bucket, manifest, run_pgbackup, table_locked


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def make_databases(cluster: Cluster, names: list[str], rows: int = 30000) -> None:
    for name in names:
        cluster.sql(f"CREATE DATABASE {name}")
        cluster.sql(f"CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, {rows}) g", name)


def events(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def most_at_once(output: str) -> int:
    """The most backups running at one time, from the order of their log lines."""
    running, most = 0, 0
    for event in events(output):
        if event.get("event") == "backup.started":
            running += 1
            most = max(most, running)
        elif event.get("event") in ("backup.finished", "backup.failed"):
            running -= 1
    return most


def test_parallel_databases_run_at_once_and_fail_alone(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    names = [f"{dbname}_{n}" for n in range(6)]
    make_databases(pg18, names)
    locked = names[2]
    with table_locked(pg18, locked, "t"):
        result = run_pgbackup(
            bucket.job_env(
                pg18,
                bindir18,
                "par",
                BACKUP_DATABASES=f"{dbname}_*",
                BACKUP_PARALLEL_DATABASES="3",
                BACKUP_LOCK_WAIT_TIMEOUT="1",
                LOG_FORMAT="json",
            )
        )
    assert result.returncode == 1, result.stdout
    assert most_at_once(result.stdout) == 3, "three backups at once, never more"
    failed = [e for e in events(result.stdout) if e.get("event") == "backup.failed"]
    assert [e["database"] for e in failed] == [locked]
    summary = next(e for e in events(result.stdout) if e.get("event") == "run.finished")
    assert summary["ok"] == 6 and summary["failed"] == 1  # five databases and the globals
    manifests = [k for k in bucket.keys("par/") if k.endswith(".manifest.json")]
    assert len(manifests) == 6 and not any(f"/{locked}/" in k for k in manifests)
    assert len({k.rsplit("/", 1)[1] for k in manifests}) == 1, "one run, one timestamp"
    for key in manifests:
        facts = manifest(bucket.get(key))
        if facts["kind"] == "database":
            assert facts["row_counts"] == {"public.t": 30000}
    assert bucket.open_uploads() == []


def test_one_database_at_a_time_when_asked(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> None:
    names = [f"{dbname}_{n}" for n in range(3)]
    make_databases(pg18, names, rows=1000)
    result = run_pgbackup(
        bucket.job_env(
            pg18, bindir18, "one", BACKUP_DATABASES=f"{dbname}_*", BACKUP_PARALLEL_DATABASES="1", LOG_FORMAT="json"
        )
    )
    assert result.returncode == 0, result.stdout
    assert most_at_once(result.stdout) == 1


def test_sigterm_stops_every_database_running_at_once(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    names = [f"{dbname}_{n}" for n in range(2)]
    for name in names:
        pg18.sql(f"CREATE DATABASE {name}")
        pg18.sql(
            "CREATE TABLE t AS SELECT g, md5(g::text) || md5(random()::text) AS f FROM generate_series(1, 300000) g",
            name,
        )
    bindir = stalling_pg_dump(tmp_path / "bin", bindir18, after_bytes=15_000_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(
        bucket.job_env(
            pg18,
            bindir,
            "t",
            BACKUP_DATABASES=f"{dbname}_*",
            BACKUP_PART_SIZE_MB="5",
            BACKUP_GLOBALS="false",
            BACKUP_PARALLEL_DATABASES="2",
        )
    )
    proc, seen, reader = started_run(env, tmp_path)
    code, survivors = terminate_when(
        lambda: wait_for(lambda: len(bucket.open_uploads()) == 2, timeout=60, what="both databases uploading"),
        proc,
        bindir,
    )
    assert_stopped_cleanly(code, survivors, reader, seen, bucket)


def test_threads_follow_the_setting_and_the_cgroup_quota(
    pg18: Cluster,
    bindir18: Path,
    s3server: object,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run in-process, so the cgroup files can be a fixture: a 3-CPU quota on an 8-CPU mask
    gives one stream 3 threads; BACKUP_COMPRESSION_THREADS overrides it."""
    from backup_job.commands.run import run
    from backup_job.core.settings import load_settings

    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 150000) g", dbname)
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text("300000 100000\n")
    own = tmp_path / "cgroup-of-self"
    own.write_text("0::/\n")
    monkeypatch.setattr(cpus, "CGROUP_ROOT", root)
    monkeypatch.setattr(cpus, "PROC_SELF_CGROUP", own)
    monkeypatch.setattr(cpus, "affinity", lambda: 8)
    for key in [k for k in os.environ if k.startswith(("PG", "AWS_", "BACKUP_"))]:
        monkeypatch.delenv(key)
    for prefix, extra, threads in (("quota", {}, 3), ("fixed", {"BACKUP_COMPRESSION_THREADS": "5"}, 5)):
        for key, value in bucket.job_env(
            pg18, bindir18, prefix, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false", **extra
        ).items():
            monkeypatch.setenv(key, value)
        result = run(load_settings(dotenv_path=tmp_path / "none"))
        assert result.ok, result.failure_summary()
        [key] = [k for k in bucket.keys(f"{prefix}/") if k.endswith(".manifest.json")]
        assert manifest(bucket.get(key))["compression_engine"] == {"library": "isal", "level": 2, "threads": threads}
