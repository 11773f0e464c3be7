"""End to end on the real control plane: a PgRestore's strings are not expanded by the kubelet.

Whoever may create a PgRestore wrote ``target.database: "$(AWS_SECRET_ACCESS_KEY)"``: the
kubelet would have put the bucket's secret key into the restore's command line and made it a
database name (and the status message would have shown it). The operator renders the Job, the
Job controller makes the pod, and the stand-in kubelet (which expands ``$(VAR)`` as a kubelet
does) runs it here against the real PostgreSQL and S3: the job restores into a database named
literally ``$(AWS_SECRET_ACCESS_KEY)``.
"""

from __future__ import annotations

from pathlib import Path

from devenv.postgres import Cluster
from devenv.s3 import SECRET_KEY
from devenv.wait import wait_for

from ..kit.helpers import Bucket
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from .test_operator_day_two import _job_named, _pods, _restore, _restore_status, _run_now, _run_pods, _setup, _spec

HOSTILE = "$(AWS_SECRET_ACCESS_KEY)"


def test_a_pgrestore_target_naming_a_variable_is_restored_into_that_literal_name(
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
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 100) AS n", dbname)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "src", _spec(pg18, bucket, dbname, globals=False))
    kubelet = Kubelet(kube, bindir18, tmp_path)
    _run_pods(kube, kubelet, namespace, _run_now(kube, namespace, "src", "first"))

    _restore(
        kube,
        namespace,
        "steal",
        {"backupRef": {"name": "src"}, "database": dbname, "target": {"database": HOSTILE, "create": True}},
    )
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-steal"), timeout=30, what="the restore Job")
    try:
        _run_pods(kube, kubelet, namespace, "pgrestore-steal")
        wait_for(
            lambda: _restore_status(kube, namespace, "steal").get("phase") == "Succeeded",
            timeout=60,
            what="phase Succeeded",
        )
        assert pg18.sql("SELECT count(*) FROM t", HOSTILE) == [(100,)], "restored into the name as written"
        names = [row[0] for row in pg18.sql("SELECT datname FROM pg_catalog.pg_database")]
        assert SECRET_KEY not in names
        message = _restore_status(kube, namespace, "steal")["message"]
        assert HOSTILE in message and SECRET_KEY not in message, message
        output = (tmp_path / f"{_pods(kube, namespace, 'pgrestore-steal')[0]['metadata']['name']}.output").read_text()
        assert SECRET_KEY not in output
    finally:
        for name in (HOSTILE, SECRET_KEY):
            pg18.sql(f'DROP DATABASE IF EXISTS "{name}"')
