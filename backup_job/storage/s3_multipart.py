"""One S3 multipart upload: parts sent in parallel with bounded memory, then completed.

``send_part`` takes a slot from a semaphore before submitting to the thread pool, so a slow
bucket blocks the pipeline instead of growing memory. A failed part is remembered and
re-raised by the next ``send_part`` or by ``complete``; ``abort`` always calls
AbortMultipartUpload so no invisible, billed parts remain.

Each part carries ``Content-MD5`` and its MD5 ETag is compared with what was sent; the
completed object's ETag and size must match too, else it is deleted (it is ours: it answered
our own completion). A completion whose answer was lost is settled by the object's
``pgbackup-run-id`` metadata and size (``_settle``).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core import signals
from ..core.errors import AccessDeniedError, BackupExistsError, StorageError, UnconfirmedError
from .base import Upload
from .s3_checks import MAX_PARTS, MD5_ETAG, MULTIPART_ETAG, content_md5

if TYPE_CHECKING:  # the storage creates its uploads; an upload only calls back into it
    from .s3 import S3Storage


class S3Upload(Upload):
    """One multipart upload with a bounded number of parts in flight."""

    def __init__(self, storage: S3Storage, key: str, upload_id: str, metadata: dict[str, str]) -> None:
        self.storage = storage
        self.key = key
        self.upload_id = upload_id
        self.metadata = metadata
        self.sent = 0  # bytes handed to send_part
        self._digests: dict[int, bytes] = {}  # part number -> MD5 of what we sent
        self._slots = threading.BoundedSemaphore(storage.concurrency)
        self._pool = ThreadPoolExecutor(storage.concurrency, thread_name_prefix="s3-part")
        self._futures: list[Future[dict[str, Any]]] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def _upload_part(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            md5, expected = content_md5(data)
            response = self.storage.call(
                "UploadPart", self.key, self.storage.client.upload_part,
                Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data, ContentMD5=md5,
            )
            self.storage.check_etag(f"part {number}", self.key, response, expected, MD5_ETAG)
            with self._lock:
                self._digests[number] = bytes.fromhex(expected)
            part = {"PartNumber": number, "ETag": response["ETag"]}
            part.update({k: v for k, v in response.items() if k.startswith("Checksum") and k != "ChecksumType"})
            return part
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
            raise
        finally:
            self._slots.release()

    def send_part(self, number: int, data: bytes) -> None:
        if number > MAX_PARTS:
            raise StorageError(f"{self.storage.describe(self.key)} would need more than {MAX_PARTS} parts")
        self.sent += len(data)
        self._slots.acquire()  # back-pressure: wait while `concurrency` parts are in flight
        with self._lock:
            error = self._error
        if error is not None:
            self._slots.release()
            raise error
        with signals.held():  # a worker started here must never take a stop request
            self._futures.append(self._pool.submit(self._upload_part, number, data))

    def complete(self) -> None:
        try:
            parts = [future.result() for future in self._futures]
        finally:
            self._pool.shutdown(wait=True)
        try:
            response = self.storage.conditional(
                "CompleteMultipartUpload", self.key, self.storage.client.complete_multipart_upload,
                Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts},
            )
        except StorageError as exc:
            if not isinstance(exc, BackupExistsError) and "NoSuchUpload" not in str(exc):
                raise
            self._settle(exc)  # the retry of a completion the store had applied meets our object
            return
        whole = hashlib.md5(b"".join(self._digests[n] for n in sorted(self._digests)), usedforsecurity=False)
        try:
            self.storage.check_etag("the object", self.key, response, f"{whole.hexdigest()}-{len(parts)}",
                                    MULTIPART_ETAG)
            self._check_size()
        except StorageError:
            self.storage.delete(self.key)  # ours (it answered our completion) and not what we sent
            raise

    def _check_size(self) -> None:
        """The completed object holds as many bytes as were sent (skipped when the credentials
        may not read)."""
        try:
            found = self.storage.head(self.key)
        except AccessDeniedError:
            return
        if found is not None and found[0] != self.sent:
            raise StorageError(f"{self.storage.describe(self.key)} holds {found[0]} bytes after completion, "
                               f"pgbackup sent {self.sent}")

    def _settle(self, failure: StorageError) -> None:
        """Return if the object under our key is the one this upload made (our metadata, our
        size); else raise: ``UnconfirmedError`` when it cannot be read, the failure when it
        is another run's object or no object at all."""
        try:
            found = self.storage.head(self.key)
        except AccessDeniedError as exc:
            raise UnconfirmedError(
                f"{self.storage.describe(self.key)} was probably completed (the store answered '{failure}'), but "
                "these credentials cannot read it back to confirm", hint="check with `pgbackup list` using read access",
            ) from exc
        if found is None:
            raise failure
        if found != (self.sent, self.metadata):
            raise BackupExistsError(f"{self.storage.describe(self.key)} was written by another run meanwhile; "
                                    "pgbackup never overwrites a backup") from failure


    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.storage.client.abort_multipart_upload(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id
            )
        except (ClientError, BotoCoreError):
            pass  # the next run's stale-upload sweep and the bucket lifecycle rule catch it
