"""``gs://<bucket>[/<prefix>]`` destinations: GCS's bucket naming rules, checked before any
request, each refusal one line naming the variable; the registry opens them with the GCS
backend and names the ``gcs`` extra."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core.errors import ConfigError
from backup_job.core.settings import BACKENDS, GcsSettings, load_settings


def _destination(tmp_path: Path, url: str):  # type: ignore[no-untyped-def]
    return load_settings({"BACKUP_DESTINATION": url}, dotenv_path=tmp_path / "none.env").destination


@pytest.mark.parametrize(
    ("url", "name", "prefix"),
    [
        ("gs://my-backups", "my-backups", ""),
        ("gs://my-backups/", "my-backups", ""),
        ("gs://my_backups.eu/prod/pg/", "my_backups.eu", "prod/pg"),
        ("gs://abc/x", "abc", "x"),
        (f"gs://{'a' * 63}/x", "a" * 63, "x"),
    ],
)
def test_a_gs_url_names_a_bucket_and_a_prefix(tmp_path: Path, url: str, name: str, prefix: str) -> None:
    destination = _destination(tmp_path, url)
    assert (destination.scheme, destination.bucket, destination.prefix) == ("gs", name, prefix)
    assert BACKENDS["gs"].module == "backup_job.storage.gcs" and BACKENDS["gs"].extra == "gcs"
    assert BACKENDS["gs"].options is GcsSettings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("gs:///prefix", "names no bucket"),
        ("gs://ab/x", "does not name a valid GCS bucket"),
        (f"gs://{'a' * 64}", "does not name a valid GCS bucket"),
        ("gs://My-Backups", "does not name a valid GCS bucket"),
        ("gs://-backups", "does not name a valid GCS bucket"),
        ("gs://backups_", "does not name a valid GCS bucket"),
        ("gs://back..ups", "does not name a valid GCS bucket"),
        ("gs://back ups", "does not name a valid GCS bucket"),
        ("gs://backups/a//b", "has an empty path segment"),
    ],
)
def test_a_bad_gs_url_is_one_line_naming_the_variable(tmp_path: Path, url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _destination(tmp_path, url)
    message = str(refused.value)
    assert expected in message and "BACKUP_DESTINATION" in message and "gs://my-bucket/postgres" in message
    assert "\n" not in message


def test_backup_gcs_endpoint_is_where_every_request_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private endpoint: the JSON API, uploads and downloads all go there (no request made)."""
    from backup_job.storage import gcs

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("API_ENDPOINT_OVERRIDE", raising=False)
    key = tmp_path / "adc.json"  # user credentials: read without a network or a private key
    key.write_text('{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    env = {"BACKUP_DESTINATION": "gs://my-backups/pg", "BACKUP_GCS_ENDPOINT": "https://storage-psc.example/"}
    settings = load_settings(env, dotenv_path=tmp_path / "none.env")
    assert isinstance(settings.storage, GcsSettings)
    storage = gcs.open_storage(settings.destination, settings.storage, settings.upload)
    base = "https://storage-psc.example/"
    assert storage.api == base + "storage/v1/b/my-backups/o"
    assert storage.upload_api == base + "upload/storage/v1/b/my-backups/o"
    assert storage.download_api == base + "download/storage/v1/b/my-backups/o"
