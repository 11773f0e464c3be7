"""Secrets are redacted where they stand as whole tokens, whatever their length, as written and
percent-encoded; a short password no longer masks pieces of database names and keys.

The offline tests; those that run pgbackup or real services are in tests/integration/test_logs_redaction.py."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from backup_job.core import logs
from backup_job.core.layout import encode_database


@pytest.fixture
def secrets() -> Iterator[None]:
    """``bench`` and ``p@ss word/1`` registered; the registry is the process's, so it is put back."""
    saved = list(logs._secrets)
    logs.add_secrets(["bench", "p@ss word/1"])
    yield
    logs._secrets[:] = saved
    logs.add_secrets([])  # rebuilt from what was registered before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backup of 'bench1' finished", "backup of 'bench1' finished"),
        (
            "backup of 'benchmark' -> s3://b/p/benchmark/20261126T020000Z.sql.gz",
            "backup of 'benchmark' -> s3://b/p/benchmark/20261126T020000Z.sql.gz",
        ),
        ("backup of 'mybench' finished", "backup of 'mybench' finished"),
        ("backup of 'bench' finished", "backup of '***' finished"),
        ("postgresql://app:bench@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("PGPASSWORD=bench", "PGPASSWORD=***"),
        ("bench", "***"),
        ("bench_1 and bench-2 and bench.3", "***_1 and ***-2 and ***.3"),  # separators bound a token
        ("p@ss word/1 and p@ss word/12", "*** and p@ss word/12"),
    ],
)
def test_a_secret_is_redacted_as_a_whole_token_only(secrets: None, text: str, expected: str) -> None:
    assert logs.redact(text) == expected


@pytest.mark.parametrize(
    "written",
    [
        "s3://b/p/p%40ss%20word%2F1/20261126T020000Z.sql.gz",  # an object key (layout.encode_database)
        "s3://b/p/p%40ss%20word/1/20261126T020000Z.sql.gz",  # a URL path keeping its slashes
        "https://hooks.example/?q=p%40ss+word%2F1&x=1",  # a query string
        "s3://b/p/p%40ss%20word%2f1/x",  # lower-case hex
    ],
)
def test_a_secret_is_redacted_percent_encoded(secrets: None, written: str) -> None:
    redacted = logs.redact(written)
    assert "***" in redacted and "p%40ss" not in redacted, redacted


def test_a_secret_with_bytes_that_are_not_utf8_is_still_redacted_as_written() -> None:
    undecodable = b"pw\xff1".decode("utf-8", "surrogateescape")  # how os.environ holds such a value
    assert logs.forms(undecodable) == [undecodable, "pw\\udcff1"]


def test_a_percent_encoded_secret_inside_a_longer_name_is_left_alone(secrets: None) -> None:
    longer = f"s3://b/p/{encode_database('p@ss word/12')}/20261126T020000Z.sql.gz"
    assert logs.redact(longer) == longer


def test_both_log_formats_keep_database_names_that_merely_contain_a_short_secret(secrets: None) -> None:
    for fmt, times in (("text", 1), ("json", 3)):  # the message; in JSON the fields too
        logger = logs.setup("INFO", fmt)
        out = io.StringIO()
        logger.handlers[0].setStream(out)  # type: ignore[attr-defined]
        logger.info("backup of %r finished", "bench1", extra=logs.fields(database="bench1", key="p/bench1/x"))
        assert "***" not in out.getvalue() and out.getvalue().count("bench1") == times, out.getvalue()
