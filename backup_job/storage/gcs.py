"""Google Cloud Storage through its JSON API: create-only objects, checked by CRC32C.

The google-cloud-storage ``Client`` finds the credentials (Application Default Credentials:
``GOOGLE_APPLICATION_CREDENTIALS``, GKE workload identity, the metadata server) and the
endpoint: ``BACKUP_GCS_ENDPOINT`` when set (the client's ``api_endpoint``, the base of every
URL here, uploads and downloads included), else Google's; with ``STORAGE_EMULATOR_HOST`` set
it goes to that emulator, anonymously, as the library does for emulators. Requests go through
its authorized session (``gcs_http``, which also says why the library's upload helpers are
not used, and bounds timeouts and attempts).

Writes never replace an object: a dump's resumable upload (``gcs_upload``) is created with
``ifGenerationMatch=0`` and a manifest is one multipart upload under the same precondition, so
GCS itself refuses a name that exists. A manifest carries its CRC32C in its metadata, which GCS
checks before it stores anything, and the CRC32C GCS returns is compared with ours as well. A
write refused because the name exists, or whose answer was lost, is settled by reading back:
a manifest's bytes, or a dump's ``pgbackup-run-id`` metadata and size, say whether it is our own
write; anything else is another writer's and is never touched. An object of ours that turns out
wrong is deleted by its generation (``ifGenerationMatch``), so a newer object under the name is
never what goes.

Reads are one streamed download in chunks of at most ``READ_CHUNK`` (memory stays bounded);
a read pinned to a version (an object's generation) sends ``ifGenerationMatch`` and also checks
the generation the answer names (fake-gcs-server ignores the condition on downloads), and a
whole download is checked against the CRC32C in its ``x-goog-hash``.

No write starts after a stop request (``core.stopping.refuse_writes`` before each one).

A killed run leaves at most a resumable session that was never finalized: no object, nothing
to list or abort, and GCS forgets it a week after it began. So ``keeps_unfinished`` is False
and the store has no unfinished uploads to show (docs/gcs.md, "What a killed run leaves").
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import requests
from google.cloud import storage as gcs  # type: ignore[import-untyped]

from ..core import logs, stopping
from ..core.errors import (
    AccessDeniedError,
    BackupExistsError,
    ChangedError,
    ConfigError,
    NotFoundError,
    StorageError,
)
from ..core.settings import Destination, GcsSettings, Group, UploadSettings
from . import crc32c
from .base import READ_CHUNK, ObjectInfo, OpenUpload, OpenUploads, PartLimits, Storage, Upload
from .gcs_http import ATTEMPTS, BACKOFF, RETRIED, denied, failed, no_bucket, send, unreachable
from .gcs_upload import CHUNK, GcsUpload
from .settle import unconfirmed, written_by_another_run

log = logs.get("storage")
LIMITS = PartLimits(min_part=CHUNK, max_part=5 * 1024**3, max_parts=None)


class GcsStorage(Storage):
    """A bucket, and the authorized session that reaches it."""

    limits = LIMITS
    keeps_unfinished = False  # a resumable session never finalized is no object, and expires in a week

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.url = f"gs://{bucket}"
        self.session = client._http  # the library's authorized session (see gcs_http)
        base = str(client._connection.API_BASE_URL).rstrip("/")
        self.api = f"{base}/storage/v1/b/{quote(bucket, safe='')}/o"
        self.upload_api = f"{base}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        self.download_api = f"{base}/download/storage/v1/b/{quote(bucket, safe='')}/o"

    def describe(self, key: str) -> str:
        return f"gs://{self.bucket}/{key}"

    def removal_command(self, keys: list[str]) -> str:
        return " && ".join(f"gcloud storage rm {shlex.quote(self.describe(key))}" for key in keys)

    def object_url(self, key: str) -> str:
        return f"{self.api}/{quote(key, safe='')}"

    def request(
        self, what: str, key: str, method: str, url: str, *, attempts: int = 1, **kwargs: Any
    ) -> requests.Response:
        """A request whose connection failure is a ``StorageError`` naming ``what`` and the object."""
        try:
            return send(self.session, method, url, attempts=attempts, **kwargs)
        except requests.RequestException as exc:
            raise unreachable(what, self.describe(key), exc) from exc

    def resource(self, key: str) -> dict[str, Any] | None:
        """The object resource of ``key`` (size, generation, crc32c, metadata); None when there is none."""
        response = self.request("metadata read", key, "GET", self.object_url(key), attempts=ATTEMPTS)
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise denied("read", self.describe(key), response)
        if response.status_code != 200:
            raise failed("metadata read", self.describe(key), response)
        found: dict[str, Any] = response.json()
        return found

    def exists(self, key: str) -> bool:
        try:
            return self.resource(key) is not None
        except AccessDeniedError:
            return False  # credentials that may not read: the create-only write guards instead

    def version(self, key: str) -> str:
        found = self.resource(key)
        if found is None:
            raise NotFoundError(f"{self.describe(key)} does not exist")
        return str(found["generation"])

    def start_upload(self, key: str, content_type: str, metadata: dict[str, str]) -> Upload:
        stopping.refuse_writes(f"GCS upload of {self.describe(key)}")
        response = self.request(
            "upload start",
            key,
            "POST",
            self.upload_api,
            attempts=ATTEMPTS,  # a session created twice: the one not used holds nothing, and expires
            params={"uploadType": "resumable", "name": key, "ifGenerationMatch": "0"},
            json={"name": key, "contentType": content_type, "metadata": metadata},
            headers={"X-Upload-Content-Type": content_type},
        )
        self.check_write(key, response, "upload start")
        session = response.headers.get("Location")
        if not session:
            raise StorageError(f"GCS gave no resumable session for {self.describe(key)}")
        return GcsUpload(self, key, session, metadata)

    def exists_error(self, key: str) -> BackupExistsError:
        return BackupExistsError(f"{self.describe(key)} exists already; pgbackup never overwrites a backup")

    def check_write(self, key: str, response: requests.Response, what: str) -> None:
        """Raise the error a refused write means: the name taken, the permission, the bucket."""
        if response.status_code == 412:
            raise self.exists_error(key)
        if response.status_code in (401, 403):
            raise denied("write", self.describe(key), response)
        if response.status_code == 404:
            raise no_bucket(self.bucket)
        if response.status_code not in (200, 201):
            raise failed(what, self.describe(key), response)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        crc = crc32c.of(data)
        boundary = f"pgbackup-{uuid.uuid4().hex}"
        head = json.dumps({"name": key, "contentType": content_type, "crc32c": crc})  # GCS checks it
        body = b"".join(
            (
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{head}\r\n".encode(),
                f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        failure: StorageError | None = None  # an earlier attempt's: it may have landed
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            stopping.refuse_writes(f"GCS write of {self.describe(key)}")
            try:
                response = send(
                    self.session,
                    "POST",
                    self.upload_api,
                    params={"uploadType": "multipart", "name": key, "ifGenerationMatch": "0"},
                    data=body,
                    headers={"Content-Type": f"multipart/related; boundary={boundary}"},
                )
            except requests.RequestException as exc:
                failure = unreachable("write", self.describe(key), exc)
                continue
            if response.status_code in RETRIED:
                failure = failed("write", self.describe(key), response)
                continue
            if response.status_code == 412:  # the name is taken: by our own earlier attempt, or another's
                self._confirm(key, data, self.exists_error(key))
                return
            break
        else:  # every attempt's answer was lost: our write may be there all the same
            assert failure is not None
            self._confirm(key, data, failure)
            return
        self.check_write(key, response, "write")
        stored = response.json()
        if stored.get("crc32c") not in (None, crc):
            self.discard(key, str(stored["generation"]))  # ours (it answered our write), and wrong
            raise StorageError(
                f"{self.describe(key)} was altered on its way: GCS holds bytes with CRC32C "
                f"{stored['crc32c']}, pgbackup sent {crc}"
            )

    def _confirm(self, key: str, data: bytes, failure: StorageError) -> None:
        """Return if the object under ``key`` is exactly ``data`` (our write, its answer lost or
        repeated); else raise: the failure when there is none, a conflict when it is another's,
        ``UnconfirmedError`` when these credentials cannot read it."""
        try:
            found = self.resource(key)
            same = found is not None and int(found["size"]) == len(data) and self.read_all(key, len(data)) == data
        except AccessDeniedError as exc:
            raise unconfirmed(self.describe(key), f"written (GCS answered '{failure}')") from exc
        if found is None:
            raise failure
        if not same:
            raise written_by_another_run(self.describe(key)) from failure

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        where = self.describe(f"{prefix}/" if prefix else "")
        params = {"prefix": f"{prefix}/" if prefix else "", "fields": "items(name,size,timeCreated),nextPageToken"}
        while True:
            response = self.request("listing", f"{prefix}/", "GET", self.api, attempts=ATTEMPTS, params=params)
            if response.status_code in (401, 403):
                raise denied("list", where, response)
            if response.status_code == 404:
                raise no_bucket(self.bucket)
            if response.status_code != 200:
                raise failed("listing", where, response)
            page = response.json()
            for item in page.get("items", []):
                created = datetime.fromisoformat(str(item["timeCreated"]).replace("Z", "+00:00"))
                yield ObjectInfo(key=item["name"], size=int(item["size"]), modified=created.astimezone(UTC))
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    def read(self, key: str, version: str | None = None) -> Iterator[bytes]:
        where = self.describe(key)
        params = {"alt": "media", **({"ifGenerationMatch": version} if version is not None else {})}
        url = f"{self.download_api}/{quote(key, safe='')}"
        response = self.request("read", key, "GET", url, attempts=ATTEMPTS, params=params, stream=True)
        try:
            if response.status_code == 404:
                raise NotFoundError(f"{where} does not exist")
            if response.status_code == 412 or (
                version is not None and response.headers.get("X-Goog-Generation", version) != version
            ):
                raise ChangedError(f"{where} was replaced while it was being read")
            if response.status_code in (401, 403):
                raise denied("read", where, response)
            if response.status_code != 200:
                raise failed("read", where, response)
            expected = _crc32c_of(response.headers.get("X-Goog-Hash", ""))
            whole = crc32c.Running()
            try:
                for chunk in response.iter_content(READ_CHUNK):
                    whole.add(chunk)
                    yield chunk
            except requests.RequestException as exc:
                raise unreachable("read", where, exc) from exc
            if expected is not None and whole.encoded() != expected:
                raise StorageError(
                    f"the read of {where} was altered on its way: GCS holds bytes with CRC32C {expected}, "
                    f"pgbackup received {whole.encoded()}"
                )
        finally:
            response.close()

    def delete(self, key: str) -> None:
        self._delete(key, {})

    def delete_generation(self, key: str, generation: str) -> None:
        """Delete ``key`` only while it is that generation (our own object, never a newer one)."""
        self._delete(key, {"ifGenerationMatch": generation})

    def discard(self, key: str, generation: str) -> None:
        """Delete an object of ours that turned out wrong, on the way to failing for it; a refusal
        (the backup role has no storage.objects.delete) is logged, not raised over that failure."""
        try:
            self.delete_generation(key, generation)
        except StorageError as exc:
            log.warning("%s stays, altered, until it is deleted: %s", self.describe(key), exc)

    def _delete(self, key: str, params: dict[str, str]) -> None:
        response = self.request("delete", key, "DELETE", self.object_url(key), attempts=ATTEMPTS, params=params)
        if response.status_code in (200, 204, 404, 412):
            return  # gone already, or (412) no longer the generation that was ours
        if response.status_code in (401, 403):
            raise denied("delete", self.describe(key), response)
        raise failed("delete", self.describe(key), response)

    def open_uploads(self, prefix: str) -> OpenUploads:
        return OpenUploads([], None)  # resumable sessions cannot be listed, and expire on their own

    def written_since(self, upload: OpenUpload, moment: datetime) -> bool:
        return False

    def abort_upload(self, upload: OpenUpload) -> None:
        """Nothing to abort: GCS lists no unfinished uploads (``open_uploads``)."""


def _crc32c_of(header: str) -> str | None:
    """The CRC32C in an ``x-goog-hash`` header (``crc32c=...,md5=...``), if it has one."""
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "crc32c" and value:
            return value
    return None


def open_storage(destination: Destination, options: Group | None, upload: UploadSettings) -> GcsStorage:
    """The bucket of a ``gs://`` destination (the registry's entry point, ``settings.BACKENDS``)."""
    assert options is None or isinstance(options, GcsSettings)
    endpoint = options.endpoint if options is not None else None
    client_options = {"api_endpoint": endpoint.rstrip("/")} if endpoint else None
    try:
        client = gcs.Client(project=None, client_options=client_options)  # no project: requests name the bucket
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise ConfigError(
            f"configuration error: no Google credentials for {destination.url} ({exc}); set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account's JSON key or use workload identity "
            "(docs/gcs.md#credentials)"
        ) from None
    return GcsStorage(destination.bucket, client)
