"""Destinations for backups, behind one interface.

- ``base``   the interface (``Storage``, ``Upload``) and ``PartLimits``;
- ``parts``  the part pool every upload shares (bounded parts in flight, cancel, abort);
- ``crc32c`` the running CRC32C of a whole object (S3 under SSE-KMS, GCS);
- ``s3``     S3 and S3-compatible stores through boto3 (``s3_multipart``: one upload;
            ``s3_checks``: limits, error codes, ETags and MD5s);
- ``local``  a local directory (``file://``), the embedded default;
- ``azure``  Azure Blob Storage through Microsoft's SDK (``azure_blocks``: one block blob;
            ``azure_checks``: limits, error codes, denials and MD5s),
            imported only when an ``azure://`` destination is opened (never from here);
- ``gcs``    Google Cloud Storage through its JSON API (``gcs_upload``: one resumable upload;
            ``gcs_http``: requests, retries and error messages), likewise only for ``gs://``.

Which module opens a destination is the registry's choice (``core.settings.BACKENDS``).

Storage takes its options as arguments; it never reads pgbackup's settings.
"""

from __future__ import annotations

from .base import ObjectInfo, PartLimits, Storage, Upload
from .local import LocalStorage
from .s3 import S3Options, S3Storage

__all__ = ["LocalStorage", "ObjectInfo", "PartLimits", "S3Options", "S3Storage", "Storage", "Upload"]
