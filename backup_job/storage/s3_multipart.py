"""One S3 multipart upload: parts through the shared part pool, then completed.

The waiting (bounded parts in flight, the first error kept, cancel, a bounded abort) is the
part pool's (``parts``); this module says how a part is sent (UploadPart), how the object is
committed (CompleteMultipartUpload) and dropped (AbortMultipartUpload: a refusal, from
credentials without s3:AbortMultipartUpload, is logged, since no later run with the same
credentials could undo it). A completion already sent when a stop comes is not waited for
(``core.stopping``): it lands or not, and no manifest follows it.

Each part carries ``Content-MD5`` and its MD5 ETag is compared with what was sent; the
completed object's ETag must match too (the MD5 of the parts' MD5s: the very bytes we sent).
Where ETags are opaque (SSE-KMS), CRC32C does it (``s3_crc``): the upload is declared
``FULL_OBJECT`` CRC32C, each part carries its CRC32C, and ``send_part`` extends the whole
object's as the parts come in order, so completion hands the store the CRC32C of everything
sent. A store that checks refuses a part or the completion (BadDigest); any CRC32C the store
reports (for a part, in the completion's answer, or on a HEAD of the object) is compared with
ours, so a store that checks nothing but computes what it holds (moto) is caught too. An
object that differs is deleted (it is ours: it answered our own completion). Under SSE-KMS,
an object that nothing proved (the compatibility mode without checksums, or a store that
reports none) is only checked for its size, and the storage warns once per run.

Any other checksum the store reports (``s3_reported``: CRC32, SHA-1, SHA-256, for a part or,
composite or full-object, for the completed object) is computed over what was sent and
compared: a mismatch fails the upload like any other. In the compatibility mode with
``AWS_REQUEST_CHECKSUM_CALCULATION=when_required`` no request carries a checksum, so what the
store reports is its own account of what it received: a completed object whose every part, or
whose whole, such a checksum matched is proven. Where the SDK sent one (its own CRC32, by
default) a store may merely echo it back, so it is compared but proves nothing.
A completion whose answer was lost is settled by the object's ``pgbackup-run-id`` metadata
and size (``_settle``).

An upload can vanish under a live run: another process aborted it (another run's clean-up of
unfinished uploads, a lifecycle rule). A part or completion the store refused is then
reported as that, not as the store's bare answer (moto answers a part of an aborted upload
with a 500): when the store's refusal is not already NoSuchUpload, one ListParts asks
whether the upload still exists (``s3_unfinished.upload_gone``).
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core import logs, stopping
from ..core.errors import AccessDeniedError, BackupExistsError, StorageError
from . import s3_crc, s3_reported
from .parts import PooledUpload
from .s3_checks import (
    DENIED,
    MAX_PARTS,
    MD5_ETAG,
    MULTIPART_ETAG,
    code,
    content_md5,
    denied,
)
from .s3_unfinished import NO_SUCH_UPLOAD, aborted_by_another_process, upload_gone
from .settle import unconfirmed, written_by_another_run

if TYPE_CHECKING:  # the storage creates its uploads; an upload only calls back into it
    from .s3 import S3Storage

log = logs.get("storage")


class S3Upload(PooledUpload[dict[str, Any]]):
    """One multipart upload; its parts go through the shared part pool (``parts``)."""

    def __init__(
        self, storage: S3Storage, key: str, upload_id: str, metadata: dict[str, str], *, checksums: bool = False
    ) -> None:
        super().__init__(key, storage.describe(key), storage.concurrency, "s3-part")
        self.storage = storage
        self.upload_id = upload_id
        self.metadata = metadata
        self.checksums = checksums  # declared CRC32C, FULL_OBJECT at its creation
        self._whole = s3_crc.Running() if checksums else None  # CRC32C of the parts so far, in order
        self._next = 1  # the part number that extends it
        self._digests: dict[int, bytes] = {}  # part number -> MD5 of what we sent
        # part number -> its size and the raw checksums of it that were compared with the store's
        self._sums: dict[int, tuple[int, dict[str, bytes]]] = {}
        self._proven: set[int] = set()  # the parts a checksum the store reported proved
        self._lock = threading.Lock()

    def send_block(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            md5, expected = content_md5(data)
            checksum = {"ChecksumCRC32C": s3_crc.of(data)} if self.checksums else {}
            response = self.storage.call(
                "UploadPart",
                self.key,
                self.storage.client.upload_part,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
                ContentMD5=md5,
                **checksum,
            )
            self.storage.check_etag(f"part {number}", self.key, response, expected, MD5_ETAG)
            # the CRC32C we sent and any checksum the store reports on its own (the compatibility mode)
            ours = {s3_crc.ALGORITHM: s3_reported.decode(checksum["ChecksumCRC32C"])} if checksum else {}
            reported = self.storage.check_reported(f"part {number}", self.key, response, data, ours)
            with self._lock:
                self._digests[number] = bytes.fromhex(expected)
                self._sums[number] = (len(data), reported)
                if s3_reported.reported(response) and not self.storage.sdk_checksums:
                    self._proven.add(number)  # the store's own checksum of what it received, compared
            part = {"PartNumber": number, "ETag": response["ETag"]}
            # ours, of the upload's algorithm; else whichever the SDK sent by default, as the store answered
            part.update(
                checksum or {k: v for k, v in response.items() if k.startswith("Checksum") and k != "ChecksumType"}
            )
            return part
        except StorageError as exc:
            if not self._gone(exc):
                raise
            raise aborted_by_another_process(self.storage, self.key) from exc

    def send_part(self, number: int, data: bytes) -> None:
        if number > MAX_PARTS:
            raise StorageError(f"{self.where} would need more than {MAX_PARTS} parts")
        super().send_part(number, data)

    def accept(self, number: int, data: bytes) -> None:
        if self._whole is not None:
            if number == self._next:
                self._whole.add(data)
            else:  # not in order: the whole object's CRC32C is left to the store
                self._whole = None
            self._next = number + 1

    def commit(self, results: list[dict[str, Any]]) -> None:
        parts = results
        checksum = {"ChecksumType": s3_crc.FULL_OBJECT} if self.checksums else {}
        if self._whole is not None:
            checksum["ChecksumCRC32C"] = self._whole.encoded()  # the store compares it with what it holds
        try:
            with stopping.abandonable():  # a stalled completion cannot be interrupted; a stop walks away from it
                response = self.storage.conditional(
                    "CompleteMultipartUpload",
                    self.key,
                    self.storage.client.complete_multipart_upload,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts},
                    **checksum,
                )
        except StorageError as exc:
            exists = isinstance(exc, BackupExistsError)
            if not exists and not self._gone(exc):
                raise
            self._settle(exc, gone=not exists)  # the retry of a completion the store had applied meets our object
            return
        whole = hashlib.md5(b"".join(self._digests[n] for n in sorted(self._digests)), usedforsecurity=False)
        crc = self._whole.encoded() if self._whole is not None else None
        try:
            proven = self.storage.check_etag(
                "the object", self.key, response, f"{whole.hexdigest()}-{len(parts)}", MULTIPART_ETAG
            )
            if not proven and crc is not None:
                proven = self.storage.check_crc("the object", self.key, s3_crc.returned(response), crc)
            if not proven:  # a checksum of the whole object the store reports on its own
                proven = self._check_whole(response) and not self.storage.sdk_checksums
            if not proven:  # neither the ETag nor the answer proved anything (SSE-KMS, a store's own form): ask
                proven = self._check_stored(crc)
        except StorageError:
            self.storage.delete(self.key)  # ours (it answered our completion) and not what we sent
            raise
        if not proven:
            self.storage.unproven(self.key)

    def _check_whole(self, response: dict[str, Any]) -> bool:
        """Compare each whole-object checksum in the completion's answer that the parts' compared
        checksums yield (``s3_reported.whole``); True when one proved the object."""
        parts = [self._sums[n] for n in sorted(self._sums)]
        proven = False
        for name, got in s3_reported.reported(response).items():
            expected = s3_reported.whole(name, got, response.get("ChecksumType"), parts)
            if expected is not None:
                proven = self.storage.check_crc("the object", self.key, got, expected, name)
        return proven

    def _check_stored(self, crc: str | None) -> bool:
        """The completed object holds as many bytes as were sent and, where the store shows it,
        their CRC32C; True when that CRC32C proved it, or when every part was proven by a checksum
        the store reported of its own and the size matches (skipped when the credentials may not read)."""
        try:
            found = self.storage.stored(self.key)
        except AccessDeniedError:
            return False
        if found is None:
            return False
        if found[0] != self.sent:
            raise StorageError(
                f"{self.storage.describe(self.key)} holds {found[0]} bytes after completion, pgbackup sent {self.sent}"
            )
        if crc is not None and self.storage.check_crc("the object", self.key, found[1], crc):
            return True
        return bool(self._sums) and self._proven == set(self._sums)

    def _gone(self, refused: StorageError) -> bool:
        """Whether a part or completion was refused because the upload no longer exists."""
        answer = refused.__cause__
        if self.pool.cancelled is not None or not isinstance(answer, ClientError) or code(answer) in DENIED:
            return False  # our own abort; no answer at all (asking again would wait as long); a refusal
        return code(answer) in NO_SUCH_UPLOAD or upload_gone(self.storage, self.key, self.upload_id)

    def _settle(self, failure: StorageError, gone: bool = False) -> None:
        """Return if the object under our key is the one this upload made (our metadata, our
        size); else raise: ``UnconfirmedError`` when it cannot be read, the failure when it
        is another run's object or no object at all, said as an abort by another process
        when the upload is ``gone``."""
        try:
            found = self.storage.head(self.key)
        except AccessDeniedError as exc:
            raise unconfirmed(self.storage.describe(self.key), f"completed (the store answered '{failure}')") from exc
        if found is None:
            if gone:
                raise aborted_by_another_process(self.storage, self.key) from failure
            raise failure
        if found != (self.sent, self.metadata):
            raise written_by_another_run(self.storage.describe(self.key)) from failure

    def drop(self) -> None:
        """AbortMultipartUpload; a refusal is logged (no later run with the same credentials could
        undo it either), anything else is left to the next run's clean-up and the lifecycle rule."""
        try:
            self.storage.client.abort_multipart_upload(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id
            )
        except ClientError as exc:
            if code(exc) in DENIED:
                log.warning(
                    "%s; its parts stay, and are billed, until the bucket's lifecycle rule removes them",
                    denied("AbortMultipartUpload", self.storage.describe(self.key), exc),
                )
        except BotoCoreError:
            pass
