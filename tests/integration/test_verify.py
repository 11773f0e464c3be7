"""Acceptance tests of ``pgbackup verify`` (the restore drill) against real PostgreSQL 18 and
a real S3 server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from devenv.postgres import Cluster, free_port
from devenv.wait import wait_for

from ..kit.helpers import _SCRUB_PREFIXES, ROOT, Bucket, fake_tool, make_sample, run_pgbackup, signed

SCRATCH = "SELECT datname FROM pg_database WHERE datname LIKE 'pgbackup_verify_%'"


def _backup(bucket: Bucket, pg: Cluster, bindir: Path, *databases: str) -> None:
    result = run_pgbackup(bucket.job_env(pg, bindir, "prod", BACKUP_DATABASES=",".join(databases)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_verify_restores_each_database_and_matches_row_counts(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, f"{dbname}_a", rows=30_000)
    make_sample(pg18, f"{dbname}_b", rows=10)
    pg18.sql(
        "CREATE TABLE parted (id int, k text) PARTITION BY LIST (k);"
        " CREATE TABLE parted_x PARTITION OF parted FOR VALUES IN ('x');"
        " CREATE TABLE parted_y PARTITION OF parted FOR VALUES IN ('y');"
        " INSERT INTO parted SELECT g, CASE WHEN g % 3 = 0 THEN 'x' ELSE 'y' END FROM generate_series(1, 900) g;"
        ' CREATE TABLE "Odd ""Name"" 1" (v text); INSERT INTO "Odd ""Name"" 1" VALUES (E\'a\\nb\'), (\'\\.\')',
        f"{dbname}_a",
    )
    _backup(bucket, pg18, bindir18, f"{dbname}_a", f"{dbname}_b")
    facts = json.loads(bucket.get(next(k for k in bucket.keys(f"prod/{dbname}_a/") if k.endswith(".json"))))
    assert facts["row_counts"] == {
        "public.bulk": 30_000,
        "shop.orders": 3,
        "public.parted_x": 300,
        "public.parted_y": 600,
        'public."Odd ""Name"" 1"': 2,
    }

    result = run_pgbackup(bucket.job_env(pg18, bindir18, "prod"), "verify")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"verify of '{dbname}_a' (backup" in result.stdout
    assert "5 tables with 30905 rows match" in result.stdout
    assert "verify: 3 of 3 backups verified" in result.stdout.splitlines()[-1]
    assert pg18.sql(SCRATCH) == []


def test_verify_fails_on_wrong_row_counts_and_on_load_errors(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    counted, broken = f"{dbname}_counted", f"{dbname}_broken"
    make_sample(pg18, counted, rows=100)
    pg18.sql(f"CREATE DATABASE {broken}")
    pg18.sql(f"CREATE ROLE {dbname}_gone")
    pg18.sql(f"CREATE TABLE t (x int); ALTER TABLE t OWNER TO {dbname}_gone", broken)
    _backup(bucket, pg18, bindir18, counted, broken)
    pg18.sql(f"DROP DATABASE {broken}")
    pg18.sql(f"DROP ROLE {dbname}_gone")
    manifest_key = next(k for k in bucket.keys(f"prod/{counted}/") if k.endswith(".json"))
    facts = json.loads(bucket.get(manifest_key))
    facts["row_counts"]["public.bulk"] = 101  # as if the restore had lost a row
    bucket.put(manifest_key, signed(facts))
    env = bucket.job_env(pg18, bindir18, "prod", BACKUP_TERMINATION_LOG=str(ROOT / "tests" / f".{dbname}.term"))

    try:
        result = run_pgbackup(env, "verify")
        termination = (ROOT / "tests" / f".{dbname}.term").read_text()
    finally:
        (ROOT / "tests" / f".{dbname}.term").unlink(missing_ok=True)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "row counts differ: public.bulk: 100 rows restored, 101 dumped" in result.stdout
    assert f'role "{dbname}_gone" does not exist' in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert "verify: 1 of 3 backups verified; FAILED:" in summary and counted in summary and broken in summary
    told = json.loads(termination)
    assert told["summary"].startswith("verify: 1 of 3 backups verified; FAILED:") and told["ok"] is False
    assert told["command"] == "verify" and told["databases"] == {"ok": 1, "failed": 2}
    assert pg18.sql(SCRATCH) == []


def test_sigterm_during_a_drill_drops_the_scratch_database(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    make_sample(pg18, dbname, rows=100_000)
    _backup(bucket, pg18, bindir18, dbname)
    # psql gets the first megabyte of the load and then nothing: the drill is surely still
    # running when SIGTERM comes, however fast the machine.
    stalling = fake_tool(tmp_path / "bin", bindir18, "psql", '{ head -c 1000000; sleep 600; } | "$REAL" "$@"')
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(bucket.job_env(pg18, stalling, "prod"))
    process = subprocess.Popen(
        [sys.executable, "-m", "backup_job", "verify", "--database", dbname],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT / "tests",
    )
    try:
        wait_for(lambda: pg18.sql(SCRATCH) != [], timeout=60, what="the scratch database")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1, output
    assert "stopped by SIGTERM" in output
    assert pg18.sql(SCRATCH) == []


def test_verify_on_a_separate_scratch_server(
    pg18: Cluster, fresh_pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=1_000)
    _backup(bucket, pg18, bindir18, dbname)
    scratch = fresh_pg18.env()
    env = bucket.job_env(pg18, bindir18, "prod")
    env.update({"PGHOST": "127.0.0.1", "PGPORT": str(free_port()), "PGPASSWORD": "not-the-scratch-password"})
    env.update({f"BACKUP_VERIFY_{name}": scratch[name] for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD")})

    result = run_pgbackup(env, "verify", "--database", dbname)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on the scratch server at 127.0.0.1:{scratch['PGPORT']}" in result.stdout
    assert "1 tables" not in result.stdout and "2 tables with 1003 rows match" in result.stdout
    assert fresh_pg18.sql(SCRATCH) == [] and pg18.sql(SCRATCH) == []
    assert scratch["PGPASSWORD"] not in result.stdout
