"""Sharding and the run's identity, without servers: the stable hash pinned to values computed
outside Python, ``BACKUP_SHARD`` / ``BACKUP_RUN_TIMESTAMP`` / ``BACKUP_JOB_NAME`` /
``BACKUP_RUN_ID`` parsed and refused in one line, each shard's plan, and the per-shard
termination message, notification and Pushgateway group."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_job.commands.shards import plan
from backup_job.core import settings as S
from backup_job.core.errors import ConfigError
from backup_job.core.layout import GLOBALS
from backup_job.core.runkey import run_moment, scheduled_minute
from backup_job.core.schema import Secret
from backup_job.core.shard import Shard, parse_shard, shard_hash
from backup_job.core.termination import TerminationMessage
from backup_job.pg.discovery import Selection
from backup_job.report import metrics
from backup_job.report.reporter import Reporter
from devenv.receiver import Receiver

# The first 16 hex digits of `printf %s NAME | sha256sum`, as integers (computed with coreutils).
PINNED = {
    "app": 0xA172CEDCAE47474B,
    "db_00": 0xF381D7148DE0AA25,
    "été": 0xBD010C64132BF5CA,
    "": 0xE3B0C44298FC1C14,
}
NOW = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def settings(**env: str) -> S.Settings:
    return S.load_settings({"BACKUP_DESTINATION": "s3://bkt", **env}, dotenv_path=Path("/nonexistent/.env"))


def test_the_hash_is_the_first_eight_bytes_of_sha256_big_endian() -> None:
    for name, value in PINNED.items():
        assert shard_hash(name) == value, name
    for name in ("app", "été", "Name With Spaces/And'Quotes"):
        digest = subprocess.run(["sha256sum"], input=name.encode("utf-8"), capture_output=True, check=True).stdout
        assert shard_hash(name) == int(digest[:16], 16), name
    assert [shard_hash(n) % 3 for n in PINNED] == [0, 0, 1, 1]


def test_every_name_belongs_to_exactly_one_shard() -> None:
    names = [f"db_{n:02}" for n in range(50)]
    for count in (1, 2, 3, 7):
        owners = [[i for i in range(count) if Shard(i, count).owns(name)] for name in names]
        assert all(len(o) == 1 for o in owners)
        if count > 1:
            assert len({o[0] for o in owners}) == count, "50 names reach every one of a few shards"


@pytest.mark.parametrize("value", ["3/3", "1/0", "0/0", "-1/3", "a/3", "1", "1/3/4", "1 of 3", "0/1001"])
def test_a_bad_shard_is_one_line_naming_the_setting_and_the_form(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(BACKUP_SHARD=value)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"configuration error: BACKUP_SHARD='{value}'")
    assert "i/N" in message and "for example BACKUP_SHARD=" in message


def test_shard_values_and_the_unsharded_default() -> None:
    assert settings().run.shard == Shard(0, 1) and not Shard(0, 1).sharded
    assert settings(BACKUP_SHARD=" 2 / 3 ").run.shard == Shard(2, 3)
    assert parse_shard(S.SHARD.render(Shard(4, 5))) == Shard(4, 5)
    assert str(Shard(1, 3)) == "1/3" and Shard(0, 3).stores_globals and not Shard(1, 3).stores_globals


def test_a_shard_keeps_its_databases_and_reports_its_missing_names() -> None:
    names = tuple(f"db_{n:02}" for n in range(12))
    missing = ("gone_a", "gone_b", "gone_c", "gone_d")
    selection = Selection(databases=names, missing=missing)
    plans = [plan(selection, Shard(i, 3), True) for i in range(3)]
    assert sorted(d for p in plans for d in p.databases) == sorted(names)
    assert sorted(m for p in plans for m in p.missing) == sorted(missing)
    assert [p.globals for p in plans] == [True, False, False]
    assert all(p.run_databases == (GLOBALS, *names) and p.run_missing for p in plans)
    assert plan(selection, Shard(), False).databases == names


def test_the_run_timestamp_forms_and_their_normal_form() -> None:
    for value in (
        "20261130T020000Z",
        "2026-11-30T02:00:00Z",
        "2026-11-30t03:00:00.999+01:00",
        "2026-11-29T21:00:00-05:00",
    ):
        moment = settings(BACKUP_RUN_TIMESTAMP=value).run.run_timestamp
        assert moment == datetime(2026, 11, 30, 2, 0, tzinfo=UTC), value
        assert S.RUN_TIMESTAMP.render(moment) == "20261130T020000Z"
    for value in ("2026-11-30", "2026-11-30T02:00:00", "20261130T0200Z", "20261330T020000Z", "tomorrow"):
        with pytest.raises(ConfigError, match=r"^configuration error: BACKUP_RUN_TIMESTAMP="):
            settings(BACKUP_RUN_TIMESTAMP=value)


def test_the_timestamp_comes_from_the_setting_then_the_job_name_then_the_clock() -> None:
    given = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    minute = datetime.fromtimestamp(29_400_000 * 60, UTC)
    assert minute == datetime(2025, 11, 24, 16, 0, tzinfo=UTC)
    assert run_moment(given, "pgbackup-x-29400000", NOW) == (given, "timestamp", "")
    assert run_moment(None, "pgbackup-x-29400000", NOW) == (minute, "job_name", "")
    assert run_moment(None, "pgbackup-x-m1a2b3c4", NOW) == (NOW, "clock", "")  # a manual Job
    assert run_moment(None, None, NOW) == (NOW, "clock", "")
    moment, origin, why = run_moment(None, "backup-2", NOW)
    assert (moment, origin) == (NOW, "clock") and "not a CronJob's scheduled minute" in why
    assert scheduled_minute(f"x-{int(NOW.timestamp()) // 60 + 3 * 24 * 60}", NOW)[0] is None, "days ahead"


def test_the_run_id_is_plain_ascii() -> None:
    assert (
        settings(BACKUP_RUN_ID="3f0c9a4e-7b1d-4c52-9e8a-5d2f61b0c7aa").run.run_id
        == "3f0c9a4e-7b1d-4c52-9e8a-5d2f61b0c7aa"
    )
    assert settings().run.run_id is None
    for value in ("with space", "ünïcode", "-leading", "x" * 129):
        with pytest.raises(ConfigError, match="BACKUP_RUN_ID"):
            settings(BACKUP_RUN_ID=value)


def test_retention_is_refused_for_a_sharded_run_only() -> None:
    sharded = settings(BACKUP_SHARD="1/3", BACKUP_RETENTION="last=3")
    with pytest.raises(ConfigError) as raised:
        S.check_command(sharded, "run")
    assert "\n" not in str(raised.value) and "BACKUP_RETENTION" in str(raised.value)
    assert "BACKUP_SHARD=1/3" in str(raised.value) and "pgbackup prune" in str(raised.value)
    S.check_command(sharded, "prune")  # prune after the shards is the way
    S.check_command(settings(BACKUP_SHARD="0/1", BACKUP_RETENTION="last=3"), "run")
    with pytest.raises(ConfigError, match="BACKUP_RUN_ID names one run"):
        S.check_command(settings(BACKUP_RUN_ID="abc"), "schedule")


def test_a_sharded_run_needs_a_timestamp_every_shard_shares() -> None:
    for env in ({}, {"BACKUP_JOB_NAME": "pgbackup-x-m1a2b3c4"}, {"BACKUP_JOB_NAME": "backup-2"}):
        with pytest.raises(ConfigError) as raised:
            S.check_command(settings(BACKUP_SHARD="1/3", **env), "run")
        message = str(raised.value)
        assert "\n" not in message and "BACKUP_SHARD=1/3 needs a run timestamp shared by every shard" in message
        assert "set BACKUP_RUN_TIMESTAMP to the same value in every shard" in message
    S.check_command(settings(BACKUP_SHARD="1/3", BACKUP_JOB_NAME="pgbackup-x-29400000"), "run")
    S.check_command(settings(BACKUP_SHARD="1/3", BACKUP_RUN_TIMESTAMP="20261130T020000Z"), "run")
    S.check_command(settings(), "run")  # one pod keeps its clock


def test_the_termination_message_names_the_shard_and_reads_older_ones() -> None:
    message = TerminationMessage(
        "2 backups succeeded",
        command="run",
        ok=True,
        timestamp="20261130T020000Z",
        databases_ok=2,
        databases_failed=0,
        shard="1/3",
    )
    assert b'"shard":"1/3"' in message.encode()
    assert TerminationMessage.decode(message.encode().decode()) == message
    unsharded = TerminationMessage("ok", command="run", ok=True)
    assert b"shard" not in unsharded.encode()
    old = '{"v":1,"command":"run","ok":true,"summary":"1 backups succeeded","timestamp":"20261126T020000Z"}'
    assert TerminationMessage.decode(old).shard == ""


def report_settings(**urls: str) -> S.ReportSettings:
    return S.ReportSettings(
        notify_urls=(),
        notify_always=True,
        healthcheck_url=None,
        metrics_textfile=None,
        pushgateway_url=Secret(urls["gateway"]) if "gateway" in urls else None,
        timeout=5,
    )


def test_a_notification_names_the_shard_and_the_timestamp() -> None:
    reporter = Reporter(report_settings(), "s3://bkt/pg", "run", "1/3")
    outcome = TerminationMessage(
        "1 of 3 backups failed: 'shop': boom",
        command="run",
        ok=False,
        timestamp="20261130T020000Z",
        failed=("shop",),
        shard="1/3",
    )
    note = reporter.notification(outcome, outcome.summary, [])
    assert note.title == "pgbackup backup run 20261130T020000Z shard 1/3 FAILED" and note.kind == "failure"
    assert "Shard: 1/3" in note.body and "every shard of the run reports its own" in note.body
    plain = reporter.notification(
        TerminationMessage("ok", command="run", ok=True, timestamp="20261130T020000Z"), "ok", []
    )
    assert plain.title == "pgbackup backup run 20261130T020000Z succeeded" and "Shard" not in plain.body


def test_each_shard_pushes_to_its_own_group() -> None:
    outcome = TerminationMessage("ok", command="run", ok=True, timestamp="20261130T020000Z", shard="2/3")
    with Receiver() as gateway:
        metrics.push(Secret(f"{gateway.url}/gw"), "s3://bkt/pg", outcome, [], 5, shard="2/3")
        metrics.push(Secret(f"{gateway.url}/gw"), "s3://bkt/pg", outcome, [], 5)
    sharded, unsharded = (r.path for r in gateway.requests)
    assert sharded.startswith("/gw/metrics/job/pgbackup/destination@base64/") and "/shard@base64/" in sharded
    assert sharded.rsplit("/", 1)[1].rstrip("=") == "Mi8z"  # base64url("2/3")
    assert "shard" not in unsharded
