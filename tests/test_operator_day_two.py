"""End to end on the real control plane, day two: a PgRestore restoring a real backup, a prune
CronJob with its own credentials, and one run spread over three pods (an Indexed Job).

The Job controller makes the pods (with their completion index for shards); the stand-in
kubelet (``Kubelet``) runs each pod's command here against the real PostgreSQL and S3, and
the operator turns what it sees into status, Events and the Jobs that follow.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devenv.postgres import Cluster
from devenv.s3 import ACCESS_KEY, SECRET_KEY
from devenv.wait import wait_for

from .helpers import Bucket
from .kubeenv import Kubelet, KubeEnv, OperatorProcess

pytestmark = pytest.mark.slow
GROUP, VERSION = "pgbackup.io", "v1alpha1"


def _secret(kube: KubeEnv, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})


def _spec(pg: Cluster, bucket: Bucket, include: str, **extra: Any) -> dict[str, Any]:
    return {
        "schedule": "0 3 * * *",
        "postgres": {"host": pg.host, "port": pg.port, "sslMode": "disable", "user": "postgres",
                     "passwordSecretRef": {"name": "pg"}},
        "databases": {"include": [include]},
        "destination": {"s3": {"bucket": bucket.name, "prefix": "k8s", "region": "us-east-1",
                               "endpoint": bucket.server.endpoint, "pathStyle": True,
                               "credentialsSecretRef": {"name": "s3"}}},
        **extra,
    }


def _setup(kube: KubeEnv, namespace: str, pg: Cluster) -> None:
    _secret(kube, namespace, "pg", {"password": pg.password})
    _secret(kube, namespace, "s3", {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})


def _pods(kube: KubeEnv, namespace: str, job: str) -> list[dict[str, Any]]:
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items
    return [kube.plain(pod) for pod in pods]


def _job_named(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any] | None:
    return next((job for job in kube.jobs(namespace) if job["metadata"]["name"] == name), None)


def _run_now(kube: KubeEnv, namespace: str, name: str, run_id: str) -> str:
    """Ask for a backup now; the name of the Job the operator made for it."""
    before = {job["metadata"]["name"] for job in kube.jobs(namespace)}
    kube.patch_pgbackup(namespace, name, {"metadata": {"annotations": {"pgbackup.io/backup-now": run_id}}})

    def new_backup_job() -> str | None:
        for job in kube.jobs(namespace):
            labels = job["metadata"].get("labels") or {}
            if job["metadata"]["name"] not in before and labels.get("pgbackup.io/manual") == "true":
                return str(job["metadata"]["name"])
        return None

    wait_for(new_backup_job, timeout=30, what=f"the backup-now Job for {run_id}")
    return str(new_backup_job())


def _run_pods(kube: KubeEnv, kubelet: Kubelet, namespace: str, job: str, count: int = 1) -> None:
    wait_for(lambda: len(_pods(kube, namespace, job)) == count, timeout=60, what=f"{count} pods of Job {job}")
    for pod in sorted(_pods(kube, namespace, job), key=lambda p: p["metadata"]["name"]):
        result = kubelet.run(pod)
        assert result.returncode == 0, result.stdout + result.stderr


def _restore(kube: KubeEnv, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgrestores", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgRestore", "metadata": {"name": name}, "spec": spec})


def _restore_status(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any]:
    found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pgrestores", name)
    return dict(found.get("status") or {})


def test_a_pgrestore_restores_a_real_backup_once_and_reports_it(
    kube: KubeEnv, operator: OperatorProcess, namespace: str, pg18: Cluster, bindir18: Path,
    bucket: Bucket, dbname: str, tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n", dbname)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "src", _spec(pg18, bucket, dbname))
    kubelet = Kubelet(kube, bindir18, tmp_path)
    _run_pods(kube, kubelet, namespace, _run_now(kube, namespace, "src", "first"))
    wait_for(lambda: kube.pgbackup(namespace, "src").get("status", {}).get("lastRun", {}).get("result") == "Succeeded",
             timeout=60, what="the backup recorded")
    stamp = kube.pgbackup(namespace, "src")["status"]["lastRun"]["timestamp"]

    started = time.monotonic()
    _restore(kube, namespace, "back", {"backupRef": {"name": "src"}, "database": dbname,
                                       "target": {"database": f"{dbname}_r", "create": True}})
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-back"), timeout=30, what="the restore Job")
    print(f"PgRestore -> Job: {time.monotonic() - started:.2f} s")
    assert _restore_status(kube, namespace, "back").get("phase") in ("Pending", "Running")
    _run_pods(kube, kubelet, namespace, "pgrestore-back")

    wait_for(lambda: _restore_status(kube, namespace, "back").get("phase") == "Succeeded", timeout=60,
             what="phase Succeeded")
    print(f"PgRestore -> Succeeded: {time.monotonic() - started:.2f} s")
    status = _restore_status(kube, namespace, "back")
    assert status["backupTimestamp"] == stamp and status["jobName"] == "pgrestore-back"
    assert status["startTime"] and status["completionTime"] and stamp in status["message"]
    restored = next(c for c in status["conditions"] if c["type"] == "Restored")
    assert (restored["status"], restored["reason"]) == ("True", "RestoreSucceeded")
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(1000,)]
    wait_for(lambda: any(e["reason"] == "RestoreSucceeded" for e in kube.events(namespace, "back")), timeout=30,
             what="a RestoreSucceeded event")
    listed = kube.plane.kubectl("get", "pgr", "-n", namespace).stdout
    assert listed.split("\n")[0].split()[:4] == ["NAME", "DATABASE", "BACKUP", "PHASE"]
    assert f"back   {dbname}   {stamp}   Succeeded" in listed

    changed = kube.plane.kubectl("patch", "pgr", "back", "-n", namespace, "--type=merge",
                                 "-p", '{"spec":{"database":"other"}}', check=False)
    assert changed.returncode != 0 and "cannot change after it is created" in changed.stderr

    # The job's own rule about the target, surfaced in status: a non-empty target needs clean.
    _restore(kube, namespace, "again", {"backupRef": {"name": "src"}, "database": dbname,
                                        "target": {"database": f"{dbname}_r"}})
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-again"), timeout=30, what="the second restore Job")
    wait_for(lambda: _pods(kube, namespace, "pgrestore-again"), timeout=60, what="its pod")
    assert kubelet.run(_pods(kube, namespace, "pgrestore-again")[0]).returncode != 0
    wait_for(lambda: _restore_status(kube, namespace, "again").get("phase") == "Failed", timeout=60, what="phase Failed")
    assert "is not empty" in _restore_status(kube, namespace, "again")["message"]
    wait_for(lambda: any(e["reason"] == "RestoreFailed" and e["type"] == "Warning"
                         for e in kube.events(namespace, "again")), timeout=30, what="a RestoreFailed event")
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(1000,)], "the refused restore touched nothing"

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "pgrestores", "back")
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-back") is None, timeout=60,
             what="the deleted PgRestore's Job gone")
    assert _job_named(kube, namespace, "pgrestore-again") is not None


def test_a_missing_pgbackup_keeps_a_pgrestore_pending(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    _restore(kube, namespace, "orphan", {"backupRef": {"name": "nowhere"}, "database": "db"})
    wait_for(lambda: _restore_status(kube, namespace, "orphan").get("phase") == "Pending", timeout=30, what="Pending")
    condition = next(c for c in _restore_status(kube, namespace, "orphan")["conditions"] if c["type"] == "Restored")
    assert (condition["status"], condition["reason"]) == ("Unknown", "BackupNotFound")
    assert kube.jobs(namespace) == []


def _dumps(bucket: Bucket) -> list[tuple[str, str]]:
    """(database, timestamp) of every dump object under k8s/."""
    found = []
    for key in bucket.keys("k8s/"):
        if ".manifest." not in key and key.split("/")[-1].split(".")[0].endswith("Z"):
            _prefix, database, name = key.split("/", 2)
            found.append((database, name.split(".")[0]))
    return found


def test_a_sharded_run_stores_every_database_once_then_prunes_once(
    kube: KubeEnv, operator: OperatorProcess, namespace: str, pg18: Cluster, bindir18: Path,
    bucket: Bucket, dbname: str, tmp_path: Path,
) -> None:
    names = [f"{dbname}_{i}" for i in range(9)]
    for name in names:
        pg18.sql(f"CREATE DATABASE {name}")
        pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 50) AS n", name)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "wide", _spec(pg18, bucket, f"{dbname}_*", parallelism=3, retention={"last": 1}))
    kubelet = Kubelet(kube, bindir18, tmp_path)

    first = _run_now(kube, namespace, "wide", "one")
    job = _job_named(kube, namespace, first)
    assert job is not None and job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    _run_pods(kube, kubelet, namespace, first, count=3)

    dumps = _dumps(bucket)
    assert sorted(d for d, _t in dumps if d != "_globals") == sorted(names), "every database stored exactly once"
    assert [d for d, _t in dumps].count("_globals") == 1, "the globals once (pod 0)"
    assert len({t for _d, t in dumps}) == 1, "one timestamp for the whole run"

    def last_run() -> dict[str, Any]:
        return dict(kube.pgbackup(namespace, "wide").get("status", {}).get("lastRun") or {})

    wait_for(lambda: last_run().get("result") == "Succeeded", timeout=60, what="the sharded run recorded")
    run = last_run()
    assert run["shards"] == {"total": 3, "succeeded": 3, "failed": 0}
    assert run["databases"] == {"ok": 10, "failed": 0} and run["timestamp"] == dumps[0][1]

    prune = f"{first}-prune"
    wait_for(lambda: _job_named(kube, namespace, prune), timeout=30, what="the prune Job after every shard succeeded")
    _run_pods(kube, kubelet, namespace, prune)
    wait_for(lambda: (kube.pgbackup(namespace, "wide").get("status", {}).get("lastPrune") or {}).get("result")
             == "Succeeded", timeout=60, what="lastPrune Succeeded")

    second = _run_now(kube, namespace, "wide", "two")
    _run_pods(kube, kubelet, namespace, second, count=3)
    wait_for(lambda: _job_named(kube, namespace, f"{second}-prune"), timeout=60, what="the second run's prune Job")
    assert len(_dumps(bucket)) == 20, "nothing was pruned before the prune Job ran"
    _run_pods(kube, kubelet, namespace, f"{second}-prune")
    left = _dumps(bucket)
    assert Counter(d for d, _t in left) == Counter([*names, "_globals"]), "retention kept the newest of each"
    assert len({t for _d, t in left}) == 1 and left[0][1] != dumps[0][1]
    prunes = [j for j in kube.jobs(namespace) if j["metadata"]["labels"].get("app.kubernetes.io/component") == "prune"]
    assert len(prunes) == 2, "one prune Job per run, never a second"
