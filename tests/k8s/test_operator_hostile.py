"""Hostile input on the operator's side, on the real control plane: a PgBackup or PgRestore
grants nothing beyond its author's rights.

The author is ``alice``, whom a Role allows PgBackups and PgRestores in one namespace, and
reading its Secrets, nothing else; she acts through ``kubectl --as=alice``. What she writes must not take a
CronJob somebody else made (nor have it deleted with her PgBackup), must not reach a pod
the job itself would refuse, and a pod's termination message must not break or fill the
status with what it should not hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import Bucket
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from .test_operator_day_two import _pods, _run_now, _run_pods, _setup
from .test_operator_day_two import _spec as real_spec

GROUP, VERSION = "pgbackup.io", "v1alpha1"
AUTHOR = "alice"


def _allow_author(kube: KubeEnv, namespace: str) -> None:
    """A Role granting ``alice`` PgBackups and PgRestores in ``namespace`` and reading the
    Secrets they name (the admission policy asks), nothing else: no pods, Jobs or CronJobs."""
    rules = [
        {
            "apiGroups": [GROUP],
            "resources": ["pgbackups", "pgrestores"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    ]
    kube.plane.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "Role",
                        "metadata": {"name": "cr-author"},
                        "rules": rules,
                    },
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "RoleBinding",
                        "metadata": {"name": "cr-author"},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cr-author"},
                        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": AUTHOR}],
                    },
                ],
            }
        ),
    )
    denied = kube.plane.kubectl(f"--as={AUTHOR}", "auth", "can-i", "create", "cronjobs", "-n", namespace, check=False)
    assert denied.stdout.strip() == "no", "the author may not write CronJobs herself"


def _as_author(kube: KubeEnv, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    """Create a PgBackup or PgRestore as ``alice``."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    created = kube.plane.kubectl(f"--as={AUTHOR}", "create", "-f", "-", input=json.dumps(body), check=False)
    assert created.returncode == 0, created.stderr


def _spec(**overrides: Any) -> dict[str, Any]:
    return {
        "schedule": "30 2 * * *",
        "postgres": {"host": "pg.example", "user": "backup", "passwordSecretRef": {"name": "pg"}},
        "destination": {"s3": {"bucket": "backups", "prefix": "prod"}},
        **overrides,
    }


def _warned(kube: KubeEnv, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.events(namespace, name) if e["type"] == "Warning" and e["reason"] == reason]


def _restore_status(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any]:
    found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pgrestores", name)
    return dict(found.get("status") or {})


# --- what the job would refuse, the operator refuses first ---------------------------------

CONNECTION_OPTIONS = {
    "host": ["--no-owner", "--ho=evil.example"],
    "short-host": ["-vhevil.example"],
    "port": ["--port=6543"],
    "short-port": ["-p6543"],
    "user": ["--user=postgres"],
    "short-user": ["-Upostgres"],
}


def test_pg_dump_connection_options_are_refused_before_any_cronjob(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """The CRD admits any item starting with ``-``; the job's own parser refuses another server
    or user (the server's password would go there) however it is spelled, and so does the
    operator, before a CronJob or a backup-now Job exists."""
    _allow_author(kube, namespace)
    for name, options in CONNECTION_OPTIONS.items():
        _as_author(kube, namespace, "PgBackup", name, _spec(pgDumpOptions=options))
    for name in CONNECTION_OPTIONS:
        wait_for(lambda name=name: kube.condition(namespace, name, "Ready"), timeout=30, what=f"{name}: Ready")
        ready = kube.condition(namespace, name, "Ready")
        assert ready is not None and (ready["status"], ready["reason"]) == ("False", "InvalidPgDumpOptions"), ready
        assert (
            ready["message"].startswith("spec.pgDumpOptions: must not contain -") and "PGPASSWORD" in ready["message"]
        )
        wait_for(
            lambda name=name: _warned(kube, namespace, name, "InvalidPgDumpOptions"),
            timeout=30,
            what=f"{name}: a Warning Event",
        )
        assert kube.cronjob(namespace, f"pgbackup-{name}") is None
    host = kube.condition(namespace, "host", "Ready")
    assert host is not None and "--host (written '--ho=evil.example')" in host["message"]

    kube.plane.kubectl(f"--as={AUTHOR}", "annotate", "pgb", "host", "-n", namespace, "pgbackup.io/backup-now=1")
    wait_for(
        lambda: len(_warned(kube, namespace, "host", "InvalidPgDumpOptions")) >= 2,
        timeout=30,
        what="the annotation reconciled",
    )
    assert kube.jobs(namespace) == [], "no Job for a backup the job would refuse"


ATTACKER = "https://attacker.example"


def test_an_endpoint_the_installer_did_not_allow_gets_no_cronjob(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """The session operator allows no endpoint (PGBACKUP_ALLOWED_BLOB_ENDPOINTS unset), so an
    Azure or GCS ``endpoint`` (where the pods would send their SAS token or Google token)
    renders nothing, whoever wrote it."""
    _allow_author(kube, namespace)
    _as_author(
        kube,
        namespace,
        "PgBackup",
        "azure",
        _spec(destination={"azure": {"account": "acct01", "container": "pg-backups", "endpoint": ATTACKER}}),
    )
    _as_author(
        kube, namespace, "PgBackup", "gcs", _spec(destination={"gcs": {"bucket": "pg-backups", "endpoint": ATTACKER}})
    )
    for kind in ("azure", "gcs"):
        wait_for(lambda kind=kind: kube.condition(namespace, kind, "Ready"), timeout=30, what=f"{kind}: Ready")
        ready = kube.condition(namespace, kind, "Ready")
        assert ready is not None and (ready["status"], ready["reason"]) == ("False", "EndpointNotAllowed"), ready
        assert ready["message"].startswith(f"spec.destination.{kind}.endpoint: '{ATTACKER}'"), ready["message"]
        assert "PGBACKUP_ALLOWED_BLOB_ENDPOINTS" in ready["message"]
        assert kube.cronjob(namespace, f"pgbackup-{kind}") is None
    assert kube.jobs(namespace) == []


def test_a_pgrestore_at_the_job_would_refuse_fails_without_a_job(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """``spec.at: 9999-12-31`` passes the CRD's pattern; the job's ``--at`` parser refuses it
    (the end of that day is past what a time can hold), and so does the operator: phase Failed,
    ``Restored=False`` with ``InvalidAt``, one Warning Event, no Job."""
    _allow_author(kube, namespace)
    _as_author(kube, namespace, "PgBackup", "src", _spec())
    for name, at in (("far", "9999-12-31"), ("feb", "2026-02-30")):
        _as_author(kube, namespace, "PgRestore", name, {"backupRef": {"name": "src"}, "database": "app", "at": at})
    for name, refused in (("far", "is out of range (years 1970 to 9998)"), ("feb", "is not a valid time")):
        wait_for(
            lambda name=name: _restore_status(kube, namespace, name).get("phase") == "Failed",
            timeout=30,
            what=f"{name}: phase Failed",
        )
        status = _restore_status(kube, namespace, name)
        [restored] = [c for c in status["conditions"] if c["type"] == "Restored"]
        assert (restored["status"], restored["reason"]) == ("False", "InvalidAt")
        assert status["message"].startswith("spec.at: --at '") and refused in status["message"], status["message"]
        assert "jobName" not in status
        wait_for(lambda name=name: _warned(kube, namespace, name, "InvalidAt"), timeout=30, what=f"{name}: a Warning")
    assert kube.jobs(namespace) == []


def _refused(kube: KubeEnv, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> str:
    """Create as ``alice`` what the API server must refuse; its complaint."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    created = kube.plane.kubectl(
        f"--as={AUTHOR}", "create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False
    )
    assert created.returncode != 0, f"{kind} {name} was accepted: {spec}"
    return str(created.stderr)


HOSTILE_TABLES = {"option": "--table=x;DROP", "dash": "-x.y", "newline": "public.orders\n--clean"}


def test_a_hostile_table_never_reaches_a_restore_s_command(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """A PgRestore's ``tables`` and ``into`` become words of the restore's command. A second
    option, a word starting with ``-`` or a newline is refused by the API server, naming the
    field; what passes (a quoted name may hold ``;`` and spaces) is one word each, ``--table=``
    before it, in an argument list no shell reads. ``dumpJobs`` without ``format: split`` is
    refused too; with it, the backup pods are told."""
    _allow_author(kube, namespace)
    _as_author(kube, namespace, "PgBackup", "src", _spec(format="split", dumpJobs=8))
    for name, table in HOSTILE_TABLES.items():
        complaint = _refused(
            kube, namespace, "PgRestore", name, {"backupRef": {"name": "src"}, "database": "app", "tables": [table]}
        )
        assert "spec.tables[0]" in complaint and "should match" in complaint, complaint
        complaint = _refused(
            kube,
            namespace,
            "PgRestore",
            f"{name}-into",
            {"backupRef": {"name": "src"}, "database": "app", "tables": ["public.orders"], "into": table},
        )
        assert "spec.into" in complaint and "should match" in complaint, complaint
    beside = {"backupRef": {"name": "src"}, "database": "app", "tables": ["public.a", "public.b"], "into": "public.c"}
    assert "spec.into restores one table beside the live one" in _refused(kube, namespace, "PgRestore", "two", beside)
    plain = _spec(dumpJobs=4)
    assert "spec.dumpJobs needs spec.format: split" in _refused(kube, namespace, "PgBackup", "plain", plain)

    quoted = '"Sales"."Q1; DROP TABLE x --clean"'
    _as_author(
        kube,
        namespace,
        "PgRestore",
        "some",
        {"backupRef": {"name": "src"}, "database": "app", "tables": ["public.orders", quoted], "jobs": 4},
    )
    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the restore Job")
    [job] = kube.jobs(namespace)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "pgbackup",
        "restore",
        "--database=app",
        "--table=public.orders",
        f"--table={quoted}",
        "--jobs=4",
    ]
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-src"), timeout=30, what="the backup CronJob")
    cronjob = kube.cronjob(namespace, "pgbackup-src")
    assert cronjob is not None
    [backup] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in backup["env"]}
    assert (env["BACKUP_FORMAT"], env["BACKUP_DUMP_JOBS"]) == ("split", "8")


# --- a CronJob the operator does not own ---------------------------------------------------


def _admin_cronjob(kube: KubeEnv, namespace: str, name: str) -> dict[str, Any]:
    """A CronJob an admin made by hand: no owner, nothing of the operator's."""
    container = {"name": "main", "image": "registry.example/legacy-backup:1", "command": ["/backup.sh"]}
    body = {
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 1 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}},
        },
    }
    return kube.plain(kube.batch.create_namespaced_cron_job(namespace, body))


def _delete_pgbackup(kube: KubeEnv, namespace: str, name: str) -> None:
    kube.plane.kubectl(f"--as={AUTHOR}", "delete", "pgb", name, "-n", namespace, "--wait=true")


def test_a_cronjob_nobody_owns_is_never_taken_over_nor_deleted(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """An admin's ``pgbackup-legacy`` is not the operator's: a PgBackup ``legacy`` gets
    ``CronJobNameTaken`` (condition and Event), the CronJob is not patched, and deleting the
    PgBackup leaves it. Only the admin's ``pgbackup.io/adopt=legacy`` label hands it over."""
    _allow_author(kube, namespace)
    legacy = _admin_cronjob(kube, namespace, "pgbackup-legacy")
    _as_author(kube, namespace, "PgBackup", "legacy", _spec())
    wait_for(lambda: kube.condition(namespace, "legacy", "Ready"), timeout=30, what="a Ready condition")
    ready = kube.condition(namespace, "legacy", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "CronJobNameTaken"), ready
    assert "CronJob pgbackup-legacy exists and no PgBackup owns it" in ready["message"]
    assert "pgbackup.io/adopt=legacy" in ready["message"]
    wait_for(lambda: _warned(kube, namespace, "legacy", "CronJobNameTaken"), timeout=30, what="a Warning Event")
    untouched = kube.cronjob(namespace, "pgbackup-legacy")
    assert untouched is not None and untouched["metadata"]["resourceVersion"] == legacy["metadata"]["resourceVersion"]
    assert not untouched["metadata"].get("ownerReferences") and untouched["spec"]["schedule"] == "0 1 * * *"

    _delete_pgbackup(kube, namespace, "legacy")
    kept = kube.cronjob(namespace, "pgbackup-legacy")
    assert kept is not None and kept["metadata"]["uid"] == legacy["metadata"]["uid"], "deleted with the PgBackup"

    kube.batch.patch_namespaced_cron_job(
        "pgbackup-legacy", namespace, {"metadata": {"labels": {"pgbackup.io/adopt": "legacy"}}}
    )
    _as_author(kube, namespace, "PgBackup", "legacy", _spec())
    owner_uid = kube.pgbackup(namespace, "legacy")["metadata"]["uid"]
    wait_for(
        lambda: (kube.condition(namespace, "legacy", "Ready") or {}).get("status") == "True",
        timeout=30,
        what="Ready once the admin labelled the CronJob for adoption",
    )
    adopted = kube.cronjob(namespace, "pgbackup-legacy")
    assert adopted is not None and adopted["metadata"]["uid"] == legacy["metadata"]["uid"]
    assert [ref["uid"] for ref in adopted["metadata"]["ownerReferences"] if ref.get("controller")] == [owner_uid]
    assert adopted["spec"]["schedule"] == "30 2 * * *"


HOLD = "test.pgbackup.io/hold"


def test_the_cronjob_of_a_deleted_pgbackup_of_the_same_name_is_waited_for(
    kube: KubeEnv, operator: OperatorProcess, namespace: str
) -> None:
    """A PgBackup deleted and made again at once: its predecessor's CronJob, which garbage
    collection is deleting (held here by a finalizer, so the test sees that moment), is
    waited for (``Ready=Unknown``, ``PredecessorLeaving``), never ``CronJobNameTaken``."""
    _allow_author(kube, namespace)
    _as_author(kube, namespace, "PgBackup", "again", _spec())
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-again"), timeout=30, what="the first CronJob")
    kube.batch.patch_namespaced_cron_job("pgbackup-again", namespace, {"metadata": {"finalizers": [HOLD]}})
    _delete_pgbackup(kube, namespace, "again")
    wait_for(
        lambda: (kube.cronjob(namespace, "pgbackup-again") or {}).get("metadata", {}).get("deletionTimestamp"),
        timeout=60,
        what="garbage collection deleting the first CronJob",
    )

    _as_author(kube, namespace, "PgBackup", "again", _spec(schedule="15 4 * * *"))
    wait_for(
        lambda: (kube.condition(namespace, "again", "Ready") or {}).get("reason") == "PredecessorLeaving",
        timeout=30,
        what="Ready=Unknown while the old CronJob goes",
    )
    assert (kube.condition(namespace, "again", "Ready") or {}).get("status") == "Unknown"
    kube.batch.patch_namespaced_cron_job("pgbackup-again", namespace, {"metadata": {"finalizers": None}})
    wait_for(
        lambda: (kube.condition(namespace, "again", "Ready") or {}).get("status") == "True",
        timeout=30,
        what="Ready once the old CronJob is gone",
    )
    cronjob = kube.cronjob(namespace, "pgbackup-again")
    assert cronjob is not None and cronjob["spec"]["schedule"] == "15 4 * * *"
    assert cronjob["metadata"]["ownerReferences"][0]["uid"] == kube.pgbackup(namespace, "again")["metadata"]["uid"]
    assert not _warned(kube, namespace, "again", "CronJobNameTaken")
    assert not [e for e in kube.events(namespace, "again") if e["reason"] == "DriftCorrected"]


# --- status cannot be poisoned -------------------------------------------------------------

SSN = "123-45-6789"  # a row value: it may be in the job's log, never in status, Events or alerts
LOAD_ERROR = f'psql failed at line 40: ERROR:  invalid input syntax for type integer: "{SSN}"'


def _series(scraped: str, metric: str, namespace: str, name: str) -> list[str]:
    return [
        line
        for line in scraped.splitlines()
        if line.startswith(metric + "{") and f'namespace="{namespace}"' in line and f'name="{name}"' in line
    ]


def test_a_termination_message_cannot_poison_the_status(
    kube: KubeEnv, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    """A termination message with ``NaN``, ``Infinity`` and out-of-range figures, and a row
    value in its summary: the run is still recorded (``lastRun`` Failed, the condition, one
    Event, the metric the alert reads), without those figures and without the value."""
    _allow_author(kube, namespace)
    _as_author(kube, namespace, "PgBackup", "poison", _spec())
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-poison"), timeout=30, what="the CronJob")
    cronjob = kube.cronjob(namespace, "pgbackup-poison")
    assert cronjob is not None
    job = kube.start_job(cronjob, "1")
    pod = kube.pod_of(namespace, job)
    assert pod is not None
    summary = f"1 of 2 backups failed: 'people': {LOAD_ERROR}; 'other': ok"
    message = (
        '{"v":1,"command":"run","ok":false,"summary":' + json.dumps(summary) + ',"timestamp":"20261206T020000Z",'
        '"seconds":NaN,"bytes":1e999,"databases":{"ok":Infinity,"failed":-1},"failed":["people"]}'
    )
    Kubelet(kube, tmp_path, tmp_path).finish(pod, 1, message)

    def last_run() -> dict[str, Any]:
        return dict(kube.pgbackup(namespace, "poison").get("status", {}).get("lastRun") or {})

    wait_for(lambda: last_run().get("result") == "Failed", timeout=30, what="the failed run recorded")
    run = last_run()
    assert run["jobName"] == job and run["failedDatabases"] == ["people"] and run["timestamp"] == "20261206T020000Z"
    assert not {"durationSeconds", "duration", "bytes", "size", "databases"} & set(run), run
    assert "invalid input syntax for type integer" in run["message"] and SSN not in run["message"], run["message"]
    condition = kube.condition(namespace, "poison", "LastBackupSucceeded")
    assert condition is not None and (condition["status"], condition["reason"]) == ("False", "BackupFailed")
    assert SSN not in condition["message"]
    wait_for(lambda: _warned(kube, namespace, "poison", "BackupFailed"), timeout=30, what="a BackupFailed Event")
    [event] = _warned(kube, namespace, "poison", "BackupFailed")
    assert "invalid input syntax" in event["message"] and SSN not in event["message"]
    wait_for(
        lambda: _series(operator.scrape(), "pgbackup_last_run_success", namespace, "poison"),
        timeout=30,
        what="the last run's metric",
    )
    [success] = _series(operator.scrape(), "pgbackup_last_run_success", namespace, "poison")
    assert success.endswith(" 0.0"), "PgBackupLastRunFailed fires on it"


def test_a_failed_load_keeps_row_values_out_of_a_pgrestore_s_status(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    """A real restore that fails on a row (a tenant's CHECK, true where the data came from,
    casts the column to integer elsewhere): psql's error quotes the value. The job's log keeps
    it; the PgRestore's message, condition and Event carry the error without it."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        f"CREATE FUNCTION public.ssn_ok(v text) RETURNS boolean LANGUAGE sql AS "
        f"$$ SELECT CASE WHEN current_database() = '{dbname}' THEN true ELSE v::integer IS NOT NULL END $$",
        dbname,
    )
    pg18.sql(f"CREATE TABLE people (ssn text CHECK (public.ssn_ok(ssn))); INSERT INTO people VALUES ('{SSN}')", dbname)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "src", real_spec(pg18, bucket, dbname))
    kubelet = Kubelet(kube, bindir18, tmp_path)
    _run_pods(kube, kubelet, namespace, _run_now(kube, namespace, "src", "first"))
    wait_for(
        lambda: kube.pgbackup(namespace, "src").get("status", {}).get("lastRun", {}).get("result") == "Succeeded",
        timeout=60,
        what="the backup recorded",
    )

    _allow_author(kube, namespace)
    _as_author(
        kube,
        namespace,
        "PgRestore",
        "copy",
        {"backupRef": {"name": "src"}, "database": dbname, "target": {"database": f"{dbname}_r", "create": True}},
    )
    wait_for(lambda: _pods(kube, namespace, "pgrestore-copy"), timeout=60, what="the restore pod")
    result = kubelet.run(_pods(kube, namespace, "pgrestore-copy")[0])
    assert result.returncode != 0 and SSN in result.stdout + result.stderr, "the job's own log has the whole error"
    wait_for(lambda: _restore_status(kube, namespace, "copy").get("phase") == "Failed", timeout=60, what="Failed")
    status = _restore_status(kube, namespace, "copy")
    assert "invalid input syntax for type integer" in status["message"], status["message"]
    [restored] = [c for c in status["conditions"] if c["type"] == "Restored"]
    assert SSN not in status["message"] and SSN not in restored["message"]
    wait_for(lambda: _warned(kube, namespace, "copy", "RestoreFailed"), timeout=30, what="a RestoreFailed Event")
    assert all(SSN not in event["message"] for event in kube.events(namespace, "copy"))
