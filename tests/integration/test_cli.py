"""The command's contract: exit codes, one clear line per failure, log formats, file:// runs."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from devenv.postgres import Cluster, free_port

from ..kit.helpers import job_env, manifest, run_pgbackup, table_locked
from .test_backup_s3 import killing_pg_dump


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "BACKUP_DESTINATION is not set"),
        ({"BACKUP_DESTINATION": "ftp://x"}, "must start with s3://, gs://, azure:// or file://"),
        (
            {"BACKUP_DESTINATION": "file:///tmp/x", "BACKUP_COMPRESSION_LEVEL": "0"},
            "BACKUP_COMPRESSION_LEVEL='0' is out of range",
        ),
        (
            {"BACKUP_DESTINATION": "file:///tmp/x", "PGPASSWORD": "hunter2-secret", "PGPASSWORD_FILE": "/etc/hostname"},
            "both PGPASSWORD and PGPASSWORD_FILE are set",
        ),
        # urllib3 refuses a zero timeout only when the S3 client is built: an unexpected ValueError, exit 1
        (
            {"BACKUP_DESTINATION": "s3://my-bucket", "BACKUP_S3_READ_TIMEOUT": "0"},
            "BACKUP_S3_READ_TIMEOUT='0' must be at least 1 second",
        ),
        (
            {"BACKUP_DESTINATION": "s3://my-bucket", "BACKUP_S3_CONNECT_TIMEOUT": "0s"},
            "BACKUP_S3_CONNECT_TIMEOUT='0s' must be at least 1 second",
        ),
    ],
)
@pytest.mark.parametrize("command", ["run", "list"])
def test_configuration_errors_exit_2_with_one_line(env: dict[str, str], expected: str, command: str) -> None:
    result = run_pgbackup(env, command)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "hunter2-secret" not in result.stderr


def test_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BACKUP_DESTINATION=gopher://nope\n")
    result = run_pgbackup({}, cwd=tmp_path)
    assert result.returncode == 2 and "gopher://nope" in result.stderr


def test_version_and_usage() -> None:
    assert run_pgbackup({}, "--version").stdout.startswith("pgbackup ")
    bad = run_pgbackup({}, "explode")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_unreachable_server_fails_the_run_with_one_line(bindir18: Path, tmp_path: Path) -> None:
    env = {
        "BACKUP_DESTINATION": f"file://{tmp_path}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),
        "PGUSER": "postgres",
        "BACKUP_PG_BINDIR": str(bindir18),
    }
    result = run_pgbackup(env)
    assert result.returncode == 1
    [line] = [ln for ln in result.stdout.splitlines() if "ERROR" in ln]
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{env['PGPORT']}" in line and "Connection refused" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_wrong_password_fails_the_run(pg18: Cluster, bindir18: Path, tmp_path: Path) -> None:
    env = job_env(pg18, f"file://{tmp_path}", bindir18, PGPASSWORD="not-the-password")
    result = run_pgbackup(env)
    assert result.returncode == 1
    assert 'password authentication failed for user "postgres"' in result.stdout
    assert "not-the-password" not in result.stdout + result.stderr


def test_failure_summary_goes_to_the_termination_log(
    pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    log = tmp_path / "termination-log"
    env = job_env(
        pg18,
        f"file://{tmp_path}/b",
        bindir18,
        BACKUP_DATABASES=f"{dbname},{dbname}_gone",
        BACKUP_TERMINATION_LOG=str(log),
    )
    assert run_pgbackup(env).returncode == 1
    assert log.read_text().count("\n") == 1  # one line
    message = json.loads(log.read_text())
    assert message["summary"] == f"1 of 3 backups failed: '{dbname}_gone': no such database; check BACKUP_DATABASES"
    assert (message["command"], message["ok"], message["databases"], message["failed"]) == (
        "run",
        False,
        {"ok": 2, "failed": 1},
        [f"{dbname}_gone"],
    )
    assert message["bytes"] > 0 and message["seconds"] >= 0 and message["timestamp"]
    unreachable = run_pgbackup({**env, "PGPORT": str(free_port())})
    message = json.loads(log.read_text())
    assert unreachable.returncode == 1 and message["summary"].startswith("cannot connect to PostgreSQL at 127.0.0.1:")
    assert message["ok"] is False and "databases" not in message  # nothing started: no counts to give
    # A destination of its own: the first run may have stored this database in this same second.
    env.update(BACKUP_DATABASES=dbname, BACKUP_DESTINATION=f"file://{tmp_path}/c")
    succeeded = run_pgbackup(env)
    assert succeeded.returncode == 0, succeeded.stdout + succeeded.stderr
    message = json.loads(log.read_text())  # success is written too: the operator's metrics read it
    assert message["ok"] is True and message["summary"].startswith("2 backups succeeded:")


def test_no_database_selected_is_a_failure(pg18: Cluster, bindir18: Path, tmp_path: Path) -> None:
    env = job_env(pg18, f"file://{tmp_path}", bindir18, BACKUP_DATABASES="nomatch_*")
    result = run_pgbackup(env)
    assert result.returncode == 1
    assert "no databases to back up" in result.stdout and "BACKUP_DATABASES" in result.stdout


def test_an_unknown_variable_is_warned_about_once_naming_the_closest_setting(
    pg18: Cluster, bindir18: Path, tmp_path: Path
) -> None:
    env = job_env(pg18, f"file://{tmp_path}", bindir18, BACKUP_DATABASES="nomatch_*", BACKUP_RETENTON="last=7")
    result = run_pgbackup(env)
    output = result.stderr + result.stdout
    [warning] = [line for line in output.splitlines() if "BACKUP_RETENTON" in line]
    assert "did you mean BACKUP_RETENTION?" in warning and warning in result.stderr
    assert "last=7" not in output


def test_json_logs_one_object_per_line(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = job_env(
        pg18, f"file://{tmp_path}", bindir18, BACKUP_DATABASES=dbname, LOG_FORMAT="json", BACKUP_GLOBALS="false"
    )
    result = run_pgbackup(env)
    assert result.returncode == 0, result.stdout
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all({"time", "level", "message"} <= set(e) for e in events)
    finished = [e for e in events if e.get("event") == "backup.finished"]
    assert len(finished) == 1 and finished[0]["database"] == dbname and finished[0]["compressed_bytes"] > 0
    assert events[-1]["event"] == "run.finished" and events[-1]["ok"] == 1


def test_file_destination_round_trip_and_layout(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n", dbname)
    target = tmp_path / "backups"
    target.mkdir()  # the destination's parent must exist; pgbackup creates only the last part
    result = run_pgbackup(
        job_env(pg18, f"file://{target}/daily", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    )
    assert result.returncode == 0, result.stdout
    files = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    assert [p.parent for p in files] == [Path(f"daily/{dbname}")] * 2
    dump = next(target.rglob("*.sql.gz"))
    assert "COPY public.t (n) FROM stdin;" in gzip.decompress(dump.read_bytes()).decode()
    facts = manifest(next(target.rglob("*.manifest.json")).read_bytes())
    assert facts["compressed_bytes"] == dump.stat().st_size


def test_file_destination_leaves_nothing_when_pg_dump_is_killed(
    pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g", dbname)
    bindir = killing_pg_dump(tmp_path / "bin", bindir18, after_bytes=2_000_000)
    target = tmp_path / "backups"
    result = run_pgbackup(job_env(pg18, f"file://{target}", bindir, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"))
    assert result.returncode == 1 and "killed by signal 9" in result.stdout
    assert [p for p in target.rglob("*") if p.is_file()] == []


def test_lock_wait_timeout_fails_instead_of_hanging(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE busy (n int)", dbname)
    with table_locked(pg18, dbname, "busy"):
        result = run_pgbackup(
            job_env(pg18, f"file://{tmp_path}", bindir18, BACKUP_DATABASES=dbname, BACKUP_LOCK_WAIT_TIMEOUT="1s")
        )
    assert result.returncode == 1
    assert re.search(
        rf"backup of '{dbname}' FAILED: pg_dump failed \(exit 1\): .*statement timeout"
        r" \(hint: a table lock was not granted within BACKUP_LOCK_WAIT_TIMEOUT \(1 s\)",
        result.stdout,
    ), result.stdout


def test_database_timeout_stops_a_stuck_dump(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE busy (n int)", dbname)
    with table_locked(pg18, dbname, "busy"):
        result = run_pgbackup(
            job_env(
                pg18,
                f"file://{tmp_path}",
                bindir18,
                BACKUP_DATABASES=dbname,
                BACKUP_LOCK_WAIT_TIMEOUT="0",
                BACKUP_DATABASE_TIMEOUT="2s",
                BACKUP_GLOBALS="false",
            )
        )
    assert result.returncode == 1
    assert "exceeded BACKUP_DATABASE_TIMEOUT (2 s)" in result.stdout
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
