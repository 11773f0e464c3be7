"""The storage interface: what the pipeline needs from a destination, and nothing more.

A backup is written as an ``Upload``: numbered parts in order, then ``complete`` (the object
appears, whole, under its key) or ``abort`` (nothing appears, nothing is left behind).
Implementations decide how parts travel (S3 multipart, a temporary file renamed into
place); callers never see a half-written object under a final key.

``send_part`` may block: that is the back-pressure which keeps memory bounded when the
destination is slower than pg_dump. Errors from background work surface on the next call
to ``send_part`` or in ``complete``.

Reading back (list, restore, verify, prune) needs only ``list``, ``read`` and ``delete``;
the catalog on top of them decides what is ours.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from ..errors import StorageError

KeyFilter = Callable[[str], bool]
READ_CHUNK = 1024 * 1024


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
        """Discard everything written so far; never raises."""


class Storage(ABC):
    """A destination for backups: an S3 bucket or a local directory."""

    url: str

    @abstractmethod
    def describe(self, key: str) -> str:
        """A URL for a key, for log lines (``s3://bucket/key``, ``file:///dir/key``)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists under ``key``."""

    @abstractmethod
    def start_upload(self, key: str, content_type: str) -> Upload:
        """Begin writing a large object in parts."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write a small object in one piece (manifests)."""

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix/`` (everything for an empty prefix)."""

    @abstractmethod
    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks of at most ``READ_CHUNK``; raises ``NotFoundError``
        when it does not exist and ``StorageError`` when reading fails part way."""

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
    def abort_stale_uploads(self, prefix: str, before: datetime, is_ours: KeyFilter) -> list[str]:
        """Abort unfinished uploads under ``prefix`` begun before ``before`` whose key
        ``is_ours`` accepts, left behind by a process that was killed; returns their keys."""

