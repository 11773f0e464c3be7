"""The Azure Blob and GCS emulators hold the promises the storage backends' tests stand on.

Azurite (``devenv/azurite.py``) and fake-gcs-server (``devenv/fakegcs.py``) stand in for Azure
Blob Storage and Google Cloud Storage, driven here through the official SDKs alone, with no
pgbackup code. What is checked is what a backend relies on them for: a create-only commit that
a second writer loses, and how far each checks the checksums a backend sends. Where an emulator
checks less than the real service, the test says so and pins the emulator's behaviour, so a
backend's test that counts on a check the emulator lacks is written knowing it, and a new
emulator release that adds the check is noticed here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import google_crc32c
import pytest

from devenv.azurite import AzuriteServer
from devenv.fakegcs import FakeGcsServer


def _block_id(number: int) -> str:
    return base64.b64encode(f"block-{number:06d}".encode()).decode()


def _error_code(error: Exception) -> object:
    """The storage error code azure-storage-blob sets on what it raises (azure-core's class does not declare it)."""
    return getattr(error, "error_code", None)


def _container(azurite: AzuriteServer) -> Any:
    container = azurite.client().get_container_client(f"emulator-{uuid.uuid4().hex[:12]}")
    container.create_container()
    return container


def test_azurite_commits_a_block_list_only_where_no_blob_is(azurite: AzuriteServer) -> None:
    """Two blocks staged with Content-MD5 and committed with ``If-None-Match: *``; a second
    commit to the same name is refused (Azurite 3.37 answers 409 BlobAlreadyExists; a backend
    takes 412 ConditionNotMet as the same answer), and the first blob stays as it was.

    ``match_condition=MatchConditions.IfMissing`` alone is what sends ``If-None-Match: *``:
    azure-storage-blob 12.31 leaves an ``etag`` given with it unread, and the transport then
    fails with ``TypeError: ... unexpected keyword argument 'etag'``."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError

    blob = _container(azurite).get_blob_client("backup.dump")
    first = [b"a" * 1000, b"b" * 500]
    for number, data in enumerate(first):
        blob.stage_block(_block_id(number), data, validate_content=True)  # the SDK sends Content-MD5
    blob.commit_block_list([_block_id(n) for n in range(len(first))], match_condition=MatchConditions.IfMissing)

    blob.stage_block(_block_id(7), b"other writer", validate_content=True)
    with pytest.raises(HttpResponseError) as refused:
        blob.commit_block_list([_block_id(7)], match_condition=MatchConditions.IfMissing)
    answer = (refused.value.status_code, _error_code(refused.value))
    assert answer in ((409, "BlobAlreadyExists"), (412, "ConditionNotMet")), refused.value
    assert blob.download_blob().readall() == b"".join(first)


def test_azurite_refuses_a_block_whose_content_md5_is_wrong(azurite: AzuriteServer) -> None:
    """Measured: Azurite checks a Put Block's Content-MD5 (400 Md5Mismatch), as Azure does, so
    a block altered on its way is refused there and never committed."""
    from azure.core.exceptions import HttpResponseError

    blob = _container(azurite).get_blob_client("backup.dump")
    data = b"the block's bytes"
    wrong = base64.b64encode(hashlib.md5(data + b"!").digest()).decode()
    with pytest.raises(HttpResponseError) as refused:
        blob.stage_block(_block_id(0), data, headers={"Content-MD5": wrong})
    assert (refused.value.status_code, _error_code(refused.value)) == (400, "Md5Mismatch"), refused.value
    blob.stage_block(_block_id(0), data, validate_content=True)  # the right one is taken
    assert [b.id for b in blob.get_block_list("uncommitted")[1]] == [_block_id(0)]


def test_fake_gcs_finalises_a_resumable_upload_only_where_no_object_is(fake_gcs: FakeGcsServer) -> None:
    """A resumable upload (three chunks) with ``if_generation_match=0`` creates the object once;
    a second one to the same name is refused with 412, and the first object stays as it was."""
    from google.api_core.exceptions import PreconditionFailed

    bucket = fake_gcs.client().create_bucket(f"emulator-{uuid.uuid4().hex[:12]}")
    data = bytes(range(256)) * (2 * 1024 + 100)  # 2 chunks of 256 KiB and a part of a third
    blob = bucket.blob("backup.dump", chunk_size=256 * 1024)  # a chunk size makes the upload resumable
    blob.upload_from_file(io.BytesIO(data), size=len(data), if_generation_match=0, checksum="crc32c")

    again = bucket.blob("backup.dump", chunk_size=256 * 1024)
    with pytest.raises(PreconditionFailed):
        again.upload_from_file(io.BytesIO(b"x" * len(data)), size=len(data), if_generation_match=0)
    assert bucket.blob("backup.dump").download_as_bytes() == data


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def _upload(fake_gcs: FakeGcsServer, bucket: str, name: str, data: bytes, **crc32c: str) -> tuple[int, dict[str, str]]:
    """A resumable upload in raw JSON-API requests: a CRC32C ``declared`` in the metadata that
    starts the session, and ``sent`` as ``x-goog-hash`` with the request that finalises it."""
    metadata = {"name": name, **({"crc32c": crc32c["declared"]} if "declared" in crc32c else {})}
    start = urllib.request.Request(
        f"{fake_gcs.endpoint}/upload/storage/v1/b/{bucket}/o?"
        + urllib.parse.urlencode({"uploadType": "resumable", "name": name}),
        data=json.dumps(metadata).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(start, timeout=10) as answer:
        session = answer.headers["Location"]
    headers = {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}
    if "sent" in crc32c:
        headers["x-goog-hash"] = f"crc32c={crc32c['sent']}"
    try:
        finish = urllib.request.Request(session, data=data, method="PUT", headers=headers)
        with urllib.request.urlopen(finish, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, {}


def test_fake_gcs_returns_the_crc32c_and_checks_only_a_declared_one(fake_gcs: FakeGcsServer) -> None:
    """Measured (fake-gcs-server v1.56.1):

    - the object resource that finalises a resumable upload carries the CRC32C of the bytes the
      server holds (base64 of the big-endian value, as GCS gives it);
    - an ``x-goog-hash: crc32c=...`` header on the finalising request is NOT checked: a wrong
      one is taken (200), where GCS answers 400. A backend that streams (and so knows the
      CRC32C only at the end) is proved on fake-gcs-server only by comparing the returned
      CRC32C with its own;
    - a CRC32C declared in the metadata that starts the session IS checked when the upload is
      finalised: a wrong one is refused with 400 and no object is made."""
    bucket = fake_gcs.client().create_bucket(f"emulator-{uuid.uuid4().hex[:12]}")
    data = b"a whole object " * 100
    right, wrong = _crc32c(data), _crc32c(data + b"!")
    status, resource = _upload(fake_gcs, bucket.name, "sent-right", data, sent=right)
    assert (status, resource["crc32c"]) == (200, right)
    status, resource = _upload(fake_gcs, bucket.name, "sent-wrong", data, sent=wrong)
    assert (status, resource["crc32c"]) == (200, right)
    assert _upload(fake_gcs, bucket.name, "declared-wrong", data, declared=wrong) == (400, {})
    assert bucket.get_blob("declared-wrong") is None
