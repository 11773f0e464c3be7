"""The manifest: the proof that a backup object is complete, stored beside it.

``<prefix>/<database>/<timestamp>.manifest.json`` is written only after the dump object's
upload completed, so its presence is what makes an object a backup. Restore and verify
check the object against ``sha256`` and ``compressed_bytes``; list and prune read the rest.
Fields are only ever added; ``format_version`` changes when a meaning changes.

What later commands rely on, beyond the object's identity:

- ``row_counts``: rows per table as counted in the COPY blocks while the dump streamed by
  (``copycount``), which ``verify`` compares with the restored tables;
- ``database_properties``: owner, encoding, locale, ``ALTER DATABASE ... SET`` and GRANTs of
  the database, which a plain dump leaves out and ``restore --create`` reapplies;
- ``shrink_alarm``: set when this backup is much smaller than the previous one;
- ``compression`` (``gzip`` or ``zstd``), ``compression_level`` (as the user asked for it)
  and ``compression_engine`` (the library, its own level and the threads it ran with):
  ``format`` stays ``plain``, the dump's own format;
- ``kind`` ``globals`` with ``role_passwords``: a ``pg_dumpall --globals-only`` object, and
  whether it could include the role passwords;
- ``run_id`` and ``attempt``: the run that wrote it (random, or ``BACKUP_RUN_ID``, shared by a
  run's shards and retried pods) and the process within it (always random);
- ``encryption`` (``{"format": "age", "recipients": [...]}``, public keys only) for an object
  sealed with age. ``compressed_bytes`` and ``sha256`` always describe the object as stored
  (the ciphertext), which is what list, verify, retention and the shrink alarm compare. A
  sealed backup's manifest has ``format_version`` 2, so a pgbackup from before encryption
  lists it as unknown (never deletes it, never mistakes it for gzip).

``RunFacts`` holds what every manifest of one run shares and builds each manifest from what
the stream measured (``StreamFacts``); ``shrink_alarm`` decides the alarm field.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import MISSING, asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .. import __version__
from .layout import GLOBALS

FORMAT_VERSION = 1  # what plain backups are written as
SEALED_FORMAT_VERSION = 2  # sealed backups: a pgbackup before encryption sees them as unknown, never as gzip
UNDERSTOOD_VERSION = SEALED_FORMAT_VERSION


class NotUnderstood(ValueError):
    """A manifest this version cannot vouch for, though it may be fine: written by a newer
    pgbackup, or not by pgbackup at all. Such a backup is *unknown*, never deleted."""


@dataclass(frozen=True)
class Manifest:
    """Everything known about one completed backup object."""

    database: str
    key: str
    run_timestamp: str
    raw_bytes: int
    compressed_bytes: int
    sha256: str
    parts: int
    pg_dump_version: str
    server_version: str
    started_at: str
    finished_at: str
    duration_seconds: float
    compression_level: int
    pg_dump_options: list[str] = field(default_factory=list)
    kind: str = "database"  # or "globals"
    row_counts: dict[str, int] = field(default_factory=dict)
    database_properties: dict[str, Any] | None = None
    role_passwords: bool | None = None
    shrink_alarm: dict[str, Any] | None = None
    run_id: str = ""  # the run that wrote it (settles a write whose answer was lost)
    attempt: str = ""  # the process (one attempt of the run) that wrote it; see RunFacts
    format: str = "plain"
    compression: str = "gzip"  # or "zstd"; compression_level is the level asked for, in its scale
    compression_engine: dict[str, Any] | None = None  # what ran: library, its own level, threads
    encryption: dict[str, Any] | None = None  # {"format": "age", "recipients": [public keys]}, or None
    format_version: int = FORMAT_VERSION
    tool: str = "pgbackup"
    tool_version: str = __version__

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def recipients(self) -> list[str]:
        return list((self.encryption or {}).get("recipients") or [])

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> "Manifest":
        """Parse a manifest; ``ValueError`` for anything that is not one of ours."""
        try:
            values = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(values, dict) or values.get("tool") != "pgbackup":
            raise NotUnderstood("not a pgbackup manifest")
        if int(values.get("format_version", 0)) > UNDERSTOOD_VERSION:
            raise NotUnderstood(
                f"manifest format {values.get('format_version')} is newer than this pgbackup "
                f"understands ({UNDERSTOOD_VERSION}); upgrade pgbackup"
            )
        known = {name for name in cls.__dataclass_fields__}
        missing = [name for name, spec in cls.__dataclass_fields__.items()
                   if name not in values and spec.default is MISSING and spec.default_factory is MISSING]
        if missing:
            raise ValueError(f"manifest lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in values.items() if k in known})


def isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StreamFacts(Protocol):
    """What a finished stream measured (``pipeline.stream.StreamStats``)."""

    raw_bytes: int
    compressed_bytes: int
    parts: int
    sha256: str
    seconds: float


def shrink_alarm(fraction: float, previous: Manifest | None, size: int, raw_bytes: int = 0,
                 compression: str = "gzip") -> dict[str, Any] | None:
    """The alarm for a backup of ``size`` compressed bytes, or None: off (0), nothing before, or
    not shrunk. Across a change of compression (gzip to zstd) compressed sizes say nothing about
    lost data, so the dump's raw bytes are compared instead, and the alarm says so."""
    if not fraction or previous is None:
        return None
    if previous.compression == compression:
        if size >= fraction * previous.compressed_bytes:
            return None
        return {"previous_timestamp": previous.run_timestamp, "previous_compressed_bytes": previous.compressed_bytes,
                "fraction": fraction}
    if raw_bytes >= fraction * previous.raw_bytes:
        return None
    return {"previous_timestamp": previous.run_timestamp, "previous_compressed_bytes": previous.compressed_bytes,
            "previous_raw_bytes": previous.raw_bytes, "compared": "raw_bytes", "fraction": fraction}


@dataclass(frozen=True)
class RunFacts:
    """What every manifest of one run shares."""

    run_timestamp: str
    pg_dump_version: str
    server_version: str
    compression: str
    compression_level: int
    pg_dump_options: tuple[str, ...]
    recipients: tuple[str, ...] = ()  # age recipients the objects are sealed to; empty: not sealed
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    # Drawn anew by every process, also when ``run_id`` is given (BACKUP_RUN_ID): two attempts
    # of one run (a retried pod) share the run id, never the attempt, so neither can take the
    # other's object for its own write whose answer was lost (``pipeline.backup``).
    attempt: str = field(default_factory=lambda: secrets.token_hex(8))

    def manifest(
        self, database: str, key: str, stream: StreamFacts, *, started_at: datetime, finished_at: datetime,
        row_counts: dict[str, int], properties: dict[str, Any] | None, role_passwords: bool | None,
        shrink: dict[str, Any] | None, engine: dict[str, Any] | None = None,
    ) -> Manifest:
        """The manifest of one finished object of this run."""
        globals_object = database == GLOBALS
        return Manifest(
            database=database, key=key, run_timestamp=self.run_timestamp,
            raw_bytes=stream.raw_bytes, compressed_bytes=stream.compressed_bytes, sha256=stream.sha256,
            parts=stream.parts, pg_dump_version=self.pg_dump_version, server_version=self.server_version,
            started_at=isoformat(started_at), finished_at=isoformat(finished_at),
            duration_seconds=round(stream.seconds, 3), compression_level=self.compression_level,
            pg_dump_options=[] if globals_object else list(self.pg_dump_options),
            kind="globals" if globals_object else "database",
            row_counts=dict(sorted(row_counts.items())), database_properties=properties,
            role_passwords=role_passwords, shrink_alarm=shrink, run_id=self.run_id, attempt=self.attempt,
            compression=self.compression, compression_engine=engine,
            encryption={"format": "age", "recipients": list(self.recipients)} if self.recipients else None,
            format_version=SEALED_FORMAT_VERSION if self.recipients else FORMAT_VERSION,
        )
