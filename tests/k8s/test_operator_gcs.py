"""A PgBackup whose destination is GCS, end to end: PgBackup -> Job -> Pod -> a backup in a
fake-gcs-server bucket -> the PgBackup's status.

The spec names the bucket and prefix only (``destination.gcs``, no credentials Secret: workload
identity's form). The emulator's address cannot be in the spec, which has no endpoint field:
the stand-in kubelet gives it to the container from its own environment (``node_env``), where
the library's ``STORAGE_EMULATOR_HOST`` also makes the credentials anonymous.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from devenv.fakegcs import FakeGcsServer
from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess


def test_a_pgbackup_to_gcs_backs_up_into_the_bucket(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    fake_gcs: FakeGcsServer,
    tmp_path: Path,
) -> None:
    bucket = f"k8s-{uuid.uuid4().hex[:12]}"
    fake_gcs.client().create_bucket(bucket)
    pg18.sql(f"CREATE DATABASE {dbname}")
    password = base64.b64encode(pg18.password.encode()).decode()
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": "pg"}, "data": {"password": password}})
    spec = {
        "schedule": "0 3 * * *",
        "postgres": {
            "host": pg18.host,
            "port": pg18.port,
            "sslMode": "disable",
            "user": "postgres",
            "passwordSecretRef": {"name": "pg"},
        },
        "databases": {"include": [dbname]},
        "globals": False,
        "destination": {"gcs": {"bucket": bucket, "prefix": "k8s"}},
    }
    kube.create_pgbackup(namespace, "gcs", spec, annotations={"pgbackup.io/backup-now": "first"})

    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the backup-now Job")
    job = kube.jobs(namespace)[0]["metadata"]["name"]
    wait_for(lambda: kube.pod_of(namespace, job), timeout=60, what="the backup Job's Pod")
    pod = kube.pod_of(namespace, job)
    assert pod is not None
    env = {entry["name"]: entry.get("value") for entry in pod["spec"]["containers"][0]["env"]}
    assert env["BACKUP_DESTINATION"] == f"gs://{bucket}/k8s" and "STORAGE_EMULATOR_HOST" not in env

    result = Kubelet(kube, bindir18, tmp_path, node_env=fake_gcs.env()).run(pod)

    assert result.returncode == 0, result.stdout + result.stderr
    keys = sorted(blob.name for blob in fake_gcs.client().list_blobs(bucket))
    assert [key.split("/")[1] for key in keys] == [dbname, dbname], keys
    assert keys[0].endswith(".manifest.json") and keys[1].endswith(".sql.gz"), keys
    wait_for(
        lambda: kube.pgbackup(namespace, "gcs").get("status", {}).get("lastRun", {}).get("result") == "Succeeded",
        timeout=60,
        what="lastRun.result == Succeeded",
    )
