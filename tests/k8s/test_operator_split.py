"""End to end on the control plane: a PgBackup with ``spec.format: split`` stores a split
backup, and PgRestores with ``spec.tables`` (and ``spec.into``) restore single tables of it."""

from __future__ import annotations

from pathlib import Path

from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import Bucket
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from .test_operator_day_two import _job_named, _pods, _restore, _restore_status, _run_now, _run_pods, _setup, _spec


def test_a_split_pgbackup_and_pgrestores_of_one_table(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE big AS SELECT generate_series(1, 5000) AS n; ALTER TABLE big ADD PRIMARY KEY (n)", dbname)
    pg18.sql("CREATE TABLE small AS SELECT generate_series(1, 7) AS n", dbname)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "src", _spec(pg18, bucket, dbname, format="split", dumpJobs=2))
    kubelet = Kubelet(kube, bindir18, tmp_path)
    _run_pods(kube, kubelet, namespace, _run_now(kube, namespace, "src", "first"))
    wait_for(
        lambda: kube.pgbackup(namespace, "src").get("status", {}).get("lastRun", {}).get("result") == "Succeeded",
        timeout=60,
        what="the backup recorded",
    )
    members = [k for k in bucket.keys("k8s/") if ".split/" in k]
    assert any("/data-" in k for k in members) and any("/pre-data." in k for k in members), members

    pg18.sql("DROP TABLE big", dbname)
    _restore(
        kube,
        namespace,
        "one",
        {"backupRef": {"name": "src"}, "database": dbname, "tables": ["public.big"], "jobs": 2},
    )
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-one"), timeout=30, what="the restore Job")
    _run_pods(kube, kubelet, namespace, "pgrestore-one")
    wait_for(lambda: _restore_status(kube, namespace, "one").get("phase") == "Succeeded", timeout=60, what="Succeeded")
    assert pg18.sql("SELECT count(*) FROM big", dbname) == [(5000,)]
    assert pg18.sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'big'", dbname) == [(1,)]

    _restore(
        kube,
        namespace,
        "beside",
        {"backupRef": {"name": "src"}, "database": dbname, "tables": ["public.small"], "into": "public.small_then"},
    )
    wait_for(lambda: _pods(kube, namespace, "pgrestore-beside"), timeout=60, what="the second restore's pod")
    _run_pods(kube, kubelet, namespace, "pgrestore-beside")
    wait_for(
        lambda: _restore_status(kube, namespace, "beside").get("phase") == "Succeeded", timeout=60, what="Succeeded"
    )
    assert pg18.sql("SELECT count(*) FROM small_then", dbname) == [(7,)]
