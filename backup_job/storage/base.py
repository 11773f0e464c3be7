"""The storage interface: what the pipeline needs from a destination, and nothing more.

A backup is written as an ``Upload``: numbered parts in order, then ``complete`` (the object
appears, whole, under its key) or ``abort`` (nothing appears, nothing is left behind).

A write can be applied by the store while its answer is lost (a 500 or a reset after the
store acted); the SDK's retry then meets our own object. Implementations settle that by
reading what is there: our own bytes (or our own metadata and size) mean the write
happened; anything else is someone else's object and is never overwritten or deleted.
Implementations decide how parts travel (S3 multipart, a temporary file renamed into
place); callers never see a half-written object under a final key.

``send_part`` may block: that is the back-pressure which keeps memory bounded when the
destination is slower than pg_dump. Errors from background work surface on the next call
to ``send_part`` or in ``complete``.

Each destination declares its own ``PartLimits`` (S3's 5 MiB to 5 GiB parts, at most 10,000
of them); the pipeline asks them how large part ``n`` must be, so nothing above storage
knows a provider's numbers. Storage takes its options as arguments and reads no settings.

Reading back (list, restore, verify, prune) needs only ``list``, ``read`` and ``delete``;
the catalog on top of them decides what is ours. ``version`` and ``read(key, version=...)``
pin two reads to the same object: a read of a version that is no longer there fails
(``ChangedError``) instead of returning other bytes.

Unfinished uploads (what killed runs leave) are listed with the store's own clock beside them
(``OpenUploads``), so their age is measured by the clock that dated them; which of them to
abort is decided above storage (``commands.sweep``). ``probe_upload_clock`` tells how the store
dates a fresh upload, for stores whose dates need proof. A store whose unfinished uploads are
invisible and expire on their own (``keeps_unfinished = False``: Azure's uncommitted blocks,
GCS's resumable sessions) is not swept at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..core.errors import StorageError

READ_CHUNK = 1024 * 1024
PARTS_PER_STEP = 1_000


@dataclass(frozen=True)
class PartLimits:
    """What a destination allows for one object written in parts."""

    min_part: int  # bytes; every part but the last must have at least this many
    max_part: int  # bytes
    max_parts: int | None  # None: no limit

    def part_size(self, number: int, base: int) -> int:
        """The size of part ``number`` (1-based): ``base`` doubled every ``PARTS_PER_STEP``
        parts, so an unknown-length stream never runs out of parts before it reaches the
        object size limit (1,000 parts of 8 MiB, then 1,000 of 16 MiB, ...)."""
        return max(self.min_part, min(base << ((number - 1) // PARTS_PER_STEP), self.max_part))


@dataclass(frozen=True)
class OpenUpload:
    """One unfinished upload as the store lists it."""

    key: str
    upload_id: str
    initiated: datetime  # by the store's clock


@dataclass(frozen=True)
class OpenUploads:
    """The unfinished uploads under a prefix, and the store's clock when it listed them."""

    uploads: list[OpenUpload]
    clock: datetime | None  # None: the store's answer did not say what time it is


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as a listing shows it."""

    key: str
    size: int
    modified: datetime  # timezone-aware, UTC


class Upload(ABC):
    """One object being written."""

    key: str

    @abstractmethod
    def send_part(self, number: int, data: bytes) -> None:
        """Hand over part ``number`` (1-based, consecutive)."""

    @abstractmethod
    def complete(self) -> None:
        """Make the object visible under its key; raises ``StorageError`` on failure."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written so far, within a few seconds; never raises."""

    def cancel(self, error: StorageError) -> None:  # noqa: B027 (a hook with a default, not abstract)
        """Make a ``send_part`` or ``complete`` that waits on the destination raise ``error``
        (called from another thread, when time is up). Writes that cannot hang need nothing."""


class Storage(ABC):
    """A destination for backups: an S3 bucket or a local directory."""

    url: str
    limits: PartLimits
    keeps_unfinished = True  # a killed run's upload stays (and is billed) until someone aborts it

    def prepare(self) -> None:  # noqa: B027 (a hook with a default, not abstract)
        """Check, before a run writes anything, that backups can go here; raises
        ``StorageError`` naming what is wrong. Nothing to check by default."""

    @abstractmethod
    def describe(self, key: str) -> str:
        """A URL for a key, for log lines (``s3://bucket/key``, ``file:///dir/key``)."""

    @abstractmethod
    def removal_command(self, keys: list[str]) -> str:
        """A shell command a person can run to delete ``keys`` (pgbackup itself will not)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists under ``key``."""

    @abstractmethod
    def start_upload(self, key: str, content_type: str, metadata: dict[str, str]) -> Upload:
        """Begin writing a large object in parts, tagged with ``metadata`` (which says whose
        it is when a completion turns out ambiguous)."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write a small object in one piece (manifests), never over an existing one: an
        object already there is ``BackupExistsError``, unless it holds exactly ``data`` (our
        own write, applied although the answer was lost); ``UnconfirmedError`` when that
        cannot be read back."""

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix/`` (everything for an empty prefix)."""

    @abstractmethod
    def read(self, key: str, version: str | None = None) -> Iterator[bytes]:
        """The object's bytes in chunks of at most ``READ_CHUNK``; raises ``NotFoundError``
        when it does not exist and ``StorageError`` when reading fails part way. With
        ``version`` (from ``version``), ``ChangedError`` when the object is no longer that one."""

    @abstractmethod
    def version(self, key: str) -> str:
        """A token naming the object now under ``key`` (an ETag, a file's identity), for
        ``read(key, version=...)``; ``NotFoundError`` when there is none."""

    def read_all(self, key: str, limit: int) -> bytes:
        """A small object (a manifest) whole; more than ``limit`` bytes is an error."""
        data = bytearray()
        for chunk in self.read(key):
            data += chunk
            if len(data) > limit:
                raise StorageError(f"{self.describe(key)} is larger than {limit} bytes")
        return bytes(data)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing object is not an error."""

    @abstractmethod
    def open_uploads(self, prefix: str) -> OpenUploads:
        """The unfinished uploads under ``prefix`` (any key), with the store's clock."""

    @abstractmethod
    def written_since(self, upload: OpenUpload, moment: datetime) -> bool:
        """Whether anything was written to ``upload`` at or after ``moment`` (store's clock)."""

    @abstractmethod
    def abort_upload(self, upload: OpenUpload) -> None:
        """Drop an unfinished upload and whatever was written to it."""

    def probe_upload_clock(self, key: str) -> timedelta | None:
        """How far the date the store gives a new upload lies from its own clock: start an
        upload at ``key``, find it in a listing, abort it. None when the listing does not show
        it. A store that dates uploads by the clock ``open_uploads`` reports needs no proof."""
        return timedelta(0)
