"""Unit tests of the retention plan, the policy syntax, and restore's --at."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_job.commands.prune import plan
from backup_job.commands.restore import parse_at
from backup_job.core.retention import RetentionPolicy
from backup_job.pg.dbprops import split_list_setting
from backup_job.pipeline.catalog import Backup


def _backups(*stamps: str) -> list[Backup]:
    return [Backup("db", s) for s in sorted(stamps, reverse=True)]


def test_each_rule_keeps_the_newest_of_each_bucket() -> None:
    backups = _backups(
        "20261126T020000Z",
        "20261126T140000Z",  # Thursday, ISO week 48, two in a day
        "20261125T020000Z",
        "20261122T020000Z",  # Sunday: still week 47
        "20261116T020000Z",  # Monday, week 47
        "20261031T230000Z",
        "20261001T020000Z",
        "20260915T020000Z",
    )
    assert set(plan(backups, RetentionPolicy(last=2))) == {"20261126T140000Z", "20261126T020000Z"}
    assert set(plan(backups, RetentionPolicy(daily=3))) == {"20261126T140000Z", "20261125T020000Z", "20261122T020000Z"}
    assert set(plan(backups, RetentionPolicy(weekly=2))) == {"20261126T140000Z", "20261122T020000Z"}
    assert set(plan(backups, RetentionPolicy(monthly=3))) == {
        "20261126T140000Z",
        "20261031T230000Z",
        "20260915T020000Z",
    }
    union = plan(backups, RetentionPolicy(last=1, monthly=2))
    assert union == {"20261126T140000Z": ["newest", "last", "monthly"], "20261031T230000Z": ["monthly"]}


def test_the_newest_backup_is_kept_by_any_policy() -> None:
    assert set(plan(_backups("20200101T000000Z", "20190101T000000Z"), RetentionPolicy(daily=1))) == {"20200101T000000Z"}
    assert plan([], RetentionPolicy(last=3)) == {}


def test_iso_weeks_cross_the_new_year() -> None:
    backups = _backups("20270101T000000Z", "20261228T000000Z", "20261227T000000Z")  # 2026-W53, 2026-W53, W52
    assert set(plan(backups, RetentionPolicy(weekly=2))) == {"20270101T000000Z", "20261227T000000Z"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("daily=0", "at least 1"),
        ("hourly=3", "not one of"),
        ("last=2,last=3", "given twice"),
        ("last", "not one of"),
        ("daily=x", "whole number"),
        (",", "no rules"),
    ],
)
def test_bad_policies_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy.parse(text)


def test_policy_round_trip() -> None:
    policy = RetentionPolicy.parse(" Monthly=12, last=7 ,daily=14")
    assert policy == RetentionPolicy(last=7, daily=14, monthly=12)
    assert policy.describe() == "last=7,daily=14,monthly=12"


def test_at_accepts_the_forms_users_type() -> None:
    utc = UTC
    assert parse_at("latest") is None
    assert parse_at("20261126T023000Z") == datetime(2026, 11, 26, 2, 30, tzinfo=utc)
    assert parse_at("2026-11-26T02:30:00Z") == datetime(2026, 11, 26, 2, 30, tzinfo=utc)
    assert parse_at("2026-11-26T03:30:00+01:00") == datetime(2026, 11, 26, 2, 30, tzinfo=utc)
    assert parse_at("2026-11-26 02:30") == datetime(2026, 11, 26, 2, 30, tzinfo=utc)
    assert parse_at("2026-11-26") == datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=utc)
    with pytest.raises(ValueError, match="is not a time"):
        parse_at("last tuesday")


def test_list_settings_split_like_the_server_stores_them() -> None:
    assert split_list_setting('"$user", public') == ["$user", "public"]
    assert split_list_setting('"a,b", "q""uote", plain') == ["a,b", 'q"uote', "plain"]
    assert split_list_setting("") == []
