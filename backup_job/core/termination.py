"""The termination message: the job's outcome in one JSON line, read back by the operator.

Kubernetes copies a container's ``terminationMessagePath`` file into the Pod's status
(``state.terminated.message``) and cuts it at 4096 bytes. ``pgbackup run``, ``verify`` and
``prune`` write their outcome there on every exit, success included
(``settings.TERMINATION_LOG``, which the operator points at ``KUBERNETES_PATH``). The
operator turns it into ``status.lastRun`` (result, duration, stored bytes, database counts,
the failed databases) or ``status.lastVerify``, and from there into its metrics. Both ends
use this module, so the format is declared once:

    {"v": 1, "command": "run", "ok": false, "summary": "1 of 3 backups failed: 'shop': ...",
     "timestamp": "20261126T020000Z", "seconds": 83.2, "bytes": 165288497,
     "databases": {"ok": 2, "failed": 1}, "failed": ["shop"]}

``"suspect": 2`` counts the backups in the destination dated in the future (``pipeline.catalog``),
when the command looked. A sharded run (``BACKUP_SHARD`` with N > 1) adds ``"shard": "1/3"``: the counts, bytes and
failed names are that pod's part of the run only. An unsharded run has no ``shard`` field, and
a message without one (every older version's) reads as unsharded.

``encode`` keeps the line under ``LIMIT`` bytes: the summary gets at most
``SUMMARY_LIMIT``, then failed names are dropped from the end (the counts stay exact;
``failedTruncated`` says names are missing), and only then is the summary cut further. The
summary is redacted like every log line, and holds no data value (``datavalues``: a failed
load's error that quotes a row is cut before the value), on writing and again on reading.
``decode`` also reads the plain one-line text that versions before the JSON form wrote, as a
summary with nothing else. It trusts no figure: a number that is not finite (``NaN``,
``Infinity``, which Python's JSON reader accepts), negative, or beyond an int64 is read as
absent, so one odd message can never stop the operator from recording a run.

A job refused for its settings or arguments (exit 2) writes the message too, although it has
no ``Settings`` to take the path from: ``configured_path`` reads that one variable as the
settings would (the environment over the ``.env`` file; it has no ``_FILE`` form).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from . import datavalues, logs

KUBERNETES_PATH = "/dev/termination-log"
LIMIT = 4000  # bytes, under Kubernetes' 4096 with room for the newline
VERSION = 1
SUMMARY_LIMIT = 2500  # bytes of summary at most, so the failed names and figures have room
MAX_FAILED = 50  # failed database names carried at most; the counts are always exact
INTEGER_MAX = 2**63 - 1  # the largest count or size read back (an int64 status field holds it)
log = logs.get("termination")


@dataclass(frozen=True)
class TerminationMessage:
    """What a finished job tells the operator."""

    summary: str  # one line: the outcome, naming each failed database and why
    command: str = ""  # run | verify | prune; empty when read from an older plain-text message
    ok: bool | None = None  # None: not known (an older plain-text message)
    timestamp: str = ""  # the run's timestamp (``run``)
    seconds: float | None = None  # how long the command ran
    stored_bytes: int | None = None  # bytes stored by this run (``run``); "bytes" in the JSON
    databases_ok: int | None = None
    databases_failed: int | None = None
    failed: tuple[str, ...] = field(default_factory=tuple)  # failed databases, at most MAX_FAILED
    failed_truncated: bool = False
    shard: str = ""  # "i/N" of a sharded run; empty when unsharded (or not known)
    suspect: int | None = None  # backups in the destination dated in the future (None: not looked at)

    def _document(self, summary: str, failed: tuple[str, ...], truncated: bool) -> dict[str, Any]:
        document: dict[str, Any] = {"v": VERSION, "command": self.command, "ok": self.ok, "summary": summary}
        if self.timestamp:
            document["timestamp"] = self.timestamp
        if self.shard:
            document["shard"] = self.shard
        if self.seconds is not None:
            document["seconds"] = round(self.seconds, 1)
        if self.stored_bytes is not None:
            document["bytes"] = self.stored_bytes
        if self.databases_ok is not None or self.databases_failed is not None:
            document["databases"] = {"ok": self.databases_ok or 0, "failed": self.databases_failed or 0}
        if self.suspect is not None:
            document["suspect"] = self.suspect
        if failed or truncated:
            document["failed"] = list(failed)
        if truncated:
            document["failedTruncated"] = True
        return document

    def encode(self) -> bytes:
        """The file's content: one JSON line of at most ``LIMIT`` bytes, newline included."""
        summary = _cut(datavalues.scrub(logs.redact(self.summary)).replace("\n", " "), SUMMARY_LIMIT)
        failed = tuple(logs.redact(name) for name in self.failed[:MAX_FAILED])
        truncated = self.failed_truncated or len(self.failed) > MAX_FAILED
        while True:
            line = (
                json.dumps(
                    self._document(summary, failed, truncated), ensure_ascii=False, separators=(",", ":")
                ).encode("utf-8")
                + b"\n"
            )
            excess = len(line) - LIMIT
            if excess <= 0:
                return line
            if failed:  # names go before the rest of the summary
                failed, truncated = failed[: len(failed) // 2], True
            else:  # cut at least the excess (escapes may make a character cost more than a byte)
                summary = _cut(summary, len(summary.encode("utf-8")) - excess - 16)

    @classmethod
    def decode(cls, text: str) -> TerminationMessage:
        """Read what the Pod status shows: this module's JSON, or an older version's plain line."""
        text = text.strip()
        try:
            document = json.loads(text) if text.startswith("{") else None
        except ValueError:
            document = None
        if not isinstance(document, dict) or not isinstance(document.get("summary"), str):
            return cls(summary=datavalues.scrub(text))
        databases = document.get("databases")
        databases = databases if isinstance(databases, dict) else {}
        failed = document.get("failed")
        failed = failed if isinstance(failed, list) else []
        return cls(
            summary=datavalues.scrub(document["summary"]),
            command=str(document.get("command") or ""),
            ok=document["ok"] if isinstance(document.get("ok"), bool) else None,
            timestamp=str(document.get("timestamp") or ""),
            seconds=_number(document.get("seconds")),
            stored_bytes=_integer(document.get("bytes")),
            databases_ok=_integer(databases.get("ok")),
            databases_failed=_integer(databases.get("failed")),
            failed=tuple(str(name) for name in failed),
            failed_truncated=document.get("failedTruncated") is True,
            shard=document["shard"] if isinstance(document.get("shard"), str) else "",
            suspect=_integer(document.get("suspect")),
        )


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` bytes of UTF-8, marked with ``...`` when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: max(0, limit - 3)].decode("utf-8", "ignore") + "..."


def _number(value: Any) -> float | None:
    """A duration: finite and not negative, else None (``NaN``, ``Infinity`` and ``1e999``
    parse as floats, and no status field or metric can hold them)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # a whole number of hundreds of digits
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _integer(value: Any) -> int | None:
    """A count or a size: a whole number from 0 to ``INTEGER_MAX``, else None."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if 0 <= value <= INTEGER_MAX else None


def write(path: Path | None, message: TerminationMessage) -> None:
    """Write the message for Kubernetes; a failure to write is logged, never raised."""
    if path is None:
        return
    try:
        path.write_bytes(message.encode())
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc.strerror)


def configured_path(name: str, environ: Mapping[str, str], dotenv_path: Path) -> Path | None:
    """The path variable ``name`` (``settings.TERMINATION_LOG``) gives when the settings as a
    whole could not be read: from ``environ``, else from the ``.env`` file at ``dotenv_path``;
    None when it is unset, empty, or the file cannot be read."""
    if name in environ:
        value = environ[name]
    else:
        try:
            value = (dotenv_values(dotenv_path).get(name) if dotenv_path.is_file() else None) or ""
        except (OSError, UnicodeDecodeError):
            value = ""
    return Path(value) if value else None
