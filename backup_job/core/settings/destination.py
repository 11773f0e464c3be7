"""Where backups go: ``BACKUP_DESTINATION``, an S3 bucket and prefix or a local directory.

The one setting every command needs and none has a default for; it is read on its own (not
as a group) so ``Settings.destination`` is the parsed place itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..printable import control_character
from ..schema import Invalid, Variable


@dataclass(frozen=True)
class Destination:
    """Where backups go: an S3 bucket and prefix, or a local directory."""

    url: str
    scheme: str  # "s3" or "file"
    bucket: str = ""
    prefix: str = ""  # no leading or trailing slash; may be empty
    directory: Path | None = None


def _destination(value: str) -> Destination:
    example = "s3://my-bucket/postgres or file:///var/backups/postgres"
    if not value:
        raise Invalid("is not set", example)
    control = control_character(value)
    if control:  # urlsplit drops tabs and line breaks: the place used would not be the one written
        raise Invalid(f"contains a control character ({control}); remove it", example)
    if "?" in value or "#" in value:  # urlsplit would cut them off (with what follows) in silence
        raise Invalid("must not contain '?' or '#' (a bucket prefix or directory is the path alone)", example)
    parts = urlsplit(value)
    if parts.scheme == "s3":
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", parts.netloc):
            raise Invalid("does not name a valid S3 bucket", example)
        prefix = parts.path.strip("/")
        if "//" in prefix:
            raise Invalid("has an empty path segment in its prefix", example)
        return Destination(url=value, scheme="s3", bucket=parts.netloc, prefix=prefix)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise Invalid("must be an absolute path (three slashes)", example)
        return Destination(url=value, scheme="file", directory=Path(parts.path))
    raise Invalid("must start with s3:// or file://", example)


DESTINATION = Variable(
    "BACKUP_DESTINATION",
    _destination,
    "Bucket and optional prefix, or an absolute directory.",
    example="s3://my-backups/postgres, file:///var/backups/pg",
    shown_default="(required)",
)
