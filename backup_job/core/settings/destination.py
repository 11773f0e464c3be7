"""Where backups go: ``BACKUP_DESTINATION``, and the registry of destination kinds.

The one setting every command needs and none has a default for; it is read on its own (not
as a group) so ``Settings.destination`` is the parsed place itself.

``BACKENDS`` is the registry, one line per kind of destination, keyed by the URL's scheme:
how its URL is parsed into a ``Destination``, which settings group holds its options (read
only when that kind is chosen, so an S3 variable never stops a run to Azure), the storage
module that opens it (``open_storage``), imported only when a destination of that kind is
opened, so its SDK is too, and the pip extra that carries the SDK. A new backend is its
storage module, its options group, one line here and one test fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from ..printable import control_character
from ..schema import Invalid, Variable
from . import azure, gcs
from .group import Group
from .s3 import S3Settings


@dataclass(frozen=True)
class Destination:
    """Where backups go: a bucket (or container) and prefix, or a local directory."""

    url: str
    scheme: str  # a key of BACKENDS
    bucket: str = ""  # an S3 or GCS bucket, an Azure container
    prefix: str = ""  # no leading or trailing slash; may be empty
    directory: Path | None = None
    account: str = ""  # an Azure storage account


EXAMPLE = "s3://my-bucket/postgres or file:///var/backups/postgres"


def bucket_prefix(parts: SplitResult, example: str = EXAMPLE) -> str:
    """The path of a bucket URL as a prefix: no slashes at either end, no empty segment."""
    prefix = parts.path.strip("/")
    if "//" in prefix:
        raise Invalid("has an empty path segment in its prefix", example)
    return prefix


def _s3(value: str, parts: SplitResult) -> Destination:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", parts.netloc):
        raise Invalid("does not name a valid S3 bucket", EXAMPLE)
    return Destination(url=value, scheme="s3", bucket=parts.netloc, prefix=bucket_prefix(parts))


def _file(value: str, parts: SplitResult) -> Destination:
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise Invalid("must be an absolute path (three slashes)", EXAMPLE)
    return Destination(url=value, scheme="file", directory=Path(parts.path))


@dataclass(frozen=True)
class Backend:
    """One kind of destination (see the module's docstring)."""

    scheme: str
    parse: Callable[[str, SplitResult], Destination]  # raises Invalid
    options: type[Group] | None  # its settings group; None: it has no options
    module: str  # the storage module with ``open_storage``, imported when one is opened
    extra: str | None = None  # ``pip install pgbackup[<extra>]`` brings its SDK
    sdk: tuple[str, ...] = ()  # the SDK's packages, which nothing imports before ``module`` is
    example: str = ""  # a URL of this kind, for messages and tests
    equivalent: Callable[[SplitResult], str | None] | None = None  # its URL for another form naming its place


BACKENDS = {
    backend.scheme: backend
    for backend in (
        Backend("s3", _s3, S3Settings, "backup_job.storage.s3", example="s3://my-bucket/postgres"),
        Backend(
            "gs",
            gcs.parse,
            gcs.GcsSettings,
            "backup_job.storage.gcs",
            "gcs",
            ("google.cloud", "google.auth", "google.api_core", "google.resumable_media"),
            example="gs://my-bucket/postgres",
        ),
        Backend(
            "azure",
            azure.parse_url,
            azure.AzureSettings,
            "backup_job.storage.azure",
            "azure",
            ("azure.storage.blob", "azure.identity", "azure.core"),
            example=azure.EXAMPLE,
            equivalent=azure.equivalent,
        ),
        Backend("file", _file, None, "backup_job.storage.local", example="file:///var/backups/postgres"),
    )
}


def _destination(value: str) -> Destination:
    if not value:
        raise Invalid("is not set", EXAMPLE)
    control = control_character(value)
    if control:  # urlsplit drops tabs and line breaks: the place used would not be the one written
        raise Invalid(f"contains a control character ({control}); remove it", EXAMPLE)
    if "?" in value or "#" in value:  # urlsplit would cut them off (with what follows) in silence
        raise Invalid("must not contain '?' or '#' (a bucket prefix or directory is the path alone)", EXAMPLE)
    parts = urlsplit(value)
    backend = BACKENDS.get(parts.scheme)
    if backend is None:
        for other in BACKENDS.values():
            same = other.equivalent(parts) if other.equivalent is not None else None
            if same is not None:
                raise Invalid(f"is a service URL, not a destination: use its {other.scheme}:// form", same)
        *others, last = (f"{scheme}://" for scheme in BACKENDS)
        raise Invalid(f"must start with {', '.join(others)} or {last}", EXAMPLE)
    return backend.parse(value, parts)


DESTINATION = Variable(
    "BACKUP_DESTINATION",
    _destination,
    "A bucket (or Azure container) and optional prefix, or an absolute directory: `s3://`, `gs://`, "
    "`azure://<account>/<container>`, `file://`.",
    example="s3://my-backups/postgres, gs://my-backups/pg, azure://myaccount/backups/pg, file:///var/backups/pg",
    shown_default="(required)",
)
