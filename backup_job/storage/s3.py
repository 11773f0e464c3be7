"""S3 (and S3-compatible) storage through boto3, with multipart uploads we drive ourselves.

Why not ``upload_fileobj``: on a pipe, s3transfer reads parts with single ``read()`` calls,
so a short read produces a short part (rejected at completion when under 5 MiB), and a
short first read turns the whole stream into one in-memory PutObject. The pipeline fills
every part to its size itself and hands it here.

``S3Upload`` (``s3_multipart``) keeps at most ``concurrency`` parts in flight, so a slow
bucket blocks the pipeline instead of growing memory.

Every part and single PUT carries ``Content-MD5``, so a store that checks it refuses bytes
altered on the way; where the returned ETag is an MD5 (no SSE-KMS) it is compared too, for
stores that do not check, and the completed object's ETag (MD5 of the parts' MD5s) and size
must match what was sent. They also carry a CRC32C (``s3_crc``; a multipart upload the whole
object's too), which is what proves an object under SSE-KMS: a store that checks it refuses
altered bytes, and a CRC32C the store reports must equal ours. An object that fails these
checks is ours and wrong: it is deleted and the backup fails.

Stores that reject the CRC32C headers: ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required`` (the
SDK's own switch for them) leaves them out, and a CreateMultipartUpload refused with
InvalidArgument, InvalidRequest or NotImplemented is repeated without them, and the rest of
the run writes without them. Parts then keep ``Content-MD5`` only, and whatever checksum the
store reports of its own is compared with the same algorithm over what was sent
(``check_reported``, ``s3_reported``); under SSE-KMS, when nothing shows what such a store
holds, ``unproven`` says so once per run as a WARNING.

Completion and manifest writes carry ``If-None-Match: *``: the store itself refuses to
overwrite an existing backup, which also holds for write-only credentials that cannot read
the bucket to check first. A store that does not implement conditional writes answers
NotImplemented; the write is then repeated without the condition (the earlier existence
check still guards it).

After a stop request (``core.stopping``) the client sends no write: a hook refuses every
upload, part, completion and PUT before it goes on the wire, the SDK's retries included.
Aborts and deletes (clean-up) still go.

Connection details come from the SDK's own variables (``AWS_ENDPOINT_URL_S3``,
``AWS_REGION``, ``AWS_REQUEST_CHECKSUM_CALCULATION``, the credential chain including web
identity). ``S3Options`` adds what the SDK has no variable for (from pgbackup's own S3
settings).

``AWS_MAX_ATTEMPTS`` counts attempts as the AWS SDKs document it, the first request included,
so it goes to botocore's ``total_max_attempts``: the older ``max_attempts`` key of a
``Config`` counts retries, and would send one request more (one read timeout more of waiting
when every attempt stalls).
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..core import logs, stopping
from ..core.errors import BackupExistsError, ChangedError, NotFoundError, StorageError
from ..core.settings import Destination, Group, S3Settings, UploadSettings
from . import s3_crc, s3_reported, s3_unfinished
from .base import READ_CHUNK, ObjectInfo, OpenUpload, OpenUploads, PartLimits, Storage, Upload
from .s3_checks import (
    CHECKSUMS_REJECTED,
    DENIED,
    MAX_PART_SIZE,
    MAX_PARTS,
    MD5_ETAG,
    MIN_PART_SIZE,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    PRECONDITION,
    code,
    content_md5,
    denied,
    describe_error,
    etag,
)
from .s3_multipart import S3Upload
from .settle import confirm_bytes

log = logs.get("storage")
AddressingStyle = Literal["auto", "virtual", "path"]
RetryMode = Literal["standard", "adaptive", "legacy"]
LIMITS = PartLimits(min_part=MIN_PART_SIZE, max_part=MAX_PART_SIZE, max_parts=MAX_PARTS)
WRITES = frozenset(
    {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject", "UploadPartCopy"}
)


class S3Options(Protocol):
    """What S3 storage needs beyond the SDK's own variables (``core.settings.S3Settings``)."""

    @property
    def addressing_style(self) -> str: ...

    @property
    def sse(self) -> str | None: ...

    @property
    def kms_key_id(self) -> str | None: ...

    @property
    def storage_class(self) -> str | None: ...

    @property
    def connect_timeout(self) -> int: ...

    @property
    def read_timeout(self) -> int: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def retry_mode(self) -> str: ...


def _refuse_writes_after_stop(event_name: str = "", **_: Any) -> None:
    """botocore's ``before-send`` hook: a write (each attempt) raises once a stop was requested."""
    operation = event_name.rsplit(".", 1)[-1]
    if operation in WRITES:
        stopping.refuse_writes(f"S3 {operation}")


class S3Storage(Storage):
    """A bucket and the client that talks to it."""

    limits = LIMITS

    def __init__(self, bucket: str, options: S3Options, concurrency: int) -> None:
        self.bucket = bucket
        self.url = f"s3://{bucket}"
        self.options = options
        self.concurrency = concurrency
        config = Config(
            s3={"addressing_style": cast(AddressingStyle, options.addressing_style)},
            retries={"mode": cast(RetryMode, options.retry_mode), "total_max_attempts": options.max_attempts},
            max_pool_connections=concurrency + 2,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
        )
        try:
            self.client = boto3.session.Session().client("s3", config=config)
        except BotoCoreError as exc:
            raise StorageError(f"cannot set up the S3 client: {describe_error(exc)}") from exc
        self.client.meta.events.register("before-send.s3", _refuse_writes_after_stop)
        self._conditional_writes = True
        # CRC32C checksums, unless the SDK is told to send only the checksums an operation
        # requires (the compatibility mode for stores that reject them) or CRC32C cannot run in C.
        # Otherwise the SDK sends a checksum with every part and PUT (its own CRC32 when pgbackup
        # sends none), and a store may merely echo it: only a checksum reported of a request that
        # carried none is the store's own account of what it received.
        self.sdk_checksums = getattr(self.client.meta.config, "request_checksum_calculation", None) != "when_required"
        self.checksums = self.sdk_checksums and s3_crc.available()
        self._warned = False
        self._warning = threading.Lock()  # parallel databases complete their uploads at once

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _object_args(self, *, storage_class: bool) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.options.sse:
            args["ServerSideEncryption"] = self.options.sse
        if self.options.kms_key_id:
            args["SSEKMSKeyId"] = self.options.kms_key_id
        if storage_class and self.options.storage_class:
            args["StorageClass"] = self.options.storage_class
        return args

    def error(self, what: str, key: str, exc: Exception) -> StorageError:
        """The ``StorageError`` for a failed SDK call."""
        if isinstance(exc, ClientError) and code(exc) in PRECONDITION:
            return BackupExistsError(f"{self.describe(key)} exists already; pgbackup never overwrites a backup")
        if isinstance(exc, ClientError) and code(exc) in DENIED:
            return denied(what, self.describe(key), exc)
        return StorageError(f"S3 {what} of {self.describe(key)} failed: {describe_error(exc)}")

    def listing_error(self, operation: str, where: str, what: str, exc: Exception) -> StorageError:
        """The ``StorageError`` for a failed listing of ``what`` at ``where`` (a URL)."""
        if isinstance(exc, ClientError) and code(exc) in DENIED:
            return denied(operation, where, exc)
        return StorageError(f"listing {what} failed: {describe_error(exc)}")

    def call(self, what: str, key: str, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """Run one S3 operation, turning SDK errors into ``StorageError``."""
        try:
            return operation(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self.error(what, key, exc) from exc

    def conditional(self, what: str, key: str, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """Like ``call`` with ``If-None-Match: *``, dropped for stores that lack it."""
        if self._conditional_writes:
            try:
                return operation(Bucket=self.bucket, IfNoneMatch="*", **kwargs)
            except ClientError as exc:
                if code(exc) not in NOT_IMPLEMENTED:
                    raise self.error(what, key, exc) from exc
                self._conditional_writes = False
            except BotoCoreError as exc:
                raise self.error(what, key, exc) from exc
        return self.call(what, key, operation, **kwargs)

    def removal_command(self, keys: list[str]) -> str:
        return " && ".join(f"aws s3 rm {shlex.quote(self.describe(key))}" for key in keys)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if code(exc) in NOT_FOUND:
                return False
            if code(exc) in DENIED:
                # Write-only credentials cannot read; the conditional write guards instead.
                return False
            raise self.error("HEAD", key, exc) from exc
        except BotoCoreError as exc:
            raise self.error("HEAD", key, exc) from exc
        return True

    def start_upload(self, key: str, content_type: str, metadata: dict[str, str]) -> Upload:
        args: dict[str, Any] = {
            "Key": key,
            "ContentType": content_type,
            "Metadata": metadata,
            **self._object_args(storage_class=True),
        }
        create: Callable[..., Any] = self.client.create_multipart_upload
        if self.checksums:
            try:
                response = create(
                    Bucket=self.bucket, ChecksumAlgorithm=s3_crc.ALGORITHM, ChecksumType=s3_crc.FULL_OBJECT, **args
                )
                return S3Upload(self, key, response["UploadId"], metadata, checksums=True)
            except ClientError as exc:
                if code(exc) not in CHECKSUMS_REJECTED:
                    raise self.error("CreateMultipartUpload", key, exc) from exc
                self.checksums = False  # a store that rejects them: the compatibility mode from here on
                log.info("%s refused CRC32C checksums (%s); writing without them", self.url, describe_error(exc))
            except BotoCoreError as exc:
                raise self.error("CreateMultipartUpload", key, exc) from exc
        response = self.call("CreateMultipartUpload", key, create, **args)
        return S3Upload(self, key, response["UploadId"], metadata, checksums=False)

    def unproven(self, key: str) -> None:
        """Say once per run that under SSE-KMS nothing here shows the store holds what was sent."""
        with self._warning:
            if self.options.sse != "aws:kms" or self._warned:
                return
            self._warned = True
        why = (
            "it returned no CRC32C of what it holds"
            if self.checksums
            else "no CRC32C is sent (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, or the store refused them)"
        )
        log.warning(
            "bytes altered on their way to %s cannot be detected under SSE-KMS: ETags are not MD5s there and "
            "%s, so only the store's own Content-MD5 check guards %s and the other backups of this run; "
            "use a store that verifies CRC32C checksums to have them checked",
            self.url,
            why,
            self.describe(key),
        )

    def check_crc(self, what: str, key: str, got: str | None, expected: str, algorithm: str = "CRC32C") -> bool:
        """Fail when the store's checksum (CRC32C unless named) says it holds other bytes than we
        sent; True when it showed that it holds exactly what we sent."""
        if got is None:
            return False
        if got != expected:
            raise StorageError(
                f"{what} of {self.describe(key)} was altered on its way: the store holds bytes "
                f"with {algorithm} {got}, pgbackup sent {expected}"
            )
        return True

    def check_reported(
        self, what: str, key: str, response: dict[str, Any], data: bytes, ours: dict[str, bytes]
    ) -> dict[str, bytes]:
        """Compare each checksum the store reports of ``data`` (``s3_reported``) with the same
        algorithm over what was sent, computing only those not in ``ours`` (raw digests already
        known); the raw digests compared, and ``ours``."""
        digests = dict(ours)
        for name, got in s3_reported.reported(response).items():
            if name not in digests:
                digests[name] = s3_reported.of_part([name], data)[name]
            self.check_crc(what, key, got, s3_reported.encode(digests[name]), name)
        return digests

    @property
    def etags_are_md5(self) -> bool:
        """Without SSE-KMS, S3 and its clones give an object (or part) written in one piece the
        MD5 of its bytes as its ETag; with it, an opaque value."""
        return self.options.sse != "aws:kms"

    def check_etag(
        self, what: str, key: str, response: dict[str, Any], expected: str, pattern: re.Pattern[str]
    ) -> bool:
        """Fail when the store's ETag says it stored other bytes than we sent; True when it
        showed that the store holds exactly what we sent (an MD5 ETag that matches)."""
        got = etag(response)
        if not (self.etags_are_md5 and pattern.fullmatch(got)):
            return False
        if got != expected:
            raise StorageError(
                f"{what} of {self.describe(key)} was altered on its way: the store holds bytes "
                f"with MD5 {got}, pgbackup sent {expected}"
            )
        return True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        md5, expected = content_md5(data)
        crc = s3_crc.of(data) if self.checksums else None
        checksum = {"ChecksumCRC32C": crc} if crc else {}
        try:
            response = self.conditional(
                "PutObject",
                key,
                self.client.put_object,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=md5,
                **checksum,
                **self._object_args(storage_class=False),
            )
        except BackupExistsError as conflict:
            confirm_bytes(self, key, data, conflict)
            return  # our own write: applied by the store, its answer lost, the retry refused
        try:
            self.check_etag("PutObject", key, response, expected, MD5_ETAG)
            # every checksum of the object the store reports: the CRC32C we sent, or its own
            ours = {s3_crc.ALGORITHM: s3_reported.decode(crc)} if crc else {}
            self.check_reported("PutObject", key, response, data, ours)
        except StorageError:
            self.delete(key)  # ours (its ETag answered our own request) and not what we sent
            raise

    def head(self, key: str) -> tuple[int, dict[str, str]] | None:
        """Size and user metadata of ``key``; None when it does not exist."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if code(exc) in NOT_FOUND:
                return None
            raise self.error("HEAD", key, exc) from exc
        except BotoCoreError as exc:
            raise self.error("HEAD", key, exc) from exc
        return int(response["ContentLength"]), dict(response.get("Metadata") or {})

    def stored(self, key: str) -> tuple[int, str | None] | None:
        """Size and whole-object CRC32C (None when the store keeps or shows none) of ``key``;
        None when it does not exist."""
        mode = {"ChecksumMode": "ENABLED"} if self.checksums else {}
        head: Callable[..., Any] = self.client.head_object
        try:
            response = head(Bucket=self.bucket, Key=key, **mode)
        except ClientError as exc:
            if code(exc) in NOT_FOUND:
                return None
            raise self.error("HEAD", key, exc) from exc
        except BotoCoreError as exc:
            raise self.error("HEAD", key, exc) from exc
        return int(response["ContentLength"]), s3_crc.returned(response)

    def delete(self, key: str) -> None:
        self.call("DeleteObject", key, self.client.delete_object, Key=key)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/" if prefix else ""):
                for item in page.get("Contents", []):
                    modified = item["LastModified"]
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]), modified=modified.astimezone(UTC))
        except (ClientError, BotoCoreError) as exc:
            where = self.describe(f"{prefix}/" if prefix else "")
            raise self.listing_error("ListObjectsV2", where, where, exc) from exc

    def version(self, key: str) -> str:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if code(exc) in NOT_FOUND:
                raise NotFoundError(f"{self.describe(key)} does not exist") from exc
            raise self.error("HEAD", key, exc) from exc
        except BotoCoreError as exc:
            raise self.error("HEAD", key, exc) from exc
        return str(response["ETag"])

    def read(self, key: str, version: str | None = None) -> Iterator[bytes]:
        try:
            if version is None:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            else:
                response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=version)
        except ClientError as exc:
            if code(exc) in NOT_FOUND:
                raise NotFoundError(f"{self.describe(key)} does not exist") from exc
            if version is not None and code(exc) in PRECONDITION:
                raise ChangedError(f"{self.describe(key)} was replaced while it was being read") from exc
            raise self.error("GetObject", key, exc) from exc
        except BotoCoreError as exc:
            raise self.error("GetObject", key, exc) from exc
        body = response["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        except (ClientError, BotoCoreError) as exc:
            raise self.error("GetObject", key, exc) from exc
        finally:
            body.close()

    def open_uploads(self, prefix: str) -> OpenUploads:
        return s3_unfinished.open_uploads(self, f"{prefix}/" if prefix else "")

    def written_since(self, upload: OpenUpload, moment: datetime) -> bool:
        return s3_unfinished.written_since(self, upload, moment)

    def abort_upload(self, upload: OpenUpload) -> None:
        s3_unfinished.abort_upload(self, upload)

    def probe_upload_clock(self, key: str) -> timedelta | None:
        return s3_unfinished.probe_upload_clock(self, key)


def open_storage(destination: Destination, options: Group | None, upload: UploadSettings) -> S3Storage:
    """The bucket of an ``s3://`` destination (the registry's entry point, ``settings.BACKENDS``)."""
    assert isinstance(options, S3Settings)
    return S3Storage(destination.bucket, options, upload.upload_concurrency)
