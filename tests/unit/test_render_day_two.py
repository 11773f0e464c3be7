"""Rendering for day two: the prune CronJob and per-job identities, sharded (Indexed) backup
Jobs, PgRestore Jobs, and how the status adds up a sharded run. Pure functions, no cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from backup_job.core.termination import TerminationMessage
from pgbackup_operator import render, restores, status
from pgbackup_operator.api import RenderError

BASE: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgBackup",
    "metadata": {"name": "prod", "namespace": "db", "uid": "u-1", "generation": 1},
    "spec": {
        "schedule": "30 2 * * *",
        "postgres": {"host": "pg.db.svc", "user": "backup", "passwordSecretRef": {"name": "pg"}},
        "destination": {"s3": {"bucket": "backups", "prefix": "prod", "credentialsSecretRef": {"name": "s3-write"}}},
        "retention": {"last": 7},
    },
}


def body(**spec: Any) -> dict[str, Any]:
    result = copy.deepcopy(BASE)
    result["spec"].update(spec)
    return result


def pod_of(job_spec: dict[str, Any]) -> dict[str, Any]:
    return dict(job_spec["template"]["spec"])


def env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}


def credentials(pod: dict[str, Any]) -> str:
    return str(env(pod)["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"])


def test_without_a_retention_schedule_the_backup_job_prunes_and_there_is_no_prune_cronjob() -> None:
    rendered = render.render_all(body())
    assert rendered["prune"] is None
    backup = rendered["backup"]
    assert backup is not None
    assert env(pod_of(backup["spec"]["jobTemplate"]["spec"]))["BACKUP_RETENTION"] == "last=7"


def test_a_retention_schedule_renders_a_prune_cronjob_with_its_own_identity_and_the_backup_stops_pruning() -> None:
    retention = {
        "last": 7,
        "schedule": "0 4 * * *",
        "timeZone": "Europe/Berlin",
        "credentialsSecretRef": {"name": "s3-prune"},
        "serviceAccountName": "pruner",
    }
    rendered = render.render_all(body(retention=retention, suspend=True))
    backup, prune = rendered["backup"], rendered["prune"]
    assert backup is not None and prune is not None
    backup_pod = pod_of(backup["spec"]["jobTemplate"]["spec"])
    assert "BACKUP_RETENTION" not in env(backup_pod), "the backup identity never deletes"
    assert credentials(backup_pod) == "s3-write"
    assert prune["metadata"]["name"] == "pgbackup-prod-prune"
    assert prune["metadata"]["labels"]["app.kubernetes.io/component"] == "prune"
    assert (
        prune["spec"]["schedule"],
        prune["spec"]["timeZone"],
        prune["spec"]["suspend"],
        prune["spec"]["concurrencyPolicy"],
    ) == ("0 4 * * *", "Europe/Berlin", True, "Forbid")
    prune_pod = pod_of(prune["spec"]["jobTemplate"]["spec"])
    assert prune_pod["containers"][0]["command"] == ["pgbackup", "prune"]
    assert credentials(prune_pod) == "s3-prune" and prune_pod["serviceAccountName"] == "pruner"
    assert env(prune_pod)["BACKUP_RETENTION"] == "last=7"
    assert not any(name.startswith("PG") for name in env(prune_pod) if name != "PGAPPNAME"), (
        "pruning needs no PostgreSQL server, so its pod gets no server password"
    )


def test_a_bad_retention_schedule_is_refused() -> None:
    with pytest.raises(RenderError, match=r"spec\.retention\.schedule"):
        render.render_all(body(retention={"last": 1, "schedule": "61 * * * *"}))


def test_prune_names_never_meet_backup_or_verify_names() -> None:
    assert render.prune_cronjob_name("a") == "pgbackup-a-prune"
    long = "x" * 60
    names = {render.cronjob_name(long), render.verify_cronjob_name(long), render.prune_cronjob_name(long)}
    assert len(names) == 3 and all(len(n) <= 52 for n in names)


def test_verify_pods_read_with_their_own_credentials_and_account() -> None:
    verify = {"schedule": "@weekly", "credentialsSecretRef": {"name": "s3-read"}, "serviceAccountName": "reader"}
    drill = render.render_all(body(verify=verify))["verify"]
    assert drill is not None
    pod = pod_of(drill["spec"]["jobTemplate"]["spec"])
    assert credentials(pod) == "s3-read" and pod["serviceAccountName"] == "reader"
    assert pod["automountServiceAccountToken"] is True


def test_parallelism_renders_an_indexed_job_whose_pods_share_the_run() -> None:
    backup = render.render_all(body(parallelism=3, job={"backoffLimit": 2}))["backup"]
    assert backup is not None
    spec = backup["spec"]["jobTemplate"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimitPerIndex"] == 2 and "backoffLimit" not in spec, (
        "one shard's failure never stops the others"
    )
    assert spec["podReplacementPolicy"] == "Failed"
    variables = env(pod_of(spec))
    assert variables["BACKUP_SHARD"] == "$(PGBACKUP_SHARD_INDEX)/3"
    names = [e["name"] for e in pod_of(spec)["containers"][0]["env"]]
    assert names.index("PGBACKUP_SHARD_INDEX") < names.index("BACKUP_SHARD"), "$(VAR) refers only to earlier variables"
    assert variables["PGBACKUP_SHARD_INDEX"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert variables["BACKUP_JOB_NAME"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
    }
    assert variables["BACKUP_RUN_ID"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}
    }
    assert "BACKUP_RETENTION" not in variables, "no shard prunes: the operator does once every shard succeeded"


def test_one_pod_runs_carry_the_run_identity_but_no_shard() -> None:
    backup = render.render_all(body())["backup"]
    assert backup is not None
    spec = backup["spec"]["jobTemplate"]["spec"]
    assert "completionMode" not in spec and spec["backoffLimit"] == 0
    variables = env(pod_of(spec))
    assert "BACKUP_SHARD" not in variables and "BACKUP_JOB_NAME" in variables and "BACKUP_RUN_ID" in variables


def test_the_prune_job_after_a_sharded_run_is_owned_by_that_run_and_named_once() -> None:
    owner = body(parallelism=3)
    job = {"metadata": {"name": "pgbackup-prod-29400000", "namespace": "db", "uid": "job-uid"}}
    prune = render.render_after_run_prune_job(owner, job, "img:1")
    assert prune["metadata"]["name"] == "pgbackup-prod-29400000-prune"
    assert prune["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    assert prune["metadata"]["labels"]["pgbackup.io/after"] == "pgbackup-prod-29400000"
    assert "completionMode" not in prune["spec"]
    assert pod_of(prune["spec"])["containers"][0]["command"] == ["pgbackup", "prune"]
    long = render.after_run_prune_job_name("j" * 63)
    assert len(long) <= 63 and long != render.after_run_prune_job_name("j" * 62 + "k")


RESTORE: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgRestore",
    "metadata": {"name": "orders-back", "namespace": "db", "uid": "r-1", "generation": 1},
    "spec": {"backupRef": {"name": "prod"}, "database": "orders"},
}


def restore(**spec: Any) -> dict[str, Any]:
    result = copy.deepcopy(RESTORE)
    result["spec"].update(spec)
    return result


@pytest.mark.parametrize("at", ["9999-12-31", "2026-02-30", "2026-11-26T02:30:00+24:00"])
def test_a_restore_at_the_job_would_refuse_renders_no_job(at: str) -> None:
    with pytest.raises(RenderError, match=r"^spec.at: --at '") as caught:
        restores.render_restore_job(restore(at=at), body(), "img:1")
    assert caught.value.reason == "InvalidAt"


def test_a_restore_job_runs_once_in_the_backup_pod_with_read_credentials() -> None:
    owner = body(
        verify={
            "schedule": "@weekly",
            "credentialsSecretRef": {"name": "s3-read"},
            "serviceAccountName": "reader",
            "decryptionSecretRef": {"name": "age"},
        }
    )
    job = restores.render_restore_job(restore(), owner, "img:1")
    assert job["metadata"]["name"] == "pgrestore-orders-back"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "PgRestore"
    assert job["metadata"]["labels"]["pgbackup.io/restore"] == "orders-back"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "restore"
    assert job["spec"]["backoffLimit"] == 0
    pod = pod_of(job["spec"])
    assert pod["containers"][0]["command"] == ["pgbackup", "restore", "--database=orders"]
    assert credentials(pod) == "s3-read" and pod["serviceAccountName"] == "reader", "the drill's read identity"
    assert env(pod)["BACKUP_DECRYPT_IDENTITY_PATH"] == "/etc/pgbackup/age/identity"
    assert env(pod)["PGHOST"] == "pg.db.svc"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_a_restore_s_own_fields_win_and_its_target_is_honoured() -> None:
    server = {
        "host": "other.db.svc",
        "user": "restorer",
        "passwordSecretRef": {"name": "other"},
        "tls": {"caSecretRef": {"name": "other-ca"}},
    }
    spec = {
        "at": "2026-11-26",
        "globals": True,
        "credentialsSecretRef": {"name": "mine"},
        "serviceAccountName": "me",
        "target": {"database": "-orders copy", "create": True, "clean": True, "server": server},
    }
    owner = body(verify={"schedule": "@weekly", "credentialsSecretRef": {"name": "s3-read"}})
    pod = pod_of(restores.render_restore_job(restore(**spec), owner, "img:1")["spec"])
    assert pod["containers"][0]["command"] == [
        "pgbackup",
        "restore",
        "--database=orders",
        "--at=2026-11-26",
        "--target=-orders copy",
        "--create",
        "--clean",
        "--with-globals",
    ]
    assert credentials(pod) == "mine" and pod["serviceAccountName"] == "me"
    assert env(pod)["PGHOST"] == "other.db.svc" and env(pod)["PGPASSWORD"]["secretKeyRef"]["name"] == "other"
    assert "pg" not in {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in pod["containers"][0]["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }, "only the target server's password"
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] == ["other-ca"]


def test_a_restore_says_what_it_trusts_only_when_told_and_never_gets_the_signing_key() -> None:
    public = "ed25519:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
    owner = body(signing={"privateKeySecretRef": {"name": "signer", "key": "pem"}, "publicKeys": [public]})
    plain = pod_of(restores.render_restore_job(restore(), owner, "img:1")["spec"])
    assert plain["containers"][0]["command"] == ["pgbackup", "restore", "--database=orders"]
    assert env(plain)["BACKUP_SIGNING_PUBLIC_KEYS"] == public, "a restore trusts what the PgBackup's jobs trust"
    assert "BACKUP_SIGNING_KEY_FILE" not in env(plain) and "signer" not in str(plain)
    trusting = pod_of(
        restores.render_restore_job(
            restore(allowUnsigned=True, asSuperuser=True, target={"clean": True}), owner, "img:1"
        )["spec"]
    )
    assert trusting["containers"][0]["command"] == [
        "pgbackup",
        "restore",
        "--database=orders",
        "--clean",
        "--allow-unsigned",
        "--as-superuser",
    ]
    refused = pod_of(
        restores.render_restore_job(restore(allowUnsigned=False, asSuperuser=False), body(), "img:1")["spec"]
    )
    assert refused["containers"][0]["command"] == ["pgbackup", "restore", "--database=orders"]
    assert "BACKUP_SIGNING_PUBLIC_KEYS" not in env(refused), "without spec.signing nothing is checked"


def test_a_restore_without_verify_reads_with_the_backup_s_credentials() -> None:
    pod = pod_of(restores.render_restore_job(restore(), body(), "img:1")["spec"])
    assert credentials(pod) == "s3-write" and "serviceAccountName" not in pod


def test_restore_phases_follow_the_job() -> None:
    job: dict[str, Any] = {"metadata": {"name": "pgrestore-x"}, "status": {}}
    assert restores.observed(job, None, {})["phase"] == "Pending"
    job["status"] = {"active": 1, "startTime": "2026-11-30T10:00:00Z"}
    running = restores.observed(job, None, {})
    assert running["phase"] == "Running" and running["startTime"] == "2026-11-30T10:00:00Z"
    job["status"] = {
        "succeeded": 1,
        "startTime": "2026-11-30T10:00:00Z",
        "completionTime": "2026-11-30T10:05:00Z",
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    told = TerminationMessage(
        "restored 'orders' from 20261126T020000Z into 'orders' in 3.0 s",
        command="restore",
        ok=True,
        timestamp="20261126T020000Z",
    )
    done = restores.observed(job, told, running)
    assert (done["phase"], done["backupTimestamp"], done["completionTime"]) == (
        "Succeeded",
        "20261126T020000Z",
        "2026-11-30T10:05:00Z",
    )
    [condition] = done["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Restored", "True", "RestoreSucceeded")


def test_a_sharded_run_adds_up_and_one_failure_is_never_hidden() -> None:
    good = TerminationMessage(
        "2 backups succeeded",
        command="run",
        ok=True,
        timestamp="20261130T020000Z",
        seconds=10.0,
        stored_bytes=1000,
        databases_ok=2,
        databases_failed=0,
    )
    bad = TerminationMessage(
        "1 of 2 backups failed: 'b': boom",
        command="run",
        ok=False,
        timestamp="20261130T020000Z",
        seconds=12.5,
        stored_bytes=10,
        databases_ok=1,
        databases_failed=1,
        failed=("b",),
    )
    total = status.add_up([good, bad, good], 3)
    assert total.ok is False and total.summary == "1 of 2 backups failed: 'b': boom"
    assert (total.databases_ok, total.databases_failed, total.stored_bytes, total.seconds) == (5, 1, 2010, 12.5)
    assert total.failed == ("b",) and total.timestamp == "20261130T020000Z"
    missing = status.add_up([good, good], 3)
    assert missing.ok is False and "1 of 3 shards told nothing" in missing.summary
    assert status.add_up([good, good, good], 3).ok is True


def pod(index: str, message: TerminationMessage, finished: str) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {"batch.kubernetes.io/job-completion-index": index}},
        "status": {
            "containerStatuses": [
                {"state": {"terminated": {"message": message.encode().decode(), "finishedAt": finished}}}
            ]
        },
    }


def test_the_newest_pod_of_each_shard_counts() -> None:
    failed = TerminationMessage("first attempt failed", command="run", ok=False, databases_ok=0, databases_failed=1)
    retried = TerminationMessage("1 backups succeeded", command="run", ok=True, databases_ok=1, databases_failed=0)
    other = TerminationMessage("1 backups succeeded", command="run", ok=True, databases_ok=1, databases_failed=0)
    message = status.termination_message(
        [
            pod("0", failed, "2026-11-30T02:01:00Z"),
            pod("0", retried, "2026-11-30T02:03:00Z"),
            pod("1", other, "2026-11-30T02:02:00Z"),
        ]
    )
    assert message is not None and message.ok is True and message.databases_ok == 2


def test_shard_counts_read_the_indexed_job() -> None:
    job = {
        "spec": {"completionMode": "Indexed", "completions": 5},
        "status": {"succeeded": 2, "failedIndexes": "1,3-4"},
    }
    assert status.shard_counts(job) == {"total": 5, "succeeded": 2, "failed": 3}
    assert status.shard_counts({"spec": {}, "status": {}}) is None


def _undocumented(schema: dict[str, Any], path: str) -> list[str]:
    missing = [] if schema.get("description") else [path]
    for name, child in (schema.get("properties") or {}).items():
        missing += _undocumented(child, f"{path}.{name}")
    if "items" in schema:
        missing += [m for m in _undocumented(schema["items"], f"{path}[]") if m != f"{path}[]"]
    return missing


def test_kubectl_explain_pgr_spec_documents_every_field() -> None:
    import yaml

    from ..kit.helpers import ROOT

    crd = yaml.safe_load((ROOT / "deploy" / "crd-pgrestore.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _undocumented(schema["properties"]["spec"], "spec") == []
    assert _undocumented(schema["properties"]["status"], "status") == []


def test_kubectl_explain_pgb_documents_signing_and_the_drill_s_server() -> None:
    import yaml

    from ..kit.helpers import ROOT

    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert _undocumented(spec["properties"]["signing"], "spec.signing") == []
    assert spec["properties"]["signing"]["required"] == ["privateKeySecretRef", "publicKeys"]
    verify = spec["properties"]["verify"]["properties"]
    assert _undocumented(verify["onBackupServer"], "spec.verify.onBackupServer") == []
    assert verify["onBackupServer"]["default"] is False
    assert "superuser" in verify["server"]["description"] and "CREATEDB" not in verify["server"]["description"]
