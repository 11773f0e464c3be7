"""What is particular to the GCS backend, behind the fault proxy in front of
fake-gcs-server (the promises every destination keeps are test_storage_conformance.py's):

- the last part is held back until the upload completes (it becomes the final chunk), so a
  stop request between two parts leaves nothing more on the wire: neither the held part, nor
  the final chunk, nor a manifest;
- a chunk before the last whose answer is lost is not resumed (asking fake-gcs-server how much
  it holds would finalize the session): the upload fails and no object appears;
- a manifest write GCS answers 503 is tried again (create-only, so a retry never replaces);
- a refusal names the permission the least-privilege roles grant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core import stopping
from backup_job.core.errors import AccessDeniedError, StorageError
from backup_job.storage import Storage
from devenv.wait import wait_for

from ..kit.targets import Target, gcs_maker, targets

MIB = 1024 * 1024
WRITES = ("PUT", "POST")


@pytest.fixture
def gcs(fake_gcs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    for target in targets(gcs_maker(fake_gcs), proxied=True):
        yield target, target.storage(monkeypatch, tmp_path)


def _writes(target: Target) -> int:
    assert target.proxy is not None
    return len([request for request in target.proxy.requests if request[0] in WRITES])


def test_no_write_leaves_after_a_stop_request(gcs: tuple[Target, Storage], monkeypatch: pytest.MonkeyPatch) -> None:
    target, storage = gcs
    key = target.key("db/stopped.sql.gz")
    upload = storage.start_upload(key, "application/octet-stream", {"pgbackup-run-id": "run-1"})
    upload.send_part(1, b"1" * MIB)
    assert _writes(target) == 1, "the first part is held back: only the session was created"
    upload.send_part(2, b"2" * MIB)  # sends part 1
    wait_for(lambda: _writes(target) == 2, timeout=10, what="part 1 sent")
    monkeypatch.setattr(stopping, "requested", lambda: "SIGTERM")

    with pytest.raises(StorageError, match="not started: the run was stopped by SIGTERM"):
        upload.complete()
    with pytest.raises(StorageError, match="not started: the run was stopped by SIGTERM"):
        storage.put(target.key("db/stopped.manifest.json"), b"{}", "application/json")
    with pytest.raises(StorageError, match="not started: the run was stopped by SIGTERM"):
        storage.start_upload(target.key("db/other.sql.gz"), "application/octet-stream", {})
    upload.abort()

    assert _writes(target) == 2, "the session and part 1; nothing after the stop"
    assert target.raw.get(key) is None


def test_a_chunk_whose_answer_is_lost_fails_the_upload(gcs: tuple[Target, Storage]) -> None:
    target, storage = gcs
    key = target.key("db/lost-chunk.sql.gz")
    fault = target.fault("part", key, "applied-reset")
    upload = storage.start_upload(key, "application/octet-stream", {"pgbackup-run-id": "run-1"})
    try:
        with pytest.raises(StorageError, match="chunk 1"):
            upload.send_part(1, b"1" * MIB)
            upload.send_part(2, b"the last part")
            upload.complete()
    finally:
        upload.abort()

    assert fault.hits and target.raw.get(key) is None


def test_refusals_name_the_permission(gcs: tuple[Target, Storage]) -> None:
    from devenv.faultproxy import Fault

    target, storage = gcs
    assert target.proxy is not None
    target.proxy.add(Fault("*", ".", "deny", times=None))

    with pytest.raises(AccessDeniedError, match=r"may not write .*storage\.objects\.create"):
        storage.put(target.key("db/x.manifest.json"), b"{}", "application/json")
    with pytest.raises(AccessDeniedError, match=r"may not read .*storage\.objects\.get"):
        storage.version(target.key("db/x.manifest.json"))
    with pytest.raises(AccessDeniedError, match=r"may not delete .*storage\.objects\.delete"):
        storage.delete(target.key("db/x.manifest.json"))


def test_a_manifest_write_refused_with_a_503_is_tried_again(gcs: tuple[Target, Storage]) -> None:
    target, storage = gcs
    key = target.key("db/busy.manifest.json")
    fault = target.fault("put", key, "answer", status=503, code="ServiceUnavailable")

    storage.put(key, b'{"ours": 1}', "application/json")

    assert fault.hits and target.raw.get(key) == b'{"ours": 1}'
