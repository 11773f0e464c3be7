"""Google Cloud Storage: the job reads no variable of its own; the SDK finds its credentials.

Application Default Credentials are the Google SDK's: GKE workload identity, the metadata
server, or ``GOOGLE_APPLICATION_CREDENTIALS`` naming a service-account JSON key file. That
variable is declared here, owned by the SDK, because the operator renders it: a PgBackup's
``gcs.credentialsSecretRef`` is mounted as a file and the variable points at it.
"""

from __future__ import annotations

from ..schema import Variable, format_optional, optional_text
from .group import Group


class GcsSettings(Group):
    """The SDK's variable the operator sets; read by google-auth, not by pgbackup."""

    application_credentials = Variable(
        "GOOGLE_APPLICATION_CREDENTIALS",
        optional_text,
        "Path of a service-account JSON key (else the SDK's chain: workload identity, metadata server).",
        example="/etc/pgbackup/gcs/key.json",
        shown_default="SDK chain",
        owner="sdk",
        format=format_optional,
    )
