"""The clean-up of unfinished uploads: by the store's clock, never on dates that cannot be true.

Against moto's server and SeaweedFS through the fault proxy, whose ``rewrite`` redates the
ListMultipartUploads answers: honestly for moto (which dates every upload 2010-11-10), wrongly
for both. The clean-up is called as a run calls it, on pgbackup's real S3 storage, without the
run around it (``test_concurrent_runs.py`` has whole runs, ``test_least_privilege.py`` one that
aborts); the proxy counts its requests. A ``file://`` destination needs no service at all.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_sweep.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from backup_job.commands.sweep import sweep_unfinished_uploads
from backup_job.core.errors import StorageError
from backup_job.core.settings import S3Settings
from backup_job.storage.s3 import S3Storage
from devenv.faultproxy import Fault, FaultProxy
from devenv.s3 import S3Server
from devenv.seaweed import SeaweedServer
from devenv.wait import wait_for

from ..kit.helpers import UPLOAD_LISTING, Bucket, redated

DAY = timedelta(days=1)
MOTO_S_DATE = datetime(2010, 11, 10, 20, 48, 33, tzinfo=UTC)


def as_of(started: dict[str, datetime]) -> Callable[[str], datetime]:
    """The uploads at ``started``'s keys dated as given, any other (the clock probe) now."""
    return lambda key: started.get(key) or datetime.now(UTC)


def s3_sweep(
    bucket: Bucket,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    dated: Callable[[str], datetime],
    sent: int,
) -> tuple[list[str], list[str]]:
    """Sweep ``s/`` (abandoned after a day) through the proxy, which dates each upload
    ``dated(key)``; the log lines and the requests sent (``sent`` of them, once the proxy has
    logged each: it does so just after answering)."""
    for name, value in {**bucket.server.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint}.items():
        monkeypatch.setenv(name, value)
    storage = S3Storage(bucket.name, S3Settings(addressing_style="path", max_attempts=1), concurrency=1)
    proxy.add(Fault("GET", UPLOAD_LISTING, "rewrite", times=None, rewrite=redated(dated)))
    with caplog.at_level(logging.INFO):
        sweep_unfinished_uploads(storage, "s", DAY)
    wait_for(lambda: len(proxy.requests) >= sent, timeout=5, what=f"{sent} requests at the proxy")
    requests = [f"{method} {path.split('?', 1)[1] if '?' in path else path}" for method, path, _ in proxy.requests]
    return [r.getMessage() for r in caplog.records], requests


@cache
def admin(server: S3Server | SeaweedServer) -> Any:
    """One client per server for the tests' own requests (each new client costs a tenth of a second)."""
    return server.client()


def open_uploads(bucket: Bucket, keys: list[str]) -> None:
    for key in keys:
        admin(bucket.server).create_multipart_upload(Bucket=bucket.name, Key=key)


def still_open(bucket: Bucket) -> list[str]:
    return sorted(u["Key"] for u in admin(bucket.server).list_multipart_uploads(Bucket=bucket.name).get("Uploads", []))


def test_abandoned_uploads_are_aborted_by_the_store_s_clock(
    any_bucket: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    killed, live = "s/shop/20200101T000000Z.sql.gz", "s/shop/20200102T000000Z.sql.gz"
    probe, foreign = "s/_probe/" + "0" * 32 + ".clock", "s/not-ours.bin"  # a killed run's probe; someone else's
    open_uploads(any_bucket, [killed, probe, foreign])
    client = admin(any_bucket.server)
    upload = client.create_multipart_upload(Bucket=any_bucket.name, Key=live)  # a long run, writing right now
    client.upload_part(Bucket=any_bucket.name, Key=live, UploadId=upload["UploadId"], PartNumber=1, Body=b"x")
    now = datetime.now(UTC)
    started = {key: now - 2 * DAY - timedelta(seconds=n) for n, key in enumerate([killed, probe, foreign, live])}

    # one listing; the run's probe: create, list, abort; the parts of each of the three old ones; two aborts
    lines, requests = s3_sweep(any_bucket, proxy, monkeypatch, caplog, as_of(started), sent=1 + 3 + 3 + 2)

    assert still_open(any_bucket) == [foreign, live], (
        "uploads outside our layout, and ours with a part written within the age, stay; the run's own probe goes"
    )
    assert sorted(lines) == [
        f"aborted an unfinished upload left by an earlier run: s3://{any_bucket.name}/{key}" for key in (probe, killed)
    ]
    assert len(requests) == 1 + 3 + 3 + 2, requests


@pytest.mark.parametrize("dates", ["future", "alike", "fixed"])
def test_upload_dates_that_cannot_be_true_abort_nothing(
    any_bucket: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, dates: str
) -> None:
    """An upload begun after the store's own time; two runs' old uploads begun at the very same
    instant; a lone upload and the probe dated alike, long ago, as moto's server dates them. By
    such dates a live run's upload could look abandoned."""
    first, second = "s/shop/20200101T000000Z.sql.gz", "s/shop/20200102T000000Z.sql.gz"
    keys = [first] if dates == "fixed" else [first, second]
    open_uploads(any_bucket, keys)
    old = datetime.now(UTC) - 2 * DAY
    dated = {
        "future": as_of({first: old, second: old + 3 * DAY}),
        "alike": as_of({first: old, second: old}),
        "fixed": lambda key: MOTO_S_DATE,
    }[dates]

    sent = 4 if dates == "fixed" else 1  # the probe (create, list, abort) only when the dates look sane
    lines, requests = s3_sweep(any_bucket, proxy, monkeypatch, caplog, dated, sent)

    assert still_open(any_bucket) == keys
    [warning] = [r for r in caplog.records if "not swept" in r.getMessage()]
    assert warning.levelno == logging.WARNING and len(lines) == 1, lines
    assert (
        f"unfinished uploads in s3://{any_bucket.name}/s/ not swept: the store's upload dates cannot be trusted"
        in lines[0]
        and "lifecycle rule" in lines[0]
    ), lines[0]
    assert len(requests) == sent, requests


def test_a_completion_whose_upload_was_aborted_under_it_says_so(
    any_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its part was stored, then another process aborted the upload: the completion finds it
    gone (SeaweedFS: NoSuchUpload; moto: a bare 500). A part refused so is proved by a whole run
    in ``test_concurrent_runs.py``."""
    for name, value in any_bucket.server.env().items():
        monkeypatch.setenv(name, value)
    storage = S3Storage(any_bucket.name, S3Settings(addressing_style="path", max_attempts=1), concurrency=1)
    key = "v/shop/20200101T000000Z.sql.gz"
    upload = storage.start_upload(key, "application/gzip", {})
    upload.send_part(1, b"the whole dump")
    client = admin(any_bucket.server)
    wait_for(
        lambda: client.list_parts(Bucket=any_bucket.name, Key=key, UploadId=upload.upload_id).get("Parts"),
        timeout=10,
        what="the part stored",
    )
    client.abort_multipart_upload(Bucket=any_bucket.name, Key=key, UploadId=upload.upload_id)

    with pytest.raises(StorageError) as failed:
        upload.complete()

    assert str(failed.value).startswith(
        f"the unfinished upload of s3://{any_bucket.name}/{key} was aborted by "
        "another process while this run was writing it"
    ), failed.value
    assert isinstance(failed.value.__cause__, StorageError), "the store's own answer stays the cause"
