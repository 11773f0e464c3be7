"""The pod a PgBackup's CronJobs run: the job's environment, certificates and hardening.

Every variable comes from the job's settings schema (``backup_job.core.settings``): its name,
the text form of its value (``Variable.render``) and, where a spec field is absent, its
default. A PostgreSQL server block (``spec.postgres`` or ``spec.verify.server``) renders
through one ``Endpoint``: its variables (libpq's own ``PG*``, or the scratch server's the
job reads for verify) and where its certificates are mounted. A verify pod with a scratch
server gets only that server's variables and Secrets, never the backup server's password.

Secrets stay in Secrets: the pod reads them through ``secretKeyRef`` and read-only volumes,
so the operator never needs to read a Secret itself, and its RBAC grants no access to them.

The pod is locked down as the restricted Pod Security Standard asks: non-root (no fixed ids:
the image's numeric user, or the uid the cluster assigns, see ``RUN_AS``),
read-only root filesystem with an ``emptyDir`` at ``/tmp``, no capabilities, seccomp
``RuntimeDefault``, no privilege escalation, and no service-account token unless a
``serviceAccountName`` is given (for IRSA-style cloud identity).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from backup_job.core import settings as job_settings
from backup_job.core.retention import RULES, RetentionPolicy
from backup_job.core.schema import Variable
from backup_job.core.termination import KUBERNETES_PATH

from .api import Body, RenderError

# Who the pods run as: no fixed uid, gid or fsGroup. The image's ``USER 10001:0`` applies, or
# the uid a cluster assigns (OpenShift's restricted-v2 picks one from the namespace's range,
# with GID 0 and an fsGroup); ``spec.pod.securityContext`` / ``containerSecurityContext`` set
# ids where a policy wants them, merged over these key by key.
RUN_AS: Body = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_RUN_AS: Body = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                          "capabilities": {"drop": ["ALL"]}}
TLS_ROOT = "/etc/pgbackup/tls"
VERIFY_TLS_ROOT = "/etc/pgbackup/verify-tls"


@dataclass(frozen=True)
class Endpoint:
    """How a pod reaches one PostgreSQL server: its variables and its certificates' mounts."""

    variables: job_settings.ServerVariables
    tls_root: str
    volume_prefix: str


SOURCE_ENDPOINT = Endpoint(job_settings.SOURCE_SERVER, TLS_ROOT, "tls")
SCRATCH_ENDPOINT = Endpoint(job_settings.SCRATCH_SERVER, VERIFY_TLS_ROOT, "verify-tls")


def _secret_env(variable: Variable[Any], secret: str, key: str) -> dict[str, Any]:
    return {"name": variable.name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _plain_env(values: dict[Variable[Any], str | None]) -> list[dict[str, Any]]:
    return [{"name": k.name, "value": v} for k, v in values.items() if v not in (None, "")]


def _value(variable: Variable[Any], value: Any) -> str | None:
    """``value`` in the variable's text form; None (not rendered) for None."""
    return None if value is None else variable.render(value)


def retention_policy(spec: Body) -> RetentionPolicy | None:
    """``spec.retention`` as a policy, None to keep everything."""
    retention = spec.get("retention")
    if retention is None:
        return None
    for tier in RULES:
        count = retention.get(tier)
        if tier in retention and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise RenderError(f"spec.retention.{tier}: {count!r} is not a whole number of at least 1; "
                              "it counts backups to keep", "InvalidRetention")
    policy = RetentionPolicy(**{tier: retention[tier] for tier in RULES if tier in retention})
    if not policy:
        raise RenderError(f"spec.retention: set at least one of {', '.join(RULES)}, or remove "
                          "spec.retention to keep every backup", "InvalidRetention")
    return policy


def connection_env(pg: Body, endpoint: Endpoint) -> list[dict[str, Any]]:
    """A server block (``spec.postgres`` or ``spec.verify.server``) as the job's variables."""
    names = endpoint.variables
    env = _plain_env({
        names.host: pg["host"],
        names.port: str(pg.get("port", job_settings.PGPORT.default)),
        names.database: pg.get("database", job_settings.PGDATABASE.default),
        names.sslmode: pg.get("sslMode", job_settings.PGSSLMODE.default),
        names.user: pg.get("user"),
    })
    if "userSecretRef" in pg:
        ref = pg["userSecretRef"]
        env.append(_secret_env(names.user, ref["name"], ref.get("key", "username")))
    password = pg["passwordSecretRef"]
    env.append(_secret_env(names.password, password["name"], password.get("key", "password")))
    tls = pg.get("tls", {})
    root = endpoint.tls_root
    if "caSecretRef" in tls:
        env += _plain_env({names.sslrootcert: f"{root}/ca/{tls['caSecretRef'].get('key', 'ca.crt')}"})
    if "clientCertSecretRef" in tls:
        env += _plain_env({names.sslcert: f"{root}/client/tls.crt", names.sslkey: f"{root}/client/tls.key"})
    return env


def destination_env(spec: Body, credentials: Body | None = None) -> list[dict[str, Any]]:
    """Where backups are, with the bucket's credentials: ``credentials`` (a job's own Secret,
    for least privilege per job) or else the destination's."""
    s3 = spec["destination"]["s3"]
    prefix = s3.get("prefix", "").strip("/")
    compatible = "when_required" if s3.get("checksumCompatibility") else None
    env = _plain_env({
        job_settings.DESTINATION: f"s3://{s3['bucket']}" + (f"/{prefix}" if prefix else ""),
        job_settings.AWS_REGION: s3.get("region"),
        job_settings.AWS_ENDPOINT_URL_S3: s3.get("endpoint"),
        job_settings.S3_ADDRESSING_STYLE: "path" if s3.get("pathStyle") else None,
        job_settings.AWS_REQUEST_CHECKSUM_CALCULATION: compatible,
        job_settings.AWS_RESPONSE_CHECKSUM_VALIDATION: compatible,
        job_settings.S3_SSE: s3.get("serverSideEncryption"),
        job_settings.S3_KMS_KEY_ID: s3.get("kmsKeyId"),
        job_settings.S3_STORAGE_CLASS: s3.get("storageClass"),
    })
    credentials = credentials or s3.get("credentialsSecretRef")
    if credentials:  # the Secret's keys are named like the variables
        for variable in (job_settings.AWS_ACCESS_KEY_ID, job_settings.AWS_SECRET_ACCESS_KEY):
            env.append(_secret_env(variable, credentials["name"], variable.name))
    return env


def _selection(spec: Body) -> dict[Variable[Any], str | None]:
    databases = spec.get("databases", {})
    return {
        job_settings.DATABASES: job_settings.DATABASES.render(tuple(databases.get("include", []))),
        job_settings.EXCLUDE_DATABASES: job_settings.EXCLUDE_DATABASES.render(tuple(databases.get("exclude", []))),
    }


def _compression(spec: Body) -> dict[Variable[Any], str | None]:
    """``spec.compression``; the older ``spec.compressionLevel`` counts when no level is given there."""
    compression = spec.get("compression", {})
    level = compression.get("level", spec.get("compressionLevel"))
    return {
        job_settings.COMPRESSION: _value(job_settings.COMPRESSION, compression.get("format")),
        job_settings.COMPRESSION_LEVEL: _value(job_settings.COMPRESSION_LEVEL, level),
        job_settings.COMPRESSION_THREADS: _value(job_settings.COMPRESSION_THREADS, compression.get("threads")),
    }


def report_env(spec: Body, healthcheck: bool) -> list[dict[str, Any]]:
    """Notifications (and, for backups, the healthcheck pings): URLs from Secrets, never plain."""
    env: list[dict[str, Any]] = []
    notify = spec.get("notify") or {}
    if notify.get("urlsSecretRef"):
        ref = notify["urlsSecretRef"]
        env.append(_secret_env(job_settings.NOTIFY_URLS, ref["name"], ref.get("key", "urls")))
        env += _plain_env({job_settings.NOTIFY_ON: notify.get("on")})
    check = (spec.get("healthcheck") or {}).get("urlSecretRef")
    if healthcheck and check:
        env.append(_secret_env(job_settings.HEALTHCHECK_URL, check["name"], check.get("key", "url")))
    return env


IDENTITY_ROOT = "/etc/pgbackup/age"  # the verify pod's decryption identity, mounted from its Secret


def encryption_env(spec: Body) -> list[dict[str, Any]]:
    """The recipients a backup is sealed to: plain from the spec (public keys), or a secretKeyRef."""
    encryption = spec.get("encryption") or {}
    if encryption.get("recipientsSecretRef"):
        ref = encryption["recipientsSecretRef"]
        return [_secret_env(job_settings.ENCRYPT_RECIPIENTS, ref["name"], ref.get("key", "recipients"))]
    recipients = encryption.get("recipients") or []
    return _plain_env({job_settings.ENCRYPT_RECIPIENTS: "\n".join(recipients) or None})


def identity_mount(spec: Body, ref: Body | None = None) -> tuple[list[Body], list[Body], list[Body]]:
    """A decryption identity (``ref``, else the verify section's): a Secret key mounted as a
    file, its path in ``BACKUP_DECRYPT_IDENTITY_PATH`` (never an env value; the operator
    never reads it). Volumes, mounts, env."""
    ref = ref or (spec.get("verify") or {}).get("decryptionSecretRef")
    if not ref:
        return [], [], []
    volume = {"name": "age-identity", "secret": {"secretName": ref["name"], "defaultMode": 0o440,
                                                 "items": [{"key": ref.get("key", "identity"), "path": "identity"}]}}
    mount = {"name": "age-identity", "mountPath": IDENTITY_ROOT, "readOnly": True}
    env = _plain_env({job_settings.DECRYPT_IDENTITY_PATH: f"{IDENTITY_ROOT}/identity"})
    return [volume], [mount], env


def parallelism(spec: Body) -> int:
    """Pods per backup run (``spec.parallelism``): above 1, an Indexed Job of shards."""
    return int(spec.get("parallelism") or 1)


def prunes_separately(spec: Body) -> bool:
    """Whether retention runs in a prune Job of its own rather than inside the backup run: on
    ``spec.retention.schedule``, or after a sharded run (no shard knows the others succeeded)."""
    retention = spec.get("retention") or {}
    return bool(retention) and (bool(retention.get("schedule")) or parallelism(spec) > 1)


# The Job controller labels and annotates each pod with its Job's name, uid and (Indexed
# Jobs) completion index; the backup pod reads them through the downward API, so every pod
# (and every retry) of one run shares the run's timestamp and id.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SHARD_INDEX = "PGBACKUP_SHARD_INDEX"  # a helper variable BACKUP_SHARD refers to as $(...)


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def run_identity_env(spec: Body) -> list[dict[str, Any]]:
    """The run's identity from the pod's own metadata; for shards, ``BACKUP_SHARD=i/N``."""
    env = [_field_env(job_settings.JOB_NAME.name, f"metadata.labels['{JOB_NAME_LABEL}']"),
           _field_env(job_settings.RUN_ID.name, f"metadata.labels['{CONTROLLER_UID_LABEL}']")]
    shards = parallelism(spec)
    if shards > 1:
        env += [_field_env(SHARD_INDEX, f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
                {"name": job_settings.SHARD.name, "value": f"$({SHARD_INDEX})/{shards}"}]
    return env


def render_env(spec: Body) -> list[dict[str, Any]]:
    """The backup job's settings as container environment variables."""
    retention = None if prunes_separately(spec) else retention_policy(spec)
    settings = _plain_env({
        job_settings.PGAPPNAME: "pgbackup",
        **_selection(spec),
        **_compression(spec),
        job_settings.PARALLEL_DATABASES: _value(job_settings.PARALLEL_DATABASES, spec.get("parallelDatabases")),
        job_settings.PG_DUMP_OPTIONS: _value(job_settings.PG_DUMP_OPTIONS, tuple(spec.get("pgDumpOptions", []))),
        job_settings.GLOBALS: _value(job_settings.GLOBALS, spec.get("globals", job_settings.GLOBALS.default_value)),
        job_settings.RETENTION: _value(job_settings.RETENTION, retention),
        job_settings.SHRINK_ALARM: _value(job_settings.SHRINK_ALARM, spec.get("shrinkAlarm")),
        job_settings.TERMINATION_LOG: KUBERNETES_PATH,
    })
    return [*connection_env(spec["postgres"], SOURCE_ENDPOINT), *destination_env(spec), *settings,
            *run_identity_env(spec), *encryption_env(spec), *report_env(spec, healthcheck=True),
            *spec.get("pod", {}).get("env", [])]


def render_prune_env(spec: Body) -> list[dict[str, Any]]:
    """The prune job's settings: the destination with the retention's own credentials, and the
    policy. No PostgreSQL server: pruning reads and deletes objects only."""
    retention = spec["retention"]
    settings = _plain_env({job_settings.RETENTION: _value(job_settings.RETENTION, retention_policy(spec)),
                           job_settings.TERMINATION_LOG: KUBERNETES_PATH})
    return [*destination_env(spec, retention.get("credentialsSecretRef")), *settings,
            *report_env(spec, healthcheck=False), *spec.get("pod", {}).get("env", [])]


def verify_target(spec: Body) -> tuple[Body, Endpoint]:
    """The server a drill restores into: ``spec.verify.server``, else the backup server."""
    server = spec["verify"].get("server")
    return (server, SCRATCH_ENDPOINT) if server else (spec["postgres"], SOURCE_ENDPOINT)


def render_verify_env(spec: Body) -> list[dict[str, Any]]:
    """The verify job's settings: destination, selection and the server to restore into."""
    verify = spec["verify"]
    selection = ({job_settings.DATABASES: job_settings.DATABASES.render(tuple(verify["databases"]))} if verify.get("databases")
                 else _selection(spec))
    settings = _plain_env({job_settings.PGAPPNAME: "pgbackup", **selection, job_settings.TERMINATION_LOG: KUBERNETES_PATH})
    return [*connection_env(*verify_target(spec)), *destination_env(spec, verify.get("credentialsSecretRef")),
            *settings, *identity_mount(spec)[2], *report_env(spec, healthcheck=False),
            *spec.get("pod", {}).get("env", [])]


def _tls_volumes(pg: Body, endpoint: Endpoint = SOURCE_ENDPOINT) -> tuple[list[Body], list[Body]]:
    """The server's CA and client certificate Secrets, mounted read-only. Mode 0440: the kubelet
    makes the files root's, group root (or the fsGroup), so the pod's GID 0 (or fsGroup) reads
    them under any uid, and libpq accepts a root-owned key of 0640 or less."""
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
        "terminationMessagePath": KUBERNETES_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy({**CONTAINER_RUN_AS, **(pod.get("containerSecurityContext") or {})}),
    }
    for key in ("imagePullPolicy", "resources", "envFrom"):
        if pod.get(key):
            container[key] = pod[key]
    account = pod.get("serviceAccountName")
    pod_spec: Body = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": bool(account),
        "securityContext": copy.deepcopy({**RUN_AS, **(pod.get("securityContext") or {})}),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *tls_volumes],
    }
    if account:
        pod_spec["serviceAccountName"] = account
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        if pod.get(key):
            pod_spec[key] = pod[key]
    return pod_spec


def with_account(spec: Body, account: str | None) -> Body:
    """``spec`` with another pod ServiceAccount (a job's own identity), when one is given."""
    if not account:
        return spec
    return {**spec, "pod": {**spec.get("pod", {}), "serviceAccountName": account}}


def render_pod_spec(spec: Body, default_image: str) -> Body:
    """The backup pod: ``pgbackup run`` against ``spec.postgres``."""
    return _pod_spec(spec, default_image, ["pgbackup", "run"], render_env(spec), _tls_volumes(spec["postgres"]))


def render_verify_pod_spec(spec: Body, default_image: str) -> Body:
    """The verify pod: ``pgbackup verify``, mounting only the target server's certificates and,
    for sealed backups, the decryption identity."""
    volumes, mounts = _tls_volumes(*verify_target(spec))
    identity_volumes, identity_mounts, _env = identity_mount(spec)
    return _pod_spec(with_account(spec, spec["verify"].get("serviceAccountName")), default_image,
                     ["pgbackup", "verify"], render_verify_env(spec),
                     (volumes + identity_volumes, mounts + identity_mounts))


def render_prune_pod_spec(spec: Body, default_image: str) -> Body:
    """The prune pod: ``pgbackup prune`` with the retention's own credentials and account."""
    retention = spec["retention"]
    return _pod_spec(with_account(spec, retention.get("serviceAccountName")), default_image,
                     ["pgbackup", "prune"], render_prune_env(spec), ([], []))


def restore_identity(restore: Body, spec: Body) -> tuple[Body | None, str | None, Body | None]:
    """A PgRestore's read identity: its own credentials and account when given, else the
    PgBackup's verify section's (read-only, like a drill), else the backup's (None: the
    destination's and the pod's); and its decryption identity, else the drill's."""
    verify = spec.get("verify") or {}
    return (restore.get("credentialsSecretRef") or verify.get("credentialsSecretRef"),
            restore.get("serviceAccountName") or verify.get("serviceAccountName"),
            restore.get("decryptionSecretRef") or verify.get("decryptionSecretRef"))


def render_restore_pod_spec(restore: Body, spec: Body, default_image: str, command: list[str]) -> Body:
    """The restore pod of a PgRestore (``restore``, its spec) from its PgBackup's ``spec``: the
    same hardened pod, into ``restore.target.server`` or else the backup server, reading with
    ``restore_identity``."""
    server = (restore.get("target") or {}).get("server") or spec["postgres"]
    credentials, account, decryption = restore_identity(restore, spec)
    identity_volumes, identity_mounts, identity_env = identity_mount(spec, decryption) if decryption else ([], [], [])
    settings = _plain_env({job_settings.PGAPPNAME: "pgbackup", job_settings.TERMINATION_LOG: KUBERNETES_PATH})
    env = [*connection_env(server, SOURCE_ENDPOINT), *destination_env(spec, credentials), *settings, *identity_env,
           *spec.get("pod", {}).get("env", [])]
    volumes, mounts = _tls_volumes(server)
    return _pod_spec(with_account(spec, account), default_image, command, env,
                     (volumes + identity_volumes, mounts + identity_mounts))
