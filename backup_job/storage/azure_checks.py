"""Azure's numbers and what its answers mean: limits, error codes, MD5s, denials.

Shared by the storage (``azure``) and its block uploads (``azure_blocks``), so both read a 409,
a 403 or a lost answer the same way, as ``s3_checks`` does for S3.

A 403 is one of two things. A signature the service cannot verify (a wrong key, an expired
SAS: ``AuthenticationFailed``; Azurite says ``AuthorizationFailure`` with the words "failed to
authenticate") is a credential to fix. Anything else is an identity without the data action
the operation needs (``PERMISSIONS``): with the least-privilege roles of docs/azure.md, a job
run with the wrong identity, and the data action is what its operator has to look up.
"""

from __future__ import annotations

import hashlib
import re

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
)

from ..core.errors import AccessDeniedError, BackupExistsError, StorageError
from ..core.settings import AzureSettings
from .base import PartLimits

# Block blobs: at most 50,000 blocks of at most 4,000 MiB; no lower bound on a block.
MAX_BLOCKS = 50_000
LIMITS = PartLimits(min_part=0, max_part=4000 * 1024 * 1024, max_parts=MAX_BLOCKS)
HINT = "see docs/azure.md#least-privilege"
DATA_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/"
# What each operation does to the blob or prefix named, and the data action it needs.
PERMISSIONS = {
    "Put Block": ("write", "write"),
    "Put Block List": ("write", "write"),
    "Put Blob": ("write", "write"),
    "Get Blob": ("read", "read"),
    "Get Blob Properties": ("read", "read"),
    "Delete Blob": ("delete", "delete"),
    "List Blobs": ("list", "read"),
}
DENIED = {"AuthorizationPermissionMismatch", "AuthorizationFailure", "AuthorizationSourceIPMismatch"}
REFUSED = {"AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation"}
CONFLICT = {"BlobAlreadyExists", "ConditionNotMet"}
SAS_SIGNATURE = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)
CREDENTIALS = (AzureSettings.connection_string, AzureSettings.account_key, AzureSettings.sas_token)


def error_code(exc: BaseException) -> str:
    """The service's error code (``BlobNotFound``), or '' when the answer had none."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def status(exc: BaseException) -> int:
    """The HTTP status of the service's answer, or 0 when there was none."""
    return int(getattr(exc, "status_code", None) or 0)


def missing(exc: BaseException) -> bool:
    """Whether the blob is not there (a 404 about the blob, not about its container)."""
    return status(exc) == 404 and error_code(exc) != "ContainerNotFound"


def describe_error(exc: BaseException) -> str:
    """One line for an SDK error: its code and the first line of its message, SAS signatures hidden."""
    message = (getattr(exc, "reason", None) if isinstance(exc, HttpResponseError) else None) or str(exc)
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), type(exc).__name__)
    code = error_code(exc)
    return SAS_SIGNATURE.sub(r"\1***", f"{code}: {first}" if code and code not in first else first)


def classify(operation: str, where: str, account: str, container: str, exc: AzureError) -> StorageError:
    """The ``StorageError`` for a failed ``operation`` on ``where`` (a URL)."""
    code, said = error_code(exc), describe_error(exc)
    if code == "ContainerNotFound":
        return StorageError(
            f"the container {container} does not exist in the storage account {account}; "
            f"create it (az storage container create --account-name {account} --name {container})"
        )
    if code in CONFLICT or isinstance(exc, (ResourceExistsError, ResourceModifiedError)):
        return BackupExistsError(f"{where} exists already; pgbackup never overwrites a backup")
    if isinstance(exc, ClientAuthenticationError) and not status(exc):  # no token: the identity chain found none
        return AccessDeniedError(
            f"no credentials for the storage account {account}: {said}",
            hint=f"set {' or '.join(variable.name for variable in CREDENTIALS)}, or give the job a workload or "
            "managed identity (docs/azure.md#credentials)",
        )
    if code in REFUSED or status(exc) == 401 or (status(exc) == 403 and "failed to authenticate" in said):
        return AccessDeniedError(
            f"the storage account {account} refused the credentials ({said})",
            hint=f"check {' or '.join(variable.name for variable in CREDENTIALS)}",
        )
    if code in DENIED or status(exc) == 403:
        verb, action = PERMISSIONS.get(operation, (f"run {operation} on", ""))
        needs = f"; {operation} needs {DATA_ACTION}{action}" if action else ""
        return AccessDeniedError(f"the credentials may not {verb} {where} ({said}){needs}", hint=HINT)
    return StorageError(f"Azure {operation} of {where} failed: {said}")


def ambiguous(exc: AzureError, failure: StorageError) -> bool:
    """Whether a write may have been applied although it failed: a conflict (the SDK's retry of a
    write the service applied), no answer at all, or the service's own failure (5xx)."""
    return isinstance(failure, BackupExistsError) or not isinstance(exc, HttpResponseError) or status(exc) >= 500


def content_md5(data: bytes) -> bytes:
    """The MD5 digest of ``data`` (what ``Content-MD5`` carries, base64-encoded by the SDK)."""
    return hashlib.md5(data, usedforsecurity=False).digest()


def check_md5(what: str, where: str, returned: bytes | bytearray | None, sent: bytes) -> None:
    """Fail when the MD5 the service returned (None: it returned none) is not the one sent."""
    if returned is not None and bytes(returned) != sent:
        raise StorageError(
            f"{what} of {where} was altered on its way: the service holds bytes with MD5 "
            f"{bytes(returned).hex()}, pgbackup sent {sent.hex()}"
        )


def metadata_name(name: str) -> str:
    """A metadata name as Azure allows it (a C# identifier): ``pgbackup-run-id`` -> ``pgbackup_run_id``."""
    return name.replace("-", "_").lower()
