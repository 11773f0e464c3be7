"""Azure Blob Storage: where the container is, how the job proves who it is, how long it waits.

``azure://<account>/<container>[/<prefix>]`` names the place (``parse_url``): the account and
container by Azure's naming rules, checked here so a typo is one line before any request. The
blob URL form (``https://<account>.blob.core.windows.net/<container>/...``) is refused with its
``azure://`` equivalent (``equivalent``): the scheme picks the backend, and the endpoint is a
setting of its own, so a backup keeps one name wherever the service is reached from.

Three kinds of secret each give access on their own: a connection string (which may also
name the service, ``BlobEndpoint=``: how an emulator is reached), the account key, or a SAS
token. At most one is set (``settle``); with none the Azure SDK's own chain applies (workload
identity, managed identity, ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/``AZURE_FEDERATED_TOKEN_FILE``,
which the SDK reads itself and so are not declared here). Each secret has a ``*_FILE`` form, so
a mounted Secret works as well as a variable. The operator renders the three secrets' names
from these declarations (``secretKeyRef`` into a Secret whose keys bear the same names), and
the endpoint only when its installer allowed it (``PGBACKUP_ALLOWED_BLOB_ENDPOINTS``).

The SDK's own waits are bounded by pgbackup's settings, as S3's are: a connect timeout, a read
timeout and the attempts per request. They are this group's own, not the S3 ones, because
only the chosen kind's group is read (an S3 variable never stops a run to Azure); their
defaults mean what the S3 ones mean (10 s, 60 s, 5 attempts; the SDK's own connect timeout is
20 s, and it waits 18 s before its first retry, which no stop's 10 s bound could afford).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import SplitResult

from ..errors import ConfigError
from ..schema import Invalid, Variable, bound, format_optional, integer, optional_text
from .group import Group

if TYPE_CHECKING:
    from .destination import Destination

EXAMPLE = "azure://mystorageacct/my-backups/postgres"
ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
BLOB_HOST = re.compile(r"([a-z0-9]{3,24})\.blob\.core\.windows\.net", re.IGNORECASE)


def parse_url(value: str, parts: SplitResult) -> Destination:
    """The account, container and prefix of an ``azure://`` URL (the registry's parser)."""
    from .destination import Destination, bucket_prefix  # the registry imports this module

    container, _, rest = parts.path.lstrip("/").partition("/")
    if not ACCOUNT.fullmatch(parts.netloc):
        raise Invalid("does not name a valid Azure storage account (3-24 lowercase letters and digits)", EXAMPLE)
    if not CONTAINER.fullmatch(container):
        raise Invalid(
            "does not name a valid Azure container (3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit)",
            EXAMPLE,
        )
    prefix = bucket_prefix(parts._replace(path=rest), EXAMPLE)
    return Destination(url=value, scheme="azure", bucket=container, prefix=prefix, account=parts.netloc)


def equivalent(parts: SplitResult) -> str | None:
    """The ``azure://`` form of a blob service URL, or None when ``parts`` is not one."""
    host = BLOB_HOST.fullmatch(parts.hostname or "")
    if parts.scheme not in ("https", "http") or host is None:
        return None
    return f"azure://{host.group(1).lower()}/{parts.path.strip('/')}".rstrip("/")


def _secret(name: str, doc: str, example: str) -> Variable[str | None]:
    return Variable(name, optional_text, doc, example=example, secret=True, file_form=True, format=format_optional)


class AzureSettings(Group):
    """The account's credentials (one of three, or none for the SDK's chain), its endpoint, the waits."""

    connection_string = _secret(
        "AZURE_STORAGE_CONNECTION_STRING",
        "A connection string for the storage account; its `BlobEndpoint=` names the service.",
        "/run/secrets/azure_connection_string",
    )
    account_key = _secret("AZURE_STORAGE_KEY", "The storage account's key.", "/run/secrets/azure_storage_key")
    sas_token = _secret(
        "AZURE_STORAGE_SAS_TOKEN", "A SAS token granting access to the container.", "/run/secrets/azure_sas_token"
    )
    endpoint = Variable(
        "BACKUP_AZURE_ENDPOINT",
        optional_text,
        "The blob service URL (default `https://<account>.blob.core.windows.net`), for emulators and sovereign clouds.",
        example="http://127.0.0.1:10000/devstoreaccount1",
        shown_default="Azure's public one",
        format=format_optional,
    )
    connect_timeout = Variable(
        "BACKUP_AZURE_CONNECT_TIMEOUT",
        bound,
        "How long one connection attempt to the blob service may take (at least 1 s).",
        default="10",
        example="5s",
    )
    read_timeout = Variable(
        "BACKUP_AZURE_READ_TIMEOUT",
        bound,
        "How long one blob service request may wait for the next bytes of its answer before it is "
        "retried (each attempt; at least 1 s).",
        default="60",
        example="2m",
    )
    max_attempts = Variable(
        "BACKUP_AZURE_MAX_ATTEMPTS",
        integer(1, 20),
        "Attempts per blob service request, the first included.",
        default="5",
        example="3",
    )

    def settle(self) -> None:
        given = [
            variable.name
            for variable, value in (
                (AzureSettings.connection_string, self.connection_string),
                (AzureSettings.account_key, self.account_key),
                (AzureSettings.sas_token, self.sas_token),
            )
            if value
        ]
        if len(given) > 1:
            raise ConfigError(
                f"configuration error: {' and '.join(given)} are set together; set only one Azure credential "
                "(or none, for workload or managed identity)"
            )
