"""The operator on a real control plane: API validation, CronJob rendering, drift, status, run-now,
and the verify CronJob: created, repaired and deleted with spec.verify, its outcomes in lastVerify."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiException

from devenv.wait import wait_for

from ..kit.helpers import ROOT
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess

SIGNING_KEY = "ed25519:vVou7SwWohd6TEsUiRUKI7DjgihzvjjvPR38Krc+iTA="  # the suite's test key (tests/kit/helpers.py)


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schedule": "30 2 * * *",
        "postgres": {"host": "pg.example", "user": "backup", "passwordSecretRef": {"name": "pg"}},
        "destination": {"s3": {"bucket": "backups", "prefix": "prod"}},
    }
    base.update(overrides)
    return base


def test_crd_explains_itself(kube: KubeEnv) -> None:
    def explain() -> str:
        return kube.plane.kubectl("explain", "pgb.spec.postgres.passwordSecretRef", check=False).stdout

    wait_for(explain, timeout=30, what="the CRD in the published OpenAPI")  # published shortly after Established
    explained = explain()
    assert "The Secret key that holds the role's password." in explained
    lines = kube.plane.kubectl("api-resources", "--api-group=pgbackup.io").stdout.splitlines()
    header = lines[0].split()
    [row] = [dict(zip(header, line.split(), strict=False)) for line in lines[1:] if line.split()[0] == "pgbackups"]
    assert header[:2] == ["NAME", "SHORTNAMES"] and row["SHORTNAMES"].split(",") == ["pgb"]
    assert row["KIND"] == "PgBackup" and row["APIVERSION"] == "pgbackup.io/v1alpha1"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"postgres": {"user": "x", "passwordSecretRef": {"name": "pg"}}}, "spec.postgres.host: Required value"),
        ({"compressionLevel": 12}, "spec.compressionLevel: Invalid value: 12"),
        (
            {"postgres": {"host": "h", "sslMode": "sometimes", "user": "x", "passwordSecretRef": {"name": "pg"}}},
            'spec.postgres.sslMode: Unsupported value: "sometimes"',
        ),
        (
            {"postgres": {"host": "h", "passwordSecretRef": {"name": "pg"}}},
            "set exactly one of spec.postgres.user and spec.postgres.userSecretRef",
        ),
        ({"schedule": "daily"}, "spec.schedule: Invalid value"),
        ({"destination": {"s3": {"bucket": "Not_A_Bucket"}}}, "spec.destination.s3.bucket: Invalid value"),
        (
            {"destination": {"s3": {"bucket": "backups"}, "gcs": {"bucket": "backups"}}},
            "destination: set exactly one of s3, azure and gcs",
        ),
        ({"destination": {}}, "destination: set exactly one of s3, azure and gcs"),
        (
            {"destination": {"azure": {"account": "Not-An-Account", "container": "backups"}}},
            "spec.destination.azure.account: Invalid value",
        ),
        (
            {"destination": {"azure": {"account": "acct01", "container": "two--hyphens"}}},
            "spec.destination.azure.container: Invalid value",
        ),
        ({"destination": {"gcs": {"bucket": "-gcs-"}}}, "spec.destination.gcs.bucket: Invalid value"),
        ({"retention": {"last": 0}}, "spec.retention.last: Invalid value: 0"),
        ({"retention": {}}, "spec.retention: Invalid value"),
        ({"shrinkAlarm": 1.5}, "spec.shrinkAlarm: Invalid value: 1.5"),
        ({"verify": {"timeZone": "Etc/UTC"}}, "spec.verify.schedule: Required value"),
        ({"verify": {"schedule": "@weekly", "databases": []}}, "spec.verify.databases: Invalid value"),
        (
            {"verify": {"schedule": "@weekly", "server": {"host": "h", "passwordSecretRef": {"name": "s"}}}},
            "set exactly one of spec.verify.server.user and spec.verify.server.userSecretRef",
        ),
        ({"verify": {"schedule": "@weekly", "onBackupServer": "yes"}}, "spec.verify.onBackupServer: Invalid value"),
        (
            {"signing": {"privateKeySecretRef": {"name": "k"}, "publicKeys": ["ed25519:c2hvcnQ="]}},
            'spec.signing.publicKeys[0]: Invalid value: "ed25519:c2hvcnQ="',
        ),
        (
            {"signing": {"privateKeySecretRef": {"name": "k"}, "publicKeys": ["age1" + "q" * 58]}},
            "spec.signing.publicKeys[0]: Invalid value",
        ),
        (
            {"signing": {"privateKeySecretRef": {"name": "k"}, "publicKeys": []}},
            "spec.signing.publicKeys: Invalid value",
        ),
        ({"signing": {"publicKeys": [SIGNING_KEY]}}, "spec.signing.privateKeySecretRef: Required value"),
    ],
)
def test_bad_objects_are_rejected_naming_the_field(
    kube: KubeEnv, namespace: str, patch: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as caught:
        kube.create_pgbackup(namespace, "bad", spec(**patch))
    assert caught.value.status == 422
    assert field in json.loads(caught.value.body)["message"]


def test_azure_and_gcs_destinations_are_accepted_and_rendered(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """One PgBackup per new kind passes the CRD (its CEL rule, its patterns) and the operator
    renders its CronJob: Azure without a Secret opts into workload identity, GCS mounts its key."""
    azure = {"azure": {"account": "acct01", "container": "pg-backups", "prefix": "prod"}}
    gcs = {"gcs": {"bucket": "pg_backups.eu", "credentialsSecretRef": {"name": "gcs-key"}}}
    kube.create_pgbackup(namespace, "on-azure", spec(destination=azure))
    kube.create_pgbackup(namespace, "on-gcs", spec(destination=gcs))
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-on-azure"), timeout=30, what="the Azure CronJob")
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-on-gcs"), timeout=30, what="the GCS CronJob")
    rendered = {name: kube.cronjob(namespace, f"pgbackup-{name}") or {} for name in ("on-azure", "on-gcs")}
    assert env_of(rendered["on-azure"])["BACKUP_DESTINATION"] == "azure://acct01/pg-backups/prod"
    template = rendered["on-azure"]["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert env_of(rendered["on-gcs"])["BACKUP_DESTINATION"] == "gs://pg_backups.eu"
    assert env_of(rendered["on-gcs"])["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/pgbackup/gcs/key.json"
    volumes = rendered["on-gcs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": "gcs-key", "defaultMode": 0o440, "items": [{"key": "key.json", "path": "key.json"}]} in [
        v.get("secret") for v in volumes
    ]


def test_cronjob_is_rendered_owned_and_reported(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    started = time.monotonic()
    created = kube.create_pgbackup(namespace, "nightly", spec(timeZone="Europe/Berlin"))
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-nightly"), timeout=30, what="the CronJob")
    apply_to_cronjob = time.monotonic() - started
    cronjob = kube.cronjob(namespace, "pgbackup-nightly")
    assert cronjob is not None
    owner = cronjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "PgBackup",
        "nightly",
        created["metadata"]["uid"],
        True,
    )
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pgbackup-operator"
    assert cronjob["spec"]["timeZone"] == "Europe/Berlin" and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    wait_for(
        lambda: (kube.condition(namespace, "nightly", "Ready") or {}).get("status") == "True", timeout=30, what="Ready"
    )
    status = kube.pgbackup(namespace, "nightly")["status"]
    assert status["cronJobName"] == "pgbackup-nightly" and status["observedGeneration"] == 1
    assert status["nextScheduleTime"].endswith(":30:00Z")  # 02:30 Berlin is hh:30 UTC

    def kopf_annotations() -> list[str]:
        annotations = kube.pgbackup(namespace, "nightly")["metadata"].get("annotations", {})
        return [k for k in annotations if k.startswith("kopf.pgbackup.io/")]

    wait_for(kopf_annotations, timeout=30, what="kopf's state in our annotations")
    assert not kube.pgbackup(namespace, "nightly")["metadata"].get("finalizers")
    assert "kopf" not in status
    printed = kube.plane.kubectl("get", "pgb", "-n", namespace).stdout
    assert "SCHEDULE" in printed and "30 2 * * *" in printed and "True" in printed
    print(f"kubectl apply -> CronJob: {apply_to_cronjob:.2f} s")


def test_spec_change_suspend_and_drift_are_reconciled(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    kube.create_pgbackup(namespace, "app", spec())
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-app"), timeout=30, what="the CronJob")

    kube.patch_pgbackup(namespace, "app", {"spec": {"schedule": "0 * * * *", "suspend": True}})
    wait_for(
        lambda: (kube.cronjob(namespace, "pgbackup-app") or {}).get("spec", {}).get("schedule") == "0 * * * *",
        timeout=30,
        what="the new schedule",
    )
    assert kube.cronjob(namespace, "pgbackup-app")["spec"]["suspend"] is True  # type: ignore[index]
    wait_for(
        lambda: kube.pgbackup(namespace, "app")["status"].get("observedGeneration") == 2,
        timeout=30,
        what="generation 2",
    )
    assert kube.pgbackup(namespace, "app")["status"].get("nextScheduleTime") is None

    kube.batch.patch_namespaced_cron_job("pgbackup-app", namespace, {"spec": {"schedule": "5 5 * * *"}})
    wait_for(
        lambda: kube.cronjob(namespace, "pgbackup-app")["spec"]["schedule"] == "0 * * * *",  # type: ignore[index]
        timeout=30,
        what="the hand edit to be reverted",
    )

    kube.batch.delete_namespaced_cron_job("pgbackup-app", namespace)
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-app") is not None, timeout=30, what="the CronJob to come back")
    wait_for(
        lambda: any(e["reason"] == "DriftCorrected" for e in kube.events(namespace, "app")),
        timeout=30,
        what="a DriftCorrected event",
    )


def test_delete_removes_cronjob_by_garbage_collection(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    kube.create_pgbackup(namespace, "gone", spec())
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-gone"), timeout=30, what="the CronJob")
    kube.custom.delete_namespaced_custom_object("pgbackup.io", "v1alpha1", namespace, "pgbackups", "gone")
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-gone") is None, timeout=60, what="garbage collection")


def test_unknown_time_zone_is_reported(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    kube.create_pgbackup(namespace, "tz", spec(timeZone="Mars/Olympus"))
    wait_for(lambda: kube.condition(namespace, "tz", "Ready"), timeout=30, what="a Ready condition")
    ready = kube.condition(namespace, "tz", "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "InvalidTimeZone"
    assert "unknown time zone 'Mars/Olympus'" in ready["message"]
    wait_for(
        lambda: any(e["type"] == "Warning" and e["reason"] == "InvalidTimeZone" for e in kube.events(namespace, "tz")),
        timeout=30,
        what="a Warning event",
    )
    assert kube.cronjob(namespace, "pgbackup-tz") is None


def test_backup_now_creates_one_job_per_id(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    kube.create_pgbackup(namespace, "now", spec())
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-now"), timeout=30, what="the CronJob")

    kube.patch_pgbackup(namespace, "now", {"metadata": {"annotations": {"pgbackup.io/backup-now": "first"}}})
    wait_for(lambda: len(kube.jobs(namespace)) == 1, timeout=30, what="one Job")
    job = kube.jobs(namespace)[0]
    assert job["metadata"]["labels"]["pgbackup.io/manual"] == "true"
    wait_for(
        lambda: kube.pgbackup(namespace, "now")["status"].get("lastManualRunId") == "first",
        timeout=30,
        what="the id recorded",
    )

    kube.patch_pgbackup(namespace, "now", {"spec": {"compressionLevel": 3}})  # another update, same id
    wait_for(
        lambda: kube.pgbackup(namespace, "now")["status"].get("observedGeneration") == 2,
        timeout=30,
        what="generation 2",
    )
    assert len(kube.jobs(namespace)) == 1

    kube.patch_pgbackup(namespace, "now", {"metadata": {"annotations": {"pgbackup.io/backup-now": "second"}}})
    wait_for(lambda: len(kube.jobs(namespace)) == 2, timeout=30, what="a second Job for a new id")


def test_deploy_manifests_pass_server_side_dry_run(kube: KubeEnv, operator: OperatorProcess) -> None:
    files = [str(ROOT / "deploy" / name) for name in ("crd.yaml", "operator.yaml", "rbac.yaml", "examples")]
    deploy = kube.plane.kubectl("apply", "--dry-run=server", *(arg for f in files for arg in ("-f", f)), check=False)
    assert deploy.returncode == 0, deploy.stderr
    assert "pgbackup.pgbackup.io/app-db created (server dry run)" in deploy.stdout


VERIFY = {
    "schedule": "0 5 * * 0",
    "server": {"host": "scratch.example", "user": "drill", "passwordSecretRef": {"name": "scratch"}},
}


def env_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_verify_cronjob_follows_spec_verify(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    created = kube.create_pgbackup(namespace, "drill", spec(retention={"last": 7, "monthly": 12}, verify=VERIFY))
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-drill-verify"), timeout=30, what="the verify CronJob")
    verify = kube.cronjob(namespace, "pgbackup-drill-verify")
    backup = kube.cronjob(namespace, "pgbackup-drill")
    assert verify is not None and backup is not None
    owner = verify["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "PgBackup",
        "drill",
        created["metadata"]["uid"],
        True,
    )
    assert verify["metadata"]["labels"]["app.kubernetes.io/component"] == "verify"
    assert backup["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"
    assert verify["spec"]["schedule"] == "0 5 * * 0" and verify["spec"]["concurrencyPolicy"] == "Forbid"
    container = verify["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["pgbackup", "verify"]
    env = env_of(verify)
    assert env["BACKUP_VERIFY_PGPASSWORD"] == {
        "secretKeyRef": {"name": "scratch", "key": "password"}
    }  # CRD default key
    assert "BACKUP_RETENTION" not in env and "PGPASSWORD" not in env
    assert env_of(backup)["BACKUP_RETENTION"] == "last=7,monthly=12"
    wait_for(
        lambda: "pgbackup-drill-verify" in (kube.condition(namespace, "drill", "Ready") or {}).get("message", ""),
        timeout=30,
        what="Ready naming both CronJobs",
    )

    kube.batch.delete_namespaced_cron_job("pgbackup-drill-verify", namespace)
    wait_for(
        lambda: (
            (kube.cronjob(namespace, "pgbackup-drill-verify") or verify)["metadata"]["uid"] != verify["metadata"]["uid"]
        ),
        timeout=30,
        what="the verify CronJob to come back",
    )

    kube.patch_pgbackup(namespace, "drill", {"spec": {"verify": None}})
    wait_for(
        lambda: kube.cronjob(namespace, "pgbackup-drill-verify") is None, timeout=30, what="the verify CronJob deleted"
    )
    assert kube.cronjob(namespace, "pgbackup-drill") is not None
    wait_for(
        lambda: any(e["reason"] == "VerifyRemoved" for e in kube.events(namespace, "drill")),
        timeout=30,
        what="a VerifyRemoved event",
    )


def test_a_verify_cronjob_name_another_pgbackup_owns_is_not_taken(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    first = kube.create_pgbackup(namespace, "dup", spec(verify={"schedule": "@weekly"}))
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-dup-verify"), timeout=30, what="dup's verify CronJob")
    kube.create_pgbackup(namespace, "dup-verify", spec())  # its backup CronJob would be pgbackup-dup-verify
    wait_for(lambda: kube.condition(namespace, "dup-verify", "Ready"), timeout=30, what="a Ready condition")
    ready = kube.condition(namespace, "dup-verify", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "CronJobNameTaken")
    assert "CronJob pgbackup-dup-verify already belongs to PgBackup dup" in ready["message"]
    taken = kube.cronjob(namespace, "pgbackup-dup-verify")
    assert taken is not None and taken["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
    assert taken["metadata"]["labels"]["app.kubernetes.io/component"] == "verify"


def test_invalid_verify_schedule_is_reported(kube: KubeEnv, operator: OperatorProcess, namespace: str) -> None:
    kube.create_pgbackup(namespace, "badverify", spec(verify={"schedule": "0 25 * * *"}))
    wait_for(lambda: kube.condition(namespace, "badverify", "Ready"), timeout=30, what="a Ready condition")
    ready = kube.condition(namespace, "badverify", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert ready["message"].startswith("spec.verify.schedule: hour field")
    assert kube.cronjob(namespace, "pgbackup-badverify-verify") is None


def _finish_verify_job(
    kube: KubeEnv, kubelet: Kubelet, cronjob: dict[str, Any], suffix: str, exit_code: int, message: str
) -> str:
    """A drill Job whose Pod the stand-in kubelet reports finished with that exit code and message."""
    name = kube.start_job(cronjob, suffix)
    pod = kube.pod_of(cronjob["metadata"]["namespace"], name)
    assert pod is not None
    kubelet.finish(pod, exit_code, message)
    return name


def test_verify_outcomes_update_last_verify_only(
    kube: KubeEnv, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    kube.create_pgbackup(namespace, "checked", spec(verify={"schedule": "@weekly"}))
    wait_for(
        lambda: (kube.condition(namespace, "checked", "Ready") or {}).get("status") == "True", timeout=30, what="Ready"
    )
    backups = {"lastSuccessfulTime": "2026-01-01T03:00:00Z", "lastFailedTime": "2025-12-30T03:00:00Z"}
    kube.custom.patch_namespaced_custom_object_status(
        "pgbackup.io",
        "v1alpha1",
        namespace,
        "pgbackups",
        "checked",
        {"status": backups},
        _content_type="application/merge-patch+json",
    )
    cronjob = kube.cronjob(namespace, "pgbackup-checked-verify")
    assert cronjob is not None
    kubelet = Kubelet(kube, tmp_path, tmp_path)

    def last_verify() -> dict[str, Any]:
        return dict(kube.pgbackup(namespace, "checked").get("status", {}).get("lastVerify") or {})

    failure = "1 of 2 databases failed verification: 'shop': row count of public.orders is 9, the backup wrote 10"
    failed = _finish_verify_job(kube, kubelet, cronjob, "1", 1, failure)
    wait_for(lambda: last_verify().get("job") == failed, timeout=30, what="lastVerify of the failed drill")
    assert last_verify()["result"] == "Failed" and last_verify()["message"] == failure and last_verify()["time"]
    condition = kube.condition(namespace, "checked", "LastVerifySucceeded")
    assert condition is not None and (condition["status"], condition["reason"]) == ("False", "VerifyFailed")
    assert condition["message"] == f"Job {failed} failed: {failure}"

    passed = _finish_verify_job(kube, kubelet, cronjob, "2", 0, "2 of 2 databases verified")
    wait_for(lambda: last_verify().get("job") == passed, timeout=30, what="lastVerify of the passed drill")
    assert last_verify()["result"] == "Succeeded" and last_verify()["message"] == "2 of 2 databases verified"
    condition = kube.condition(namespace, "checked", "LastVerifySucceeded")
    assert condition is not None and (condition["status"], condition["reason"]) == ("True", "VerifySucceeded")

    status = kube.pgbackup(namespace, "checked")["status"]
    assert {k: status.get(k) for k in backups} == backups  # the backups' own fields untouched
    assert "lastRun" not in status and kube.condition(namespace, "checked", "LastBackupSucceeded") is None
    wait_for(
        lambda: any(e["reason"] == "VerifySucceeded" for e in kube.events(namespace, "checked")),
        timeout=30,
        what="a VerifySucceeded event",
    )
    reasons = [e["reason"] for e in kube.events(namespace, "checked")]
    assert reasons.count("VerifyFailed") == 1 and reasons.count("VerifySucceeded") == 1
    printed = kube.plane.kubectl("get", "pgb", "checked", "-n", namespace).stdout
    assert "VERIFIED" in printed.splitlines()[0] and "Succeeded" in printed.splitlines()[1]


def _reason(kube: KubeEnv, namespace: str, name: str, type_: str) -> tuple[str, str] | None:
    found = kube.condition(namespace, name, type_)
    return (found["status"], found["reason"]) if found else None


def test_a_drill_without_a_scratch_server_is_reported_with_what_to_do(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """Every PgBackup that drilled on its backup server before verify refused it: still Ready,
    its verify CronJob still there, and VerifyIsolated=False with one Warning Event saying
    what to do; Signed says whether a bucket writer is trusted."""
    kube.create_pgbackup(namespace, "lonely", spec(verify={"schedule": "0 5 * * 0"}))
    wait_for(
        lambda: _reason(kube, namespace, "lonely", "VerifyIsolated") == ("False", "NoScratchServer"),
        timeout=30,
        what="VerifyIsolated=False, NoScratchServer",
    )
    assert _reason(kube, namespace, "lonely", "Ready") == ("True", "CronJobApplied")
    assert kube.cronjob(namespace, "pgbackup-lonely-verify") is not None, "the drill is rendered; the job refuses it"
    assert _reason(kube, namespace, "lonely", "Signed") == ("False", "NoSigningKey")
    message = (kube.condition(namespace, "lonely", "VerifyIsolated") or {})["message"]
    assert "spec.verify.server" in message and "spec.verify.onBackupServer: true" in message

    def warnings() -> list[dict[str, Any]]:
        return [e for e in kube.events(namespace, "lonely") if e["reason"] == "NoScratchServer"]

    wait_for(warnings, timeout=30, what="a NoScratchServer event")
    [event] = warnings()
    assert event["type"] == "Warning" and event["message"] == message

    kube.patch_pgbackup(namespace, "lonely", {"spec": {"suspend": True}})  # reconciled again: no second Event
    wait_for(
        lambda: "(suspended)" in ((kube.condition(namespace, "lonely", "Ready") or {}).get("message") or ""),
        timeout=30,
        what="the change reconciled",
    )
    kube.patch_pgbackup(
        namespace,
        "lonely",
        {
            "spec": {
                "verify": {
                    "server": {"host": "scratch.example", "user": "postgres", "passwordSecretRef": {"name": "scratch"}}
                },
                "signing": {"privateKeySecretRef": {"name": "signer"}, "publicKeys": [SIGNING_KEY]},
            }
        },
    )
    wait_for(
        lambda: _reason(kube, namespace, "lonely", "VerifyIsolated") == ("True", "ScratchServer"),
        timeout=30,
        what="VerifyIsolated=True once a scratch server is set",
    )
    assert _reason(kube, namespace, "lonely", "Signed") == ("True", "SigningKeyConfigured")
    assert len(warnings()) == 1

    kube.patch_pgbackup(namespace, "lonely", {"spec": {"verify": None}})
    wait_for(
        lambda: _reason(kube, namespace, "lonely", "VerifyIsolated") is None,
        timeout=30,
        what="the condition gone with spec.verify",
    )
