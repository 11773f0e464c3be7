"""Sharding, zstd and age sealing work on Azure Blob Storage and GCS as on S3: they live above
the storage seam, and this proves it end to end on each cloud's emulator. Two databases are
spread over two shards (one pgbackup run each), written with zstd and sealed to an age
recipient; then one is restored with the identity and compared with the original."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from devenv.azurite import AzuriteServer
from devenv.fakegcs import FakeGcsServer
from devenv.postgres import Cluster

from ..kit.helpers import SIGNED, comparable_dump, job_env, make_sample, manifest, run_pgbackup
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


def _get(store: object, name: str) -> bytes:
    if hasattr(store, "get_blob_client"):  # an Azure container
        return bytes(store.get_blob_client(name).download_blob().readall())
    return bytes(store.blob(name).download_as_bytes())  # type: ignore[attr-defined]


def _put(store: object, name: str, data: bytes) -> None:
    """Write as a bucket writer would, over whatever is there."""
    if hasattr(store, "get_blob_client"):
        store.get_blob_client(name).upload_blob(data, overwrite=True)
        return
    store.blob(name).upload_from_string(data)  # type: ignore[attr-defined]


def test_a_forged_dump_in_the_cloud_store_runs_no_command(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path, cloud: tuple[str, dict[str, str], object]
) -> None:
    """A bucket writer replaces a dump and its manifest (the checksum recomputed to match): the
    restore reads it through this store's backend and the same checks as on S3 refuse it: passed
    over as unsigned with keys configured, and without keys its meta-command never runs."""
    url, sdk, store = cloud
    make_sample(pg18, dbname, rows=10)
    env = {**sdk, **job_env(pg18, url, bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")}
    assert run_pgbackup(env).returncode == 0
    dump = next(name for name in _names(store) if name.endswith(".sql.gz"))
    mark = tmp_path / f"pwned-{uuid.uuid4().hex}"
    body = gzip.compress(f"\\! touch {mark}\n".encode() + b"-- padding\n" * 1000)
    facts = manifest(_get(store, dump.replace(".sql.gz", ".manifest.json")))
    facts.pop("signature", None)
    facts.update(sha256=hashlib.sha256(body).hexdigest(), compressed_bytes=len(body), block_bytes=0, block_sha256="")
    _put(store, dump, body)
    _put(store, dump.replace(".sql.gz", ".manifest.json"), json.dumps(facts).encode())

    signed = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    unsigned = {k: v for k, v in env.items() if k not in SIGNED}  # as before signing keys were configured
    restored = run_pgbackup(unsigned, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")

    assert not mark.exists(), "a meta-command of a forged dump ran"
    assert signed.returncode == 1 and "UNSIGNED" in signed.stdout, signed.stdout
    assert restored.returncode == 1 and "backslash commands are restricted" in restored.stdout, restored.stdout
    assert pg18.sql("SELECT count(*) FROM pg_database WHERE datname = %s", params=(f"{dbname}_r",)) == [(0,)]
