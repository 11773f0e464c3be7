"""Azure Blob Storage: how the job proves who it is to the account, and where the service is.

Three kinds of secret each give access on their own: a connection string (which may also
name the service, ``BlobEndpoint=``: how an emulator is reached), the account key, or a SAS
token. At most one is set; with none the Azure SDK's own chain applies (workload identity,
managed identity, ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/``AZURE_FEDERATED_TOKEN_FILE``, which
the SDK reads itself and so are not declared here). Each secret has a ``*_FILE`` form, so a
mounted Secret works as well as a variable. The operator renders the three secrets' names
from these declarations (``secretKeyRef`` into a Secret whose keys bear the same names) and
never the endpoint.
"""

from __future__ import annotations

from ..schema import Variable, format_optional, optional_text
from .group import Group


def _secret(name: str, doc: str, example: str) -> Variable[str | None]:
    return Variable(name, optional_text, doc, example=example, secret=True, file_form=True, format=format_optional)


class AzureSettings(Group):
    """The account's credentials (one of three, or none for the SDK's chain) and its endpoint."""

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
