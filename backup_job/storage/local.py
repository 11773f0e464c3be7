"""A local directory as storage (``file:///dir``): the embedded default, and NFS-style mounts.

Same layout and the same all-or-nothing rule as S3. Only the destination directory itself
(and what is below it) is ever created: its parent must exist, so an unmounted volume fails
the run instead of filling the root filesystem. Parts are appended to a hidden
temporary file beside the final one (``.<name>.partial-<random>``); ``complete`` fsyncs it,
links it to the final name (``os.link`` fails if that name exists, so a backup is never
overwritten, without a check-then-rename race), removes the temporary name and fsyncs the
directory. ``abort`` removes the temporary file. Temporary files left by a killed process
are the unfinished uploads the next run's clean-up finds (``open_uploads``): dated by their
last write, by this machine's clock, which is also the clock they are judged by. After a stop
request (``core.stopping``) nothing is published.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..core import stopping
from ..core.errors import BackupExistsError, ChangedError, NotFoundError, StorageError
from ..core.settings import Destination, Group, UploadSettings
from .base import READ_CHUNK, ObjectInfo, OpenUpload, OpenUploads, PartLimits, Storage, Upload

PARTIAL_MARK = ".partial-"
# A part is one append to the temporary file: no minimum, no count limit; the cap only
# bounds the bytes held in memory.
LIMITS = PartLimits(min_part=0, max_part=64 * 1024 * 1024, max_parts=None)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _partial_name(final: Path) -> Path:
    return final.with_name(f".{final.name}{PARTIAL_MARK}{secrets.token_hex(6)}")


def _publish(partial: Path, final: Path) -> None:
    """Give a finished temporary file its final name, refusing to replace anything."""
    try:
        os.link(partial, final)
    except FileExistsError as exc:
        raise BackupExistsError(f"{final} exists already; pgbackup never overwrites a backup") from exc
    finally:
        partial.unlink(missing_ok=True)
    _fsync_directory(final.parent)


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file holds exactly ``data`` (read no further than one byte past its length)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(data) + 1) == data
    except OSError:
        return False


class LocalStorage(Storage):
    """Backups as files under one root directory."""

    limits = LIMITS

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def path(self, key: str) -> Path:
        return self.root / key

    def describe(self, key: str) -> str:
        return f"file://{self.path(key)}"

    def removal_command(self, keys: list[str]) -> str:
        return "rm -- " + " ".join(shlex.quote(str(self.path(key))) for key in keys)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def prepare(self) -> None:
        """Create the destination directory itself if needed, never its parent: a parent that
        does not exist is usually a volume that is not mounted, and backups written onto the
        root filesystem instead would vanish with the container."""
        if self.root.is_dir():
            return
        if not self.root.parent.is_dir():
            raise StorageError(
                f"{self.root.parent} does not exist, so {self.root} cannot be created in it "
                f"(is the volume mounted?); create {self.root.parent} or fix the destination"
            )
        try:
            self.root.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root}: {exc.strerror}") from exc

    def _directory_for(self, key: str) -> Path:
        self.prepare()
        directory = self.path(key).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {directory}: {exc.strerror}") from exc
        return directory

    def start_upload(self, key: str, content_type: str, metadata: dict[str, str]) -> Upload:
        # A local write is never ambiguous (the link happened or it raised), so no metadata
        # is needed to tell our object from another run's.
        self._directory_for(key)
        return LocalUpload(self.path(key), key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._directory_for(key)
        final = self.path(key)
        partial = _partial_name(final)
        try:
            with open(partial, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            _publish(partial, final)
        except BackupExistsError:
            if _holds(final, data):
                return  # the same bytes: our own write, repeated (as on a store that lost its answer)
            raise
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"writing {final} failed: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"deleting {self.path(key)} failed: {exc.strerror}") from exc

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for directory, _dirs, files in os.walk(base):
            for name in sorted(files):
                if PARTIAL_MARK in name and name.startswith("."):
                    continue  # an upload in progress, not an object
                path = Path(directory) / name
                try:
                    status = path.stat()
                except FileNotFoundError:
                    continue
                yield ObjectInfo(
                    key=str(path.relative_to(self.root)),
                    size=status.st_size,
                    modified=datetime.fromtimestamp(status.st_mtime, UTC),
                )

    def version(self, key: str) -> str:
        try:
            return _identity(os.stat(self.path(key)))
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.describe(key)} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"reading {self.path(key)} failed: {exc.strerror}") from exc

    def read(self, key: str, version: str | None = None) -> Iterator[bytes]:
        try:
            handle = open(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.describe(key)} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"reading {self.path(key)} failed: {exc.strerror}") from exc
        with handle:
            if version is not None and _identity(os.fstat(handle.fileno())) != version:
                raise ChangedError(f"{self.describe(key)} was replaced while it was being read")
            while True:
                try:
                    chunk = handle.read(READ_CHUNK)
                except OSError as exc:
                    raise StorageError(f"reading {self.path(key)} failed: {exc.strerror}") from exc
                if not chunk:
                    return
                yield chunk

    def open_uploads(self, prefix: str) -> OpenUploads:
        base = self.path(prefix) if prefix else self.root
        uploads: list[OpenUpload] = []
        if base.is_dir():
            for partial in base.glob(f"*/.*{PARTIAL_MARK}*"):
                final_name = partial.name[1 : partial.name.index(PARTIAL_MARK)]
                try:
                    modified = datetime.fromtimestamp(partial.stat().st_mtime, UTC)
                except FileNotFoundError:
                    continue  # completed or aborted meanwhile
                uploads.append(
                    OpenUpload(
                        key=str((partial.parent / final_name).relative_to(self.root)),
                        upload_id=str(partial.relative_to(self.root)),
                        initiated=modified,
                    )
                )
        return OpenUploads(uploads=uploads, clock=datetime.now(UTC))

    def written_since(self, upload: OpenUpload, moment: datetime) -> bool:
        try:
            return datetime.fromtimestamp((self.root / upload.upload_id).stat().st_mtime, UTC) >= moment
        except FileNotFoundError:
            return True  # completed or aborted meanwhile: nothing left to drop

    def abort_upload(self, upload: OpenUpload) -> None:
        (self.root / upload.upload_id).unlink(missing_ok=True)


class LocalUpload(Upload):
    """One file being written through a temporary name."""

    def __init__(self, final: Path, key: str) -> None:
        self.key = key
        self.final = final
        self.partial = _partial_name(final)
        try:
            self._handle: BinaryIO = open(self.partial, "xb")
        except OSError as exc:
            raise StorageError(f"cannot create {self.partial}: {exc.strerror}") from exc

    def send_part(self, number: int, data: bytes) -> None:
        try:
            self._handle.write(data)
        except OSError as exc:
            raise StorageError(f"writing {self.partial} failed: {exc.strerror}") from exc

    def complete(self) -> None:
        stopping.refuse_writes(f"finishing {self.final}")  # after a stop the file stays temporary; abort removes it
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            _publish(self.partial, self.final)
        except OSError as exc:
            raise StorageError(f"finishing {self.final} failed: {exc.strerror}") from exc

    def abort(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass
        self.partial.unlink(missing_ok=True)


def _identity(stat: os.stat_result) -> str:
    """A file's identity: replaced (a rename over it) or rewritten, it changes."""
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def open_storage(destination: Destination, _options: Group | None, _upload: UploadSettings) -> LocalStorage:
    """The directory of a ``file://`` destination (the registry's entry point, ``settings.BACKENDS``)."""
    assert destination.directory is not None
    return LocalStorage(destination.directory)
