"""Unit tests of the Azure destination's settings: the ``azure://`` URL by Azure's naming rules,
the blob URL form refused with its equivalent, and at most one credential."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core.errors import ConfigError
from backup_job.core.settings import AzureSettings, Settings, load_settings


def load(tmp_path: Path, destination: str, **env: str) -> Settings:
    return load_settings({"BACKUP_DESTINATION": destination, **env}, dotenv_path=tmp_path / "none.env")


def refusal(tmp_path: Path, destination: str, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, destination, **env)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("url", "account", "container", "prefix"),
    [
        ("azure://acct/my-backups/prod/db", "acct", "my-backups", "prod/db"),
        ("azure://mystorageacct123/b4k/", "mystorageacct123", "b4k", ""),
        (f"azure://{'a' * 24}/{'c' * 63}", "a" * 24, "c" * 63, ""),
    ],
)
def test_an_azure_url_names_the_account_the_container_and_the_prefix(
    tmp_path: Path, url: str, account: str, container: str, prefix: str
) -> None:
    destination = load(tmp_path, url).destination
    assert (destination.scheme, destination.account, destination.bucket, destination.prefix) == (
        "azure",
        account,
        container,
        prefix,
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("azure://ab/backups", "does not name a valid Azure storage account"),
        ("azure://My_Account/backups", "does not name a valid Azure storage account"),
        (f"azure://{'a' * 25}/backups", "does not name a valid Azure storage account"),
        ("azure://acct", "does not name a valid Azure container"),
        ("azure://acct/ab", "does not name a valid Azure container"),
        ("azure://acct/Backups", "does not name a valid Azure container"),
        ("azure://acct/back--ups", "does not name a valid Azure container"),
        ("azure://acct/-backups", "does not name a valid Azure container"),
        ("azure://acct/backups-", "does not name a valid Azure container"),
        (f"azure://acct/{'c' * 64}", "does not name a valid Azure container"),
        ("azure://acct/backups/a//b", "has an empty path segment"),
    ],
)
def test_a_bad_azure_url_is_one_line_naming_what_is_wrong(tmp_path: Path, url: str, problem: str) -> None:
    message = refusal(tmp_path, url)
    assert problem in message and "BACKUP_DESTINATION" in message and "azure://" in message


def test_the_blob_service_url_is_refused_with_its_azure_form(tmp_path: Path) -> None:
    message = refusal(tmp_path, "https://MyAcct.blob.core.windows.net/backups/prod/")
    assert "for example BACKUP_DESTINATION=azure://myacct/backups/prod" in message


@pytest.mark.parametrize(
    "credentials",
    [
        {"AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct;AccountKey=a2V5", "AZURE_STORAGE_KEY": "a2V5"},
        {"AZURE_STORAGE_KEY": "a2V5", "AZURE_STORAGE_SAS_TOKEN": "sv=2024&sig=c2ln"},
    ],
)
def test_two_credentials_are_refused_without_showing_either(tmp_path: Path, credentials: dict[str, str]) -> None:
    message = refusal(tmp_path, "azure://acct/backups", **credentials)
    assert " and ".join(credentials) in message and "set only one" in message
    assert "a2V5" not in message and "c2ln" not in message


def test_azure_options_are_read_only_for_an_azure_destination(tmp_path: Path) -> None:
    azure = load(tmp_path, "azure://acct/backups", AZURE_STORAGE_SAS_TOKEN="?sv=1", BACKUP_AZURE_MAX_ATTEMPTS="3")
    assert isinstance(azure.storage, AzureSettings)
    assert (azure.storage.sas_token, azure.storage.max_attempts, azure.storage.read_timeout) == ("?sv=1", 3, 60)
    s3 = load(tmp_path, "s3://bucket", AZURE_STORAGE_KEY="a2V5", AZURE_STORAGE_SAS_TOKEN="sv=1")
    assert not isinstance(s3.storage, AzureSettings)
