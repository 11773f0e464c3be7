"""The environment of the pods a PgBackup's jobs run: each job's settings as variables.

Every variable comes from the job's settings schema (``backup_job.core.settings``): its name,
the text form of its value (``Variable.render``) and, where a spec field is absent, its
default. A PostgreSQL server block (``spec.postgres``, ``spec.verify.server`` or a
PgRestore's ``target.server``) renders through one ``Endpoint``: its variables (libpq's own
``PG*``, or the scratch server's the job reads for verify) and where its certificates are
mounted. A pod gets only the server and the credentials its job needs: a drill on a scratch
server never the backup server's password, a prune pod no server at all; each job may bring
its own bucket credentials (``destination_env``'s ``credentials``).

Secrets stay in Secrets: the pod reads them through ``secretKeyRef`` and read-only volumes,
so the operator never needs to read a Secret itself, and its RBAC grants no access to them.
A backup pod learns its run (Job name, uid, and for shards the completion index) through the
downward API (``run_identity_env``), so every pod and retry of one run shares it.

Trust (``spec.signing``): the backup pods, and only they, get the signing key as a mounted
file (``signing_key_mount``); every job that reads backups (backup, verify, prune, restore)
gets the public keys it trusts (``trust_env``), plain values, since public keys are no secret.
A drill restores on the backup server only when ``spec.verify.onBackupServer`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup_job.core import settings as job_settings
from backup_job.core import signing
from backup_job.core.retention import RULES, RetentionPolicy
from backup_job.core.schema import Variable
from backup_job.core.termination import KUBERNETES_PATH

from .api import Body, RenderError
from .literal import Expansion

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


def plain_env(values: dict[Variable[Any], str | None]) -> list[dict[str, Any]]:
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
    env = plain_env({
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
        env += plain_env({names.sslrootcert: f"{root}/ca/{tls['caSecretRef'].get('key', 'ca.crt')}"})
    if "clientCertSecretRef" in tls:
        env += plain_env({names.sslcert: f"{root}/client/tls.crt", names.sslkey: f"{root}/client/tls.key"})
    # How the password may travel (the job's policy, Passwords on the wire): each pod connects
    # to one server, so that server's block sets the job's variables.
    env += plain_env({
        job_settings.REQUIRE_AUTH: pg.get("requireAuth"),
        job_settings.ALLOW_CLEARTEXT_PASSWORD: "true" if pg.get("allowCleartextPassword") else None,
    })
    return env


def destination_env(spec: Body, credentials: Body | None = None) -> list[dict[str, Any]]:
    """Where backups are, with the bucket's credentials: ``credentials`` (a job's own Secret,
    for least privilege per job) or else the destination's."""
    s3 = spec["destination"]["s3"]
    prefix = s3.get("prefix", "").strip("/")
    compatible = "when_required" if s3.get("checksumCompatibility") else None
    env = plain_env({
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
        env += plain_env({job_settings.NOTIFY_ON: notify.get("on")})
    check = (spec.get("healthcheck") or {}).get("urlSecretRef")
    if healthcheck and check:
        env.append(_secret_env(job_settings.HEALTHCHECK_URL, check["name"], check.get("key", "url")))
    return env


IDENTITY_ROOT = "/etc/pgbackup/age"  # a decryption identity (drill, restore), mounted from its Secret


def encryption_env(spec: Body) -> list[dict[str, Any]]:
    """The recipients a backup is sealed to: plain from the spec (public keys), or a secretKeyRef."""
    encryption = spec.get("encryption") or {}
    if encryption.get("recipientsSecretRef"):
        ref = encryption["recipientsSecretRef"]
        return [_secret_env(job_settings.ENCRYPT_RECIPIENTS, ref["name"], ref.get("key", "recipients"))]
    recipients = encryption.get("recipients") or []
    return plain_env({job_settings.ENCRYPT_RECIPIENTS: "\n".join(recipients) or None})


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
    env = plain_env({job_settings.DECRYPT_IDENTITY_PATH: f"{IDENTITY_ROOT}/identity"})
    return [volume], [mount], env


SIGNING_ROOT = "/etc/pgbackup/signing"  # the backup job's signing key, mounted from its Secret
SIGNING_KEY_PATH = f"{SIGNING_ROOT}/signing-key.pem"


def trust_env(spec: Body) -> list[dict[str, Any]]:
    """The public keys whose signatures the jobs accept (``spec.signing.publicKeys``), in the
    variable's own form (``validate`` checked each); none without ``spec.signing``."""
    keys = (spec.get("signing") or {}).get("publicKeys") or []
    if not keys:
        return []
    parsed = signing.parse_public_keys("\n".join(keys))
    return plain_env({job_settings.SIGNING_PUBLIC_KEYS: job_settings.SIGNING_PUBLIC_KEYS.render(parsed)})


def signing_key_mount(spec: Body) -> tuple[list[Body], list[Body], list[Body]]:
    """The backup job's private signing key (``spec.signing.privateKeySecretRef``): a Secret key
    mounted read-only as a file, its path in ``BACKUP_SIGNING_KEY_FILE`` (never an env value;
    the operator never reads it). For backup pods only. Volumes, mounts, env."""
    ref = (spec.get("signing") or {}).get("privateKeySecretRef")
    if not ref:
        return [], [], []
    volume = {"name": "signing-key", "secret": {"secretName": ref["name"], "defaultMode": 0o440, "items": [
        {"key": ref.get("key", "signing-key"), "path": SIGNING_KEY_PATH.rsplit("/", 1)[1]}]}}
    mount = {"name": "signing-key", "mountPath": SIGNING_ROOT, "readOnly": True}
    return [volume], [mount], plain_env({job_settings.SIGNING_KEY_FILE: SIGNING_KEY_PATH})


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
SHARD_INDEX = "PGBACKUP_SHARD_INDEX"  # a helper variable BACKUP_SHARD refers to as $(...): the one expansion


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def run_identity_env(spec: Body) -> list[dict[str, Any]]:
    """The run's identity from the pod's own metadata; for shards, ``BACKUP_SHARD=i/N``."""
    env = [_field_env(job_settings.JOB_NAME.name, f"metadata.labels['{JOB_NAME_LABEL}']"),
           _field_env(job_settings.RUN_ID.name, f"metadata.labels['{CONTROLLER_UID_LABEL}']")]
    shards = parallelism(spec)
    if shards > 1:
        env += [_field_env(SHARD_INDEX, f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
                {"name": job_settings.SHARD.name, "value": Expansion(f"$({SHARD_INDEX})/{shards}")}]
    return env


def render_env(spec: Body) -> list[dict[str, Any]]:
    """The backup job's settings as container environment variables."""
    retention = None if prunes_separately(spec) else retention_policy(spec)
    settings = plain_env({
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
            *run_identity_env(spec), *encryption_env(spec), *signing_key_mount(spec)[2], *trust_env(spec),
            *report_env(spec, healthcheck=True), *spec.get("pod", {}).get("env", [])]


def render_prune_env(spec: Body) -> list[dict[str, Any]]:
    """The prune job's settings: the destination with the retention's own credentials, and the
    policy. No PostgreSQL server: pruning reads and deletes objects only."""
    retention = spec["retention"]
    settings = plain_env({job_settings.RETENTION: _value(job_settings.RETENTION, retention_policy(spec)),
                           job_settings.TERMINATION_LOG: KUBERNETES_PATH})
    return [*destination_env(spec, retention.get("credentialsSecretRef")), *settings, *trust_env(spec),
            *report_env(spec, healthcheck=False), *spec.get("pod", {}).get("env", [])]


def verify_target(spec: Body) -> tuple[Body, Endpoint]:
    """The server a drill restores into: ``spec.verify.server``, else the backup server (where
    the job drills only with ``spec.verify.onBackupServer``; ``trust`` reports it)."""
    server = spec["verify"].get("server")
    return (server, SCRATCH_ENDPOINT) if server else (spec["postgres"], SOURCE_ENDPOINT)


def render_verify_env(spec: Body) -> list[dict[str, Any]]:
    """The verify job's settings: destination, selection and the server to restore into."""
    verify = spec["verify"]
    selection = ({job_settings.DATABASES: job_settings.DATABASES.render(tuple(verify["databases"]))} if verify.get("databases")
                 else _selection(spec))
    on_backup_server = job_settings.VERIFY_ON_BACKUP_SERVER
    settings = plain_env({job_settings.PGAPPNAME: "pgbackup", **selection, job_settings.TERMINATION_LOG: KUBERNETES_PATH,
                          on_backup_server: on_backup_server.render(True) if verify.get("onBackupServer") else None})
    return [*connection_env(*verify_target(spec)), *destination_env(spec, verify.get("credentialsSecretRef")),
            *settings, *identity_mount(spec)[2], *trust_env(spec), *report_env(spec, healthcheck=False),
            *spec.get("pod", {}).get("env", [])]


def restore_identity(restore: Body, spec: Body) -> tuple[Body | None, str | None, Body | None]:
    """A PgRestore's read identity: its own credentials and account when given, else the
    PgBackup's verify section's (read-only, like a drill), else the backup's (None: the
    destination's and the pod's); and its decryption identity, else the drill's."""
    verify = spec.get("verify") or {}
    return (restore.get("credentialsSecretRef") or verify.get("credentialsSecretRef"),
            restore.get("serviceAccountName") or verify.get("serviceAccountName"),
            restore.get("decryptionSecretRef") or verify.get("decryptionSecretRef"))
