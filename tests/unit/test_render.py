"""Unit tests of the operator's pure parts: rendering a PgBackup, and status bookkeeping; and
the verify-outcome handler against a recording stand-in for the Kubernetes API."""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backup_job.core.termination import TerminationMessage
from pgbackup_operator import api, handlers, kube, render, status
from pgbackup_operator.handlers import drift

BODY: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgBackup",
    "metadata": {"name": "prod", "namespace": "db", "uid": "1234-uid", "generation": 2},
    "spec": {
        "schedule": "30 2 * * *",
        "timeZone": "Europe/Berlin",
        "postgres": {
            "host": "pg.db.svc",
            "port": 5432,
            "database": "postgres",
            "sslMode": "verify-full",
            "user": "backup",
            "passwordSecretRef": {"name": "pg", "key": "password"},
            "tls": {"caSecretRef": {"name": "pg-ca", "key": "ca.crt"}, "clientCertSecretRef": {"name": "pg-client"}},
        },
        "databases": {"include": ["app*"], "exclude": ["app_test"]},
        "destination": {
            "s3": {
                "bucket": "backups",
                "prefix": "/pg/prod/",
                "region": "eu-west-1",
                "endpoint": "http://minio:9000",
                "pathStyle": True,
                "checksumCompatibility": True,
                "credentialsSecretRef": {"name": "s3"},
            }
        },
        "compressionLevel": 4,
        "pgDumpOptions": ["--exclude-table-data=audit.*", "--no-owner"],
        "job": {"backoffLimit": 1, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 86400},
        "pod": {"resources": {"limits": {"memory": "256Mi"}}, "podLabels": {"team": "db"}},
    },
}


SCRATCH: dict[str, Any] = {
    "host": "scratch.db.svc",
    "port": 6432,
    "database": "maintenance",
    "sslMode": "verify-ca",
    "userSecretRef": {"name": "scratch", "key": "user"},
    "passwordSecretRef": {"name": "scratch", "key": "pw"},
    "tls": {
        "caSecretRef": {"name": "scratch-ca", "key": "root.crt"},
        "clientCertSecretRef": {"name": "scratch-client"},
    },
}


def env_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def pod_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    return dict(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def with_spec(**fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    body["spec"].update(copy.deepcopy(fields))
    return body


def verify_cronjob(**fields: Any) -> dict[str, Any]:
    cronjob = render.render_verify_cronjob(with_spec(**fields), "img:1")
    assert cronjob is not None
    return cronjob


def test_cronjob_carries_schedule_ownership_and_labels() -> None:
    cronjob = render.render_cronjob(BODY, "img:1")
    assert cronjob["metadata"]["name"] == "pgbackup-prod"
    assert cronjob["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "pgbackup.io/v1alpha1",
            "kind": "PgBackup",
            "name": "prod",
            "uid": "1234-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"
    assert cronjob["metadata"]["labels"]["pgbackup.io/name"] == "prod"
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"], spec["concurrencyPolicy"]) == (
        "30 2 * * *",
        "Europe/Berlin",
        False,
        "Forbid",
    )
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
    assert pod["securityContext"]["runAsNonRoot"] and not {"runAsUser", "runAsGroup", "fsGroup"} & set(
        pod["securityContext"]
    )
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
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


def _sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_names_are_deterministic_and_fit() -> None:
    """Against names worked out here from the documented rule, not against the function itself."""
    long = "a" * 63
    assert render.cronjob_name("prod") == "pgbackup-prod"
    assert render.cronjob_name(long) == "pgbackup-" + "a" * 34 + "-" + _sha8(long)
    assert len(render.cronjob_name(long)) == 52 and render.cronjob_name(
        "a" * 62
    ) == "pgbackup-" + "a" * 34 + "-" + _sha8("a" * 62)
    assert len(render.manual_job_name(render.cronjob_name(long), "x")) <= 63
    assert render.manual_job_name("c", "id-1") == "c-m" + _sha8("id-1")
    assert render.manual_job_name("c", "id-2") == "c-m" + _sha8("id-2")


def test_names_are_the_same_in_every_process() -> None:
    """A restarted operator must find its children again: no per-process hash seed may leak in."""
    code = (
        "from pgbackup_operator import render as r; n = 'x' * 60; "
        "print(r.cronjob_name(n), r.verify_cronjob_name(n), r.manual_job_name(r.cronjob_name(n), 'id'))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    name = "x" * 60
    assert outputs == {
        f"{render.cronjob_name(name)} {render.verify_cronjob_name(name)} "
        f"{render.manual_job_name(render.cronjob_name(name), 'id')}\n"
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "61 * * * *", "spec.schedule: minute field"),
        ("timeZone", "Mars/Olympus", "spec.timeZone: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_invalid_specs_name_the_field(field: str, value: str, message: str) -> None:
    body = copy.deepcopy(BODY)
    body["spec"][field] = value
    with pytest.raises(api.RenderError, match=message):
        render.render_cronjob(body)


def test_manual_job_copies_the_template_and_is_labelled() -> None:
    cronjob = render.render_cronjob(BODY, "img:1")
    cronjob["metadata"]["uid"] = "cj-uid"
    job = render.render_manual_job(cronjob, "now-1", datetime(2026, 11, 30, 2, 0, 5, tzinfo=UTC))
    assert job["metadata"]["labels"]["pgbackup.io/manual"] == "true"
    assert job["spec"]["template"]["metadata"]["labels"]["pgbackup.io/manual"] == "true"
    pod, template = job["spec"]["template"]["spec"], cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {**pod, "containers": None} == {**template, "containers": None}
    [container], [original] = pod["containers"], template["containers"]
    assert container["env"] == [*original["env"], {"name": "BACKUP_RUN_TIMESTAMP", "value": "20261130T020005Z"}], (
        "every pod of a backup-now Job shares the timestamp the operator fixed"
    )
    assert job["metadata"]["ownerReferences"][0]["uid"] == "cj-uid"


def test_drift_ignores_server_defaults_but_sees_edits() -> None:
    desired = {
        "spec": {
            "schedule": "1 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}},
        }
    }
    with_defaults = {
        "spec": {
            "schedule": "1 * * * *",
            "startingDeadlineSeconds": None,
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "x", "imagePullPolicy": "IfNotPresent"}]}}}
            },
        }
    }
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
    failed = {
        "metadata": {"name": "j", "labels": {"pgbackup.io/manual": "true"}},
        "status": {
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": "2026-01-01T00:01:00Z",
                }
            ],
        },
    }
    assert status.job_outcome(failed) == "Failed"
    pods = [
        {
            "status": {
                "containerStatuses": [
                    {"state": {"terminated": {"message": "1 of 1 databases failed: 'x': boom", "finishedAt": "t"}}}
                ]
            }
        }
    ]
    assert status.termination_message(pods).summary == "1 of 1 databases failed: 'x': boom"  # type: ignore[union-attr]
    run = status.last_run(failed, "boom")
    assert run == {
        "jobName": "j",
        "manual": True,
        "startTime": "2026-01-01T00:00:00Z",
        "result": "Failed",
        "message": "boom",
        "completionTime": "2026-01-01T00:01:00Z",
    }
    assert status.is_newer_or_same(run, {"jobName": "old", "startTime": "2025-12-31T00:00:00Z"})
    assert not status.is_newer_or_same({"jobName": "old", "startTime": "2025-12-31T00:00:00Z"}, run)


def test_a_run_s_figures_come_from_its_termination_message() -> None:
    text = (
        TerminationMessage(
            "1 of 3 backups failed: 'x': boom",
            command="run",
            ok=False,
            timestamp="20260101T000000Z",
            seconds=754.4,
            stored_bytes=165288497,
            databases_ok=2,
            databases_failed=1,
            failed=("x",),
        )
        .encode()
        .decode()
    )
    pods = [{"status": {"containerStatuses": [{"state": {"terminated": {"message": text, "finishedAt": "t"}}}]}}]
    figures = status.run_figures(status.termination_message(pods))
    assert figures == {
        "durationSeconds": 754.4,
        "duration": "12m34s",
        "bytes": 165288497,
        "size": "157.6 MiB",
        "databases": {"ok": 2, "failed": 1},
        "failedDatabases": ["x"],
        "timestamp": "20260101T000000Z",
    }
    assert status.run_figures(TerminationMessage("plain text from an older job")) == {}
    assert status.run_figures(None) == {}
    assert [status.human_duration(s) for s in (4.6, 60, 3725)] == ["5s", "1m0s", "1h2m"]


def test_operator_without_credentials_fails_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pgbackup_operator"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
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


def test_dump_settings_become_env() -> None:
    env = env_of(
        render.render_cronjob(
            with_spec(retention={"monthly": 12, "last": 7, "weekly": 8}, globals=False, shrinkAlarm=0.25)
        )
    )
    assert env["BACKUP_RETENTION"] == "last=7,weekly=8,monthly=12"  # fixed order, only the rules set
    assert env["BACKUP_GLOBALS"] == "false" and env["BACKUP_SHRINK_ALARM"] == "0.25"
    assert env_of(render.render_cronjob(with_spec(shrinkAlarm=0)))["BACKUP_SHRINK_ALARM"] == "0"
    defaults = env_of(render.render_cronjob(BODY))
    assert defaults["BACKUP_GLOBALS"] == "true"
    assert "BACKUP_RETENTION" not in defaults and "BACKUP_SHRINK_ALARM" not in defaults


def test_no_verify_no_verify_cronjob() -> None:
    assert render.render_verify_cronjob(BODY) is None


def test_verify_cronjob_runs_the_drill_on_its_own_schedule() -> None:
    body = with_spec(verify={"schedule": "0 5 * * 0", "suspend": True}, job={"concurrencyPolicy": "Allow"})
    backup = render.render_cronjob(body, "img:1")
    cronjob = render.render_verify_cronjob(body, "img:1")
    assert cronjob is not None
    assert cronjob["metadata"]["name"] == "pgbackup-prod-verify"
    assert cronjob["metadata"]["ownerReferences"] == backup["metadata"]["ownerReferences"]
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/component"] == "verify"
    assert backup["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"
    template_labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert template_labels["app.kubernetes.io/component"] == "verify" and template_labels["pgbackup.io/name"] == "prod"
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"], spec["concurrencyPolicy"]) == (
        "0 5 * * 0",
        "Europe/Berlin",
        True,
        "Forbid",
    )  # the PgBackup's zone; never overlapping
    assert backup["spec"]["concurrencyPolicy"] == "Allow" and backup["spec"]["suspend"] is False
    assert (
        render.render_verify_cronjob(with_spec(suspend=True, verify={"schedule": "@weekly", "timeZone": "UTC"}))[
            "spec"
        ]["suspend"]
        is True
    )  # type: ignore[index]


def test_verify_pod_is_the_backup_pod_with_another_command() -> None:
    body = with_spec(verify={"schedule": "0 5 * * 0"})
    backup, verify = (
        pod_of(render.render_cronjob(body, "img:1")),
        pod_of(verify_cronjob(verify={"schedule": "0 5 * * 0"})),
    )
    container = verify["containers"][0]
    assert container["command"] == ["pgbackup", "verify"] and container["image"] == "img:1"
    for key in ("securityContext", "automountServiceAccountToken", "restartPolicy"):
        assert verify[key] == backup[key]
    assert container["securityContext"] == backup["containers"][0]["securityContext"]
    assert container["resources"] == {"limits": {"memory": "256Mi"}}


def test_verify_without_server_restores_into_the_backup_server_and_never_prunes() -> None:
    backup_env = env_of(render.render_cronjob(with_spec(retention={"last": 7}, shrinkAlarm=0.5)))
    env = env_of(verify_cronjob(retention={"last": 7}, shrinkAlarm=0.5, verify={"schedule": "0 5 * * 0"}))
    for name in (
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "BACKUP_DESTINATION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL_S3",
        "BACKUP_DATABASES",
        "BACKUP_EXCLUDE_DATABASES",
        "BACKUP_TERMINATION_LOG",
    ):
        assert env[name] == backup_env[name], name
    for name in (
        "BACKUP_RETENTION",
        "BACKUP_SHRINK_ALARM",
        "BACKUP_GLOBALS",
        "BACKUP_COMPRESSION_LEVEL",
        "BACKUP_PG_DUMP_OPTIONS",
    ):
        assert name in backup_env and name not in env, name
    assert not any(name.startswith("BACKUP_VERIFY_") for name in env)


def test_verify_databases_replace_the_backup_selection() -> None:
    env = env_of(verify_cronjob(verify={"schedule": "0 5 * * 0", "databases": ["shop", "crm"]}))
    assert env["BACKUP_DATABASES"] == "shop,crm" and "BACKUP_EXCLUDE_DATABASES" not in env


def test_verify_server_gets_its_own_variables_secrets_and_mounts() -> None:
    cronjob = verify_cronjob(verify={"schedule": "0 5 * * 0", "server": SCRATCH})
    env = env_of(cronjob)
    assert {k: v for k, v in env.items() if k.startswith("BACKUP_VERIFY_")} == {
        "BACKUP_VERIFY_PGHOST": "scratch.db.svc",
        "BACKUP_VERIFY_PGPORT": "6432",
        "BACKUP_VERIFY_PGDATABASE": "maintenance",
        "BACKUP_VERIFY_PGSSLMODE": "verify-ca",
        "BACKUP_VERIFY_PGUSER": {"secretKeyRef": {"name": "scratch", "key": "user"}},
        "BACKUP_VERIFY_PGPASSWORD": {"secretKeyRef": {"name": "scratch", "key": "pw"}},
        "BACKUP_VERIFY_PGSSLROOTCERT": "/etc/pgbackup/verify-tls/ca/root.crt",
        "BACKUP_VERIFY_PGSSLCERT": "/etc/pgbackup/verify-tls/client/tls.crt",
        "BACKUP_VERIFY_PGSSLKEY": "/etc/pgbackup/verify-tls/client/tls.key",
    }
    # the backup server's connection, password and certificates stay out of the drill pod
    assert not {"PGHOST", "PGUSER", "PGPASSWORD", "PGSSLROOTCERT", "PGSSLCERT"} & set(env)
    assert env["BACKUP_DESTINATION"] == "s3://backups/pg/prod" and "BACKUP_RETENTION" not in env
    pod = pod_of(cronjob)
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] == ["scratch-ca", "scratch-client"]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == [
        "/tmp",
        "/etc/pgbackup/verify-tls/ca",
        "/etc/pgbackup/verify-tls/client",
    ]
    assert all(m["readOnly"] for m in pod["containers"][0]["volumeMounts"][1:])


def test_verify_server_with_a_plain_user_and_defaults() -> None:
    server = {"host": "scratch", "user": "drill", "passwordSecretRef": {"name": "scratch"}}
    env = env_of(verify_cronjob(verify={"schedule": "0 5 * * 0", "server": server}))
    assert env["BACKUP_VERIFY_PGUSER"] == "drill" and env["BACKUP_VERIFY_PGPORT"] == "5432"
    assert env["BACKUP_VERIFY_PGDATABASE"] == "postgres" and env["BACKUP_VERIFY_PGSSLMODE"] == "prefer"
    assert env["BACKUP_VERIFY_PGPASSWORD"] == {"secretKeyRef": {"name": "scratch", "key": "password"}}
    assert "BACKUP_VERIFY_PGSSLROOTCERT" not in env


LONG_NAMES = [
    "a" * 63,
    "a" * 62,
    "orders-db-in-the-eu-west-1-region-with-a-rather-long-name",
    "x" * 27 + "-verify" + "y" * 20,  # "-verify" exactly where the backup name is cut
    "pgbackup-" + "z" * 40,
    "a" * 36 + "-verify",  # the verify form of "a" * 36 is "pgbackup-aaa...-verify-<hash>"
    *(f"team-{i}-" + "b" * 40 for i in range(20)),
    *("c" * n for n in range(30, 64)),
]


@pytest.mark.parametrize("name", ["prod", "a" * 36, "a" * 37, *LONG_NAMES[:4]])
def test_verify_names_fit_and_are_deterministic(name: str) -> None:
    verify = render.verify_cronjob_name(name)
    full = f"pgbackup-{name}-verify"
    expected = full if len(full) <= 52 else f"pgbackup-{name}"[:36].rstrip("-.") + "-verify-" + _sha8(f"verify:{name}")
    assert verify == expected and len(verify) <= 52 and verify[-1].isalnum()
    assert len(render.manual_job_name(verify, "x")) <= 63


def test_backup_and_verify_names_of_long_names_never_collide() -> None:
    backups = {render.cronjob_name(n) for n in LONG_NAMES}
    verifies = {render.verify_cronjob_name(n) for n in LONG_NAMES}
    assert len(backups) == len(verifies) == len(set(LONG_NAMES))
    assert not backups & verifies
    # the same hash for both would make these two equal: the cut puts "-verify" in both
    tricky = "x" * 27 + "-verify" + "y" * 20
    assert render.cronjob_name(tricky)[:-8] == render.verify_cronjob_name(tricky)[:-8]
    assert render.cronjob_name(tricky) != render.verify_cronjob_name(tricky)


@pytest.mark.parametrize(
    ("fields", "message", "reason"),
    [
        ({"verify": {"schedule": "61 * * * *"}}, "spec.verify.schedule: minute field", "InvalidSchedule"),
        (
            {"verify": {"schedule": "@weekly", "timeZone": "Mars/Olympus"}},
            "spec.verify.timeZone: unknown time zone 'Mars/Olympus'",
            "InvalidTimeZone",
        ),
        ({"verify": {}}, "spec.verify.schedule: '' has 0 fields", "InvalidSchedule"),
        ({"retention": {}}, "spec.retention: set at least one of last, daily, weekly, monthly", "InvalidRetention"),
        (
            {"retention": {"daily": 0}},
            "spec.retention.daily: 0 is not a whole number of at least 1",
            "InvalidRetention",
        ),
        ({"schedule": "61 * * * *"}, "spec.schedule: minute field", "InvalidSchedule"),
        ({"pgDumpOptions": ["-vhevil.example"]}, "spec.pgDumpOptions: must not contain -h", "InvalidPgDumpOptions"),
        (
            {"pgDumpOptions": ["--no-owner", "--por=1"]},
            r"spec.pgDumpOptions: must not contain --port \(written '--por=1'\)",
            "InvalidPgDumpOptions",
        ),
        (
            {"pgDumpOptions": ["--nope"]},
            "spec.pgDumpOptions: is not usable: --nope is not a pg_dump option",
            "InvalidPgDumpOptions",
        ),
    ],
)
def test_invalid_verify_and_retention_name_the_field(fields: dict[str, Any], message: str, reason: str) -> None:
    body = with_spec(**fields)
    for renderer in (render.render_cronjob, render.render_verify_cronjob):
        with pytest.raises(api.RenderError, match=message) as caught:
            renderer(body)
        assert caught.value.reason == reason


def test_job_components() -> None:
    assert status.component({"metadata": {"labels": {"app.kubernetes.io/component": "verify"}}}) == "verify"
    assert status.component({"metadata": {"labels": {"app.kubernetes.io/component": "backup"}}}) == "backup"
    assert status.component({"metadata": {}}) == "backup"


def _verify_job(name: str, outcome: str, when: str) -> dict[str, Any]:
    condition = "Complete" if outcome == "Succeeded" else "Failed"
    job_status: dict[str, Any] = {
        "startTime": when,
        "conditions": [{"type": condition, "status": "True", "lastTransitionTime": when}],
    }
    if outcome == "Succeeded":
        job_status["completionTime"] = when
    return {
        "metadata": {"name": name, "namespace": "db", "labels": render.labels("prod", api.VERIFY)},
        "status": job_status,
    }


class FakeApi:
    """Records what the handlers would write; serves one PgBackup and one Pod message."""

    def __init__(self, owner: dict[str, Any], message: str) -> None:
        self.owner = owner
        self.message = message
        self.patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(kube, "get_pgbackup", lambda namespace, name: copy.deepcopy(self.owner))
        monkeypatch.setattr(
            kube,
            "job_pods",
            lambda namespace, name: [
                {
                    "status": {
                        "containerStatuses": [{"state": {"terminated": {"message": self.message, "finishedAt": "t"}}}]
                    }
                }
            ],
        )
        monkeypatch.setattr(kube, "patch_pgbackup_status", self._patch)
        monkeypatch.setattr(
            kube, "post_event", lambda obj, type_, reason, message: self.events.append((type_, reason, message))
        )

    def _patch(self, namespace: str, name: str, update: dict[str, Any], resource_version: str | None = None) -> None:
        self.patches.append(update)
        self.owner.setdefault("status", {}).update(copy.deepcopy(update))


def _job_event(job: dict[str, Any]) -> None:
    import logging

    handlers.job_changed(
        type="MODIFIED",
        body=job,
        meta=job["metadata"],
        namespace="db",  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
    )


def test_verify_outcomes_go_to_last_verify_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    owner = with_spec(verify={"schedule": "@weekly"})
    backup_status = {"lastSuccessfulTime": "2026-01-01T03:00:00Z", "lastRun": {"jobName": "b", "result": "Succeeded"}}
    owner["status"] = copy.deepcopy(backup_status)
    api = FakeApi(owner, "1 of 2 databases failed verification: 'shop': psql failed")
    api.install(monkeypatch)

    failed = _verify_job("pgbackup-prod-verify-1", "Failed", "2026-01-02T05:01:00Z")
    _job_event(failed)
    _job_event(failed)  # the same outcome seen again
    assert len(api.patches) == 1 and set(api.patches[0]) == {"lastVerify", "conditions"}
    assert owner["status"]["lastVerify"] == {
        "time": "2026-01-02T05:01:00Z",
        "result": "Failed",
        "message": "1 of 2 databases failed verification: 'shop': psql failed",
        "job": "pgbackup-prod-verify-1",
    }
    [condition] = owner["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "LastVerifySucceeded",
        "False",
        "VerifyFailed",
    )
    assert (
        condition["message"]
        == "Job pgbackup-prod-verify-1 failed: 1 of 2 databases failed verification: 'shop': psql failed"
    )
    assert api.events == [("Warning", "VerifyFailed", condition["message"])]

    api.message = "2 of 2 databases verified"
    _job_event(_verify_job("pgbackup-prod-verify-0", "Succeeded", "2026-01-01T05:01:00Z"))  # older: ignored
    assert len(api.patches) == 1
    _job_event(_verify_job("pgbackup-prod-verify-2", "Succeeded", "2026-01-09T05:01:00Z"))
    assert owner["status"]["lastVerify"]["result"] == "Succeeded"
    assert owner["status"]["conditions"][0]["reason"] == "VerifySucceeded"
    assert api.events[-1] == (
        "Normal",
        "VerifySucceeded",
        "Job pgbackup-prod-verify-2 succeeded: 2 of 2 databases verified",
    )
    assert {k: owner["status"][k] for k in backup_status} == backup_status  # the backup fields untouched


def test_running_verify_jobs_are_not_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(with_spec(verify={"schedule": "@weekly"}), "")
    api.install(monkeypatch)
    running = _verify_job("pgbackup-prod-verify-1", "Failed", "2026-01-02T05:01:00Z")
    running["status"] = {"startTime": "2026-01-02T05:00:00Z"}
    _job_event(running)
    assert api.patches == [] and api.events == []


def test_compression_renders_format_level_threads_and_parallel_databases() -> None:
    env = env_of(
        render.render_cronjob(
            with_spec(compression={"format": "zstd", "level": 12, "threads": 3}, parallelDatabases=6), "img:1"
        )
    )
    assert env["BACKUP_COMPRESSION"] == "zstd" and env["BACKUP_COMPRESSION_LEVEL"] == "12"
    assert env["BACKUP_COMPRESSION_THREADS"] == "3" and env["BACKUP_PARALLEL_DATABASES"] == "6"


def test_compression_level_wins_over_the_older_compression_level_field() -> None:
    both = env_of(render.render_cronjob(with_spec(compressionLevel=4, compression={"level": 9}), "img:1"))
    assert both["BACKUP_COMPRESSION_LEVEL"] == "9"
    older = env_of(render.render_cronjob(with_spec(compressionLevel=4, compression={"format": "zstd"}), "img:1"))
    assert older["BACKUP_COMPRESSION_LEVEL"] == "4" and older["BACKUP_COMPRESSION"] == "zstd"


def test_no_level_anywhere_leaves_the_formats_own_default() -> None:
    body = copy.deepcopy(BODY)
    del body["spec"]["compressionLevel"]
    body["spec"]["compression"] = {"format": "zstd"}
    env = env_of(render.render_cronjob(body, "img:1"))
    assert "BACKUP_COMPRESSION_LEVEL" not in env and env["BACKUP_COMPRESSION"] == "zstd"


def test_a_gzip_level_above_9_is_refused_by_field() -> None:
    with pytest.raises(
        api.RenderError, match=r"spec.compression.level: 12 is out of range for gzip: it must be from 1 to 9"
    ):
        render.render_cronjob(with_spec(compression={"format": "gzip", "level": 12}), "img:1")


def test_notify_and_healthcheck_urls_come_from_secrets_only() -> None:
    body = with_spec(
        notify={"urlsSecretRef": {"name": "alerts", "key": "urls"}, "on": "always"},
        healthcheck={"urlSecretRef": {"name": "hc"}},
        verify={"schedule": "@weekly"},
    )
    backup = env_of(render.render_cronjob(body, "img:1"))
    assert backup["BACKUP_NOTIFY_URLS"] == {"secretKeyRef": {"name": "alerts", "key": "urls"}}
    assert backup["BACKUP_NOTIFY_ON"] == "always"
    assert backup["BACKUP_HEALTHCHECK_URL"] == {"secretKeyRef": {"name": "hc", "key": "url"}}
    drill = env_of(verify_cronjob(**{k: body["spec"][k] for k in ("notify", "healthcheck", "verify")}))
    assert drill["BACKUP_NOTIFY_URLS"] == {"secretKeyRef": {"name": "alerts", "key": "urls"}}
    assert "BACKUP_HEALTHCHECK_URL" not in drill  # pings mean "a backup ran"; drills do not ping
    assert "BACKUP_NOTIFY_URLS" not in env_of(render.render_cronjob(BODY, "img:1"))


def test_the_operator_s_json_log_lines_name_the_resource() -> None:
    import json
    import logging

    from pgbackup_operator.cli import OperatorJsonFormatter

    record = logging.LogRecord("kopf.objects", logging.WARNING, __file__, 1, "Handler failed", None, None)
    record.k8s_ref = {"namespace": "db", "name": "shop"}
    line = json.loads(OperatorJsonFormatter().format(record))
    assert (line["level"], line["message"], line["event"], line["object"]) == (
        "WARNING",
        "Handler failed",
        "operator.kopf.objects",
        "db/shop",
    )
    assert line["time"].endswith("Z")


def test_encryption_recipients_go_to_the_backup_pod_and_the_identity_is_a_mounted_file() -> None:
    import pyrage

    public = str(pyrage.x25519.Identity.generate().to_public())
    body = with_spec(
        encryption={
            "recipients": [public, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfe01WyMGxBUoK1maT6gAWpOiMhCcSDGhUwQ2e6z2oA"]
        },
        verify={"schedule": "@weekly", "decryptionSecretRef": {"name": "age-key"}},
    )
    backup = render.render_cronjob(body, "img:1")
    env = env_of(backup)
    assert env["BACKUP_ENCRYPT_RECIPIENTS"].splitlines()[0] == public
    assert "BACKUP_DECRYPT_IDENTITY_PATH" not in env  # the backup pod never gets a private key
    assert all("age" not in v.get("name", "") for v in pod_of(backup)["volumes"])
    drill = verify_cronjob(**{k: body["spec"][k] for k in ("encryption", "verify")})
    drill_env = env_of(drill)
    assert drill_env["BACKUP_DECRYPT_IDENTITY_PATH"] == "/etc/pgbackup/age/identity"
    assert "BACKUP_ENCRYPT_RECIPIENTS" not in drill_env
    volume = next(v for v in pod_of(drill)["volumes"] if v["name"] == "age-identity")
    assert volume["secret"] == {
        "secretName": "age-key",
        "defaultMode": 0o440,
        "items": [{"key": "identity", "path": "identity"}],
    }
    mount = next(m for m in pod_of(drill)["containers"][0]["volumeMounts"] if m["name"] == "age-identity")
    assert mount == {"name": "age-identity", "mountPath": "/etc/pgbackup/age", "readOnly": True}
    by_ref = env_of(render.render_cronjob(with_spec(encryption={"recipientsSecretRef": {"name": "keys"}}), "img:1"))
    assert by_ref["BACKUP_ENCRYPT_RECIPIENTS"] == {"secretKeyRef": {"name": "keys", "key": "recipients"}}
    with pytest.raises(api.RenderError, match=r"spec.encryption.recipients\[1\]: holds 'age1nope'"):
        render.render_cronjobs(with_spec(encryption={"recipients": [public, "age1nope"]}), "img:1")


PUBLIC_KEY = "ed25519:vVou7SwWohd6TEsUiRUKI7DjgihzvjjvPR38Krc+iTA="  # the suite's test key (tests/kit/helpers.py)
NEXT_KEY = "ed25519:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # a second key, as while rotating
SIGNING: dict[str, Any] = {"privateKeySecretRef": {"name": "pgbackup-signing"}, "publicKeys": [PUBLIC_KEY, NEXT_KEY]}


def _every_pod(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every pod spec a PgBackup leads to, by kind: its CronJobs', the prune Job after a sharded
    run, and a PgRestore's."""
    from pgbackup_operator import restores

    pods = {kind: pod_of(cronjob) for kind, cronjob in render.render_all(body, "img:1").items() if cronjob}
    if body["spec"].get("retention"):
        run = {"metadata": {"name": "pgbackup-prod-29400000", "namespace": "db", "uid": "job-uid"}}
        pods["after-run prune"] = render.render_after_run_prune_job(body, run, "img:1")["spec"]["template"]["spec"]
    restore = {
        "metadata": {"name": "back", "namespace": "db", "uid": "r-1"},
        "spec": {"backupRef": {"name": "prod"}, "database": "shop"},
    }
    pods["restore"] = restores.render_restore_job(restore, body, "img:1")["spec"]["template"]["spec"]
    return pods


def _pod_env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}


def test_the_signing_key_is_a_file_in_backup_pods_only_and_every_reader_trusts_the_public_keys() -> None:
    body = with_spec(
        signing=SIGNING,
        parallelism=3,
        retention={"last": 7, "schedule": "0 6 * * *"},
        verify={"schedule": "@weekly", "server": SCRATCH},
    )
    pods = _every_pod(body)
    assert set(pods) == {"backup", "verify", "prune", "after-run prune", "restore"}
    backup = pods["backup"]
    volume = next(v for v in backup["volumes"] if v["name"] == "signing-key")
    assert volume["secret"] == {
        "secretName": "pgbackup-signing",
        "defaultMode": 0o440,
        "items": [{"key": "signing-key", "path": "signing-key.pem"}],
    }  # the CRD's default key
    mount = next(m for m in backup["containers"][0]["volumeMounts"] if m["name"] == "signing-key")
    assert mount == {"name": "signing-key", "mountPath": "/etc/pgbackup/signing", "readOnly": True}
    assert _pod_env(backup)["BACKUP_SIGNING_KEY_FILE"] == "/etc/pgbackup/signing/signing-key.pem"
    sharded = render.render_cronjob(body, "img:1")["spec"]["jobTemplate"]["spec"]
    assert sharded["completionMode"] == "Indexed", "every shard runs this one template, key and all"
    for kind, pod in pods.items():
        env = _pod_env(pod)
        assert env["BACKUP_SIGNING_PUBLIC_KEYS"] == f"{PUBLIC_KEY},{NEXT_KEY}", kind
        if kind != "backup":
            assert "BACKUP_SIGNING_KEY_FILE" not in env, f"the {kind} pod never gets the private key"
            assert "pgbackup-signing" not in str(pod), f"the {kind} pod never names the key's Secret"
    assert all(isinstance(v, str) for k, v in _pod_env(backup).items() if k.startswith("BACKUP_SIGNING_")), (
        "public keys and the key's path are plain values; the key itself is never an environment value"
    )


def test_the_jobs_read_the_signing_settings_back_as_rendered(tmp_path: Path) -> None:
    from backup_job.core import settings as job_settings

    body = with_spec(
        signing={"privateKeySecretRef": {"name": "k", "key": "pem"}, "publicKeys": [PUBLIC_KEY]},
        verify={"schedule": "@weekly", "onBackupServer": True},
        retention={"last": 2},
    )
    for kind, pod in _every_pod(body).items():
        env = {k: v for k, v in _pod_env(pod).items() if isinstance(v, str)}
        settings = job_settings.load_settings(env, dotenv_path=tmp_path / "none")
        assert [str(key) for key in settings.trust.public_keys] == [PUBLIC_KEY], kind
        assert (str(settings.trust.signing_key) if settings.trust.signing_key else None) == (
            "/etc/pgbackup/signing/signing-key.pem" if kind == "backup" else None
        ), kind
        assert settings.trust.verify_on_backup_server is (kind == "verify"), kind
    backup = _every_pod(body)["backup"]
    assert next(v for v in backup["volumes"] if v["name"] == "signing-key")["secret"]["items"] == [
        {"key": "pem", "path": "signing-key.pem"}
    ]


def test_without_signing_nothing_is_signed_or_checked() -> None:
    for kind, pod in _every_pod(with_spec(verify={"schedule": "@weekly"}, retention={"last": 1})).items():
        assert not any(name.startswith("BACKUP_SIGNING_") for name in _pod_env(pod)), kind
        assert not any(v["name"] == "signing-key" for v in pod["volumes"]), kind


@pytest.mark.parametrize(
    ("signing", "message"),
    [
        (
            {"privateKeySecretRef": {"name": "k"}, "publicKeys": [PUBLIC_KEY, "ed25519:nope"]},
            r"spec.signing.publicKeys\[1\]: holds 'ed25519:nope', which is not 32 bytes long",
        ),
        (
            {"privateKeySecretRef": {"name": "k"}, "publicKeys": ["ed25519:n*pe"]},
            r"spec.signing.publicKeys\[0\]: holds 'ed25519:n\*pe', whose key is not base64",
        ),
        (
            {"privateKeySecretRef": {"name": "k"}, "publicKeys": ["age1" + "q" * 58]},
            r"spec.signing.publicKeys\[0\]: holds 'age1qqqq.*which is not an ed25519 public key",
        ),
        ({"privateKeySecretRef": {"name": "k"}, "publicKeys": []}, r"spec.signing.publicKeys: give at least one"),
        ({"publicKeys": [PUBLIC_KEY]}, r"spec.signing.privateKeySecretRef: name the Secret"),
    ],
)
def test_bad_signing_settings_are_refused_naming_the_field(signing: dict[str, Any], message: str) -> None:
    """For specs that did not pass the API server (its schema refuses these too)."""
    with pytest.raises(api.RenderError, match=message) as caught:
        render.render_all(with_spec(signing=signing), "img:1")
    assert caught.value.reason == "InvalidSigningKeys"


def test_only_on_backup_server_lets_the_drill_restore_on_the_backup_server() -> None:
    allowed = env_of(verify_cronjob(verify={"schedule": "@weekly", "onBackupServer": True}))
    assert allowed["BACKUP_VERIFY_ON_BACKUP_SERVER"] == "true" and allowed["PGHOST"] == "pg.db.svc"
    for verify in (
        {"schedule": "@weekly"},
        {"schedule": "@weekly", "onBackupServer": False},
        {"schedule": "@weekly", "server": SCRATCH},
    ):
        assert "BACKUP_VERIFY_ON_BACKUP_SERVER" not in env_of(verify_cronjob(verify=verify)), verify
    for kind, pod in _every_pod(with_spec(verify={"schedule": "@weekly", "onBackupServer": True})).items():
        if kind != "verify":
            assert "BACKUP_VERIFY_ON_BACKUP_SERVER" not in _pod_env(pod), kind


def _conditions(spec: dict[str, Any], current: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    from pgbackup_operator import trust
    from pgbackup_operator.spec import parse_pgbackup

    return {c["type"]: c for c in trust.conditions(parse_pgbackup({"spec": spec}), current or [], 2)}


def test_the_trust_conditions_follow_the_spec() -> None:
    unsigned = _conditions(with_spec()["spec"])
    assert set(unsigned) == {"Signed"}, "no spec.verify, no VerifyIsolated"
    assert (unsigned["Signed"]["status"], unsigned["Signed"]["reason"]) == ("False", "NoSigningKey")
    assert "trusted like the database superuser" in unsigned["Signed"]["message"]
    signed = _conditions(with_spec(signing=SIGNING)["spec"])["Signed"]
    assert (signed["status"], signed["reason"], signed["observedGeneration"]) == ("True", "SigningKeyConfigured", 2)
    assert "Secret pgbackup-signing" in signed["message"] and "2 public keys" in signed["message"]

    lonely = _conditions(with_spec(verify={"schedule": "@weekly"})["spec"])["VerifyIsolated"]
    assert (lonely["status"], lonely["reason"]) == ("False", "NoScratchServer")
    for advice in (
        "spec.verify.server",
        "a superuser",
        "pgbackup restore --globals",
        "spec.verify.onBackupServer: true",
        "every owner of every database is trusted",
    ):
        assert advice in lonely["message"], advice
    isolated = _conditions(with_spec(verify={"schedule": "@weekly", "server": SCRATCH})["spec"])["VerifyIsolated"]
    assert (isolated["status"], isolated["reason"]) == ("True", "ScratchServer")
    assert "scratch.db.svc:6432" in isolated["message"]
    opted = _conditions(with_spec(verify={"schedule": "@weekly", "onBackupServer": True})["spec"])["VerifyIsolated"]
    assert (opted["status"], opted["reason"]) == ("False", "OnBackupServer")

    others = [{"type": "Ready", "status": "True"}, {"type": "Fresh", "status": "False"}, lonely]
    gone = _conditions(with_spec()["spec"], others)
    assert set(gone) == {"Ready", "Fresh", "Signed"}, "removing spec.verify removes its condition, nothing else"


class _Reconciled:
    """``handlers.reconcile`` against a recording stand-in for the few API calls it makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, str]] = []
        monkeypatch.setattr(kube, "apply_cronjob", lambda cronjob: cronjob)
        monkeypatch.setattr(kube, "delete_owned_cronjob", lambda namespace, name, uid: False)
        monkeypatch.setattr(
            kube, "post_event", lambda obj, type_, reason, message: self.events.append((type_, reason, message))
        )

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        import logging

        import kopf

        patch = kopf.Patch()
        handlers.reconcile(
            body=body,
            spec=body["spec"],
            patch=patch,  # type: ignore[arg-type]
            logger=logging.getLogger("test"),
        )
        return dict(patch.status)


def test_a_drill_without_a_scratch_server_is_rendered_and_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reconciled = _Reconciled(monkeypatch)
    body = with_spec(verify={"schedule": "@weekly"})
    written = reconciled(body)
    conditions = {c["type"]: c for c in written["conditions"]}
    assert (conditions["Ready"]["status"], conditions["VerifyIsolated"]["reason"]) == ("True", "NoScratchServer")
    assert "pgbackup-prod-verify" in conditions["Ready"]["message"], "the verify CronJob is still rendered"
    [(type_, reason, message)] = reconciled.events
    assert (type_, reason, message) == ("Warning", "NoScratchServer", conditions["VerifyIsolated"]["message"])

    body["status"] = {"conditions": written["conditions"]}
    reconciled(body)  # the operator restarts, or the PgBackup changes otherwise
    assert len(reconciled.events) == 1, "one Event per change, not one per reconcile"

    body["spec"]["verify"]["server"] = SCRATCH
    written = reconciled(body)
    assert {c["type"]: c for c in written["conditions"]}["VerifyIsolated"]["status"] == "True"
    assert len(reconciled.events) == 1

    broken = with_spec(verify={"schedule": "61 * * * *"})
    written = reconciled(broken)
    conditions = {c["type"]: c for c in written["conditions"]}
    assert (
        conditions["Ready"]["reason"] == "InvalidSchedule"
        and conditions["VerifyIsolated"]["reason"] == "NoScratchServer"
    )


def test_a_server_block_says_how_its_password_may_travel() -> None:
    """spec.postgres, spec.verify.server and a PgRestore's target.server carry the job's password
    policy for the pods that connect to them; without it the job's own default applies."""
    assert "PGREQUIREAUTH" not in env_of(render.render_cronjob(BODY, "img:1"))
    md5 = with_spec(postgres={**BODY["spec"]["postgres"], "requireAuth": "scram-sha-256,md5"})
    backup = env_of(render.render_cronjob(md5, "img:1"))
    assert backup["PGREQUIREAUTH"] == "scram-sha-256,md5" and "BACKUP_ALLOW_CLEARTEXT_PASSWORD" not in backup
    drill = env_of(
        verify_cronjob(verify={"schedule": "0 4 * * 0", "server": {**SCRATCH, "allowCleartextPassword": True}})
    )
    assert drill["BACKUP_ALLOW_CLEARTEXT_PASSWORD"] == "true" and "PGREQUIREAUTH" not in drill
