"""Acceptance tests of the ``azure://`` destination: the real CLI against Azurite (Microsoft's
emulator) and a real PostgreSQL 18, from backup to prune, and the mistakes a user makes
first: a blob URL instead of ``azure://``, a container that does not exist, a wrong key, no
credentials at all (the SDK's identity chain finds none).

What Azurite cannot show is not claimed here: it enforces no roles (a denial naming the
data action is checked behind the fault proxy, in ``test_azure_storage.py``)."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest

from devenv.azurite import AzuriteServer
from devenv.postgres import Cluster

from ..kit.helpers import comparable_dump, job_env, make_sample, manifest, run_pgbackup, wait_for_next_second


@pytest.fixture
def container(azurite: AzuriteServer) -> str:
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    azurite.client().create_container(name)
    return name


def _env(azurite: AzuriteServer, cluster: Cluster, bindir: Path, url: str, **extra: str) -> dict[str, str]:
    return {**azurite.env(), **job_env(cluster, url, bindir, **extra)}


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: one line, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_backup_list_verify_restore_and_prune_on_azure(
    pg18: Cluster, bindir18: Path, dbname: str, azurite: AzuriteServer, container: str
) -> None:
    make_sample(pg18, dbname, rows=2_000)
    original = comparable_dump(pg18, bindir18, dbname)
    env = _env(
        azurite,
        pg18,
        bindir18,
        f"azure://{azurite.account}/{container}/prod",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
    )
    blobs = azurite.client().get_container_client(container)

    first = run_pgbackup(env)

    assert first.returncode == 0, first.stdout + first.stderr
    names = sorted(blob.name for blob in blobs.list_blobs())
    assert [name.rsplit(".", 2)[-2:] for name in names] == [["manifest", "json"], ["sql", "gz"]]
    dump = blobs.get_blob_client(names[1])
    data = dump.download_blob().readall()
    facts = manifest(blobs.download_blob(names[0]).readall())
    assert facts["sha256"] == hashlib.sha256(data).hexdigest()
    stored = dump.get_blob_properties()
    assert bytes(stored.content_settings.content_md5) == hashlib.md5(data).digest()
    assert stored.metadata["pgbackup_run_id"] == facts["run_id"]

    listed = run_pgbackup(env, "list")
    verified = run_pgbackup(env, "verify", "--database", dbname)
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_copy", "--create")

    assert listed.returncode == 0 and dbname in listed.stdout, listed.stdout + listed.stderr
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert restored.returncode == 0 and "sha256 verified" in restored.stdout, restored.stdout + restored.stderr
    assert comparable_dump(pg18, bindir18, f"{dbname}_copy") == original

    wait_for_next_second()
    second = run_pgbackup(env)
    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert second.returncode == 0, second.stdout + second.stderr
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    left = sorted(blob.name for blob in blobs.list_blobs())
    assert len(left) == 2 and not set(left) & set(names), "the older backup is deleted, the newer kept"


def test_mistakes_are_one_line_each(tmp_path: Path, azurite: AzuriteServer, container: str) -> None:
    env = {"BACKUP_DESTINATION": f"azure://{azurite.account}/{container}", **azurite.env()}

    blob_url = _one_line(
        run_pgbackup({**env, "BACKUP_DESTINATION": f"https://{azurite.account}.blob.core.windows.net/{container}/p"})
    )
    missing = _one_line(run_pgbackup({**env, "BACKUP_DESTINATION": f"azure://{azurite.account}/no-such"}, "list"))
    wrong_key = _one_line(
        run_pgbackup(
            {
                "BACKUP_DESTINATION": env["BACKUP_DESTINATION"],
                "AZURE_STORAGE_KEY": "d3Jvbmc=",
                "BACKUP_AZURE_ENDPOINT": azurite.endpoint,
            },
            "list",
        )
    )

    no_identity = _one_line(
        run_pgbackup(
            {
                "BACKUP_DESTINATION": env["BACKUP_DESTINATION"],
                "BACKUP_AZURE_ENDPOINT": f"https://127.0.0.1:{azurite.port}/{azurite.account}",
                "HOME": str(tmp_path),  # no cached sign-in of a developer's tools
            },
            "list",
        )
    )

    assert f"use its azure:// form; for example BACKUP_DESTINATION=azure://{azurite.account}/{container}/p" in blob_url
    assert "the container no-such does not exist in the storage account devstoreaccount1" in missing
    assert "az storage container create" in missing
    assert "list FAILED" in missing and "list FAILED" in wrong_key
    assert "the storage account devstoreaccount1 refused the credentials" in wrong_key
    assert "check AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN" in wrong_key
    assert "d3Jvbmc=" not in wrong_key
    assert "no credentials for the storage account devstoreaccount1: DefaultAzureCredential failed" in no_identity
    assert "give the job a workload or managed identity" in no_identity
