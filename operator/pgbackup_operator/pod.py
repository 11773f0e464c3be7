"""The pod a PgBackup's CronJobs run: the job's environment, certificates and hardening.

Every variable comes from the job's settings schema (``backup_job.core.settings``): its name,
the text form of its value (``Variable.render``) and, where a spec field is absent, its
default. A PostgreSQL server block (``spec.postgres`` or ``spec.verify.server``) renders
through one ``Endpoint``: its variables (libpq's own ``PG*``, or the scratch server's the
job reads for verify) and where its certificates are mounted. A verify pod with a scratch
server gets only that server's variables and Secrets, never the backup server's password.

Secrets stay in Secrets: the pod reads them through ``secretKeyRef`` and read-only volumes,
so the operator never needs to read a Secret itself, and its RBAC grants no access to them.

The pod is locked down as the restricted Pod Security Standard asks: non-root numeric user,
read-only root filesystem with an ``emptyDir`` at ``/tmp``, no capabilities, seccomp
``RuntimeDefault``, no privilege escalation, and no service-account token unless a
``serviceAccountName`` is given (for IRSA-style cloud identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup_job.core import settings as job_settings
from backup_job.core.retention import RULES, RetentionPolicy
from backup_job.core.schema import Variable
from backup_job.core.termination import KUBERNETES_PATH

from .api import Body, RenderError

RUN_AS = 10001
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


def destination_env(spec: Body) -> list[dict[str, Any]]:
    """Where backups are, with the bucket's credentials: the same for backup and verify."""
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
    credentials = s3.get("credentialsSecretRef")
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


def identity_mount(spec: Body) -> tuple[list[Body], list[Body], list[Body]]:
    """The verify pod's identity: a Secret key mounted as a file, its path in
    ``BACKUP_DECRYPT_IDENTITY_PATH`` (never an env value; the operator never reads it)."""
    ref = (spec.get("verify") or {}).get("decryptionSecretRef")
    if not ref:
        return [], [], []
    volume = {"name": "age-identity", "secret": {"secretName": ref["name"], "defaultMode": 0o440,
                                                 "items": [{"key": ref.get("key", "identity"), "path": "identity"}]}}
    mount = {"name": "age-identity", "mountPath": IDENTITY_ROOT, "readOnly": True}
    env = _plain_env({job_settings.DECRYPT_IDENTITY_PATH: f"{IDENTITY_ROOT}/identity"})
    return [volume], [mount], env


def render_env(spec: Body) -> list[dict[str, Any]]:
    """The backup job's settings as container environment variables."""
    settings = _plain_env({
        job_settings.PGAPPNAME: "pgbackup",
        **_selection(spec),
        **_compression(spec),
        job_settings.PARALLEL_DATABASES: _value(job_settings.PARALLEL_DATABASES, spec.get("parallelDatabases")),
        job_settings.PG_DUMP_OPTIONS: _value(job_settings.PG_DUMP_OPTIONS, tuple(spec.get("pgDumpOptions", []))),
        job_settings.GLOBALS: _value(job_settings.GLOBALS, spec.get("globals", job_settings.GLOBALS.default_value)),
        job_settings.RETENTION: _value(job_settings.RETENTION, retention_policy(spec)),
        job_settings.SHRINK_ALARM: _value(job_settings.SHRINK_ALARM, spec.get("shrinkAlarm")),
        job_settings.TERMINATION_LOG: KUBERNETES_PATH,
    })
    return [*connection_env(spec["postgres"], SOURCE_ENDPOINT), *destination_env(spec), *settings,
            *encryption_env(spec), *report_env(spec, healthcheck=True), *spec.get("pod", {}).get("env", [])]


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
    return [*connection_env(*verify_target(spec)), *destination_env(spec), *settings, *identity_mount(spec)[2],
            *report_env(spec, healthcheck=False), *spec.get("pod", {}).get("env", [])]


def _tls_volumes(pg: Body, endpoint: Endpoint = SOURCE_ENDPOINT) -> tuple[list[Body], list[Body]]:
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
    """The verify pod: ``pgbackup verify``, mounting only the target server's certificates and,
    for sealed backups, the decryption identity."""
    volumes, mounts = _tls_volumes(*verify_target(spec))
    identity_volumes, identity_mounts, _env = identity_mount(spec)
    return _pod_spec(spec, default_image, ["pgbackup", "verify"], render_verify_env(spec),
                     (volumes + identity_volumes, mounts + identity_mounts))
