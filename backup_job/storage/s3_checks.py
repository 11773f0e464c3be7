"""S3's numbers and what its answers mean: limits, error codes, ETags and their MD5s.

Shared by the storage (``s3``) and its multipart uploads (``s3_multipart``), so both read a
412, a 403 or an ETag the same way.

A 403 names the IAM permission the refused operation needs (``PERMISSIONS``): with
least-privilege credentials (docs/iam-policies.md) a denial is usually a job run
with the wrong identity, and the permission is what its operator has to look up.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from botocore.exceptions import ClientError

from ..core.errors import AccessDeniedError

MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
DENIED = {"403", "AccessDenied", "Forbidden"}
PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
NOT_IMPLEMENTED = {"NotImplemented", "501"}
# How S3-compatible stores that lack flexible checksums refuse x-amz-checksum-algorithm/-type.
CHECKSUMS_REJECTED = {"InvalidArgument", "InvalidRequest", "NotImplemented", "501"}
POLICIES_HINT = "see docs/iam-policies.md#iam-policies-per-job"
# The IAM action each S3 operation needs, and what it does to the object or prefix named.
PERMISSIONS = {
    "PutObject": ("s3:PutObject", "write"),
    "CreateMultipartUpload": ("s3:PutObject", "write"),
    "UploadPart": ("s3:PutObject", "write"),
    "CompleteMultipartUpload": ("s3:PutObject", "write"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", "abort the unfinished upload of"),
    "GetObject": ("s3:GetObject", "read"),
    "HEAD": ("s3:GetObject", "read"),
    "DeleteObject": ("s3:DeleteObject", "delete"),
    "ListObjectsV2": ("s3:ListBucket", "list"),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads", "list the unfinished uploads in"),
    "ListParts": ("s3:ListMultipartUploadParts", "list the parts of the unfinished upload of"),
}
MD5_ETAG = re.compile(r"[0-9a-f]{32}")
MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-\d+")


def etag(response: dict[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"').lower()


def content_md5(data: bytes) -> tuple[str, str]:
    """The Content-MD5 header for ``data`` (base64) and its hex digest (what an MD5 ETag is)."""
    digest = hashlib.md5(data, usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode(), digest.hexdigest()


def describe_error(exc: Exception) -> str:
    """A one-line reason for a boto3/botocore exception."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code_ = error.get("Code", "?")
        message = error.get("Message", "") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return f"{code_}: {message}".rstrip(": ")
    return str(exc) or type(exc).__name__


def denied(operation: str, where: str, exc: Exception) -> AccessDeniedError:
    """The error for a 403: what the credentials may not do, the store's words, and the
    permission that would allow it."""
    permission, verb = PERMISSIONS.get(operation, ("", f"run {operation} on"))
    needs = f"; {operation} needs {permission}" if permission else ""
    return AccessDeniedError(
        f"the credentials may not {verb} {where} ({describe_error(exc)}){needs}", hint=POLICIES_HINT
    )


def code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
