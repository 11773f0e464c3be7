"""Google Cloud Storage: the SDK finds its credentials; the job reads only where GCS is.

Application Default Credentials are the Google SDK's: GKE workload identity, the metadata
server, or ``GOOGLE_APPLICATION_CREDENTIALS`` naming a service-account JSON key file. That
variable is declared here, owned by the SDK, because the operator renders it: a PgBackup's
``gcs.credentialsSecretRef`` is mounted as a file and the variable points at it.
``BACKUP_GCS_ENDPOINT`` is the job's own: the JSON API's base URL for a private endpoint
(Private Service Connect) or another deployment of the API; unset, the SDK's public one.

``parse`` reads a ``gs://<bucket>[/<prefix>]`` destination (the registry's parser for the
scheme, ``destination.BACKENDS``). A bucket name follows GCS's rules for names without dots'
domain verification: 3 to 63 lowercase letters, digits, ``-``, ``_`` and ``.``, starting and
ending with a letter or digit; a name GCS would refuse is refused here, before any request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import SplitResult

from ..schema import Invalid, Variable, format_optional, optional_text
from .group import Group

if TYPE_CHECKING:
    from .destination import Destination

EXAMPLE = "gs://my-bucket/postgres"
BUCKET = re.compile(r"[a-z0-9][a-z0-9_.\-]{1,61}[a-z0-9]")


def parse(value: str, parts: SplitResult) -> Destination:
    """A ``gs://`` URL as a destination; ``Invalid`` naming what is wrong with it."""
    # destination.py imports this module for the registry, so its names are fetched when called
    from .destination import Destination, bucket_prefix

    if not parts.netloc:
        raise Invalid("names no bucket (gs://<bucket>[/<prefix>])", EXAMPLE)
    if not BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise Invalid(
            f"does not name a valid GCS bucket ({parts.netloc!r}: 3-63 lowercase letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit)",
            EXAMPLE,
        )
    return Destination(url=value, scheme="gs", bucket=parts.netloc, prefix=bucket_prefix(parts, EXAMPLE))


class GcsSettings(Group):
    """The SDK's credentials variable the operator sets (read by google-auth), and the endpoint."""

    application_credentials = Variable(
        "GOOGLE_APPLICATION_CREDENTIALS",
        optional_text,
        "Path of a service-account JSON key (else the SDK's chain: workload identity, metadata server).",
        example="/etc/pgbackup/gcs/key.json",
        shown_default="SDK chain",
        owner="sdk",
        format=format_optional,
    )
    endpoint = Variable(
        "BACKUP_GCS_ENDPOINT",
        optional_text,
        "The GCS JSON API's base URL (default `https://storage.googleapis.com`), for private endpoints.",
        example="https://storage-mypsc.p.googleapis.com",
        shown_default="Google's public one",
        format=format_optional,
    )
