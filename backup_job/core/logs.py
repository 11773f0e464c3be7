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
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "pgbackup"
_secrets: list[str] = []


def add_secrets(values: list[str]) -> None:
    """Register values that must never appear in output, also as ``%r`` would quote them
    (log lines quote names with ``%r``, which doubles a backslash)."""
    for value in values:
        for form in (value, repr(value)[1:-1]):
            if form and form not in _secrets:
                _secrets.append(form)
    _secrets.sort(key=len, reverse=True)


def redact(text: str) -> str:
    for value in _secrets:
        text = text.replace(value, "***")
    return text


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
