"""The storage interface's promises (``backup_job/storage/base.py``), checked on every kind of
destination, in-process, through the registry: a local directory, moto's S3 server, SeaweedFS
(and each store reached over HTTP also behind the fault proxy, ``tests/kit/targets.py``).

What every backend owes the pipeline above it:
- writes are create-only: nothing is ever written over an object, except that our own write
  applied by the store while its answer was lost is recognised as ours (read back);
- an object written in parts appears whole, under its key, only at the commit; an abort leaves
  nothing to see;
- bytes altered on the way are refused or found (the store checks, or we compare what it
  reports), and never become an object;
- reads return exactly the stored bytes, in bounded chunks, and a read pinned to a version
  fails when the object was replaced; a missing object is ``NotFoundError``;
- listing shows what is under a prefix and nothing else; deleting a missing object is fine;
- no wait is unbounded: a part that hangs ends at once when the upload is cancelled.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from backup_job.core.errors import BackupExistsError, ChangedError, NotFoundError, StorageError
from backup_job.storage import Storage
from backup_job.storage.base import READ_CHUNK

from ..kit.targets import Target, write_in_parts

MIB = 1024 * 1024


@pytest.fixture
def storage(target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Storage:
    return target.storage(monkeypatch, tmp_path)


def _parts(storage: Storage, count: int = 2) -> list[bytes]:
    """``count`` full parts of the destination's smallest size (at least 1 MiB), then a short one."""
    size = max(storage.limits.min_part, MIB)
    return [bytes([n + 1]) * size for n in range(count)] + [b"the last part, short"]


def _upload(storage: Storage, key: str, parts: list[bytes], run: str = "run-1") -> None:
    write_in_parts(storage, key, parts, {"pgbackup-run-id": run})


def _read(storage: Storage, key: str, version: str | None = None) -> bytes:
    chunks = list(storage.read(key, version=version))
    assert all(len(chunk) <= READ_CHUNK for chunk in chunks)
    return b"".join(chunks)


def test_an_object_written_in_parts_reads_back_whole_and_is_listed_with_its_size(
    target: Target, storage: Storage
) -> None:
    key, parts = target.key("db/dump.sql.gz"), _parts(storage)
    _upload(storage, key, parts)

    assert _read(storage, key) == b"".join(parts) == target.raw.get(key)
    listed = {info.key: info.size for info in storage.list_objects(target.key("db"))}
    assert listed == {key: sum(map(len, parts))}
    assert storage.exists(key)


def test_a_one_piece_write_never_replaces_an_object_but_our_own_repeated_write_is_ours(
    target: Target, storage: Storage
) -> None:
    key = target.key("db/x.manifest.json")
    storage.put(key, b'{"ours": 1}', "application/json")
    storage.put(key, b'{"ours": 1}', "application/json")  # the same bytes: our own write, again

    with pytest.raises(BackupExistsError):
        storage.put(key, b'{"other": 2}', "application/json")
    assert target.raw.get(key) == b'{"ours": 1}'


def test_an_upload_to_a_key_that_holds_an_object_never_replaces_it(target: Target, storage: Storage) -> None:
    key = target.key("db/dump.sql.gz")
    target.raw.put(key, b"someone else's object")

    with pytest.raises(StorageError):
        _upload(storage, key, _parts(storage, 1), run="run-2")
    assert target.raw.get(key) == b"someone else's object"


def test_an_aborted_upload_leaves_no_object(target: Target, storage: Storage) -> None:
    key = target.key("db/aborted.sql.gz")
    upload = storage.start_upload(key, "application/octet-stream", {"pgbackup-run-id": "run-1"})
    upload.send_part(1, _parts(storage, 1)[0])
    upload.abort()

    assert target.raw.get(key) is None and not storage.exists(key)
    assert [info.key for info in storage.list_objects(target.key("db"))] == []


def test_reads_of_missing_or_replaced_objects_fail_and_deletes_are_idempotent(target: Target, storage: Storage) -> None:
    key = target.key("db/one.json")
    storage.put(key, b"first", "application/json")
    version = storage.version(key)
    target.raw.delete(key)
    target.raw.put(key, b"second, and longer")

    with pytest.raises(ChangedError):
        _read(storage, key, version=version)
    assert _read(storage, key) == b"second, and longer"
    storage.delete(key)
    storage.delete(key)
    with pytest.raises(NotFoundError):
        _read(storage, key)
    with pytest.raises(NotFoundError):
        storage.version(key)


def test_listing_shows_what_is_under_the_prefix_and_nothing_beside_it(target: Target, storage: Storage) -> None:
    for name in ("a/1.json", "a/deeper/2.json", "ab/3.json", "b.json"):
        storage.put(target.key(name), name.encode(), "application/json")

    listed = sorted(info.key for info in storage.list_objects(target.key("a")))

    assert listed == [target.key("a/1.json"), target.key("a/deeper/2.json")]


# -- behind the fault proxy: stores reached over HTTP ------------------------------------------


@pytest.fixture
def faulty(faulty_target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Target, Storage]:
    return faulty_target, faulty_target.storage(monkeypatch, tmp_path)


def test_a_one_piece_write_applied_but_unanswered_is_recognised_as_ours(faulty: tuple[Target, Storage]) -> None:
    target, storage = faulty
    key = target.key("db/lost-answer.manifest.json")
    fault = target.fault("put", key, "applied-500")

    storage.put(key, b'{"ours": 1}', "application/json")

    assert fault.hits and target.raw.get(key) == b'{"ours": 1}'


def test_a_commit_applied_but_unanswered_is_recognised_as_ours(faulty: tuple[Target, Storage]) -> None:
    target, storage = faulty
    key, parts = target.key("db/lost-commit.sql.gz"), _parts(storage, 1)
    fault = target.fault("commit", key, "applied-reset")

    _upload(storage, key, parts)

    assert fault.hits and target.raw.get(key) == b"".join(parts)


def test_a_part_altered_on_the_way_never_becomes_an_object(faulty: tuple[Target, Storage]) -> None:
    target, storage = faulty
    key = target.key("db/altered.sql.gz")
    fault = target.fault("part", key, "corrupt")

    with pytest.raises(StorageError):
        _upload(storage, key, _parts(storage, 1))

    assert fault.hits and target.raw.get(key) is None


def test_a_hanging_part_ends_at_once_when_the_upload_is_cancelled(faulty: tuple[Target, Storage]) -> None:
    target, storage = faulty
    key = target.key("db/hanging.sql.gz")
    fault = target.fault("part", key, "stall", seconds=60, forward=False, times=None)
    upload = storage.start_upload(key, "application/octet-stream", {"pgbackup-run-id": "run-1"})
    upload.send_part(1, _parts(storage, 1)[0])
    timer = threading.Timer(0.5, upload.cancel, [StorageError("time is up")])
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(StorageError, match="time is up"):
            upload.send_part(2, b"last")
            upload.complete()
    finally:
        timer.cancel()
        upload.abort()

    assert fault.hits and time.monotonic() - started < 5
    assert target.raw.get(key) is None
