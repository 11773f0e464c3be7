"""Logging: one event per line on stdout, with a UTC timestamp and a level.

``kubectl logs`` and ``docker compose logs`` read stdout, so that is where every line goes,
configuration errors excepted (the CLI prints those on stderr before logging exists).

Two formats (``settings.LOG_FORMAT``):

- ``text``: ``2026-11-26T14:02:39.123Z INFO  backup of "shop" finished: ...``, for people;
- ``json``: ``{"time": ..., "level": ..., "message": ..., "database": ..., ...}``, for log
  pipelines. Fields passed as ``extra={"fields": {...}}`` appear as keys.

A redaction step runs on every string before it is written, in either format: any value
registered with ``add_secrets`` is replaced by ``***``, so a secret that leaks into a message
(a server error quoting a connection string, a traceback at DEBUG) never reaches the output.
It runs before any escaping (JSON's, or the text format's newlines), so a secret with a
quote, a backslash or a newline in it is found too.

A secret is replaced where it stands as a whole token: not preceded or followed by a letter or
digit (any other character, or the start or end of the string, bounds it). A secret is a word
of its own wherever it leaks (``user:hunter2@host``, ``PGPASSWORD=hunter2``, ``'hunter2'``), while
a short one inside a longer word is a coincidence: ``PGPASSWORD=bench`` must not turn the
database ``bench1`` into ``***1`` (nor ``benchmark`` into ``***mark``), whatever the length.
Each secret is also looked for percent-encoded, as object keys (``layout.encode_database``)
and URLs write it, with either case of hex digits: a database named like a password appears in
its keys as ``p%40ss%20word``.

What is not a log line is not redacted: ``pgbackup list`` prints database names as they are,
since they are no secret and whoever can run it can read the bucket's keys anyway.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any
from urllib.parse import quote, quote_plus

from .layout import encode_database

LOGGER_NAME = "pgbackup"
_secrets: list[str] = []  # every registered form, longest first
_pattern: re.Pattern[str] | None = None  # all of them as whole tokens, one alternation
_PERCENT = re.compile(r"%([0-9A-F]{2})")


def forms(value: str) -> list[str]:
    """The ways ``value`` is written in output: as is, as ``%r`` quotes it (log lines quote
    names with ``%r``, which doubles a backslash), and percent-encoded as keys and URLs have it."""
    written = [value, repr(value)[1:-1]]
    try:
        written += [encode_database(value), quote(value, safe=""), quote(value), quote_plus(value, safe="")]
    except UnicodeEncodeError:
        pass  # bytes no UTF-8 could hold (an environment's undecodable ones): never in a key or URL
    return list(dict.fromkeys(form for form in written if form))


def _token(form: str) -> str:
    """``form`` as a regular expression that matches only a whole token: no letter or digit
    right before or after it (where its own edge is a letter or digit), and the hex digits of
    its percent-escapes in either case."""
    pieces = _PERCENT.split(form)  # text, hex, text, hex, ..., text
    body = "".join(f"%(?i:{piece})" if index % 2 else re.escape(piece) for index, piece in enumerate(pieces))
    before = r"(?<![^\W_])" if pieces[0][:1].isalnum() else ""  # an escape is no letter or digit
    after = r"(?![^\W_])" if pieces[-1][-1:].isalnum() else ""
    return before + body + after


def add_secrets(values: list[str]) -> None:
    """Register values that must never appear in output (``forms`` of each)."""
    global _pattern
    for value in values:
        for form in forms(value):
            if form not in _secrets:
                _secrets.append(form)
    _secrets.sort(key=len, reverse=True)
    _pattern = re.compile("|".join(_token(form) for form in _secrets)) if _secrets else None


def redact(text: str) -> str:
    """``text`` with every registered secret that stands as a whole token replaced by ``***``."""
    return _pattern.sub("***", text) if _pattern is not None else text


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <message>``, one line: newlines in messages are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.getMessage()}"
        if record.exc_info:
            line += " | " + self.formatException(record.exc_info)
        return redact(line).replace("\n", "\\n")


def _redacted(value: Any) -> Any:
    """``value`` with every secret replaced, strings inside lists and dicts included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return redact(str(value)) if not isinstance(value, (int, float, bool, type(None))) else value


class JsonFormatter(logging.Formatter):
    """One JSON object per line; secrets are replaced before encoding, so escaping (a ``"``
    or ``\\`` in a secret) cannot hide one from the redaction."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "message": record.getMessage(),
        }
        event.update(getattr(record, "fields", {}))
        if record.exc_info:
            event["traceback"] = self.formatException(record.exc_info)
        return json.dumps(_redacted(event), ensure_ascii=False)


def setup(level: str = "INFO", fmt: str = "text") -> logging.Logger:
    """Configure the ``pgbackup`` logger to write to stdout; idempotent."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call, carrying structured fields for the JSON format."""
    return {"fields": values}


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
