"""What the Azure backend owes beyond the conformance suite, against Azurite behind the fault
proxy: a retried pod writes the key a killed run left blocks under; a commit refused over a
blob of another run's, of the same size, leaves it alone; a refusal names the data action; and
after a stop request not one write leaves the process, while a delete still does."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_job.core import stopping
from backup_job.core.errors import AccessDeniedError, BackupExistsError, ChangedError, StorageError
from backup_job.storage import Storage
from backup_job.storage.azure import AzureStorage

from ..kit.targets import Target, TargetMaker, targets, write_in_parts

PART = 1024 * 1024
RUN = {"pgbackup-run-id": "run-1", "pgbackup-attempt": "1"}


@pytest.fixture
def proxied(azure_target: TargetMaker) -> Iterator[Target]:
    yield from targets(azure_target, proxied=True)


@pytest.fixture
def storage(proxied: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AzureStorage:
    opened = proxied.storage(monkeypatch, tmp_path)
    assert isinstance(opened, AzureStorage)
    return opened


def _upload(storage: Storage, key: str, parts: list[bytes]) -> None:
    write_in_parts(storage, key, parts, RUN)


def test_a_retried_pod_writes_over_the_blocks_a_killed_run_left_and_commits_only_its_own(
    proxied: Target, storage: AzureStorage
) -> None:
    key = proxied.key("db/retried.sql.gz")
    killed = storage.blob(key)
    for number in (1, 2, 3):  # the killed run's blocks, named as every run names them: its nonce, the part
        killed.stage_block(f"{number:016x}-{number:05d}", b"killed run " * 1000)
    parts = [b"a" * PART, b"b" * PART, b"the end"]

    _upload(storage, key, parts)

    assert proxied.raw.get(key) == b"".join(parts)
    stored = killed.get_blob_properties()
    assert bytes(stored.content_settings.content_md5) == hashlib.md5(b"".join(parts)).digest()
    assert stored.metadata == {"pgbackup_run_id": "run-1", "pgbackup_attempt": "1"}


def test_a_refused_commit_over_another_runs_blob_of_the_same_size_leaves_it(
    proxied: Target, storage: AzureStorage
) -> None:
    key = proxied.key("db/theirs.sql.gz")
    parts = [b"a" * PART, b"ours"]
    theirs = b"z" * sum(map(len, parts))
    proxied.raw.put(key, theirs)
    fault = proxied.fault("commit", key, "applied-500")  # the commit is refused, its answer lost

    with pytest.raises(BackupExistsError, match="written by another run"):
        _upload(storage, key, parts)

    assert fault.hits and proxied.raw.get(key) == theirs


def test_a_refused_write_names_the_data_action_and_the_docs(proxied: Target, storage: AzureStorage) -> None:
    key = proxied.key("db/denied.sql.gz")
    proxied.fault("part", key, "deny")

    with pytest.raises(AccessDeniedError) as caught:
        _upload(storage, key, [b"x" * PART, b"y"])

    message = str(caught.value)
    assert "Put Block needs Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write" in message
    assert "docs/azure.md#least-privilege" in message and "\n" not in message


def test_after_a_stop_request_no_write_leaves_the_process_and_deletes_still_go(
    proxied: Target, storage: AzureStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = proxied.key("db/kept.json")
    storage.put(kept, b"{}", "application/json")
    upload = storage.start_upload(proxied.key("db/late.sql.gz"), "application/gzip", RUN)
    assert proxied.proxy is not None
    proxied.proxy.seen.clear()
    monkeypatch.setattr(stopping, "_request", ("SIGTERM", time.monotonic()))

    with pytest.raises(StorageError, match="not started: the run was stopped by SIGTERM"):
        storage.put(proxied.key("db/late.json"), b"{}", "application/json")
    with pytest.raises(StorageError, match="not started: the run was stopped by SIGTERM"):
        upload.send_part(1, b"x" * PART)
        upload.complete()
    upload.abort()
    storage.delete(kept)

    assert [method for method, _path, _headers in proxied.proxy.seen] == ["DELETE"]
    assert proxied.raw.get(kept) is None


def test_every_write_carries_the_md5_the_service_checks_and_the_blob_keeps_its_own(
    proxied: Target, storage: AzureStorage
) -> None:
    assert proxied.proxy is not None
    parts = [b"a" * PART, b"the end"]
    _upload(storage, proxied.key("db/md5.sql.gz"), parts)
    storage.put(proxied.key("db/md5.json"), b"{}", "application/json")

    def md5(data: bytes) -> str:
        return base64.b64encode(hashlib.md5(data).digest()).decode()

    writes = [(path, headers) for method, path, headers in proxied.proxy.seen if method == "PUT"]
    blocks = [headers.get("content-md5") for path, headers in writes if "comp=block&" in path]
    commits = [headers.get("x-ms-blob-content-md5") for path, headers in writes if "comp=blocklist" in path]
    puts = [headers.get("content-md5") for path, headers in writes if path.endswith("md5.json")]
    assert sorted(blocks) == sorted(md5(part) for part in parts)  # type: ignore[type-var]
    assert commits == [md5(b"".join(parts))] and puts == [md5(b"{}")]


def test_a_blob_replaced_between_two_chunks_of_a_read_is_a_change_not_other_bytes(
    proxied: Target, storage: AzureStorage
) -> None:
    key = proxied.key("db/replaced.sql.gz")
    proxied.raw.put(key, b"a" * (2 * PART))
    chunks = storage.read(key)
    assert next(chunks) == b"a" * PART
    proxied.raw.put(key, b"b" * (2 * PART))

    with pytest.raises(ChangedError, match="was replaced while it was being read"):
        list(chunks)
