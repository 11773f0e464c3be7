"""``AWS_MAX_ATTEMPTS=N`` means N requests in all, the first included, as the AWS SDKs document
it: counted at a real HTTP proxy in front of each S3 implementation while every attempt fails,
by an error answer or by a stall that outlasts the read timeout."""

from __future__ import annotations

import pytest

from backup_job.core.errors import StorageError
from backup_job.core.settings import S3Settings
from backup_job.storage.s3 import S3Storage
from devenv.faultproxy import Fault, FaultProxy
from devenv.wait import wait_for

from ..kit.helpers import Bucket


def _storage(bucket: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, attempts: int) -> S3Storage:
    """pgbackup's S3 storage for ``bucket``, through ``proxy``, with ``attempts`` attempts and a
    read timeout of 1 s."""
    for name, value in {**bucket.server.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    options = S3Settings(addressing_style="path", read_timeout=1, connect_timeout=5, max_attempts=attempts)
    return S3Storage(bucket.name, options, concurrency=1)


@pytest.mark.parametrize("attempts", [1, 3])
def test_every_attempt_answered_with_a_5xx_is_exactly_max_attempts_requests(
    attempts: int, any_bucket: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    any_bucket.put("r/obj", b"stored")
    storage = _storage(any_bucket, proxy, monkeypatch, attempts)
    failing = proxy.add(Fault("GET", rf"^/{any_bucket.name}/r/obj$", "applied-500", times=None))

    with pytest.raises(StorageError, match="GetObject"):
        b"".join(storage.read("r/obj"))

    assert len(failing.hits) == attempts, failing.hits

    def seen() -> list[tuple[str, str, int]]:
        return [r for r in proxy.requests if "/r/obj" in r[1]]

    # the proxy records a request once its answer is written: the client may have it a moment before
    wait_for(lambda: len(seen()) >= attempts, timeout=10, what=f"{attempts} requests recorded by the proxy")
    assert seen() == [("GET", f"/{any_bucket.name}/r/obj", 500)] * attempts


@pytest.mark.parametrize("attempts", [1, 2])
def test_every_attempt_stalling_is_exactly_max_attempts_requests(
    attempts: int, any_bucket: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _storage(any_bucket, proxy, monkeypatch, attempts)
    stall = proxy.add(Fault("PUT", rf"^/{any_bucket.name}/r/stalled$", "stall", times=None, seconds=30, forward=False))

    with pytest.raises(StorageError, match="timeout"):
        storage.put("r/stalled", b"never answered", "application/json")

    assert len(stall.hits) == attempts, stall.hits
    assert any_bucket.keys("r/") == []
