"""Small holes through which a secret leaked or a failure went quiet, each shut and proved
against real PostgreSQL, a real S3 server and real child processes.

The offline tests; those that run pgbackup or real services are in tests/integration/test_small_holes.py."""

from __future__ import annotations

import io
import json

import pytest

from backup_job.core import logs

SECRET = 'aws-"se\\cret'  # a quote and a backslash: what JSON escaping would hide from a redaction


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_secret_with_quotes_and_backslashes_is_redacted_in_every_format(fmt: str) -> None:
    logs.add_secrets([SECRET, "multi\nline-secret"])
    logger = logs.setup("INFO", fmt)
    out = io.StringIO()
    logger.handlers[0].setStream(out)  # type: ignore[attr-defined]
    logger.error(
        "server said %s and multi\nline-secret",
        SECRET,
        extra=logs.fields(error=f"password {SECRET}", nested={"k": [SECRET]}),
    )
    text = out.getvalue()
    assert text.count("\n") == 1 and "***" in text
    for leak in (SECRET, json.dumps(SECRET)[1:-1], "se\\cret", "se\\\\cret", "line-secret"):
        assert leak not in text, leak
