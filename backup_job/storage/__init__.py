"""Destinations for backups: ``open_storage`` picks the implementation for a URL."""

from __future__ import annotations

from ..config import Settings
from .base import Storage, Upload
from .local import LocalStorage
from .s3 import S3Storage

__all__ = ["Storage", "Upload", "open_storage"]


def open_storage(settings: Settings) -> Storage:
    destination = settings.destination
    if destination.scheme == "s3":
        return S3Storage(destination.bucket, settings.s3, settings.upload_concurrency)
    assert destination.directory is not None
    return LocalStorage(destination.directory)
