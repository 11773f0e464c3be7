"""Destinations under test for the storage conformance suite: one ``TargetMaker`` per kind.

A ``Target`` is what the suite needs of one destination: the environment that points pgbackup
at it (``BACKUP_DESTINATION`` and what the kind's SDK reads), a way to its bytes around
pgbackup (``Raw``: to tamper, and to see what is really stored), and, for a store reached over
HTTP, which requests are a part, a commit and a one-piece write of a key, so the fault proxy
can hit exactly those. The suite opens the storage through the registry
(``commands.destination.open_destination``), as every command does.

A kind's maker builds its target for an endpoint: the store's own, or the fault proxy's in front
of it (``upstream`` is where the proxy forwards to; None for a kind reached without HTTP).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import pytest

from backup_job.commands.destination import open_destination
from backup_job.core.settings import load_settings
from backup_job.storage import Storage
from devenv.azurite import AzuriteServer
from devenv.fakegcs import FakeGcsServer
from devenv.faultproxy import Fault, FaultProxy
from devenv.s3 import S3Server
from devenv.seaweed import SeaweedServer

# method, regular expression over path and query (devenv.faultproxy.Fault), and optionally a
# header the request carries (``Fault.carrying``: a GCS final chunk is its session's PUT with x-goog-hash)
Request = tuple[str, str] | tuple[str, str, str]


class Raw(Protocol):
    """The store's bytes, reached without pgbackup (and never through the proxy)."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...


@dataclass
class Target:
    kind: str
    env: dict[str, str]  # BACKUP_DESTINATION and the SDK's variables
    raw: Raw
    prefix: str  # the destination's prefix: every key the suite writes is under it
    requests: Callable[[str, str], Request] | None = None  # (what, key) -> request; None: no HTTP
    corrupt: Mapping[str, object] = field(default_factory=dict)  # the kind's Fault arguments for "corrupt"
    proxy: FaultProxy | None = None

    def storage(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Storage:
        """The destination opened as a command opens it (the SDKs read their variables from the
        process environment, so they are set there for the test)."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        return open_destination(load_settings(self.env, dotenv_path=tmp_path / "none.env"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def fault(self, what: str, key: str, action: str, **options: object) -> Fault:
        """A fault on the request that does ``what`` (``part``, ``commit``, ``put``) to ``key``."""
        assert self.proxy is not None and self.requests is not None, "a fault needs a target behind the proxy"
        method, path, *carrying = self.requests(what, key)
        extra = dict(self.corrupt) if action == "corrupt" else {}
        if carrying:
            extra["carrying"] = carrying[0]
        return self.proxy.add(Fault(method, path, action, **{**extra, **options}))  # type: ignore[arg-type]


@dataclass
class TargetMaker:
    """How one kind's target is built for an endpoint (``upstream``: the store's own endpoint)."""

    kind: str
    upstream: str | None
    make: Callable[[str | None], Target]


def write_in_parts(storage: Storage, key: str, parts: list[bytes], metadata: dict[str, str]) -> None:
    """An object written as the pipeline writes a dump: parts in order, then the commit; aborted
    on any failure (which is raised)."""
    upload = storage.start_upload(key, "application/octet-stream", metadata)
    try:
        for number, data in enumerate(parts, start=1):
            upload.send_part(number, data)
        upload.complete()
    except BaseException:
        upload.abort()
        raise


def unique_prefix() -> str:
    return f"conf-{uuid.uuid4().hex[:10]}"


# -- local directories ------------------------------------------------------------------------


class LocalRaw:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


def local_maker(root: Path) -> TargetMaker:
    root.mkdir(parents=True, exist_ok=True)  # the volume; the destination's directory is made by pgbackup

    def make(_endpoint: str | None) -> Target:
        prefix = unique_prefix()
        return Target("local", {"BACKUP_DESTINATION": f"file://{root}/{prefix}"}, LocalRaw(root / prefix), "")

    return TargetMaker("local", None, make)


# -- S3: moto's server and SeaweedFS ----------------------------------------------------------


class S3Raw:
    def __init__(self, server: S3Server | SeaweedServer, bucket: str) -> None:
        self.client = server.client()
        self.bucket = bucket

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def s3_requests(bucket: str) -> Callable[[str, str], Request]:
    def request(what: str, key: str) -> Request:
        path = f"/{re.escape(bucket)}/{re.escape(key)}"
        return {
            "part": ("PUT", rf"{path}\?.*partNumber="),
            "commit": ("POST", rf"{path}\?uploadId="),
            "put": ("PUT", rf"{path}$"),
        }[what]

    return request


def s3_maker(kind: str, server: S3Server | SeaweedServer) -> TargetMaker:
    bucket = f"conf-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)

    def make(endpoint: str | None) -> Target:
        prefix = unique_prefix()
        env = {
            **server.env(),
            "AWS_ENDPOINT_URL_S3": endpoint or server.endpoint,
            "BACKUP_S3_ADDRESSING_STYLE": "path",
            "AWS_MAX_ATTEMPTS": "2",
            "BACKUP_S3_READ_TIMEOUT": "5",
            "BACKUP_DESTINATION": f"s3://{bucket}/{prefix}",
        }
        # SeaweedFS checks the payload hash the SDK signs over plain HTTP: a flipped byte must be
        # signed anew, as over HTTPS, for the checksums under test to be what catches it
        return Target(kind, env, S3Raw(server, bucket), prefix, s3_requests(bucket), corrupt={"unsigned": True})

    return TargetMaker(kind, server.endpoint, make)


# -- Google Cloud Storage: fake-gcs-server ----------------------------------------------------


class GcsRaw:
    def __init__(self, server: FakeGcsServer, bucket: str) -> None:
        self.bucket = server.client().bucket(bucket)

    def put(self, key: str, data: bytes) -> None:
        self.bucket.blob(key).upload_from_string(data)

    def get(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return bytes(self.bucket.blob(key).download_as_bytes())
        except NotFound:
            return None

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(key).delete()
        except NotFound:
            pass


def gcs_requests(bucket: str) -> Callable[[str, str], Request]:
    """A resumable upload's chunks are PUTs to its session (fake-gcs-server names the object in
    the session URI); the final one carries ``x-goog-hash``. A manifest is a multipart upload."""

    def request(what: str, key: str) -> Request:
        objects = f"/upload/storage/v1/b/{re.escape(bucket)}/o"
        name = re.escape(quote(key, safe=""))
        session = rf"{objects}\?uploadType=resumable&name={name}&upload_id="
        requests: dict[str, Request] = {
            "part": ("PUT", session),
            "commit": ("PUT", session, "x-goog-hash"),
            "put": ("POST", rf"{objects}\?uploadType=multipart&name={name}&"),
        }
        return requests[what]

    return request


def gcs_maker(server: FakeGcsServer) -> TargetMaker:
    bucket = f"conf-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(bucket)

    def make(endpoint: str | None) -> Target:
        prefix = unique_prefix()
        env = {"STORAGE_EMULATOR_HOST": endpoint or server.endpoint, "BACKUP_DESTINATION": f"gs://{bucket}/{prefix}"}
        return Target("gcs", env, GcsRaw(server, bucket), prefix, gcs_requests(bucket))

    return TargetMaker("gcs", server.endpoint, make)


# -- Azure Blob Storage: Azurite ---------------------------------------------------------------


class AzureRaw:
    def __init__(self, server: AzuriteServer, container: str) -> None:
        self.container = server.client().get_container_client(container)

    def put(self, key: str, data: bytes) -> None:
        self.container.upload_blob(key, data, overwrite=True)

    def get(self, key: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return bytes(self.container.download_blob(key).readall())
        except ResourceNotFoundError:
            return None

    def delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.container.delete_blob(key)
        except ResourceNotFoundError:
            pass


def azure_requests(container: str) -> Callable[[str, str], Request]:
    def request(what: str, key: str) -> Request:
        path = f"/{re.escape(container)}/{re.escape(key)}"
        return {
            "part": ("PUT", rf"{path}\?(.*&)?comp=block(&|$)"),
            "commit": ("PUT", rf"{path}\?(.*&)?comp=blocklist(&|$)"),
            "put": ("PUT", rf"{path}$"),
        }[what]

    return request


def azure_maker(server: AzuriteServer) -> TargetMaker:
    container = f"conf-{uuid.uuid4().hex[:12]}"
    server.client().create_container(container)

    def make(endpoint: str | None) -> Target:
        prefix = unique_prefix()
        # straight: the connection string that names Azurite; behind the proxy: the account key
        # and the endpoint setting, so both ways of reaching a service are exercised
        env = (
            {**server.env()}
            if endpoint is None
            else {"AZURE_STORAGE_KEY": server.account_key, "BACKUP_AZURE_ENDPOINT": f"{endpoint}/{server.account}"}
        )
        env |= {
            "BACKUP_AZURE_MAX_ATTEMPTS": "2",
            "BACKUP_AZURE_READ_TIMEOUT": "5",
            "BACKUP_DESTINATION": f"azure://{server.account}/{container}/{prefix}",
        }
        # no "corrupt" arguments: Shared Key signs a request's headers (Content-MD5 among them),
        # never its body, so a flipped byte reaches Azurite as a block whose MD5 is wrong
        return Target("azure", env, AzureRaw(server, container), prefix, azure_requests(container))

    return TargetMaker("azure", f"http://127.0.0.1:{server.port}", make)


def targets(maker: TargetMaker, proxied: bool) -> Iterator[Target]:
    """The kind's target, straight or behind a fault proxy of its own."""
    if not proxied:
        yield maker.make(None)
        return
    assert maker.upstream is not None
    with FaultProxy(maker.upstream) as proxy:
        target = maker.make(proxy.endpoint)
        target.proxy = proxy
        yield target
