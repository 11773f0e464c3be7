"""The storage a command works on: ``settings.DESTINATION``, opened with its S3 options."""

from __future__ import annotations

from ..core.settings import Settings
from ..storage import LocalStorage, S3Storage, Storage


def open_destination(settings: Settings) -> Storage:
    destination = settings.destination
    if destination.scheme == "s3":
        return S3Storage(destination.bucket, settings.s3, settings.upload_concurrency)
    assert destination.directory is not None
    return LocalStorage(destination.directory)
