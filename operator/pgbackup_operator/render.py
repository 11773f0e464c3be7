"""Rendering: a PgBackup in, the CronJobs that run it out. Pure functions, no cluster needed.

A PgBackup renders to one or two CronJobs, and they are the whole contract between the
operator and the job: each pod runs a ``pgbackup`` command from the configured image with
the job's settings as environment variables (``PG*``, ``AWS_*``, ``BACKUP_*``).

- the backup CronJob ``pgbackup-<name>`` runs ``pgbackup run`` on ``spec.schedule``; it
  carries the dump settings (compression, pg_dump options, globals, retention, shrink alarm);
- with ``spec.verify``, the verify CronJob ``pgbackup-<name>-verify`` runs ``pgbackup
  verify`` (a restore drill) on its own schedule. It shares the destination, the pod
  settings and the hardening, but none of the dump settings: in particular it never carries
  ``BACKUP_RETENTION``, so a drill can never delete a backup. It restores into
  ``spec.verify.server`` when given, else into the backup server.

A PostgreSQL server block (``spec.postgres`` or ``spec.verify.server``) renders through one
``Endpoint``: the names of its variables (libpq's own ``PG*``, or the ``BACKUP_VERIFY_PG*``
the job reads for a scratch server) and where its certificates are mounted. A verify pod
with a scratch server gets only that server's variables and Secrets, never the backup
server's password.

Secrets stay in Secrets: the pod reads them through ``secretKeyRef`` and read-only volumes,
so the operator never needs to read a Secret itself, and its RBAC grants no access to them.

The pod is locked down as the restricted Pod Security Standard asks: non-root numeric user,
read-only root filesystem with an ``emptyDir`` at ``/tmp``, no capabilities, seccomp
``RuntimeDefault``, no privilege escalation, and no service-account token unless a
``serviceAccountName`` is given (for IRSA-style cloud identity).

Names are fixed and deterministic (``pgbackup-<name>`` and ``pgbackup-<name>-verify``,
shortened with a hash to fit the 52 characters CronJob names may have; the two hashes use
different inputs, so a backup and a verify name never meet), so applying twice never
creates two CronJobs.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from typing import Any

from backup_job import __version__
from backup_job.cron import CronSchedule, load_zone

GROUP = "pgbackup.io"
VERSION = "v1alpha1"
PLURAL = "pgbackups"
KIND = "PgBackup"
NAME_LABEL = f"{GROUP}/name"
MANUAL_LABEL = f"{GROUP}/manual"
COMPONENT_LABEL = "app.kubernetes.io/component"
BACKUP, VERIFY = "backup", "verify"
RUN_NOW_ANNOTATION = f"{GROUP}/backup-now"
MANAGED_BY = "pgbackup-operator"
DEFAULT_IMAGE = f"ghcr.io/pgbackup/pgbackup:{__version__}"
RUN_AS = 10001
CRONJOB_NAME_MAX = 52
TLS_ROOT = "/etc/pgbackup/tls"
VERIFY_TLS_ROOT = "/etc/pgbackup/verify-tls"
TERMINATION_LOG = "/dev/termination-log"
RETENTION_TIERS = ("last", "daily", "weekly", "monthly")  # the order BACKUP_RETENTION is written in
Body = dict[str, Any]


class RenderError(ValueError):
    """The PgBackup cannot be turned into CronJobs; the message says which field and why."""

    def __init__(self, message: str, reason: str = "InvalidSpec") -> None:
        super().__init__(message)
        self.reason = reason  # CamelCase, for the Ready condition and the Event


@dataclass(frozen=True)
class Endpoint:
    """How a pod reaches one PostgreSQL server: its variables' prefix and its certificates' mounts."""

    env_prefix: str
    tls_root: str
    volume_prefix: str


BACKUP_SERVER = Endpoint("", TLS_ROOT, "tls")
SCRATCH_SERVER = Endpoint("BACKUP_VERIFY_", VERIFY_TLS_ROOT, "verify-tls")


def _fit(stem: str, suffix: str, key: str) -> str:
    """``stem + suffix`` if it fits a CronJob name, else ``stem`` cut short + suffix + a hash of ``key``."""
    if len(stem + suffix) <= CRONJOB_NAME_MAX:
        return stem + suffix
    tail = f"{suffix}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return stem[: CRONJOB_NAME_MAX - len(tail)].rstrip("-.") + tail


def cronjob_name(name: str) -> str:
    """``pgbackup-<name>``, or a hashed short form when that exceeds 52 characters."""
    return _fit(f"pgbackup-{name}", "", name)


def verify_cronjob_name(name: str) -> str:
    """``pgbackup-<name>-verify``, or ``pgbackup-<name cut>-verify-<hash>`` when too long.

    The hash input carries a ``verify:`` tag (a colon never occurs in a name), so it differs
    from the backup name's hash input for every pair of PgBackup names."""
    return _fit(f"pgbackup-{name}", "-verify", f"verify:{name}")


def manual_job_name(cronjob: str, run_id: str) -> str:
    """A fixed Job name per backup-now id, so one id never makes a second Job."""
    return f"{cronjob}-m{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def labels(name: str, component: str = BACKUP) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "pgbackup",
        "app.kubernetes.io/instance": name,
        COMPONENT_LABEL: component,
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


def _number(value: float) -> str:
    """A number as the job parses it: ``1`` not ``1.0``, ``0.25`` as written."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def retention_policy(spec: Body) -> str | None:
    """``spec.retention`` as ``BACKUP_RETENTION`` (``last=7,daily=14``), None to keep everything."""
    retention = spec.get("retention")
    if retention is None:
        return None
    tiers = []
    for tier in RETENTION_TIERS:
        if tier not in retention:
            continue
        count = retention[tier]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise RenderError(f"spec.retention.{tier}: {count!r} is not a whole number of at least 1; "
                              "it counts backups to keep", "InvalidRetention")
        tiers.append(f"{tier}={count}")
    if not tiers:
        raise RenderError("spec.retention: set at least one of last, daily, weekly, monthly, or remove "
                          "spec.retention to keep every backup", "InvalidRetention")
    return ",".join(tiers)


def connection_env(pg: Body, endpoint: Endpoint) -> list[dict[str, Any]]:
    """A server block (``spec.postgres`` or ``spec.verify.server``) as the job's variables."""
    prefix = endpoint.env_prefix
    env = _plain_env({
        f"{prefix}PGHOST": pg["host"],
        f"{prefix}PGPORT": str(pg.get("port", 5432)),
        f"{prefix}PGDATABASE": pg.get("database", "postgres"),
        f"{prefix}PGSSLMODE": pg.get("sslMode", "prefer"),
        f"{prefix}PGUSER": pg.get("user"),
    })
    if "userSecretRef" in pg:
        ref = pg["userSecretRef"]
        env.append(_secret_env(f"{prefix}PGUSER", ref["name"], ref.get("key", "username")))
    password = pg["passwordSecretRef"]
    env.append(_secret_env(f"{prefix}PGPASSWORD", password["name"], password.get("key", "password")))
    tls = pg.get("tls", {})
    root = endpoint.tls_root
    if "caSecretRef" in tls:
        env += _plain_env({f"{prefix}PGSSLROOTCERT": f"{root}/ca/{tls['caSecretRef'].get('key', 'ca.crt')}"})
    if "clientCertSecretRef" in tls:
        env += _plain_env({f"{prefix}PGSSLCERT": f"{root}/client/tls.crt", f"{prefix}PGSSLKEY": f"{root}/client/tls.key"})
    return env


def destination_env(spec: Body) -> list[dict[str, Any]]:
    """Where backups are, with the bucket's credentials: the same for backup and verify."""
    s3 = spec["destination"]["s3"]
    prefix = s3.get("prefix", "").strip("/")
    env = _plain_env({
        "BACKUP_DESTINATION": f"s3://{s3['bucket']}" + (f"/{prefix}" if prefix else ""),
        "AWS_REGION": s3.get("region"),
        "AWS_ENDPOINT_URL_S3": s3.get("endpoint"),
        "BACKUP_S3_ADDRESSING_STYLE": "path" if s3.get("pathStyle") else None,
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required" if s3.get("checksumCompatibility") else None,
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required" if s3.get("checksumCompatibility") else None,
        "BACKUP_S3_SSE": s3.get("serverSideEncryption"),
        "BACKUP_S3_KMS_KEY_ID": s3.get("kmsKeyId"),
        "BACKUP_S3_STORAGE_CLASS": s3.get("storageClass"),
    })
    credentials = s3.get("credentialsSecretRef")
    if credentials:
        env.append(_secret_env("AWS_ACCESS_KEY_ID", credentials["name"], "AWS_ACCESS_KEY_ID"))
        env.append(_secret_env("AWS_SECRET_ACCESS_KEY", credentials["name"], "AWS_SECRET_ACCESS_KEY"))
    return env


def _selection(spec: Body) -> dict[str, str | None]:
    databases = spec.get("databases", {})
    return {
        "BACKUP_DATABASES": ",".join(databases.get("include", [])),
        "BACKUP_EXCLUDE_DATABASES": ",".join(databases.get("exclude", [])),
    }


def render_env(spec: Body) -> list[dict[str, Any]]:
    """The backup job's settings as container environment variables."""
    shrink = spec.get("shrinkAlarm")
    settings = _plain_env({
        "PGAPPNAME": "pgbackup",
        **_selection(spec),
        "BACKUP_COMPRESSION_LEVEL": str(spec.get("compressionLevel", 6)),
        "BACKUP_PG_DUMP_OPTIONS": shlex.join(spec.get("pgDumpOptions", [])),
        "BACKUP_GLOBALS": "true" if spec.get("globals", True) else "false",
        "BACKUP_RETENTION": retention_policy(spec),
        "BACKUP_SHRINK_ALARM": None if shrink is None else _number(shrink),
        "BACKUP_TERMINATION_LOG": TERMINATION_LOG,
    })
    return [*connection_env(spec["postgres"], BACKUP_SERVER), *destination_env(spec), *settings,
            *spec.get("pod", {}).get("env", [])]


def verify_target(spec: Body) -> tuple[Body, Endpoint]:
    """The server a drill restores into: ``spec.verify.server``, else the backup server."""
    server = spec["verify"].get("server")
    return (server, SCRATCH_SERVER) if server else (spec["postgres"], BACKUP_SERVER)


def render_verify_env(spec: Body) -> list[dict[str, Any]]:
    """The verify job's settings: destination, selection and the server to restore into."""
    verify = spec["verify"]
    selection = ({"BACKUP_DATABASES": ",".join(verify["databases"])} if verify.get("databases")
                 else _selection(spec))
    settings = _plain_env({"PGAPPNAME": "pgbackup", **selection, "BACKUP_TERMINATION_LOG": TERMINATION_LOG})
    return [*connection_env(*verify_target(spec)), *destination_env(spec), *settings,
            *spec.get("pod", {}).get("env", [])]


def _tls_volumes(pg: Body, endpoint: Endpoint = BACKUP_SERVER) -> tuple[list[Body], list[Body]]:
    volumes: list[Body] = []
    mounts: list[Body] = []
    tls = pg.get("tls", {})
    for kind, ref_field in (("ca", "caSecretRef"), ("client", "clientCertSecretRef")):
        if ref_field in tls:
            name = f"{endpoint.volume_prefix}-{kind}"
            volumes.append({"name": name, "secret": {"secretName": tls[ref_field]["name"], "defaultMode": 0o440}})
            mounts.append({"name": name, "mountPath": f"{endpoint.tls_root}/{kind}", "readOnly": True})
    return volumes, mounts


def _pod_spec(spec: Body, default_image: str, command: list[str], env: list[Body],
              tls: tuple[list[Body], list[Body]]) -> Body:
    pod = spec.get("pod", {})
    tls_volumes, tls_mounts = tls
    container: Body = {
        "name": "pgbackup",
        "image": pod.get("image") or default_image,
        "command": command,
        "env": env,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *tls_mounts],
        "terminationMessagePath": TERMINATION_LOG,
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


def render_pod_spec(spec: Body, default_image: str) -> Body:
    """The backup pod: ``pgbackup run`` against ``spec.postgres``."""
    return _pod_spec(spec, default_image, ["pgbackup", "run"], render_env(spec), _tls_volumes(spec["postgres"]))


def render_verify_pod_spec(spec: Body, default_image: str) -> Body:
    """The verify pod: ``pgbackup verify``, mounting only the target server's certificates."""
    return _pod_spec(spec, default_image, ["pgbackup", "verify"], render_verify_env(spec),
                     _tls_volumes(*verify_target(spec)))


def _validate_timing(schedule: str, zone: str, field: str) -> None:
    try:
        CronSchedule.parse(schedule)
    except ValueError as exc:
        raise RenderError(f"{field}.schedule: {exc}", "InvalidSchedule") from exc
    try:
        load_zone(zone)
    except ValueError as exc:
        raise RenderError(f"{field}.timeZone: {exc}", "InvalidTimeZone") from exc


def verify_time_zone(spec: Body) -> str:
    return str(spec["verify"].get("timeZone") or spec.get("timeZone") or "Etc/UTC")


def validate(spec: Body) -> None:
    """What the API server's schema cannot check: cron fields, time zones, and (for callers
    that bypass the schema) a retention policy that keeps something."""
    _validate_timing(spec["schedule"], spec.get("timeZone", "Etc/UTC"), "spec")
    retention_policy(spec)
    if spec.get("verify") is not None:
        _validate_timing(spec["verify"].get("schedule", ""), verify_time_zone(spec), "spec.verify")


def _job_spec(spec: Body, common: dict[str, str], pod_spec: Body) -> Body:
    job = spec.get("job", {})
    pod = spec.get("pod", {})
    job_spec: Body = {
        "backoffLimit": job.get("backoffLimit", 0),
        "template": {
            "metadata": {"labels": {**pod.get("podLabels", {}), **common}},
            "spec": pod_spec,
        },
    }
    if pod.get("podAnnotations"):
        job_spec["template"]["metadata"]["annotations"] = dict(pod["podAnnotations"])
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        if key in job:
            job_spec[key] = job[key]
    return job_spec


def _cronjob(body: Body, name: str, component: str, timing: Body, pod_spec: Body) -> Body:
    """A CronJob owned by the PgBackup; ``timing`` holds schedule, timeZone, suspend, concurrencyPolicy."""
    spec = body["spec"]
    job = spec.get("job", {})
    common = labels(body["metadata"]["name"], component)
    cron_spec: Body = {
        **timing,
        "successfulJobsHistoryLimit": job.get("successfulJobsHistoryLimit", 3),
        "failedJobsHistoryLimit": job.get("failedJobsHistoryLimit", 3),
        "jobTemplate": {"metadata": {"labels": common}, "spec": _job_spec(spec, common, pod_spec)},
    }
    if "startingDeadlineSeconds" in job:
        cron_spec["startingDeadlineSeconds"] = job["startingDeadlineSeconds"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": body["metadata"]["namespace"],
            "labels": common,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": cron_spec,
    }


def render_cronjob(body: Body, default_image: str = DEFAULT_IMAGE) -> Body:
    """The backup CronJob for a PgBackup; raises ``RenderError`` for a spec it cannot honour."""
    spec = body["spec"]
    validate(spec)
    timing = {
        "schedule": spec["schedule"],
        "timeZone": spec.get("timeZone", "Etc/UTC"),
        "suspend": bool(spec.get("suspend", False)),
        "concurrencyPolicy": spec.get("job", {}).get("concurrencyPolicy", "Forbid"),
    }
    return _cronjob(body, cronjob_name(body["metadata"]["name"]), BACKUP, timing,
                    render_pod_spec(spec, default_image))


def render_verify_cronjob(body: Body, default_image: str = DEFAULT_IMAGE) -> Body | None:
    """The verify CronJob, or None without ``spec.verify``. Suspending the PgBackup suspends
    it too; drills never overlap (``Forbid``) whatever the backup's concurrencyPolicy."""
    spec = body["spec"]
    validate(spec)
    verify = spec.get("verify")
    if verify is None:
        return None
    timing = {
        "schedule": verify["schedule"],
        "timeZone": verify_time_zone(spec),
        "suspend": bool(spec.get("suspend", False) or verify.get("suspend", False)),
        "concurrencyPolicy": "Forbid",
    }
    return _cronjob(body, verify_cronjob_name(body["metadata"]["name"]), VERIFY, timing,
                    render_verify_pod_spec(spec, default_image))


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
