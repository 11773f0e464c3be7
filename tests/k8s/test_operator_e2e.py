"""End to end: PgBackup -> CronJob -> Job -> Pod -> a real backup (and a real restore drill)
-> the PgBackup's status.

There is no kubelet, so the test plays one (``Kubelet``): it reads the Pod that the Job
controller created, resolves its environment (secretKeyRefs, envFrom) and volumes, runs its
command here against the real PostgreSQL and S3 fixtures, and writes the Pod's terminal
status back.

Every PgBackup here is set up as the docs say: its backups are signed (``spec.signing``,
with the suite's test key in a Secret), and its drills restore into a second PostgreSQL of
their own (``fresh_pg18``) that holds the roles the dumps name, restored there with
``pgbackup restore --globals``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devenv.azurite import AzuriteServer
from devenv.postgres import Cluster
from devenv.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from devenv.wait import wait_for

from ..kit.helpers import SIGNING_KEY, SIGNING_PUBLIC_KEY, Bucket, run_pgbackup
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess

SIGNING = {"privateKeySecretRef": {"name": "signing"}, "publicKeys": [SIGNING_PUBLIC_KEY]}


def _secrets(kube: KubeEnv, namespace: str, pg_password: str) -> None:
    """The backup server's password, the bucket's keys and the signing key (key ``signing-key``,
    the CRD's default), as ``kubectl create secret`` would store them."""

    def secret(name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        kube.core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "data": encoded})

    secret("pg", {"password": pg_password})
    secret("s3", {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    secret("signing", {"signing-key": SIGNING_KEY.read_text()})


def _scratch(kube: KubeEnv, namespace: str, scratch: Cluster) -> dict[str, Any]:
    """``spec.verify.server`` for a scratch server, its superuser's password in a Secret."""
    kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "scratch"}, "stringData": {"password": scratch.password}}
    )
    return {
        "host": scratch.host,
        "port": scratch.port,
        "sslMode": "disable",
        "user": "postgres",
        "passwordSecretRef": {"name": "scratch"},
    }


def _signed_by_the_suite_s_key(manifest: bytes) -> bool:
    from backup_job.core.signing import SigningKey, parse_public_key

    signature = json.loads(manifest).get("signature") or {}
    return bool(
        signature.get("key_id")
        == parse_public_key(SIGNING_PUBLIC_KEY).id
        == SigningKey.load(SIGNING_KEY, "test key").public.id
    )


def _s3(bucket: Bucket) -> dict[str, Any]:
    return {
        "s3": {
            "bucket": bucket.name,
            "prefix": "k8s",
            "region": "us-east-1",
            "endpoint": bucket.server.endpoint,
            "pathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
        }
    }


def _spec(pg: Cluster, bucket: Bucket | None, schedule: str, database: str) -> dict[str, Any]:
    """A PgBackup spec for ``database`` into ``bucket``; with none, the caller sets the destination."""
    spec: dict[str, Any] = {
        "schedule": schedule,
        "postgres": {
            "host": pg.host,
            "port": pg.port,
            "sslMode": "disable",
            "user": "postgres",
            "passwordSecretRef": {"name": "pg"},
        },
        "databases": {"include": [database]},
        "signing": SIGNING,
    }
    if bucket is not None:
        spec["destination"] = _s3(bucket)
    return spec


@dataclass(frozen=True)
class Scheduled:
    """The scheduled backup's PgBackup (``e2e``), its namespace, bucket and database."""

    namespace: str
    bucket: Bucket
    dbname: str


@pytest.fixture(scope="module", autouse=True)
def scheduled(kube: KubeEnv, operator: OperatorProcess, pg18: Cluster, s3server: S3Server) -> Iterator[Scheduled]:
    """A PgBackup scheduled every minute, made as this module starts: its CronJob fires at the
    next whole minute, and the other tests here run meanwhile rather than the scheduled test
    waiting up to a minute alone (it runs last). Forbid, the default concurrency policy, keeps
    it to one Job until that Job's Pod has run."""
    namespace, dbname = f"t-{uuid.uuid4().hex[:8]}", f"db_{uuid.uuid4().hex[:10]}"
    bucket = Bucket(s3server, f"backups-{uuid.uuid4().hex[:12]}")
    s3server.client().create_bucket(Bucket=bucket.name)
    kube.core.create_namespace({"metadata": {"name": namespace}})
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n", dbname)
    _secrets(kube, namespace, pg18.password)
    kube.core.create_namespaced_config_map(namespace, {"metadata": {"name": "logging"}, "data": {"FORMAT": "json"}})
    spec = _spec(pg18, bucket, "* * * * *", dbname)
    spec["pod"] = {"envFrom": [{"configMapRef": {"name": "logging"}, "prefix": "LOG_"}]}  # LOG_FORMAT=json
    kube.create_pgbackup(namespace, "e2e", spec)
    yield Scheduled(namespace, bucket, dbname)
    kube.core.delete_namespace(namespace)


def test_failed_backup_reports_the_cause(
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
    _secrets(kube, namespace, "not-the-password")
    kube.create_pgbackup(
        namespace, "broken", _spec(pg18, bucket, "0 3 * * *", dbname), annotations={"pgbackup.io/backup-now": "try-1"}
    )

    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the backup-now Job")
    job = kube.jobs(namespace)[0]
    wait_for(lambda: kube.pod_of(namespace, job["metadata"]["name"]), timeout=60, what="the Job controller's Pod")
    result = Kubelet(kube, bindir18, tmp_path).run(kube.pod_of(namespace, job["metadata"]["name"]))  # type: ignore[arg-type]

    assert result.returncode == 1
    wait_for(
        lambda: kube.pgbackup(namespace, "broken").get("status", {}).get("lastRun", {}).get("result") == "Failed",
        timeout=90,
        what="lastRun.result == Failed",
    )
    status = kube.pgbackup(namespace, "broken")["status"]
    assert status["lastRun"]["manual"] is True and status["lastFailedTime"]
    assert "password authentication failed" in status["lastRun"]["message"]
    assert "not-the-password" not in str(status)
    condition = next(c for c in status["conditions"] if c["type"] == "LastBackupSucceeded")
    assert condition["status"] == "False" and "password authentication failed" in condition["message"]
    wait_for(
        lambda: any(e["reason"] == "BackupFailed" and e["type"] == "Warning" for e in kube.events(namespace, "broken")),
        timeout=30,
        what="a BackupFailed warning event",
    )
    assert bucket.keys() == []


def _back_up_now(kube: KubeEnv, namespace: str, kubelet: Kubelet) -> str:
    """Run the backup-now Job's pod; its Job's name."""
    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the backup-now Job")
    backup_job = kube.jobs(namespace)[0]["metadata"]["name"]
    wait_for(lambda: kube.pod_of(namespace, backup_job), timeout=60, what="the backup Job's Pod")
    backup_pod = kube.pod_of(namespace, backup_job)
    assert backup_pod is not None
    backed_up = kubelet.run(backup_pod)
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    return str(backup_job)


def _drill_pod(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any]:
    """The Pod of a Job started from the PgBackup's verify CronJob now."""
    wait_for(lambda: kube.cronjob(namespace, f"pgbackup-{name}-verify"), timeout=30, what="the verify CronJob")
    drill_job = kube.start_job(kube.cronjob(namespace, f"pgbackup-{name}-verify"), "now")  # type: ignore[arg-type]
    pod = kube.pod_of(namespace, drill_job)
    assert pod is not None
    return pod


def test_verify_drill_restores_into_the_scratch_server_and_reports(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    fresh_pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    """The drill pod reaches its scratch server, a second PostgreSQL, only through the
    BACKUP_VERIFY_* variables the operator renders, and never gets the backup server's password
    or the signing key. The database belongs to a role of its own, so the drill works only once
    the scratch server holds the roles, restored from the backups as the docs say."""
    owner = f"owner_{dbname}"
    pg18.sql(f"CREATE ROLE {owner} NOLOGIN")
    pg18.sql(f"CREATE DATABASE {dbname} OWNER {owner}")
    pg18.sql(f"CREATE TABLE t AS SELECT generate_series(1, 500) AS n; ALTER TABLE t OWNER TO {owner}", dbname)
    _secrets(kube, namespace, pg18.password)
    spec = _spec(pg18, bucket, "0 3 * * *", dbname)
    spec["verify"] = {"schedule": "0 4 * * 0", "server": _scratch(kube, namespace, fresh_pg18)}
    kube.create_pgbackup(namespace, "drilled", spec, annotations={"pgbackup.io/backup-now": "first"})
    kubelet = Kubelet(kube, bindir18, tmp_path)
    backup_job = _back_up_now(kube, namespace, kubelet)

    roles = run_pgbackup(bucket.job_env(fresh_pg18, bindir18, "k8s"), "restore", "--globals")
    assert roles.returncode == 0, roles.stdout + roles.stderr
    assert fresh_pg18.sql("SELECT count(*) FROM pg_roles WHERE rolname = %s", params=(owner,)) == [(1,)]

    pod = _drill_pod(kube, namespace, "drilled")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["BACKUP_VERIFY_PGPORT"] == str(fresh_pg18.port) and "PGPASSWORD" not in env and "PGHOST" not in env
    assert env["BACKUP_SIGNING_PUBLIC_KEYS"] == SIGNING_PUBLIC_KEY and "BACKUP_SIGNING_KEY_FILE" not in env
    assert "BACKUP_VERIFY_ON_BACKUP_SERVER" not in env, "the job checks the scratch server is another one"
    assert not any(v["name"] == "signing-key" for v in pod["spec"]["volumes"])
    drilled = kubelet.run(pod)
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    assert "2 of 2 backups verified" in drilled.stdout
    drill_job = pod["metadata"]["labels"]["batch.kubernetes.io/job-name"]

    def last_verify() -> dict[str, Any]:
        return dict(kube.pgbackup(namespace, "drilled").get("status", {}).get("lastVerify") or {})

    wait_for(lambda: last_verify().get("result") == "Succeeded", timeout=60, what="lastVerify.result == Succeeded")
    assert last_verify()["job"] == drill_job
    condition = kube.condition(namespace, "drilled", "LastVerifySucceeded")
    assert condition is not None and condition["status"] == "True"
    status = kube.pgbackup(namespace, "drilled")["status"]
    assert status["lastRun"]["jobName"] == backup_job  # the drill is not a backup run
    isolated = kube.condition(namespace, "drilled", "VerifyIsolated")
    assert isolated is not None and (isolated["status"], isolated["reason"]) == ("True", "ScratchServer")
    for server in (pg18, fresh_pg18):
        assert server.sql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=("pgbackup_verify_%",)) == []


def test_a_drill_without_a_scratch_server_fails_saying_what_to_do_and_the_pgbackup_says_so_too(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    """An existing PgBackup whose drill restored on the backup server: the operator keeps it
    Ready and reports VerifyIsolated=False; the drill itself refuses, loudly, with the same
    advice, and creates nothing on the backup server."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 50) AS n", dbname)
    _secrets(kube, namespace, pg18.password)
    spec = {**_spec(pg18, bucket, "0 3 * * *", dbname), "verify": {"schedule": "0 4 * * 0"}}
    kube.create_pgbackup(namespace, "alone", spec, annotations={"pgbackup.io/backup-now": "first"})
    kubelet = Kubelet(kube, bindir18, tmp_path)
    _back_up_now(kube, namespace, kubelet)

    wait_for(
        lambda: (kube.condition(namespace, "alone", "VerifyIsolated") or {}).get("reason") == "NoScratchServer",
        timeout=30,
        what="VerifyIsolated=False, NoScratchServer",
    )
    condition = kube.condition(namespace, "alone", "VerifyIsolated")
    assert condition is not None and condition["status"] == "False" and "spec.verify.server" in condition["message"]
    assert (kube.condition(namespace, "alone", "Ready") or {}).get("status") == "True"
    wait_for(
        lambda: any(
            e["reason"] == "NoScratchServer" and e["type"] == "Warning" for e in kube.events(namespace, "alone")
        ),
        timeout=30,
        what="a NoScratchServer warning",
    )

    drilled = kubelet.run(_drill_pod(kube, namespace, "alone"))
    assert drilled.returncode == 1, drilled.stdout + drilled.stderr

    def last_verify() -> dict[str, Any]:
        return dict(kube.pgbackup(namespace, "alone").get("status", {}).get("lastVerify") or {})

    wait_for(lambda: last_verify().get("result") == "Failed", timeout=60, what="lastVerify.result == Failed")
    assert "no scratch server is configured" in last_verify()["message"], last_verify()
    assert pg18.sql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=("pgbackup_verify_%",)) == []


def test_a_sealed_backup_is_drilled_with_the_identity_mounted_as_a_file(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    fresh_pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    """spec.encryption seals the backup pod's objects; spec.verify.decryptionSecretRef reaches the
    drill pod only as a mounted file, and the drill opens the sealed backup with it."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 300) AS n", dbname)
    _secrets(kube, namespace, pg18.password)
    kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "age-key"}, "stringData": {"identity": f"# drill key\n{identity}\n"}}
    )
    spec = _spec(pg18, bucket, "0 3 * * *", dbname)
    spec["encryption"] = {"recipients": [str(identity.to_public())]}
    spec["verify"] = {
        "schedule": "0 4 * * 0",
        "decryptionSecretRef": {"name": "age-key"},
        "server": _scratch(kube, namespace, fresh_pg18),
    }  # its owner, postgres, is there
    kube.create_pgbackup(namespace, "sealed", spec, annotations={"pgbackup.io/backup-now": "first"})
    kubelet = Kubelet(kube, bindir18, tmp_path)

    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the backup-now Job")
    backup_job = kube.jobs(namespace)[0]["metadata"]["name"]
    wait_for(lambda: kube.pod_of(namespace, backup_job), timeout=60, what="the backup Job's Pod")
    backup_pod = kube.pod_of(namespace, backup_job)
    assert backup_pod is not None and not any(v["name"] == "age-identity" for v in backup_pod["spec"]["volumes"])
    backed_up = kubelet.run(backup_pod)
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    assert [k for k in bucket.keys() if k.endswith(".sql.gz.age")]

    wait_for(lambda: kube.cronjob(namespace, "pgbackup-sealed-verify"), timeout=30, what="the verify CronJob")
    drill_job = kube.start_job(kube.cronjob(namespace, "pgbackup-sealed-verify"), "now")  # type: ignore[arg-type]
    pod = kube.pod_of(namespace, drill_job)
    assert pod is not None
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["BACKUP_DECRYPT_IDENTITY_PATH"] == "/etc/pgbackup/age/identity"
    assert not any(str(identity) in str(e) for e in pod["spec"]["containers"][0]["env"])
    drilled = kubelet.run(pod)
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    assert "2 of 2 backups verified" in drilled.stdout and str(identity) not in drilled.stdout


def test_scheduled_backup_runs_and_reports_success(
    kube: KubeEnv,
    scheduled: Scheduled,
    bindir18: Path,
    tmp_path: Path,
) -> None:
    namespace, bucket, dbname = scheduled.namespace, scheduled.bucket, scheduled.dbname
    wait_for(lambda: kube.jobs(namespace), timeout=90, what="the CronJob controller to start a Job")
    kube.patch_pgbackup(namespace, "e2e", {"spec": {"suspend": True}})  # one run is enough
    job = kube.jobs(namespace)[0]
    assert job["metadata"]["labels"]["pgbackup.io/name"] == "e2e"
    wait_for(lambda: kube.pod_of(namespace, job["metadata"]["name"]), timeout=60, what="the Job controller's Pod")
    pod = kube.pod_of(namespace, job["metadata"]["name"])
    assert pod is not None

    result = Kubelet(kube, bindir18, tmp_path).run(pod)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("{") and all(line.startswith('{"time"') for line in result.stdout.splitlines()), (
        "spec.pod.envFrom reached the job: its log lines are JSON"
    )
    wait_for(
        lambda: kube.pgbackup(namespace, "e2e").get("status", {}).get("lastRun", {}).get("result") == "Succeeded",
        timeout=60,
        what="lastRun.result == Succeeded",
    )
    status = kube.pgbackup(namespace, "e2e")["status"]
    assert status["lastRun"]["jobName"] == job["metadata"]["name"] and status["lastRun"]["manual"] is False
    assert status["lastSuccessfulTime"] and status["lastScheduleTime"]
    condition = next(c for c in status["conditions"] if c["type"] == "LastBackupSucceeded")
    assert condition["status"] == "True" and condition["reason"] == "BackupSucceeded"
    wait_for(
        lambda: any(e["reason"] == "BackupSucceeded" and e["type"] == "Normal" for e in kube.events(namespace, "e2e")),
        timeout=30,
        what="a BackupSucceeded event",
    )
    keys = bucket.keys("k8s/")
    segments = [k.split("/")[1] for k in keys]
    assert segments.count(dbname) == 2 and any(k.endswith(".manifest.json") for k in keys)
    assert [s for s in segments if s != dbname] == ["_globals", "_globals"]  # spec.globals defaults to true
    manifests = [k for k in keys if k.endswith(".manifest.json")]
    assert len(manifests) == 2 and all(_signed_by_the_suite_s_key(bucket.get(k)) for k in manifests), (
        "the backup pod signed every manifest with the key mounted from its Secret"
    )
    assert any(v["name"] == "signing-key" for v in pod["spec"]["volumes"])
    signed = kube.condition(namespace, "e2e", "Signed")
    assert signed is not None and signed["status"] == "True"


def test_a_backup_to_azure_lands_in_the_container(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    azurite: AzuriteServer,
    dbname: str,
    tmp_path: Path,
) -> None:
    container = f"k8s-{uuid.uuid4().hex[:12]}"
    azurite.client().create_container(container)
    pg18.sql(f"CREATE DATABASE {dbname}")
    _secrets(kube, namespace, pg18.password)
    kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "azure"}, "stringData": {"AZURE_STORAGE_KEY": azurite.account_key}}
    )
    spec = _spec(pg18, None, "0 3 * * *", dbname)
    spec["destination"] = {
        "azure": {
            "account": azurite.account,
            "container": container,
            "prefix": "k8s",
            "credentialsSecretRef": {"name": "azure"},
        }
    }
    kube.create_pgbackup(namespace, "to-azure", spec, annotations={"pgbackup.io/backup-now": "try-1"})
    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the backup-now Job")
    job = kube.jobs(namespace)[0]
    wait_for(lambda: kube.pod_of(namespace, job["metadata"]["name"]), timeout=60, what="the Job controller's Pod")
    pod = kube.pod_of(namespace, job["metadata"]["name"])
    node = Kubelet(kube, bindir18, tmp_path, node_env={"BACKUP_AZURE_ENDPOINT": azurite.endpoint})

    result = node.run(pod)  # type: ignore[arg-type]

    assert result.returncode == 0, result.stdout + result.stderr
    names = [blob.name for blob in azurite.client().get_container_client(container).list_blobs()]
    assert sorted(name.split("/")[1] for name in names) == ["_globals", "_globals", dbname, dbname]
    assert sorted(name.rsplit(".", 1)[-1] for name in names) == ["gz", "gz", "json", "json"]
    assert all(name.startswith("k8s/") for name in names)
    rendered = {entry["name"] for entry in pod["spec"]["containers"][0]["env"]}  # type: ignore[index]
    assert "AZURE_STORAGE_KEY" in rendered and "BACKUP_AZURE_ENDPOINT" not in rendered
