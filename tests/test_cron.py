"""Unit tests of cron parsing and next-run computation, time zones and DST included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_job.core.cron import CronSchedule


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("30 2 * * *", "2026-11-26T01:00:00", "2026-11-26T02:30:00"),
        ("30 2 * * *", "2026-11-26T02:30:00", "2026-11-27T02:30:00"),  # strictly after
        ("*/15 * * * *", "2026-11-26T10:07:00", "2026-11-26T10:15:00"),
        ("0 0 1 * *", "2026-11-26T00:00:00", "2026-12-01T00:00:00"),
        ("0 12 * * MON-FRI", "2026-11-28T00:00:00", "2026-11-30T12:00:00"),  # Sat -> Mon
        ("0 0 29 FEB *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 13 * 5", "2026-11-01T00:00:00", "2026-11-06T00:00:00"),  # dom OR dow: Friday the 6th
        ("0 0 * * 0", "2026-11-26T00:00:00", "2026-11-29T00:00:00"),
        ("@hourly", "2026-11-26T10:59:59", "2026-11-26T11:00:00"),
        ("@weekly", "2026-11-26T00:00:00", "2026-11-29T00:00:00"),
        ("0 9-17/4 * * *", "2026-11-26T09:00:00", "2026-11-26T13:00:00"),
        ("5,10 * * * *", "2026-11-26T09:06:00", "2026-11-26T09:10:00"),
    ],
)
def test_next_run_in_utc(expression: str, after: str, expected: str) -> None:
    assert CronSchedule.parse(expression).next_after(utc(after)) == utc(expected)


def test_time_zone_and_dst() -> None:
    daily = CronSchedule.parse("30 2 * * *")
    # Berlin is UTC+1 in winter: 02:30 local is 01:30 UTC
    assert daily.next_after(utc("2026-11-26T00:00:00"), "Europe/Berlin") == utc("2026-11-26T01:30:00")
    # 2026-03-29 02:30 does not exist in Berlin (clocks jump 02:00 -> 03:00): skipped
    assert daily.next_after(utc("2026-03-28T02:00:00"), "Europe/Berlin") == utc("2026-03-30T00:30:00")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 4 fields; a schedule has 5"),
        ("60 * * * *", "minute field: '60' is outside 0-59"),
        ("* 24 * * *", "hour field: '24' is outside 0-23"),
        ("* * 0 * *", "day-of-month field: '0' is outside 1-31"),
        ("* * * 13 *", "month field: '13' is outside 1-12"),
        ("* * * * 7", "day-of-week field: '7' is outside 0-6"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "minute field: 'x' is not a number"),
    ],
)
def test_bad_expressions_say_which_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        CronSchedule.parse(expression)


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CronSchedule.parse("@daily").next_after(utc("2026-01-01T00:00:00"), "Mars/Olympus")
