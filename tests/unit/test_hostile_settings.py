"""Hostile or mistaken settings and arguments, given to the real ``pgbackup`` command: each is
refused before anything is attempted, in one line that names the setting and the fix, and
never echoes a credential or a control character.

The offline tests; those that run pgbackup or real services are in tests/hostile/test_hostile_settings.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


def test_the_accepted_at_forms_give_utc_moments() -> None:
    from backup_job.commands import restore
    from backup_job.core.moments import parse_at

    utc = UTC
    assert restore.parse_at is parse_at, "restore and the operator read --at with one function"
    assert parse_at(" latest ") is None and parse_at("") is None
    assert parse_at("2026-11-26t03:30+0100") == datetime(2026, 11, 26, 2, 30, tzinfo=utc)
    assert parse_at("2026-11-26T02:30:00.5Z") == datetime(2026, 11, 26, 2, 30, 0, 500000, tzinfo=utc)
    assert parse_at("9998-12-31") == datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=utc)
    assert parse_at("19700101T000000Z") == datetime(1970, 1, 1, tzinfo=utc)
    for value in ("2026-11-26T02:30:00.1234567Z", "2026-11-26T02", "٢٠٢٦-11-26", "2026-11-26 02:30 UTC"):
        with pytest.raises(ValueError, match=r"^--at '"):
            parse_at(value)


def test_escape_shows_every_unprintable_character_and_keeps_the_rest() -> None:
    from backup_job.core.printable import control_character, escape

    assert escape("shop ünïcode 名前 'q\"") == "shop ünïcode 名前 'q\""
    assert (
        escape("a\nb\rc\td\x00e\x7f\x9b\u00a0\u200b\u202e\u2028\u2029\U000e0001\\")
        == "a\\nb\\rc\\td\\x00e\\x7f\\x9b\\xa0\\u200b\\u202e\\u2028\\u2029\\U000e0001\\\\"
    )
    assert escape("a\\nb") != escape("a\nb"), "a backslash and n is not a line break"
    assert control_character("30 2 * * *") is None and control_character("a\u202eb\n") == "\\u202e"


@pytest.mark.parametrize(
    "value",
    [
        "s3://my-backups/Production2024/ClusterEast",
        "file:///var/backups/PostgreSQL18ProductionServerInstance",
        "--exclude-table-data=Audit2024LogEntriesArchiveTable",
        "3f0c9a4e-7b1d-4c52-9e8a-5d2f61b0c7aa",
        "age1nw3km0dvdajfha6vqe5t4xv9ragwhv74p7a6k8pgcs62gly5td0sy3t46j",
        "AKIAIOSFODNN7EXAMPLE",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUkZ0Ay5q1cfXdgJMUb4W4lw0OfTVM5Y9gUCwXNEeqf me@host",
        "customer_orders_2024_archive_partition_q1",
        "last=7,daily=14,weekly=8,monthly=12",
        "*/10 * * * * * *",
    ],
)
def test_ordinary_values_do_not_look_like_credentials(value: str) -> None:
    from backup_job.core import credentials

    assert credentials.kind(value) is None


@pytest.mark.parametrize(
    ("value", "looks"),
    [
        ("AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSHH5K6T", "a private age identity"),
        ("-----BEGIN EC PRIVATE KEY-----", "a private key"),
        ("-----BEGIN CERTIFICATE-----", "a PEM key block"),
        ("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "a private key"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9RvLmT3aXk", "a secret token"),
        ("ghp_R8x2ZkQv7LmN4pT1sW9yB3cD6fH0jK5aE2uG", "a secret token"),
        ("token=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "a secret token"),
    ],
)
def test_keys_and_tokens_are_recognised(value: str, looks: str) -> None:
    from backup_job.core import credentials

    assert credentials.kind(value) == looks


def test_the_identity_setting_named_in_messages_is_the_real_one() -> None:
    from backup_job.core import credentials, settings

    assert credentials.IDENTITY_SETTING == settings.DECRYPT_IDENTITY_PATH.name
