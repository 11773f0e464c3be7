"""``pgbackup schedule``: validation up front, then real backups under Supercronic.

The offline tests; those that run pgbackup or real services are in tests/integration/test_schedule.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backup_job.commands.schedule import crontab_for, validate_crontab
from backup_job.core.cron import validate_expression
from backup_job.core.errors import ConfigError
from backup_job.core.settings import parse_schedule

from ..kit.helpers import ROOT


@pytest.mark.parametrize("expression", ["30 2 * * *", "@daily", "*/10 * * * * * *", "0 30 2 * * * *", "0 2 * * * 2027"])
def test_accepted_expressions(expression: str) -> None:
    validate_expression(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("30 2 * *", "has 4 fields"),
        ("61 2 * * *", "minute field: '61' is outside 0-59"),
        ("*/0 * * * * * *", "second field: step '0'"),
        ("0 0 2 * * * 1800", "year field: '1800' is outside 1970-2099"),
        ("30 2 * *\n*", "contains a control character (\\n)"),
        ("30\x002 * * *", "contains a control character (\\x00)"),
        ("@daily\u202e", "contains a control character (\\u202e)"),
    ],
)
def test_rejected_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_expression(expression)


def test_crontab_file_is_checked_line_by_line(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("# comment\nSHELL=/bin/sh\n\n30 2 * * * pgbackup run\n*/5 * * * * * * pgbackup run\n")
    assert validate_crontab(good) == 2
    bad = tmp_path / "bad"
    bad.write_text("30 2 * * * pgbackup run\n30 25 * * * pgbackup run\n")
    with pytest.raises(ConfigError, match="line 2: hour field: '25' is outside 0-23"):
        validate_crontab(bad)
    assert validate_crontab(ROOT / "crontab") == 1, "the repository's default crontab is valid"


def test_schedule_variable_wins_over_the_crontab(tmp_path: Path) -> None:
    written = crontab_for(
        parse_schedule({"BACKUP_SCHEDULE": "*/2 * * * * * *", "BACKUP_CRONTAB": str(tmp_path / "missing")})
    )
    assert written.read_text().splitlines()[-1] == "*/2 * * * * * * pgbackup run"


def test_verify_schedule_adds_the_drill_to_either_source(tmp_path: Path) -> None:
    written = crontab_for(parse_schedule({"BACKUP_SCHEDULE": "30 2 * * *", "BACKUP_VERIFY_SCHEDULE": "0 6 * * 0"}))
    assert [line for line in written.read_text().splitlines() if not line.startswith("#")] == [
        "30 2 * * * pgbackup run",
        "0 6 * * 0 pgbackup verify",
    ]
    file = tmp_path / "crontab"
    file.write_text("15 1 * * * pgbackup run\n0 3 * * * pgbackup prune")
    combined = crontab_for(parse_schedule({"BACKUP_CRONTAB": str(file), "BACKUP_VERIFY_SCHEDULE": "@weekly"}))
    assert [line for line in combined.read_text().splitlines() if not line.startswith("#")] == [
        "15 1 * * * pgbackup run",
        "0 3 * * * pgbackup prune",
        "@weekly pgbackup verify",
    ]
    assert file.read_text().count("\n") == 1, "the user's crontab itself is left alone"
    assert crontab_for(parse_schedule({"BACKUP_CRONTAB": str(file)})) == file
