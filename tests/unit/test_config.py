"""Unit tests of settings: every bad value is named with its fix, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core.errors import ConfigError
from backup_job.core.settings import Compression, Secret, load_settings

BASE = {"BACKUP_DESTINATION": "s3://my-bucket/nightly/"}


def settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({**BASE, **env}, dotenv_path=tmp_path / ".env")


def error(tmp_path: Path, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **env)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert (s.destination.bucket, s.destination.prefix) == ("my-bucket", "nightly")
    assert s.compression.level == 6 and s.dump.lock_wait_timeout == 300 and s.dump.database_timeout == 0
    assert s.dump.include == () and s.dump.exclude == () and s.postgres.discovery_database == "postgres"
    assert s.log.format == "text" and s.log.level == "INFO"
    assert not s.run.retention and s.dump.globals is True and s.run.shrink_alarm == 0.5


def test_destinations(tmp_path: Path) -> None:
    assert settings(tmp_path, BACKUP_DESTINATION="s3://b-1.x").destination.prefix == ""
    local = settings(tmp_path, BACKUP_DESTINATION="file:///var/backups/pg").destination
    assert local.scheme == "file" and str(local.directory) == "/var/backups/pg"


def test_zstd_levels_reach_19_and_default_to_3(tmp_path: Path) -> None:
    zstd = {"BACKUP_DESTINATION": "file:///tmp/x", "BACKUP_COMPRESSION": "zstd"}
    assert load_settings(zstd, dotenv_path=tmp_path / "none").compression == Compression("zstd", 3, None)
    assert load_settings(
        {**zstd, "BACKUP_COMPRESSION_LEVEL": "19", "BACKUP_COMPRESSION_THREADS": "3"}, dotenv_path=tmp_path / "none"
    ).compression == Compression("zstd", 19, 3)
    assert "BACKUP_COMPRESSION_LEVEL='20' is out of range: it must be from 1 to 19" in error(
        tmp_path, BACKUP_COMPRESSION="zstd", BACKUP_COMPRESSION_LEVEL="20"
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BACKUP_DESTINATION", "", "BACKUP_DESTINATION is not set"),
        ("BACKUP_DESTINATION", "/var/backups", "must start with s3://"),
        ("BACKUP_DESTINATION", "file://relative/dir", "must be an absolute path"),
        ("BACKUP_DESTINATION", "s3://Bad_Bucket", "does not name a valid S3 bucket"),
        (
            "BACKUP_COMPRESSION_LEVEL",
            "11",
            "BACKUP_COMPRESSION_LEVEL='11' is out of range for gzip: it must be from 1 to 9",
        ),
        ("BACKUP_COMPRESSION_LEVEL", "fast", "is not a whole number from 1 to 19"),
        ("BACKUP_COMPRESSION", "lz4", "BACKUP_COMPRESSION='lz4' must be one of gzip | zstd"),
        ("BACKUP_COMPRESSION_THREADS", "0", "BACKUP_COMPRESSION_THREADS='0' is out of range: it must be from 1 to 64"),
        ("BACKUP_PARALLEL_DATABASES", "many", "BACKUP_PARALLEL_DATABASES='many' is not a whole number from 1 to 32"),
        ("BACKUP_DATABASE_TIMEOUT", "ten minutes", "BACKUP_DATABASE_TIMEOUT='ten minutes' is not a duration"),
        ("BACKUP_S3_READ_TIMEOUT", "0", "BACKUP_S3_READ_TIMEOUT='0' must be at least 1 second"),
        ("BACKUP_S3_READ_TIMEOUT", "0s", "for example BACKUP_S3_READ_TIMEOUT=60"),
        ("BACKUP_S3_CONNECT_TIMEOUT", "0m", "BACKUP_S3_CONNECT_TIMEOUT='0m' must be at least 1 second"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' must be one of text | json"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='loud' must be one of"),
        ("BACKUP_S3_ADDRESSING_STYLE", "sideways", "must be one of auto | path | virtual"),
        ("BACKUP_RETENTION", "keep=7", "BACKUP_RETENTION='keep=7' is not a retention policy ('keep=7' is not one of"),
        ("BACKUP_RETENTION", "daily=0", "daily must be a whole number of at least 1"),
        ("BACKUP_GLOBALS", "maybe", "BACKUP_GLOBALS='maybe' must be true or false"),
        ("BACKUP_SHRINK_ALARM", "1.5", "BACKUP_SHRINK_ALARM='1.5' must be from 0 (off) to below 1"),
        ("BACKUP_SHRINK_ALARM", "half", "is not a fraction from 0 to 1"),
        ("BACKUP_S3_SSE", "aes", "BACKUP_S3_SSE='aes' must be one of AES256 | aws:kms"),
        ("BACKUP_S3_KMS_KEY_ID", "alias/x", "BACKUP_S3_SSE is not aws:kms"),
        ("BACKUP_PG_BINDIR", "/nonexistent", "holds no pg_dump"),
        ("BACKUP_PG_DUMP_OPTIONS", "--format=custom", "must not contain --format"),
        ("BACKUP_PG_DUMP_OPTIONS", "-Fc", "must not contain -F"),
        ("BACKUP_PG_DUMP_OPTIONS", "-f /tmp/x", "must not contain -f"),
        ("BACKUP_PG_DUMP_OPTIONS", "--dbname=other", "must not contain --dbname"),
        ("BACKUP_PG_DUMP_OPTIONS", "--jobs=4", "must not contain --jobs"),
        ("BACKUP_PG_DUMP_OPTIONS", "--create", "must not contain --create: restore --create recreates"),
        ("BACKUP_PG_DUMP_OPTIONS", "-c --if-exists", "must not contain -c: restore --clean drops"),
        ("BACKUP_PG_DUMP_OPTIONS", "'unterminated", "cannot be split into options"),
        ("BACKUP_PG_DUMP_OPTIONS", "schema_only", "is not an option"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    message = error(tmp_path, **{variable: value})
    assert expected in message
    assert variable in message


def test_pg_dump_options_are_kept_in_order(tmp_path: Path) -> None:
    s = settings(tmp_path, BACKUP_PG_DUMP_OPTIONS="--exclude-table-data='audit.*' --no-owner")
    assert s.dump.pg_dump_options == ("--exclude-table-data=audit.*", "--no-owner")


def test_durations(tmp_path: Path) -> None:
    s = settings(tmp_path, BACKUP_LOCK_WAIT_TIMEOUT="90s", BACKUP_DATABASE_TIMEOUT="2h")
    assert (s.dump.lock_wait_timeout, s.dump.database_timeout) == (90, 7200)
    assert settings(tmp_path, BACKUP_DATABASE_TIMEOUT="15m").dump.database_timeout == 900


def test_secret_files_are_read_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cr3t-pg\n")
    (tmp_path / "key").write_text("AKIAFILE")
    (tmp_path / "secret").write_text("s3cr3t-aws")
    s = settings(
        tmp_path,
        PGPASSWORD_FILE=str(tmp_path / "pw"),
        AWS_ACCESS_KEY_ID_FILE=str(tmp_path / "key"),
        AWS_SECRET_ACCESS_KEY_FILE=str(tmp_path / "secret"),
    )
    assert set(s.secrets()) == {"s3cr3t-pg", "AKIAFILE", "s3cr3t-aws"}
    assert "s3cr3t" not in repr(s)
    assert repr(Secret("x")) == "Secret('***')"


def test_variable_and_its_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("a")
    message = error(tmp_path, PGPASSWORD="b", PGPASSWORD_FILE=str(tmp_path / "pw"))
    assert "both PGPASSWORD and PGPASSWORD_FILE are set" in message


def test_unreadable_secret_file_is_an_error(tmp_path: Path) -> None:
    message = error(tmp_path, AWS_SESSION_TOKEN_FILE=str(tmp_path / "missing"))
    assert "AWS_SESSION_TOKEN_FILE=" in message and "cannot be read" in message


def test_sdk_file_variables_keep_their_meaning(tmp_path: Path) -> None:
    s = settings(tmp_path, AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "missing-token"))
    assert s.secrets() == []


def test_dotenv_fills_in_but_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BACKUP_DESTINATION=file:///from/dotenv\nBACKUP_COMPRESSION_LEVEL=1\n")
    s = load_settings({"BACKUP_COMPRESSION_LEVEL": "9"}, dotenv_path=tmp_path / ".env")
    assert str(s.destination.directory) == "/from/dotenv"
    assert s.compression.level == 9
