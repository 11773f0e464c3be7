"""``pgbackup schedule``: validation up front, then real backups under Supercronic.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_schedule.py."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import ROOT, fake_pg_dump, job_env, run_pgbackup


@pytest.fixture(scope="session")
def supercronic() -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), "supercronic"], stdout=subprocess.PIPE, text=True)
    assert built.returncode == 0, "scripts/tools-build supercronic failed"
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BACKUP_SCHEDULE": "every night"}, "BACKUP_SCHEDULE='every night': 'every night' has 2 fields"),
        ({"BACKUP_SCHEDULE": "* * * * 8"}, "day-of-week field: '8' is outside 0-6"),
        ({"BACKUP_CRONTAB": "/nonexistent/crontab"}, "the crontab /nonexistent/crontab cannot be read"),
        (
            {"BACKUP_SCHEDULE": "@daily", "BACKUP_RUN_ON_START": "perhaps"},
            "BACKUP_RUN_ON_START='perhaps' must be true or false",
        ),
        (
            {"BACKUP_SCHEDULE": "@daily", "BACKUP_VERIFY_SCHEDULE": "weekly"},
            "BACKUP_VERIFY_SCHEDULE='weekly': 'weekly' has 1 fields",
        ),
    ],
)
def test_bad_schedules_exit_2_before_anything_starts(
    env: dict[str, str], message: str, tmp_path: Path, supercronic: Path
) -> None:
    result = run_pgbackup(
        {"BACKUP_DESTINATION": f"file://{tmp_path}", "BACKUP_SUPERCRONIC": str(supercronic), **env}, "schedule"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_supercronic_path_that_is_no_program_is_one_line(tmp_path: Path) -> None:
    result = run_pgbackup(
        {
            "BACKUP_DESTINATION": f"file://{tmp_path}",
            "BACKUP_SCHEDULE": "@daily",
            "BACKUP_SUPERCRONIC": str(tmp_path / "missing"),
        },
        "schedule",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "BACKUP_SUPERCRONIC=" in line and "is not an executable file" in line


def run_schedule(env: dict[str, str], tmp_path: Path, until: Callable[[str], bool], what: str) -> tuple[int, str]:
    """Run ``pgbackup schedule`` until ``until(output)`` holds, then SIGTERM it: (exit code, output)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    full.update(env)
    full["PATH"] = f"{Path(sys.executable).parent}:{full['PATH']}"  # `pgbackup` for the crontab line
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backup_job", "schedule"],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            wait_for(lambda: until(log.read_text()), timeout=60, what=what)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
    return code, log.read_text()


def test_schedule_runs_real_backups_and_stops_cleanly_on_sigterm(
    pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str, supercronic: Path
) -> None:
    """SIGTERM lands while a scheduled backup is running: that backup finishes, then the schedule stops."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    target = tmp_path / "backups"
    slow = fake_pg_dump(tmp_path / "bin", bindir18, 'sleep 1.5\nexec "$REAL" "$@"')  # every run is in progress 1.5 s
    env = job_env(
        pg18,
        f"file://{target}",
        slow,
        BACKUP_DATABASES=dbname,
        BACKUP_SCHEDULE="*/2 * * * * * *",
        BACKUP_RUN_ON_START="true",
        BACKUP_SUPERCRONIC=str(supercronic),
        BACKUP_GLOBALS="false",
    )
    started, finished = f"backup of '{dbname}' started", f"backup of '{dbname}' finished"

    def mid_run_after_two_backups(text: str) -> bool:
        # Counted in the log, not the bucket: a manifest is written before its run logs "finished",
        # so two manifests and a run in progress can still be the second run, in its last moment.
        return text.count(finished) >= 2 and text.count(started) > text.count(finished)

    code, output = run_schedule(env, tmp_path, mid_run_after_two_backups, "a backup in progress after two finished")

    assert code == 0, output
    assert "BACKUP_RUN_ON_START: running one backup" in output
    lines = [line for line in output.splitlines() if finished in line]
    assert len(lines) >= 3 and all(line[:4].isdigit() and " INFO " in line for line in lines), (
        "the job's own log lines pass through Supercronic untouched"
    )
    assert output.count(started) == output.count(finished), "the run in progress at SIGTERM was let finish"
    assert len(list(target.glob(f"{dbname}/*.manifest.json"))) == len(lines), "and it left a complete backup"
    assert not list(target.rglob(".*partial*")), "a stop never leaves a partial backup"


def test_runs_never_overlap(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str, supercronic: Path) -> None:
    """A run that outlasts the interval makes Supercronic skip slots instead of starting a second run."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    slow = fake_pg_dump(tmp_path / "bin", bindir18, 'sleep 2.5\nexec "$REAL" "$@"')
    env = job_env(
        pg18,
        f"file://{tmp_path}/backups",
        slow,
        BACKUP_DATABASES=dbname,
        BACKUP_SCHEDULE="* * * * * * *",
        BACKUP_SUPERCRONIC=str(supercronic),
    )

    def two_runs_and_a_skipped_slot(text: str) -> bool:
        return len(re.findall(r" run \d{8}T\d{6}Z finished", text)) >= 2 and "still running" in text

    _, output = run_schedule(env, tmp_path, two_runs_and_a_skipped_slot, "two runs and a skipped slot")

    events = [line for line in output.splitlines() if re.search(r" run \d{8}T\d{6}Z (started|finished)", line)]
    kinds = ["started" if " started:" in line else "finished" for line in events]
    assert kinds[:4] == ["started", "finished", "started", "finished"], "\n".join(events)
    assert all(a != b for a, b in itertools.pairwise(kinds)), "a run started before the previous one finished"


def test_schedule_runs_the_verify_drill_on_its_own_schedule(
    pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str, supercronic: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g", dbname)
    env = job_env(
        pg18,
        f"file://{tmp_path}/backups",
        bindir18,
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_SCHEDULE="0 0 1 1 *",
        BACKUP_RUN_ON_START="true",
        BACKUP_VERIFY_SCHEDULE="*/2 * * * * * *",
        BACKUP_SUPERCRONIC=str(supercronic),
    )

    code, output = run_schedule(
        env, tmp_path, lambda text: "verify: 1 of 1 backups verified" in text, "a scheduled verify drill"
    )

    assert code == 0, output
    assert f"verify of '{dbname}'" in output and "1 tables with 10 rows match" in output
    assert pg18.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pgbackup_verify_%'") == []
