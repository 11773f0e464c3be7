"""Unit tests of the operator's pure parts: rendering a PgBackup, and status bookkeeping."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgbackup_operator import render, status
from pgbackup_operator.handlers import drift

BODY: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgBackup",
    "metadata": {"name": "prod", "namespace": "db", "uid": "1234-uid", "generation": 2},
    "spec": {
        "schedule": "30 2 * * *",
        "timeZone": "Europe/Berlin",
        "postgres": {"host": "pg.db.svc", "port": 5432, "database": "postgres", "sslMode": "verify-full",
                     "user": "backup", "passwordSecretRef": {"name": "pg", "key": "password"},
                     "tls": {"caSecretRef": {"name": "pg-ca", "key": "ca.crt"}, "clientCertSecretRef": {"name": "pg-client"}}},
        "databases": {"include": ["app*"], "exclude": ["app_test"]},
        "destination": {"s3": {"bucket": "backups", "prefix": "/pg/prod/", "region": "eu-west-1",
                               "endpoint": "http://minio:9000", "pathStyle": True, "checksumCompatibility": True,
                               "credentialsSecretRef": {"name": "s3"}}},
        "compressionLevel": 4,
        "pgDumpOptions": ["--exclude-table-data=audit.*", "--no-owner"],
        "job": {"backoffLimit": 1, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 86400},
        "pod": {"resources": {"limits": {"memory": "256Mi"}}, "podLabels": {"team": "db"}},
    },
}


def env_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_cronjob_carries_schedule_ownership_and_labels() -> None:
    cronjob = render.render_cronjob(BODY, "img:1")
    assert cronjob["metadata"]["name"] == "pgbackup-prod"
    assert cronjob["metadata"]["ownerReferences"] == [{
        "apiVersion": "pgbackup.io/v1alpha1", "kind": "PgBackup", "name": "prod", "uid": "1234-uid",
        "controller": True, "blockOwnerDeletion": True}]
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"
    assert cronjob["metadata"]["labels"]["pgbackup.io/name"] == "prod"
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"], spec["concurrencyPolicy"]) == \
        ("30 2 * * *", "Europe/Berlin", False, "Forbid")
    job = spec["jobTemplate"]["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (1, 3600, 86400)
    assert job["template"]["metadata"]["labels"]["team"] == "db"


def test_pod_runs_the_job_with_its_settings_and_secret_refs() -> None:
    env = env_of(render.render_cronjob(BODY, "img:1"))
    assert env["BACKUP_DESTINATION"] == "s3://backups/pg/prod"
    assert env["PGHOST"] == "pg.db.svc" and env["PGUSER"] == "backup" and env["PGSSLMODE"] == "verify-full"
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "pg", "key": "password"}}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000" and env["BACKUP_S3_ADDRESSING_STYLE"] == "path"
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert env["BACKUP_DATABASES"] == "app*" and env["BACKUP_EXCLUDE_DATABASES"] == "app_test"
    assert env["BACKUP_PG_DUMP_OPTIONS"] == "'--exclude-table-data=audit.*' --no-owner"
    assert env["BACKUP_COMPRESSION_LEVEL"] == "4"
    assert env["PGSSLROOTCERT"] == "/etc/pgbackup/tls/ca/ca.crt"
    assert env["PGSSLCERT"] == "/etc/pgbackup/tls/client/tls.crt"
    assert not any("password" in str(v).lower() and isinstance(v, str) for v in env.values())


def test_pod_is_restricted() -> None:
    pod = render.render_cronjob(BODY, "img:1")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "img:1" and container["command"] == ["pgbackup", "run"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tls-ca", "mountPath": "/etc/pgbackup/tls/ca", "readOnly": True} in container["volumeMounts"]
    assert container["resources"] == {"limits": {"memory": "256Mi"}}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_service_account_mounts_its_token() -> None:
    body = copy.deepcopy(BODY)
    body["spec"]["pod"]["serviceAccountName"] = "backup-irsa"
    del body["spec"]["destination"]["s3"]["credentialsSecretRef"]
    pod = render.render_cronjob(body)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "backup-irsa" and pod["automountServiceAccountToken"] is True
    assert "AWS_ACCESS_KEY_ID" not in env_of(render.render_cronjob(body))
    assert pod["containers"][0]["image"] == render.DEFAULT_IMAGE


def test_names_are_deterministic_and_fit() -> None:
    long = "a" * 63
    assert render.cronjob_name(long) == render.cronjob_name(long)
    assert len(render.cronjob_name(long)) <= 52 and render.cronjob_name(long) != render.cronjob_name("a" * 62)
    assert len(render.manual_job_name(render.cronjob_name(long), "x")) <= 63
    assert render.manual_job_name("c", "id-1") == render.manual_job_name("c", "id-1") != render.manual_job_name("c", "id-2")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("schedule", "61 * * * *", "spec.schedule: minute field"),
    ("timeZone", "Mars/Olympus", "spec.timeZone: unknown time zone 'Mars/Olympus'"),
])
def test_invalid_specs_name_the_field(field: str, value: str, message: str) -> None:
    body = copy.deepcopy(BODY)
    body["spec"][field] = value
    with pytest.raises(render.RenderError, match=message):
        render.render_cronjob(body)


def test_manual_job_copies_the_template_and_is_labelled() -> None:
    cronjob = render.render_cronjob(BODY, "img:1")
    cronjob["metadata"]["uid"] = "cj-uid"
    job = render.render_manual_job(cronjob, "now-1")
    assert job["metadata"]["labels"]["pgbackup.io/manual"] == "true"
    assert job["spec"]["template"]["metadata"]["labels"]["pgbackup.io/manual"] == "true"
    assert job["spec"]["template"]["spec"] == cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "cj-uid"


def test_drift_ignores_server_defaults_but_sees_edits() -> None:
    desired = {"spec": {"schedule": "1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}}}}
    with_defaults = {"spec": {"schedule": "1 * * * *", "startingDeadlineSeconds": None,
                              "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x", "imagePullPolicy": "IfNotPresent"}]}}}}}}
    assert drift(desired, with_defaults) is None
    edited = copy.deepcopy(with_defaults)
    edited["spec"]["schedule"] = "5 * * * *"
    assert drift(desired, edited) == "spec.schedule"


def test_conditions_keep_transition_time_unless_status_changes() -> None:
    first = status.set_condition([], "Ready", True, "CronJobApplied", "ok")
    first[0]["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    same = status.set_condition(first, "Ready", True, "CronJobApplied", "still ok")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["message"] == "still ok"
    flipped = status.set_condition(same, "Ready", False, "InvalidSchedule", "bad")
    assert flipped[0]["lastTransitionTime"] != "2026-01-01T00:00:00Z" and flipped[0]["status"] == "False"


def test_job_outcomes_and_messages() -> None:
    failed = {"metadata": {"name": "j", "labels": {"pgbackup.io/manual": "true"}},
              "status": {"startTime": "2026-01-01T00:00:00Z",
                         "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit",
                                         "lastTransitionTime": "2026-01-01T00:01:00Z"}]}}
    assert status.job_outcome(failed) == "Failed"
    pods = [{"status": {"containerStatuses": [{"state": {"terminated": {"message": "1 of 1 databases failed: 'x': boom", "finishedAt": "t"}}}]}}]
    assert status.termination_message(pods) == "1 of 1 databases failed: 'x': boom"
    run = status.last_run(failed, "boom")
    assert run == {"jobName": "j", "manual": True, "startTime": "2026-01-01T00:00:00Z", "result": "Failed",
                   "message": "boom", "completionTime": "2026-01-01T00:01:00Z"}
    assert status.is_newer_or_same(run, {"jobName": "old", "startTime": "2025-12-31T00:00:00Z"})
    assert not status.is_newer_or_same({"jobName": "old", "startTime": "2025-12-31T00:00:00Z"}, run)


def test_operator_without_credentials_fails_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "pgbackup_operator"], env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "no Kubernetes credentials" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_operator_log_lines_keep_tracebacks_on_one_line() -> None:
    import logging

    from pgbackup_operator.cli import OneLineFormatter

    formatter = OneLineFormatter(logging.Formatter("%(levelname)s %(message)s"))
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("kopf", logging.ERROR, __file__, 1, "handler failed", None, sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line and line.startswith("ERROR handler failed") and "ValueError: boom" in line
