"""Small holes through which a secret leaked or a failure went quiet, each shut and proved
against real PostgreSQL, a real S3 server and real child processes.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_small_holes.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import Bucket, fake_tool, job_env, run_pgbackup
from ..unit.test_small_holes import SECRET


def _env_dump(directory: Path, bindir18: Path, tool: str) -> Path:
    """A bin directory whose ``tool`` writes its environment to ``<directory>/<tool>.env`` first."""
    return fake_tool(directory, bindir18, tool, f'env > "{directory}/{tool}.env"\nexec "$REAL" "$@"')


def test_children_get_their_connection_and_nothing_of_the_storage_side(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT 1 AS n", dbname)
    dump_bin = _env_dump(tmp_path / "dump", bindir18, "pg_dump")
    env = bucket.job_env(
        pg18,
        dump_bin,
        "leak",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_VERIFY_PGPASSWORD="scratch-secret",
    )
    (tmp_path / "aws-secret").write_text(env.pop("AWS_SECRET_ACCESS_KEY"))
    env["AWS_SECRET_ACCESS_KEY_FILE"] = str(tmp_path / "aws-secret")
    assert run_pgbackup(env).returncode == 0

    psql_bin = _env_dump(tmp_path / "psql", bindir18, "psql")
    restored = run_pgbackup(
        {**env, "BACKUP_PG_BINDIR": str(psql_bin)},
        "restore",
        "--database",
        dbname,
        "--target",
        f"{dbname}_copy",
        "--create",
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr

    aws_secret = (tmp_path / "aws-secret").read_text()
    for seen in (dump_bin / "pg_dump.env", psql_bin / "psql.env"):
        names = {line.split("=", 1)[0] for line in seen.read_text().splitlines() if "=" in line}
        assert {"PGPASSWORD", "PGHOST", "PGDATABASE", "HOME", "PATH"} <= names, seen
        assert not {n for n in names if n.startswith(("AWS_", "BACKUP_", "LOG_"))}, (seen, names)
        assert aws_secret not in seen.read_text() and "scratch-secret" not in seen.read_text()


def test_json_run_log_redacts_an_escaped_secret(pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path) -> None:
    """End to end: the secret is also the name of a missing database, which the run reports."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = job_env(
        pg18,
        f"file://{tmp_path}/b",
        bindir18,
        BACKUP_DATABASES=f"{dbname},{SECRET}",
        BACKUP_GLOBALS="false",
        LOG_FORMAT="json",
        AWS_ACCESS_KEY_ID="AKIA",
        AWS_SECRET_ACCESS_KEY=SECRET,
    )
    result = run_pgbackup(env)
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(e.get("event") == "backup.failed" and e.get("database") == "***" for e in events)
    for leak in (SECRET, json.dumps(SECRET)[1:-1], repr(SECRET)[1:-1], "se\\cret", "se\\\\cret"):
        assert leak not in result.stdout, leak


def test_a_destination_whose_parent_is_missing_fails_instead_of_filling_the_root_disk(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    unmounted = tmp_path / "mnt" / "backups"  # /mnt/backups with nothing mounted at /mnt/backups
    result = run_pgbackup(job_env(pg18, f"file://{unmounted}/pg", bindir18, BACKUP_DATABASES=dbname))
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if "ERROR" in line]
    assert f"{unmounted} does not exist" in line and "is the volume mounted?" in line
    assert not (tmp_path / "mnt").exists(), "nothing was created"
    fresh = run_pgbackup(
        job_env(pg18, f"file://{tmp_path}/pg", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    )
    assert fresh.returncode == 0 and list((tmp_path / "pg" / dbname).glob("*.manifest.json")), (
        "the destination directory itself is still created when its parent exists"
    )


def test_databases_left_out_are_named_with_the_reason(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(f"CREATE DATABASE {dbname}_closed")
    pg18.sql(f"ALTER DATABASE {dbname}_closed ALLOW_CONNECTIONS false")
    try:
        result = run_pgbackup(
            job_env(
                pg18, f"file://{tmp_path}", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false", LOG_FORMAT="json"
            )
        )
        assert result.returncode == 0, result.stdout
        [skipped] = [json.loads(line) for line in result.stdout.splitlines() if '"run.skipped"' in line]
        assert skipped["level"] == "WARNING"
        assert skipped["skipped"][f"{dbname}_closed"] == "it does not allow connections (datallowconn = false)"
        assert skipped["skipped"]["template0"] == "a template database"

        named = run_pgbackup(
            job_env(pg18, f"file://{tmp_path}", bindir18, BACKUP_DATABASES=f"{dbname}_closed", BACKUP_GLOBALS="false")
        )
        assert named.returncode == 1
        assert f"backup of '{dbname}_closed' FAILED: cannot be dumped: it does not allow connections" in named.stdout
    finally:
        pg18.sql(f"ALTER DATABASE {dbname}_closed ALLOW_CONNECTIONS true")


def test_a_terminated_dump_reports_the_servers_reason(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 200000) g", dbname)
    flag = tmp_path / "terminated"
    # pg_dump stays in its COPY (its output pipe is full) until the test has terminated its backend.
    body = (
        f'set -o pipefail\n"$REAL" "$@" | {{ head -c 100000; for i in $(seq 600); do [ -f "{flag}" ] && break; '
        f"sleep 0.05; done; cat; }}"
    )
    bindir = fake_tool(tmp_path / "bin", bindir18, "pg_dump", body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(job_env(pg18, f"file://{tmp_path}/b", bindir, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"))
    proc = subprocess.Popen([sys.executable, "-m", "backup_job", "run"], env=env, stdout=subprocess.PIPE, text=True)
    try:

        def copying() -> list[tuple[object, ...]]:
            return pg18.sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY%%'", params=(dbname,)
            )

        wait_for(copying, timeout=60, what="pg_dump's COPY")
        pg18.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY%%'",
            params=(dbname,),
        )
        flag.touch()
        output, _ = proc.communicate(timeout=60)
    finally:
        flag.touch()
        proc.kill()
    assert proc.returncode == 1
    [failed] = [line for line in output.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    # libpq reports the server's FATAL when it reaches the client, else the closed connection
    said = failed.split("(the server said: ", 1)[-1]
    assert "Dumping the contents of table" in failed and "(the server said: " in failed, failed
    assert "terminating connection due to administrator command" in said or (
        "server closed the connection unexpectedly" in said and "terminated abnormally" in said
    ), failed


def test_a_failed_globals_backup_is_named_in_the_summary(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    bindir = fake_tool(tmp_path / "bin", bindir18, "pg_dumpall", 'echo "pg_dumpall: error: out of luck" >&2\nexit 1')
    result = run_pgbackup(job_env(pg18, f"file://{tmp_path}/b", bindir, BACKUP_DATABASES=f"{dbname},{dbname}_gone"))
    assert result.returncode == 1
    [summary] = [line for line in result.stdout.splitlines() if " FAILED: " in line and "ok," in line]
    assert f"2 failed ({dbname}_gone, (globals))" in summary, summary
