"""The environment of the pods a PgBackup's jobs run: each job's settings as variables.

Every function reads the typed spec (``spec.PgBackupSpec``, ``spec.PgRestoreSpec``), never the
body. Every variable comes from the job's settings schema (``backup_job.core.settings``): its name,
the text form of its value (``Variable.render``) and, where a spec field is absent, its
default. A PostgreSQL server block (``spec.postgres``, ``spec.verify.server`` or a
PgRestore's ``target.server``) renders through one ``Endpoint``: its variables (libpq's own
``PG*``, or the scratch server's the job reads for verify) and where its certificates are
mounted. A pod gets only the server and the credentials its job needs: a drill on a scratch
server never the backup server's password, a prune pod no server at all; each job may bring
its own store credentials (``destination_env``'s ``credentials``).

The destination is one of three kinds (``spec.destination.chosen``): S3 (static keys as
variables from the Secret, else the SDK's chain: IRSA), Azure Blob (one of three credential
keys, each an optional ``secretKeyRef``, else workload identity: ``destination_labels``) or
GCS (the Secret's ``key.json`` mounted as a file, ``destination_mount``, else Application
Default Credentials). A job's own Secret replaces the destination's, for every kind alike.
An Azure or GCS ``endpoint`` is where the pods send their credentials, and a PgBackup's author
chooses it, so it is rendered only when the installer allowed it
(``PGBACKUP_ALLOWED_BLOB_ENDPOINTS``, ``allowed_endpoint``); any other is ``EndpointNotAllowed``.

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

import os
from dataclasses import dataclass
from typing import Any

from backup_job.core import settings as job_settings
from backup_job.core import signing
from backup_job.core.retention import RULES, RetentionPolicy
from backup_job.core.schema import Variable
from backup_job.core.settings.operator import normalise_endpoint
from backup_job.core.termination import KUBERNETES_PATH

from .api import Body, RenderError
from .literal import Expansion
from .spec import NameRef, PgBackupSpec, PgRestoreSpec, SecretKey, Server, plain
from .spec.pgbackup import S3, Azure, Gcs, Retention, Verify

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


def retention_policy(spec: PgBackupSpec) -> RetentionPolicy | None:
    """``spec.retention`` as a policy, None to keep everything."""
    retention = spec.retention
    if retention is None:
        return None
    given = {"last": retention.last, "daily": retention.daily, "weekly": retention.weekly, "monthly": retention.monthly}
    tiers = {tier: count for tier in RULES if (count := given[tier]) is not None}
    for tier, count in tiers.items():
        if count < 1:
            raise RenderError(
                f"spec.retention.{tier}: {count!r} is not a whole number of at least 1; it counts backups to keep",
                "InvalidRetention",
            )
    policy = RetentionPolicy(**tiers)
    if not policy:
        raise RenderError(
            f"spec.retention: set at least one of {', '.join(RULES)}, or remove spec.retention to keep every backup",
            "InvalidRetention",
        )
    return policy


def connection_env(pg: Server, endpoint: Endpoint) -> list[dict[str, Any]]:
    """A server block (``spec.postgres`` or ``spec.verify.server``) as the job's variables."""
    names = endpoint.variables
    env = plain_env(
        {
            names.host: pg.host,
            names.port: str(job_settings.PGPORT.default if pg.port is None else pg.port),
            names.database: job_settings.PGDATABASE.default if pg.database is None else pg.database,
            names.sslmode: job_settings.PGSSLMODE.default if pg.ssl_mode is None else pg.ssl_mode,
            names.user: pg.user,
        }
    )
    if pg.user_secret_ref is not None:
        ref = pg.user_secret_ref
        env.append(_secret_env(names.user, ref.name, ref.key_or("username")))
    password = pg.password_secret_ref
    env.append(_secret_env(names.password, password.name, password.key_or("password")))
    root = endpoint.tls_root
    if pg.tls.ca_secret_ref is not None:
        env += plain_env({names.sslrootcert: f"{root}/ca/{pg.tls.ca_secret_ref.key_or('ca.crt')}"})
    if pg.tls.client_cert_secret_ref is not None:
        env += plain_env({names.sslcert: f"{root}/client/tls.crt", names.sslkey: f"{root}/client/tls.key"})
    # How the password may travel (the job's policy, Passwords on the wire): each pod connects
    # to one server, so that server's block sets the job's variables.
    env += plain_env(
        {
            job_settings.REQUIRE_AUTH: pg.require_auth,
            job_settings.ALLOW_CLEARTEXT_PASSWORD: "true" if pg.allow_cleartext_password else None,
        }
    )
    return env


AZURE_CREDENTIALS = (
    job_settings.AZURE_STORAGE_CONNECTION_STRING,
    job_settings.AZURE_STORAGE_KEY,
    job_settings.AZURE_STORAGE_SAS_TOKEN,
)
GCS_ROOT = "/etc/pgbackup/gcs"  # a GCS service-account key, mounted from its Secret
GCS_KEY = "key.json"
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"  # the Azure webhook's opt-in, on the pod


def _url(scheme: str, place: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{scheme}://{place}" + (f"/{prefix}" if prefix else "")


ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"


def allowed_endpoint(spec: PgBackupSpec) -> str | None:
    """The Azure or GCS destination's ``endpoint``, normalised, once the operator's allowlist
    (``PGBACKUP_ALLOWED_BLOB_ENDPOINTS``, read when called) holds it; None when none is given.
    Any other is a ``RenderError`` (``EndpointNotAllowed``): the pods would send their
    credentials (a SAS token, a workload identity's token) to a host the spec's author chose."""
    kind = spec.destination.chosen()
    if not isinstance(kind, (Azure, Gcs)) or kind.endpoint is None:
        return None
    field = f"spec.destination.{'azure' if isinstance(kind, Azure) else 'gcs'}.endpoint"
    endpoint = normalise_endpoint(kind.endpoint)
    allowed = job_settings.OPERATOR_ALLOWED_ENDPOINTS.read(os.environ)
    if endpoint not in allowed:
        raise RenderError(
            f"{field}: {kind.endpoint!r} is not among the endpoints this operator allows; the installer adds it "
            f"to {job_settings.OPERATOR_ALLOWED_ENDPOINTS.name} (Helm value destinations.allowedEndpoints), "
            "or remove the field to use the public endpoint",
            ENDPOINT_NOT_ALLOWED,
        )
    return endpoint


def destination_env(spec: PgBackupSpec, credentials: NameRef | None = None) -> list[dict[str, Any]]:
    """Where backups are, with the store's credentials: ``credentials`` (a job's own Secret,
    for least privilege per job) or else the destination's. The Secret's keys are named like
    the variables (S3, Azure) or hold the key file (GCS, ``destination_mount``)."""
    kind = spec.destination.chosen()
    endpoint = allowed_endpoint(spec)
    if isinstance(kind, Azure):
        return _azure_env(kind, credentials or kind.credentials_secret_ref, endpoint)
    if isinstance(kind, Gcs):
        return _gcs_env(kind, credentials or kind.credentials_secret_ref, endpoint)
    return _s3_env(kind, credentials or kind.credentials_secret_ref)


def _s3_env(s3: S3, credentials: NameRef | None) -> list[dict[str, Any]]:
    compatible = "when_required" if s3.checksum_compatibility else None
    env = plain_env(
        {
            job_settings.DESTINATION: _url("s3", s3.bucket, s3.prefix),
            job_settings.AWS_REGION: s3.region,
            job_settings.AWS_ENDPOINT_URL_S3: s3.endpoint,
            job_settings.S3_ADDRESSING_STYLE: "path" if s3.path_style else None,
            job_settings.AWS_REQUEST_CHECKSUM_CALCULATION: compatible,
            job_settings.AWS_RESPONSE_CHECKSUM_VALIDATION: compatible,
            job_settings.S3_SSE: s3.server_side_encryption,
            job_settings.S3_KMS_KEY_ID: s3.kms_key_id,
            job_settings.S3_STORAGE_CLASS: s3.storage_class,
        }
    )
    if credentials:
        for variable in (job_settings.AWS_ACCESS_KEY_ID, job_settings.AWS_SECRET_ACCESS_KEY):
            env.append(_secret_env(variable, credentials.name, variable.name))
    return env


def _azure_env(azure: Azure, credentials: NameRef | None, endpoint: str | None) -> list[dict[str, Any]]:
    """The container's URL, its allowed ``endpoint`` and, with a Secret, each of the three kinds
    of credential as an optional reference: the Secret holds one of them (the job refuses more
    than one), and a missing key leaves its variable unset rather than the pod unstarted."""
    env = plain_env(
        {
            job_settings.DESTINATION: _url("azure", f"{azure.account}/{azure.container}", azure.prefix),
            job_settings.AZURE_ENDPOINT: endpoint,
        }
    )
    if credentials:
        for variable in AZURE_CREDENTIALS:
            entry = _secret_env(variable, credentials.name, variable.name)
            entry["valueFrom"]["secretKeyRef"]["optional"] = True
            env.append(entry)
    return env


def _gcs_env(gcs: Gcs, credentials: NameRef | None, endpoint: str | None) -> list[dict[str, Any]]:
    env = plain_env({job_settings.DESTINATION: _url("gs", gcs.bucket, gcs.prefix), job_settings.GCS_ENDPOINT: endpoint})
    if credentials:
        env += plain_env({job_settings.GOOGLE_APPLICATION_CREDENTIALS: f"{GCS_ROOT}/{GCS_KEY}"})
    return env


def destination_mount(spec: PgBackupSpec, credentials: NameRef | None = None) -> tuple[list[Body], list[Body]]:
    """A GCS destination's key Secret (``credentials``, else the destination's), its
    ``key.json`` mounted read-only as the file ``GOOGLE_APPLICATION_CREDENTIALS`` names;
    nothing for the other kinds, whose credentials are variables. Volumes, mounts."""
    kind = spec.destination.chosen()
    ref = (credentials or kind.credentials_secret_ref) if isinstance(kind, Gcs) else None
    if ref is None:
        return [], []
    volume = {
        "name": "gcs-credentials",
        "secret": {"secretName": ref.name, "defaultMode": 0o440, "items": [{"key": GCS_KEY, "path": GCS_KEY}]},
    }
    return [volume], [{"name": "gcs-credentials", "mountPath": GCS_ROOT, "readOnly": True}]


def destination_labels(spec: PgBackupSpec, credentials: NameRef | None = None) -> dict[str, str]:
    """The pod labels a destination asks for: an Azure destination with no Secret (neither
    ``credentials`` nor the destination's) opts the pod into Azure workload identity, whose
    client id the pod's ServiceAccount carries."""
    azure = spec.destination.azure
    if azure is not None and not (credentials or azure.credentials_secret_ref):
        return {WORKLOAD_IDENTITY_LABEL: "true"}
    return {}


def _selection(spec: PgBackupSpec) -> dict[Variable[Any], str | None]:
    databases = spec.databases
    return {
        job_settings.DATABASES: job_settings.DATABASES.render(databases.include),
        job_settings.EXCLUDE_DATABASES: job_settings.EXCLUDE_DATABASES.render(databases.exclude),
    }


def _compression(spec: PgBackupSpec) -> dict[Variable[Any], str | None]:
    """``spec.compression``; the older ``spec.compressionLevel`` counts when no level is given there."""
    compression = spec.compression
    level = spec.compression_level if compression.level is None else compression.level
    return {
        job_settings.COMPRESSION: _value(job_settings.COMPRESSION, compression.format),
        job_settings.COMPRESSION_LEVEL: _value(job_settings.COMPRESSION_LEVEL, level),
        job_settings.COMPRESSION_THREADS: _value(job_settings.COMPRESSION_THREADS, compression.threads),
    }


FORMAT, DUMP_JOBS = job_settings.DumpSettings.format, job_settings.DumpSettings.dump_jobs


def _format(spec: PgBackupSpec) -> dict[Variable[Any], str | None]:
    """``spec.format`` when it is not the job's default (so the pods of every PgBackup written
    before the split format stay as they were), and ``spec.dumpJobs`` when given (``render.
    validate`` refused it without ``split``)."""
    return {
        FORMAT: None if spec.format == FORMAT.default_value else FORMAT.render(spec.format),
        DUMP_JOBS: _value(DUMP_JOBS, spec.dump_jobs),
    }


def report_env(spec: PgBackupSpec, healthcheck: bool) -> list[dict[str, Any]]:
    """Notifications (and, for backups, the healthcheck pings): URLs from Secrets, never plain."""
    env: list[dict[str, Any]] = []
    notify = spec.notify
    if notify is not None and notify.urls_secret_ref is not None:
        ref = notify.urls_secret_ref
        env.append(_secret_env(job_settings.NOTIFY_URLS, ref.name, ref.key_or("urls")))
        env += plain_env({job_settings.NOTIFY_ON: notify.on_})
    check = spec.healthcheck.url_secret_ref if spec.healthcheck is not None else None
    if healthcheck and check is not None:
        env.append(_secret_env(job_settings.HEALTHCHECK_URL, check.name, check.key_or("url")))
    return env


IDENTITY_ROOT = "/etc/pgbackup/age"  # a decryption identity (drill, restore), mounted from its Secret


def encryption_env(spec: PgBackupSpec) -> list[dict[str, Any]]:
    """The recipients a backup is sealed to: plain from the spec (public keys), or a secretKeyRef."""
    encryption = spec.encryption
    if encryption is None:
        return []
    if encryption.recipients_secret_ref is not None:
        ref = encryption.recipients_secret_ref
        return [_secret_env(job_settings.ENCRYPT_RECIPIENTS, ref.name, ref.key_or("recipients"))]
    return plain_env({job_settings.ENCRYPT_RECIPIENTS: "\n".join(encryption.recipients) or None})


def identity_mount(spec: PgBackupSpec, ref: SecretKey | None = None) -> tuple[list[Body], list[Body], list[Body]]:
    """A decryption identity (``ref``, else the verify section's): a Secret key mounted as a
    file, its path in ``BACKUP_DECRYPT_IDENTITY_PATH`` (never an env value; the operator
    never reads it). Volumes, mounts, env."""
    ref = ref or (spec.verify.decryption_secret_ref if spec.verify is not None else None)
    if ref is None:
        return [], [], []
    volume = {
        "name": "age-identity",
        "secret": {
            "secretName": ref.name,
            "defaultMode": 0o440,
            "items": [{"key": ref.key_or("identity"), "path": "identity"}],
        },
    }
    mount = {"name": "age-identity", "mountPath": IDENTITY_ROOT, "readOnly": True}
    env = plain_env({job_settings.DECRYPT_IDENTITY_PATH: f"{IDENTITY_ROOT}/identity"})
    return [volume], [mount], env


SIGNING_ROOT = "/etc/pgbackup/signing"  # the backup job's signing key, mounted from its Secret
SIGNING_KEY_PATH = f"{SIGNING_ROOT}/signing-key.pem"


def trust_env(spec: PgBackupSpec) -> list[dict[str, Any]]:
    """The public keys whose signatures the jobs accept (``spec.signing.publicKeys``), in the
    variable's own form (``validate`` checked each); none without ``spec.signing``."""
    keys = spec.signing.public_keys if spec.signing is not None else ()
    if not keys:
        return []
    parsed = signing.parse_public_keys("\n".join(keys))
    return plain_env({job_settings.SIGNING_PUBLIC_KEYS: job_settings.SIGNING_PUBLIC_KEYS.render(parsed)})


def signing_key_mount(spec: PgBackupSpec) -> tuple[list[Body], list[Body], list[Body]]:
    """The backup job's private signing key (``spec.signing.privateKeySecretRef``): a Secret key
    mounted read-only as a file, its path in ``BACKUP_SIGNING_KEY_FILE`` (never an env value;
    the operator never reads it). For backup pods only. Volumes, mounts, env."""
    ref = spec.signing.private_key_secret_ref if spec.signing is not None else None
    if ref is None:
        return [], [], []
    volume = {
        "name": "signing-key",
        "secret": {
            "secretName": ref.name,
            "defaultMode": 0o440,
            "items": [{"key": ref.key_or("signing-key"), "path": SIGNING_KEY_PATH.rsplit("/", 1)[1]}],
        },
    }
    mount = {"name": "signing-key", "mountPath": SIGNING_ROOT, "readOnly": True}
    return [volume], [mount], plain_env({job_settings.SIGNING_KEY_FILE: SIGNING_KEY_PATH})


def parallelism(spec: PgBackupSpec) -> int:
    """Pods per backup run (``spec.parallelism``): above 1, an Indexed Job of shards."""
    return spec.parallelism or 1


def prunes_separately(spec: PgBackupSpec) -> bool:
    """Whether retention runs in a prune Job of its own rather than inside the backup run: on
    ``spec.retention.schedule``, or after a sharded run (no shard knows the others succeeded)."""
    retention = spec.retention
    return retention is not None and (bool(retention.schedule) or parallelism(spec) > 1)


# The Job controller labels and annotates each pod with its Job's name, uid and (Indexed
# Jobs) completion index; the backup pod reads them through the downward API, so every pod
# (and every retry) of one run shares the run's timestamp and id.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SHARD_INDEX = "PGBACKUP_SHARD_INDEX"  # a helper variable BACKUP_SHARD refers to as $(...): the one expansion


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def run_identity_env(spec: PgBackupSpec) -> list[dict[str, Any]]:
    """The run's identity from the pod's own metadata; for shards, ``BACKUP_SHARD=i/N``."""
    env = [
        _field_env(job_settings.JOB_NAME.name, f"metadata.labels['{JOB_NAME_LABEL}']"),
        _field_env(job_settings.RUN_ID.name, f"metadata.labels['{CONTROLLER_UID_LABEL}']"),
    ]
    shards = parallelism(spec)
    if shards > 1:
        env += [
            _field_env(SHARD_INDEX, f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
            {"name": job_settings.SHARD.name, "value": Expansion(f"$({SHARD_INDEX})/{shards}")},
        ]
    return env


def pod_env(spec: PgBackupSpec) -> list[dict[str, Any]]:
    """``spec.pod.env``, the author's own variables (``podrules`` checked their names), last."""
    env: list[dict[str, Any]] = plain(spec.pod.env)
    return env


def render_env(spec: PgBackupSpec) -> list[dict[str, Any]]:
    """The backup job's settings as container environment variables."""
    retention = None if prunes_separately(spec) else retention_policy(spec)
    settings = plain_env(
        {
            job_settings.PGAPPNAME: "pgbackup",
            **_selection(spec),
            **_compression(spec),
            job_settings.PARALLEL_DATABASES: _value(job_settings.PARALLEL_DATABASES, spec.parallel_databases),
            **_format(spec),
            job_settings.PG_DUMP_OPTIONS: _value(job_settings.PG_DUMP_OPTIONS, spec.pg_dump_options),
            job_settings.GLOBALS: _value(
                job_settings.GLOBALS, job_settings.GLOBALS.default_value if spec.globals is None else spec.globals
            ),
            job_settings.RETENTION: _value(job_settings.RETENTION, retention),
            job_settings.SHRINK_ALARM: _value(job_settings.SHRINK_ALARM, spec.shrink_alarm),
            job_settings.TERMINATION_LOG: KUBERNETES_PATH,
        }
    )
    return [
        *connection_env(spec.postgres, SOURCE_ENDPOINT),
        *destination_env(spec),
        *settings,
        *run_identity_env(spec),
        *encryption_env(spec),
        *signing_key_mount(spec)[2],
        *trust_env(spec),
        *report_env(spec, healthcheck=True),
        *pod_env(spec),
    ]


def render_prune_env(spec: PgBackupSpec, retention: Retention) -> list[dict[str, Any]]:
    """The prune job's settings: the destination with the retention's own credentials, and the
    policy. No PostgreSQL server: pruning reads and deletes objects only."""
    settings = plain_env(
        {
            job_settings.RETENTION: _value(job_settings.RETENTION, retention_policy(spec)),
            job_settings.TERMINATION_LOG: KUBERNETES_PATH,
        }
    )
    return [
        *destination_env(spec, retention.credentials_secret_ref),
        *settings,
        *trust_env(spec),
        *report_env(spec, healthcheck=False),
        *pod_env(spec),
    ]


def verify_target(spec: PgBackupSpec, verify: Verify) -> tuple[Server, Endpoint]:
    """The server a drill restores into: ``spec.verify.server``, else the backup server (where
    the job drills only with ``spec.verify.onBackupServer``; ``trust`` reports it)."""
    return (verify.server, SCRATCH_ENDPOINT) if verify.server else (spec.postgres, SOURCE_ENDPOINT)


def render_verify_env(spec: PgBackupSpec, verify: Verify) -> list[dict[str, Any]]:
    """The verify job's settings: destination, selection and the server to restore into."""
    selection = (
        {job_settings.DATABASES: job_settings.DATABASES.render(verify.databases)}
        if verify.databases
        else _selection(spec)
    )
    on_backup_server = job_settings.VERIFY_ON_BACKUP_SERVER
    settings = plain_env(
        {
            job_settings.PGAPPNAME: "pgbackup",
            **selection,
            job_settings.TERMINATION_LOG: KUBERNETES_PATH,
            on_backup_server: on_backup_server.render(True) if verify.on_backup_server else None,
        }
    )
    return [
        *connection_env(*verify_target(spec, verify)),
        *destination_env(spec, verify.credentials_secret_ref),
        *settings,
        *identity_mount(spec)[2],
        *trust_env(spec),
        *report_env(spec, healthcheck=False),
        *pod_env(spec),
    ]


def restore_identity(restore: PgRestoreSpec, spec: PgBackupSpec) -> tuple[NameRef | None, str | None, SecretKey | None]:
    """A PgRestore's read identity: its own credentials and account when given, else the
    PgBackup's verify section's (read-only, like a drill), else the backup's (None: the
    destination's and the pod's); and its decryption identity, else the drill's."""
    verify = spec.verify or Verify()
    return (
        restore.credentials_secret_ref or verify.credentials_secret_ref,
        restore.service_account_name or verify.service_account_name,
        restore.decryption_secret_ref or verify.decryption_secret_ref,
    )
