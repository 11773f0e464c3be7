"""Azure Blob Storage through Microsoft's SDK: a container of a storage account, block blobs.

A dump is written as blocks (Put Block, one per part, through the shared part pool) and
committed in part order as one blob (Put Block List, ``azure_blocks``); a manifest is one Put
Blob; what the service's answers mean (limits, error codes, denials, MD5s) is
``azure_checks``. Both writes carry ``If-None-Match: *``: the service itself refuses to
replace any blob, which also holds for credentials that may not read. A write refused that way, or whose answer
was lost (an error, a timeout after the SDK's last attempt), is settled by reading what is
there: a manifest by its bytes, a dump by its metadata (the run's id and attempt) and size.
Anything else is another writer's blob, never overwritten or deleted.

Every block and single write carries ``Content-MD5``, which the service checks (a block
altered on the way is refused: 400 Md5Mismatch); where the service answers with the MD5 it
computed, that is compared too. A committed dump gets the MD5 of all its bytes as its stored
``Content-MD5`` (``x-ms-blob-content-md5``), so any reader (``az storage blob download
--validate-content``, another tool) can check the whole blob.

Blob metadata names must be C# identifiers: the pipeline's ``pgbackup-run-id`` is stored as
``pgbackup_run_id`` (``metadata_name``), and read back under that name.

Blocks never committed are not an object: they cannot be listed, deleted or aborted, and the
service drops them after 7 days. So a killed run leaves nothing visible, ``keeps_unfinished``
is False (the sweep skips this store) and aborting an upload sends nothing.

After a stop request (``core.stopping``) the client sends no write: the SDK's request hook
(``raw_request_hook``, run before every attempt, the SDK's retries included) refuses every
PUT. Deletes (retention) are not writes of a backup and still go.

Credentials: a connection string, the account key (``AzureNamedKeyCredential``), or a SAS
token (``AzureSasCredential``), at most one (``core.settings.azure``); with none,
``azure.identity.DefaultAzureCredential``, imported only then. The endpoint is the connection
string's, else ``BACKUP_AZURE_ENDPOINT``, else ``https://<account>.blob.core.windows.net``.
The SDK's waits are bounded by pgbackup's settings (connect and read timeouts, attempts per
request), and its retries wait as the AWS SDKs' do (``Backoff``); a credential that yields no
token is not asked again. The SDK's own log records stay off stderr (``_quiet_sdk_logs``).
"""

from __future__ import annotations

import logging
import random
import shlex
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any, TypeVar

import requests
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline import PipelineRequest
from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry

from ..core import stopping
from ..core.errors import AccessDeniedError, ChangedError, NotFoundError, StorageError
from ..core.settings import DESTINATION, AzureSettings, Destination, Group, UploadSettings
from .azure_blocks import AzureUpload
from .azure_checks import (
    LIMITS,
    ambiguous,
    check_md5,
    classify,
    content_md5,
    describe_error,
    error_code,
    metadata_name,
    missing,
    status,
)
from .base import READ_CHUNK, ObjectInfo, OpenUpload, OpenUploads, Storage, Upload
from .settle import confirm_bytes

WRITES = frozenset({"PUT"})  # Put Block, Put Block List, Put Blob (a DELETE removes, never writes a backup)
MAX_BACKOFF = 20.0  # seconds between two attempts, at most
T = TypeVar("T")


class Backoff(ExponentialRetry):
    """The SDK's retries (transport errors, timeouts, 408, 5xx) with the AWS SDKs' backoff: a
    random wait up to 1 s before the first retry, doubling up to ``MAX_BACKOFF``. The SDK's own
    (18 s, then 24 s, ...) would outlast a stop's bound before the first retry."""

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return random.uniform(0, min(MAX_BACKOFF, 2 ** max(0, int(settings["count"]) - 1)))

    def increment(
        self,
        settings: dict[str, Any],
        request: Any,
        response: Any = None,
        error: AzureError | None = None,
    ) -> bool:
        if isinstance(error, ClientAuthenticationError):
            return False  # no token (no identity found, a refused one): asking again finds none either
        return bool(super().increment(settings, request, response, error))


def _refuse_writes_after_stop(request: PipelineRequest[Any]) -> None:
    """The SDK's request hook (each attempt): a write raises once a stop was requested."""
    if request.http_request.method in WRITES:
        stopping.refuse_writes(f"Azure {request.http_request.method} {request.http_request.url.split('?')[0]}")


class AzureStorage(Storage):
    """A container of a storage account and the client that talks to it."""

    limits = LIMITS
    keeps_unfinished = False  # uncommitted blocks are invisible and dropped by the service after 7 days

    def __init__(self, destination: Destination, options: AzureSettings, concurrency: int) -> None:
        self.account = destination.account
        self.container_name = destination.bucket
        self.url = f"azure://{self.account}/{self.container_name}"
        self.concurrency = concurrency
        session = requests.Session()  # connections for every part in flight, and a read beside them
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=concurrency + 2)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        client_options: dict[str, Any] = {
            "connection_timeout": options.connect_timeout,
            "read_timeout": options.read_timeout,
            "retry_policy": Backoff(retry_total=options.max_attempts - 1),
            "raw_request_hook": _refuse_writes_after_stop,
            "session": session,
            "max_single_get_size": READ_CHUNK,
            "max_chunk_get_size": READ_CHUNK,
        }
        _quiet_sdk_logs()
        self.service = _client(destination, options, client_options)
        self.container = self.service.get_container_client(self.container_name)

    def describe(self, key: str) -> str:
        return f"{self.url}/{key}"

    def blob(self, key: str) -> Any:
        return self.container.get_blob_client(key)

    def error(self, operation: str, key: str, exc: AzureError) -> StorageError:
        """The ``StorageError`` for a failed SDK call on ``key`` ('' for the container)."""
        return classify(operation, self.describe(key) if key else self.url, self.account, self.container_name, exc)

    def call(self, operation: str, key: str, action: Callable[[], T]) -> T:
        """Run one SDK call, turning its errors into ``StorageError``."""
        try:
            return action()
        except AzureError as exc:
            raise self.error(operation, key, exc) from exc

    def removal_command(self, keys: list[str]) -> str:
        return " && ".join(
            "az storage blob delete "
            f"--account-name {self.account} --container-name {self.container_name} --name {shlex.quote(key)}"
            for key in keys
        )

    def properties(self, key: str) -> Any | None:
        """The blob's properties; None when it does not exist."""
        try:
            return self.blob(key).get_blob_properties()
        except AzureError as exc:
            if missing(exc):
                return None
            raise self.error("Get Blob Properties", key, exc) from exc

    def exists(self, key: str) -> bool:
        try:
            return self.properties(key) is not None
        except AccessDeniedError:
            return False  # credentials that may not read: the conditional write guards instead

    def start_upload(self, key: str, content_type: str, metadata: dict[str, str]) -> Upload:
        stored = {metadata_name(name): value for name, value in metadata.items()}
        return AzureUpload(self, key, content_type, stored)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        md5 = content_md5(data)
        try:
            response = self.blob(key).upload_blob(
                data,
                length=len(data),
                overwrite=False,  # If-None-Match: *
                content_settings=ContentSettings(content_type=content_type, content_md5=bytearray(md5)),
                validate_content=True,  # Content-MD5, checked by the service
            )
        except AzureError as exc:
            failure = self.error("Put Blob", key, exc)
            if not ambiguous(exc, failure):
                raise failure from exc
            confirm_bytes(self, key, data, failure)  # the retry of a write the service applied meets our blob
            return
        check_md5("Put Blob", self.describe(key), response.get("content_md5"), md5)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for item in self.container.list_blobs(name_starts_with=f"{prefix}/" if prefix else None):
                yield ObjectInfo(key=item.name, size=int(item.size), modified=item.last_modified.astimezone(UTC))
        except AzureError as exc:
            raise self.error("List Blobs", f"{prefix}/" if prefix else "", exc) from exc

    def version(self, key: str) -> str:
        found = self.properties(key)
        if found is None:
            raise NotFoundError(f"{self.describe(key)} does not exist")
        return str(found.etag)

    def read(self, key: str, version: str | None = None) -> Iterator[bytes]:
        pinned: dict[str, Any] = {}
        if version is not None:
            pinned = {"etag": version, "match_condition": MatchConditions.IfNotModified}
        try:
            download = self.blob(key).download_blob(**pinned)
            for chunk in download.chunks():
                for start in range(0, len(chunk), READ_CHUNK):
                    yield chunk[start : start + READ_CHUNK]
        except AzureError as exc:
            if missing(exc):
                raise NotFoundError(f"{self.describe(key)} does not exist") from exc
            if (
                status(exc) == 412 or error_code(exc) == "ConditionNotMet"
            ):  # the version asked for, or the one read so far
                raise ChangedError(f"{self.describe(key)} was replaced while it was being read") from exc
            raise self.error("Get Blob", key, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.blob(key).delete_blob()
        except AzureError as exc:
            if missing(exc):
                return
            raise self.error("Delete Blob", key, exc) from exc

    def open_uploads(self, prefix: str) -> OpenUploads:
        return OpenUploads([], None)  # uncommitted blocks cannot be listed

    def written_since(self, upload: OpenUpload, moment: Any) -> bool:
        return False

    def abort_upload(self, upload: OpenUpload) -> None:
        """Nothing to abort: uncommitted blocks expire on their own."""


def _quiet_sdk_logs() -> None:
    """Keep the SDK's own log records (the identity chain's multi-line WARNINGs) off stderr: what
    they say reaches the user as the one-line error of the call that failed."""
    sdk = logging.getLogger("azure")
    if not any(isinstance(handler, logging.NullHandler) for handler in sdk.handlers):
        sdk.addHandler(logging.NullHandler())
    sdk.propagate = False


def _client(destination: Destination, options: AzureSettings, client_options: dict[str, Any]) -> BlobServiceClient:
    """The service client for the one credential given, or for the SDK's identity chain."""
    endpoint = (options.endpoint or f"https://{destination.account}.blob.core.windows.net").rstrip("/")
    try:
        if options.connection_string:
            named = _connection_account(options.connection_string)
            if named and named != destination.account:
                raise StorageError(
                    f"{AzureSettings.connection_string.name} is for the storage account {named}, but "
                    f"{DESTINATION.name} names {destination.account}; use one account in both"
                )
            return BlobServiceClient.from_connection_string(options.connection_string, **client_options)
        credential: Any
        if options.account_key:
            credential = AzureNamedKeyCredential(destination.account, options.account_key)
        elif options.sas_token:
            credential = AzureSasCredential(options.sas_token.lstrip("?"))
        else:
            from azure.identity import DefaultAzureCredential  # its chain is loaded only when it is used

            credential = DefaultAzureCredential()
        return BlobServiceClient(endpoint, credential=credential, **client_options)
    except (ValueError, AzureError) as exc:
        raise StorageError(f"cannot set up the Azure Blob client: {describe_error(exc)}") from exc


def _connection_account(connection_string: str) -> str:
    """The ``AccountName=`` of a connection string ('' when it has none)."""
    for field in connection_string.split(";"):
        name, _, value = field.partition("=")
        if name.strip().lower() == "accountname":
            return value.strip()
    return ""


def open_storage(destination: Destination, options: Group | None, upload: UploadSettings) -> AzureStorage:
    """The container of an ``azure://`` destination (the registry's entry point, ``settings.BACKENDS``)."""
    assert isinstance(options, AzureSettings)
    return AzureStorage(destination, options, upload.upload_concurrency)
