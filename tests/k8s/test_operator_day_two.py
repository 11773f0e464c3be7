"""End to end on the real control plane, day two: a PgRestore restoring a real backup, a prune
CronJob running with its own credentials (its own IAM identity), and one run spread over
three pods (an Indexed Job).

The Job controller makes the pods (with their completion index for shards); the stand-in
kubelet (``Kubelet``) runs each pod's command here against the real PostgreSQL and S3, and
the operator turns what it sees into status, Events and the Jobs that follow.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devenv.postgres import Cluster
from devenv.s3 import ACCESS_KEY, SECRET_KEY, IamS3Server, Identity
from devenv.wait import wait_for

from ..kit.helpers import ROOT, SIGNING_KEY, SIGNING_PUBLIC_KEY, Bucket, wait_for_next_second
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from .test_operator_e2e import _spec as e2e_spec

GROUP, VERSION = "pgbackup.io", "v1alpha1"


def _secret(kube: KubeEnv, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})


def _spec(pg: Cluster, bucket: Bucket, include: str, **extra: Any) -> dict[str, Any]:
    """The end-to-end PgBackup (daily at 03:00, never reached here), selecting ``include``."""
    return {**e2e_spec(pg, bucket, "0 3 * * *", include), **extra}


def _setup(kube: KubeEnv, namespace: str, pg: Cluster) -> None:
    _secret(kube, namespace, "pg", {"password": pg.password})
    _secret(kube, namespace, "s3", {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    _secret(kube, namespace, "signing", {"signing-key": SIGNING_KEY.read_text()})  # _spec's spec.signing


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

    asked = time.monotonic()
    wait_for(new_backup_job, timeout=30, what=f"the backup-now Job for {run_id}")
    print(f"backup-now -> Job: {time.monotonic() - asked:.2f} s")
    return str(new_backup_job())


def _run_pods(kube: KubeEnv, kubelet: Kubelet, namespace: str, job: str, count: int = 1) -> None:
    wait_for(lambda: len(_pods(kube, namespace, job)) == count, timeout=60, what=f"{count} pods of Job {job}")
    for pod in sorted(_pods(kube, namespace, job), key=lambda p: p["metadata"]["name"]):
        result = kubelet.run(pod)
        assert result.returncode == 0, result.stdout + result.stderr


def _restore(kube: KubeEnv, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "pgrestores",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PgRestore", "metadata": {"name": name}, "spec": spec},
    )


def _restore_status(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any]:
    found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pgrestores", name)
    return dict(found.get("status") or {})


def test_a_pgrestore_restores_a_real_backup_once_and_reports_it(
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
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n", dbname)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "src", _spec(pg18, bucket, dbname))
    kubelet = Kubelet(kube, bindir18, tmp_path)
    _run_pods(kube, kubelet, namespace, _run_now(kube, namespace, "src", "first"))
    wait_for(
        lambda: kube.pgbackup(namespace, "src").get("status", {}).get("lastRun", {}).get("result") == "Succeeded",
        timeout=60,
        what="the backup recorded",
    )
    stamp = kube.pgbackup(namespace, "src")["status"]["lastRun"]["timestamp"]

    started = time.monotonic()
    _restore(
        kube,
        namespace,
        "back",
        {"backupRef": {"name": "src"}, "database": dbname, "target": {"database": f"{dbname}_r", "create": True}},
    )
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-back"), timeout=30, what="the restore Job")
    print(f"PgRestore -> Job: {time.monotonic() - started:.2f} s")
    wait_for(  # the handler's status patch follows the Job it created
        lambda: _restore_status(kube, namespace, "back").get("phase") in ("Pending", "Running"),
        timeout=30,
        what="phase Pending or Running",
    )
    wait_for(lambda: _pods(kube, namespace, "pgrestore-back"), timeout=60, what="the restore pod")
    restore_pod = _pods(kube, namespace, "pgrestore-back")[0]
    restore_env = {e["name"]: e.get("value") for e in restore_pod["spec"]["containers"][0]["env"]}
    assert restore_env["BACKUP_SIGNING_PUBLIC_KEYS"] == SIGNING_PUBLIC_KEY, (
        "it restores only what the backup job signed"
    )
    assert "BACKUP_SIGNING_KEY_FILE" not in restore_env and "signing" not in {
        v.get("secret", {}).get("secretName") for v in restore_pod["spec"]["volumes"]
    }
    _run_pods(kube, kubelet, namespace, "pgrestore-back")

    wait_for(
        lambda: _restore_status(kube, namespace, "back").get("phase") == "Succeeded", timeout=60, what="phase Succeeded"
    )
    print(f"PgRestore -> Succeeded: {time.monotonic() - started:.2f} s")
    status = _restore_status(kube, namespace, "back")
    assert status["backupTimestamp"] == stamp and status["jobName"] == "pgrestore-back"
    assert status["startTime"] and status["completionTime"] and stamp in status["message"]
    restored = next(c for c in status["conditions"] if c["type"] == "Restored")
    assert (restored["status"], restored["reason"]) == ("True", "RestoreSucceeded")
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(1000,)]
    wait_for(
        lambda: any(e["reason"] == "RestoreSucceeded" for e in kube.events(namespace, "back")),
        timeout=30,
        what="a RestoreSucceeded event",
    )
    listed = kube.plane.kubectl("get", "pgr", "-n", namespace).stdout
    assert listed.split("\n")[0].split()[:4] == ["NAME", "DATABASE", "BACKUP", "PHASE"]
    assert f"back   {dbname}   {stamp}   Succeeded" in listed

    changed = kube.plane.kubectl(
        "patch", "pgr", "back", "-n", namespace, "--type=merge", "-p", '{"spec":{"database":"other"}}', check=False
    )
    assert changed.returncode != 0 and "cannot change after it is created" in changed.stderr

    # The job's own rule about the target, surfaced in status: a non-empty target needs clean.
    _restore(
        kube,
        namespace,
        "again",
        {"backupRef": {"name": "src"}, "database": dbname, "target": {"database": f"{dbname}_r"}},
    )
    wait_for(lambda: _job_named(kube, namespace, "pgrestore-again"), timeout=30, what="the second restore Job")
    wait_for(lambda: _pods(kube, namespace, "pgrestore-again"), timeout=60, what="its pod")
    assert kubelet.run(_pods(kube, namespace, "pgrestore-again")[0]).returncode != 0
    wait_for(
        lambda: _restore_status(kube, namespace, "again").get("phase") == "Failed", timeout=60, what="phase Failed"
    )
    assert "is not empty" in _restore_status(kube, namespace, "again")["message"]
    wait_for(
        lambda: any(e["reason"] == "RestoreFailed" and e["type"] == "Warning" for e in kube.events(namespace, "again")),
        timeout=30,
        what="a RestoreFailed event",
    )
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(1000,)], "the refused restore touched nothing"

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "pgrestores", "back")
    wait_for(
        lambda: _job_named(kube, namespace, "pgrestore-back") is None,
        timeout=60,
        what="the deleted PgRestore's Job gone",
    )
    assert _job_named(kube, namespace, "pgrestore-again") is not None


def test_kubectl_explain_and_api_resources_know_pgrestore(kube: KubeEnv) -> None:
    def explain() -> str:
        return kube.plane.kubectl("explain", "pgr.spec", check=False).stdout

    wait_for(explain, timeout=30, what="the PgRestore CRD in the published OpenAPI")
    text = explain()
    for field in (
        "backupRef",
        "database",
        "at",
        "globals",
        "target",
        "credentialsSecretRef",
        "serviceAccountName",
        "decryptionSecretRef",
        "activeDeadlineSeconds",
        "allowUnsigned",
        "asSuperuser",
    ):
        assert f"  {field}\t" in text or f"  {field} " in text, field
    assert "It cannot change once created." in " ".join(text.split())
    lines = kube.plane.kubectl("api-resources", "--api-group=pgbackup.io").stdout.splitlines()
    assert any(line.split()[:2] == ["pgrestores", "pgr"] for line in lines)


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
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
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
    shards_done = time.monotonic()

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
    print(f"last shard done -> prune Job: {time.monotonic() - shards_done:.2f} s")
    _run_pods(kube, kubelet, namespace, prune)
    wait_for(
        lambda: (
            (kube.pgbackup(namespace, "wide").get("status", {}).get("lastPrune") or {}).get("result") == "Succeeded"
        ),
        timeout=60,
        what="lastPrune Succeeded",
    )

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

    # A scheduled run: the CronJob controller names its Job after the scheduled minute, which
    # every shard turns into the same timestamp (nothing from the operator, no pod clock).
    # A minute whose stamp no stored run has (run "two" took its stamp from the operator's clock,
    # which can be this minute's :00).
    def stamp_of(minute: int) -> str:
        return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y%m%dT%H%M%SZ")

    minute = int(datetime.now(UTC).timestamp()) // 60
    while stamp_of(minute) in {t for _d, t in left}:
        minute -= 1
    cronjob = kube.cronjob(namespace, "pgbackup-wide")
    assert cronjob is not None
    scheduled = kube.start_job(cronjob, str(minute))
    _run_pods(kube, kubelet, namespace, scheduled, count=3)
    stamp = stamp_of(minute)
    assert Counter(d for d, t in _dumps(bucket) if t == stamp) == Counter([*names, "_globals"])


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[IamS3Server]:
    with IamS3Server() as server:
        yield server


def _policy(job: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "deploy" / "iam" / f"{job}.json").read_text()))


def _keys(identity: Identity) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": identity.access_key, "AWS_SECRET_ACCESS_KEY": identity.secret_key}


def test_the_prune_cronjob_prunes_with_its_own_credentials_which_the_backups_lack(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    iam_s3: IamS3Server,
    dbname: str,
    tmp_path: Path,
) -> None:
    """Backups write with the documented write-only policy, the prune CronJob deletes with the
    prune policy: each job holds only its own identity (moto enforcing IAM)."""
    iam_s3.reset()
    iam_s3.create_bucket("my-backups")
    writer, pruner = iam_s3.identity("backup", _policy("backup")), iam_s3.identity("prune", _policy("prune"))
    admin = iam_s3.identity(
        "admin", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    )
    pg18.sql(f"CREATE DATABASE {dbname}")
    _secret(kube, namespace, "pg", {"password": pg18.password})
    _secret(kube, namespace, "s3", _keys(writer))
    _secret(kube, namespace, "s3-prune", _keys(pruner))
    _secret(kube, namespace, "signing", {"signing-key": SIGNING_KEY.read_text()})
    spec = _spec(
        pg18,
        Bucket(iam_s3, "my-backups"),
        dbname,
        retention={"last": 1, "schedule": "0 6 * * *", "credentialsSecretRef": {"name": "s3-prune"}},
    )
    spec["destination"]["s3"]["prefix"] = "prod"
    kube.create_pgbackup(namespace, "least", spec)
    kubelet = Kubelet(kube, bindir18, tmp_path)
    for run_id in ("one", "two"):
        job = _run_now(kube, namespace, "least", run_id)
        wait_for(lambda job=job: _pods(kube, namespace, job), timeout=60, what="the backup pod")
        env = {e["name"] for e in _pods(kube, namespace, job)[0]["spec"]["containers"][0]["env"]}
        assert "BACKUP_RETENTION" not in env, "the backup pod never prunes"
        _run_pods(kube, kubelet, namespace, job)
        wait_for_next_second()  # two runs, two distinct second-precision timestamps

    def stored() -> list[str]:
        listed = admin.client().list_objects_v2(Bucket="my-backups", Prefix="prod/")
        return sorted(o["Key"] for o in listed.get("Contents", []) if ".manifest." not in o["Key"])

    first_two = stored()
    assert len(first_two) == 4, first_two  # two runs of the database and of the globals
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-least-prune"), timeout=30, what="the prune CronJob")
    prune_job = kube.start_job(kube.cronjob(namespace, "pgbackup-least-prune"), "now")  # type: ignore[arg-type]
    pod = kube.pod_of(namespace, prune_job)
    assert pod is not None
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in pod["spec"]["containers"][0]["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"AWS_ACCESS_KEY_ID": "s3-prune", "AWS_SECRET_ACCESS_KEY": "s3-prune"}, (
        "the prune pod holds the prune identity and no PostgreSQL password"
    )
    pruned = kubelet.run(pod)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    left = stored()
    assert len(left) == 2 and set(left) < set(first_two) and all(key in first_two[1::2] for key in left), left
    wait_for(
        lambda: (
            (kube.pgbackup(namespace, "least").get("status", {}).get("lastPrune") or {}).get("result") == "Succeeded"
        ),
        timeout=60,
        what="lastPrune Succeeded",
    )
    wait_for(
        lambda: any(e["reason"] == "PruneSucceeded" for e in kube.events(namespace, "least")),
        timeout=30,
        what="a PruneSucceeded event",
    )
