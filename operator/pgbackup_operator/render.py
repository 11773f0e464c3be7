"""Rendering: a PgBackup in, the CronJob that runs it out. Pure functions, no cluster needed.

The CronJob is the whole contract between the operator and the backup job: its pod runs
``pgbackup run`` from the configured image with the settings of the backup job as
environment variables (``PG*``, ``AWS_*``, ``BACKUP_*``). Secrets stay in Secrets: the pod
reads them through ``secretKeyRef`` and read-only volumes, so the operator never needs to
read a Secret itself, and its RBAC grants no access to them.

The pod is locked down as the restricted Pod Security Standard asks: non-root numeric user,
read-only root filesystem with an ``emptyDir`` at ``/tmp``, no capabilities, seccomp
``RuntimeDefault``, no privilege escalation, and no service-account token unless a
``serviceAccountName`` is given (for IRSA-style cloud identity).

Names are fixed and deterministic (``pgbackup-<name>``, shortened with a hash to fit the
52 characters CronJob names may have), so applying twice never creates two CronJobs.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Any

from backup_job import __version__
from backup_job.cron import CronSchedule, load_zone

GROUP = "pgbackup.io"
VERSION = "v1alpha1"
PLURAL = "pgbackups"
KIND = "PgBackup"
NAME_LABEL = f"{GROUP}/name"
MANUAL_LABEL = f"{GROUP}/manual"
RUN_NOW_ANNOTATION = f"{GROUP}/backup-now"
MANAGED_BY = "pgbackup-operator"
DEFAULT_IMAGE = f"ghcr.io/pgbackup/pgbackup:{__version__}"
RUN_AS = 10001
CRONJOB_NAME_MAX = 52
TLS_ROOT = "/etc/pgbackup/tls"
Body = dict[str, Any]


class RenderError(ValueError):
    """The PgBackup cannot be turned into a CronJob; the message says which field and why."""


def cronjob_name(name: str) -> str:
    """``pgbackup-<name>``, or a hashed short form when that exceeds 52 characters."""
    full = f"pgbackup-{name}"
    if len(full) <= CRONJOB_NAME_MAX:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{full[: CRONJOB_NAME_MAX - 9].rstrip('-.')}-{digest}"


def manual_job_name(cronjob: str, run_id: str) -> str:
    """A fixed Job name per backup-now id, so one id never makes a second Job."""
    return f"{cronjob}-m{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "pgbackup",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "backup",
        "app.kubernetes.io/part-of": "pgbackup",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": __version__,
        NAME_LABEL: name,
    }


def owner_reference(body: Body) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _plain_env(values: dict[str, str | None]) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in values.items() if v not in (None, "")]


def render_env(spec: Body) -> list[dict[str, Any]]:
    """The backup job's settings as container environment variables."""
    pg = spec["postgres"]
    s3 = spec["destination"]["s3"]
    databases = spec.get("databases", {})
    prefix = s3.get("prefix", "").strip("/")
    env = _plain_env({
        "PGHOST": pg["host"],
        "PGPORT": str(pg.get("port", 5432)),
        "PGDATABASE": pg.get("database", "postgres"),
        "PGSSLMODE": pg.get("sslMode", "prefer"),
        "PGUSER": pg.get("user"),
        "PGAPPNAME": "pgbackup",
        "BACKUP_DESTINATION": f"s3://{s3['bucket']}" + (f"/{prefix}" if prefix else ""),
        "AWS_REGION": s3.get("region"),
        "AWS_ENDPOINT_URL_S3": s3.get("endpoint"),
        "BACKUP_S3_ADDRESSING_STYLE": "path" if s3.get("pathStyle") else None,
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required" if s3.get("checksumCompatibility") else None,
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required" if s3.get("checksumCompatibility") else None,
        "BACKUP_S3_SSE": s3.get("serverSideEncryption"),
        "BACKUP_S3_KMS_KEY_ID": s3.get("kmsKeyId"),
        "BACKUP_S3_STORAGE_CLASS": s3.get("storageClass"),
        "BACKUP_DATABASES": ",".join(databases.get("include", [])),
        "BACKUP_EXCLUDE_DATABASES": ",".join(databases.get("exclude", [])),
        "BACKUP_COMPRESSION_LEVEL": str(spec.get("compressionLevel", 6)),
        "BACKUP_PG_DUMP_OPTIONS": shlex.join(spec.get("pgDumpOptions", [])),
        "BACKUP_TERMINATION_LOG": "/dev/termination-log",
    })
    if "userSecretRef" in pg:
        ref = pg["userSecretRef"]
        env.append(_secret_env("PGUSER", ref["name"], ref.get("key", "username")))
    password = pg["passwordSecretRef"]
    env.append(_secret_env("PGPASSWORD", password["name"], password.get("key", "password")))
    credentials = s3.get("credentialsSecretRef")
    if credentials:
        env.append(_secret_env("AWS_ACCESS_KEY_ID", credentials["name"], "AWS_ACCESS_KEY_ID"))
        env.append(_secret_env("AWS_SECRET_ACCESS_KEY", credentials["name"], "AWS_SECRET_ACCESS_KEY"))
    tls = pg.get("tls", {})
    if "caSecretRef" in tls:
        env += _plain_env({"PGSSLROOTCERT": f"{TLS_ROOT}/ca/{tls['caSecretRef'].get('key', 'ca.crt')}"})
    if "clientCertSecretRef" in tls:
        env += _plain_env({"PGSSLCERT": f"{TLS_ROOT}/client/tls.crt", "PGSSLKEY": f"{TLS_ROOT}/client/tls.key"})
    return env + list(spec.get("pod", {}).get("env", []))


def _tls_volumes(pg: Body) -> tuple[list[Body], list[Body]]:
    volumes: list[Body] = []
    mounts: list[Body] = []
    tls = pg.get("tls", {})
    for kind, ref_field in (("ca", "caSecretRef"), ("client", "clientCertSecretRef")):
        if ref_field in tls:
            volumes.append({"name": f"tls-{kind}", "secret": {"secretName": tls[ref_field]["name"], "defaultMode": 0o440}})
            mounts.append({"name": f"tls-{kind}", "mountPath": f"{TLS_ROOT}/{kind}", "readOnly": True})
    return volumes, mounts


def render_pod_spec(spec: Body, default_image: str) -> Body:
    pod = spec.get("pod", {})
    tls_volumes, tls_mounts = _tls_volumes(spec["postgres"])
    container: Body = {
        "name": "pgbackup",
        "image": pod.get("image") or default_image,
        "command": ["pgbackup", "run"],
        "env": render_env(spec),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *tls_mounts],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    for key in ("imagePullPolicy", "resources", "envFrom"):
        if pod.get(key):
            container[key] = pod[key]
    account = pod.get("serviceAccountName")
    pod_spec: Body = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": bool(account),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *tls_volumes],
    }
    if account:
        pod_spec["serviceAccountName"] = account
    for key in ("nodeSelector", "tolerations", "affinity"):
        if pod.get(key):
            pod_spec[key] = pod[key]
    return pod_spec


def validate(spec: Body) -> None:
    """What the API server's schema cannot check: the cron fields and the time zone."""
    try:
        CronSchedule.parse(spec["schedule"])
    except ValueError as exc:
        raise RenderError(f"spec.schedule: {exc}") from exc
    try:
        load_zone(spec.get("timeZone", "Etc/UTC"))
    except ValueError as exc:
        raise RenderError(f"spec.timeZone: {exc}") from exc


def render_cronjob(body: Body, default_image: str = DEFAULT_IMAGE) -> Body:
    """The CronJob for a PgBackup; raises ``RenderError`` for a spec it cannot honour."""
    spec = body["spec"]
    validate(spec)
    name = body["metadata"]["name"]
    job = spec.get("job", {})
    pod = spec.get("pod", {})
    common = labels(name)
    job_spec: Body = {
        "backoffLimit": job.get("backoffLimit", 0),
        "template": {
            "metadata": {"labels": {**pod.get("podLabels", {}), **common}},
            "spec": render_pod_spec(spec, default_image),
        },
    }
    if pod.get("podAnnotations"):
        job_spec["template"]["metadata"]["annotations"] = dict(pod["podAnnotations"])
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        if key in job:
            job_spec[key] = job[key]
    cron_spec: Body = {
        "schedule": spec["schedule"],
        "timeZone": spec.get("timeZone", "Etc/UTC"),
        "suspend": bool(spec.get("suspend", False)),
        "concurrencyPolicy": job.get("concurrencyPolicy", "Forbid"),
        "successfulJobsHistoryLimit": job.get("successfulJobsHistoryLimit", 3),
        "failedJobsHistoryLimit": job.get("failedJobsHistoryLimit", 3),
        "jobTemplate": {"metadata": {"labels": common}, "spec": job_spec},
    }
    if "startingDeadlineSeconds" in job:
        cron_spec["startingDeadlineSeconds"] = job["startingDeadlineSeconds"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(name),
            "namespace": body["metadata"]["namespace"],
            "labels": common,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": cron_spec,
    }


def render_manual_job(cronjob: Body, run_id: str) -> Body:
    """A Job from the CronJob's template, for the backup-now annotation."""
    template = cronjob["spec"]["jobTemplate"]
    job_labels = {**template["metadata"]["labels"], MANUAL_LABEL: "true"}
    spec = dict(template["spec"])
    spec["template"] = {
        **spec["template"],
        "metadata": {**spec["template"].get("metadata", {}),
                     "labels": {**spec["template"]["metadata"].get("labels", {}), MANUAL_LABEL: "true"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": manual_job_name(cronjob["metadata"]["name"], run_id),
            "namespace": cronjob["metadata"]["namespace"],
            "labels": job_labels,
            "annotations": {RUN_NOW_ANNOTATION: run_id},
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob["metadata"]["name"],
                "uid": cronjob["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": spec,
    }
