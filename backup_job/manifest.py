"""The manifest: the proof that a backup object is complete, stored beside it.

``<prefix>/<database>/<timestamp>.manifest.json`` is written only after the dump object's
upload completed, so its presence is what makes an object a backup. Restore and verify
check the object against ``sha256`` and ``compressed_bytes``; list and prune read the rest.
Fields are only ever added; ``format_version`` changes when a meaning changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from . import __version__

FORMAT_VERSION = 1


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
    format: str = "plain"
    compression: str = "gzip"
    format_version: int = FORMAT_VERSION
    tool: str = "pgbackup"
    tool_version: str = __version__

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> "Manifest":
        values: dict[str, Any] = json.loads(data)
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


def isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
