"""Sharding, zstd and age sealing work on Azure Blob Storage and GCS as on S3: they live above
the storage seam, and this proves it end to end on each cloud's emulator. Two databases are
spread over two shards (one pgbackup run each), written with zstd and sealed to an age
recipient; then one is restored with the identity and compared with the original."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from devenv.azurite import AzuriteServer
from devenv.fakegcs import FakeGcsServer
from devenv.postgres import Cluster

from ..kit.helpers import comparable_dump, job_env, run_pgbackup
from .test_backup_s3 import make_sample
from .test_encryption import identity_file


@pytest.fixture(params=["azure", "gcs"])
def cloud(request: pytest.FixtureRequest) -> tuple[str, dict[str, str], object]:
    """A fresh container or bucket: its URL, the SDK's variables, and a way to list its objects."""
    name = f"feat-{uuid.uuid4().hex[:12]}"
    if request.param == "azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite")
        container = azurite.client().create_container(name)
        return f"azure://{azurite.account}/{name}/prod", azurite.env(), container
    gcs: FakeGcsServer = request.getfixturevalue("fake_gcs")
    bucket = gcs.client().create_bucket(name)
    return f"gs://{name}/prod", gcs.env(), bucket


def _names(store: object) -> list[str]:
    blobs = store.list_blobs()  # type: ignore[attr-defined]  # ContainerClient and Bucket both list this way
    return sorted(blob.name for blob in blobs)


def test_shards_zstd_and_sealing_round_trip(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path, cloud: tuple[str, dict[str, str], object]
) -> None:
    url, sdk, store = cloud
    databases = [f"{dbname}_a", f"{dbname}_b"]
    for database in databases:
        make_sample(pg18, database, rows=500)
    key, public = identity_file(tmp_path, "key")
    base = {
        "BACKUP_DATABASES": ",".join(databases),
        "BACKUP_GLOBALS": "false",
        "BACKUP_COMPRESSION": "zstd",
        "BACKUP_ENCRYPT_RECIPIENTS": public,
        "BACKUP_RUN_TIMESTAMP": "20261206T020000Z",  # one run, as every shard's pod of a Job shares it
    }

    for shard in ("0/2", "1/2"):
        result = run_pgbackup({**sdk, **job_env(pg18, url, bindir18, BACKUP_SHARD=shard, **base)})
        assert result.returncode == 0, result.stdout + result.stderr

    dumps = [name for name in _names(store) if not name.endswith(".json")]
    assert sorted(name.split("/")[1] for name in dumps) == databases, dumps
    assert all(name.endswith(".sql.zst.age") for name in dumps), dumps
    env = {**sdk, **job_env(pg18, url, bindir18, BACKUP_DECRYPT_IDENTITY_PATH=str(key))}
    restored = run_pgbackup(env, "restore", "--database", databases[1], "--target", f"{dbname}_copy", "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert comparable_dump(pg18, bindir18, f"{dbname}_copy") == comparable_dump(pg18, bindir18, databases[1])
