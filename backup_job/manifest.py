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
- ``kind`` ``globals`` with ``role_passwords``: a ``pg_dumpall --globals-only`` object, and
  whether it could include the role passwords.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field
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
    kind: str = "database"  # or "globals"
    row_counts: dict[str, int] = field(default_factory=dict)
    database_properties: dict[str, Any] | None = None
    role_passwords: bool | None = None
    shrink_alarm: dict[str, Any] | None = None
    format: str = "plain"
    compression: str = "gzip"
    format_version: int = FORMAT_VERSION
    tool: str = "pgbackup"
    tool_version: str = __version__

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
            raise ValueError("not a pgbackup manifest")
        if int(values.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"manifest format {values.get('format_version')} is newer than this pgbackup "
                f"understands ({FORMAT_VERSION}); upgrade pgbackup"
            )
        known = {name for name in cls.__dataclass_fields__}
        missing = [name for name, spec in cls.__dataclass_fields__.items()
                   if name not in values and spec.default is MISSING and spec.default_factory is MISSING]
        if missing:
            raise ValueError(f"manifest lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in values.items() if k in known})


def isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
