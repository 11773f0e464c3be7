"""Unfinished multipart uploads on S3: listed with the store's clock, probed, aborted, asked after.

Every answer of an S3 store carries its clock in the ``Date`` header, and an upload's
``Initiated`` comes from that clock too, so a listing is judged against the ``Date`` of its own
answer (``open_uploads``), never against this machine's clock. ListMultipartUploads is called
page by page rather than through botocore's paginator, whose pages hide the headers; the first
page's ``Date`` is the listing's clock (the earliest, so nothing looks older than it is).

Not every store keeps ``Initiated`` honestly: moto's server, for one, answers the same fixed
date in 2010 for every upload. ``probe_upload_clock`` shows how the store dates a new upload:
three requests (CreateMultipartUpload of the probe key, ListMultipartUploads with that key as
prefix, AbortMultipartUpload), all allowed by the backup policy's ``s3:PutObject`` and
``s3:AbortMultipartUpload`` plus the sweep's ``s3:ListBucketMultipartUploads``.

``upload_gone`` answers a run whose part or completion failed: whether its upload still exists.
Stores differ in how they refuse a part of an aborted upload (SeaweedFS and AWS: 404
NoSuchUpload; moto: a bare 500), but ListParts of it answers NoSuchUpload on all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import StorageError
from .base import OpenUpload, OpenUploads
from .s3_checks import code

if TYPE_CHECKING:  # the storage's methods call in here
    from .s3 import S3Storage

NO_SUCH_UPLOAD = {"NoSuchUpload"}


def store_clock(response: dict[str, Any]) -> datetime | None:
    """The store's time when it answered: its ``Date`` header."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).astimezone(UTC) if date else None
    except (TypeError, ValueError):
        return None


def open_uploads(storage: S3Storage, prefix: str) -> OpenUploads:
    """Every unfinished upload whose key starts with ``prefix`` (a whole key or ``dir/``)."""
    uploads: list[OpenUpload] = []
    clock: datetime | None = None
    markers: dict[str, Any] = {}
    try:
        while True:
            page: dict[str, Any] = cast(
                dict[str, Any], storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=prefix, **markers)
            )
            if not markers:  # the first page
                clock = store_clock(page)
            uploads += [
                OpenUpload(key=item["Key"], upload_id=item["UploadId"], initiated=item["Initiated"].astimezone(UTC))
                for item in page.get("Uploads", [])
            ]
            following = {
                "KeyMarker": page.get("NextKeyMarker", ""),
                "UploadIdMarker": page.get("NextUploadIdMarker", ""),
            }
            if not page.get("IsTruncated") or not following["KeyMarker"] or following == markers:
                return OpenUploads(uploads=uploads, clock=clock)
            markers = following
    except (ClientError, BotoCoreError) as exc:
        where = storage.describe(prefix)
        raise storage.listing_error("ListMultipartUploads", where, f"unfinished uploads in {where}", exc) from exc


def written_since(storage: S3Storage, upload: OpenUpload, moment: datetime) -> bool:
    """Whether any part of the upload was written at or after ``moment``."""
    pages = storage.client.get_paginator("list_parts").paginate(
        Bucket=storage.bucket, Key=upload.key, UploadId=upload.upload_id
    )
    try:
        return any(part["LastModified"] >= moment for page in pages for part in page.get("Parts", []))
    except ClientError as exc:
        if code(exc) in NO_SUCH_UPLOAD:
            return True  # completed or aborted meanwhile: nothing left to drop
        where = storage.describe(upload.key)
        raise storage.listing_error("ListParts", where, f"the parts of the unfinished upload of {where}", exc) from exc
    except BotoCoreError as exc:
        where = storage.describe(upload.key)
        raise storage.listing_error("ListParts", where, f"the parts of the unfinished upload of {where}", exc) from exc


def abort_upload(storage: S3Storage, upload: OpenUpload) -> None:
    try:
        storage.client.abort_multipart_upload(Bucket=storage.bucket, Key=upload.key, UploadId=upload.upload_id)
    except ClientError as exc:
        if code(exc) not in NO_SUCH_UPLOAD:  # gone already: what was asked for
            raise storage.error("AbortMultipartUpload", upload.key, exc) from exc
    except BotoCoreError as exc:
        raise storage.error("AbortMultipartUpload", upload.key, exc) from exc


def probe_upload_clock(storage: S3Storage, key: str) -> timedelta | None:
    """``Initiated`` of a new upload at ``key`` minus the ``Date`` of the listing that shows it."""
    created = storage.call("CreateMultipartUpload", key, storage.client.create_multipart_upload, Key=key)
    probe = OpenUpload(key=key, upload_id=created["UploadId"], initiated=datetime.now(UTC))
    try:
        listing = open_uploads(storage, key)
    finally:
        abort_upload(storage, probe)
    listed = [upload for upload in listing.uploads if upload.upload_id == probe.upload_id]
    if not listed or listing.clock is None:
        return None
    return listed[0].initiated - listing.clock


def upload_gone(storage: S3Storage, key: str, upload_id: str) -> bool:
    """Whether the store says the upload no longer exists (False also when it cannot tell)."""
    try:
        storage.client.list_parts(Bucket=storage.bucket, Key=key, UploadId=upload_id, MaxParts=1)
    except ClientError as exc:
        return code(exc) in NO_SUCH_UPLOAD
    except BotoCoreError:
        return False
    return False


def aborted_by_another_process(storage: S3Storage, key: str) -> StorageError:
    """The error of a run whose upload was aborted under it."""
    return StorageError(
        f"the unfinished upload of {storage.describe(key)} was aborted by another process while this run "
        f"was writing it: another run's clean-up of unfinished uploads, or the bucket's lifecycle rule",
        hint="keep the abandoned-upload age and the lifecycle rule's days longer than any run; "
        "see docs/failures.md#unfinished-uploads",
    )
