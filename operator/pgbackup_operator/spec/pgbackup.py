"""PgBackup's spec, typed: what to back up, where to, when, and the pods that do it.

One class per object of the CRD's ``spec`` schema, named after it. Where the CRD declares a
default and every reader applied the same one, the field carries it (``DEFAULT_*``; the
settings-schema test checks they agree with the CRD); where a reader tells "left out" from
any value (``compression.format`` is rendered only when given), the field is None when left
out. ``spec.pod``'s Kubernetes fields pass through to the pods as ``Mapping``s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import RenderError
from .parts import NameRef, SecretKey, Server
from .read import parse_object, reason

# Defaults the CRD also declares: the API server fills them in, these cover a spec that did
# not pass through it.
DEFAULT_TIME_ZONE = "Etc/UTC"
DEFAULT_CONCURRENCY_POLICY = "Forbid"
DEFAULT_HISTORY_LIMIT = 3
DEFAULT_BACKOFF_LIMIT = 0
DEFAULT_FORMAT = "plain"
SPLIT = "split"


@dataclass(frozen=True, slots=True)
class Databases:
    """Which databases to back up: names or globs; empty means all."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class S3:
    """The bucket backups go to, and how to talk to it."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint: str | None = None
    path_style: bool = False
    checksum_compatibility: bool = False
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    credentials_secret_ref: NameRef | None = None


@dataclass(frozen=True, slots=True)
class Azure:
    """The Azure Blob Storage container backups go to; without ``credentials_secret_ref`` the
    pods use workload identity (the Azure SDK's chain). ``endpoint``: the blob service URL, for
    sovereign clouds and private endpoints; rendered only when the operator's allowlist holds it."""

    account: str
    container: str
    prefix: str = ""
    credentials_secret_ref: NameRef | None = None
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Gcs:
    """The Google Cloud Storage bucket backups go to; without ``credentials_secret_ref`` the
    pods use Application Default Credentials (GKE workload identity). ``endpoint``: the JSON
    API's base URL (a private endpoint); rendered only when the operator's allowlist holds it."""

    bucket: str
    prefix: str = ""
    credentials_secret_ref: NameRef | None = None
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where backups go: exactly one of the three kinds (the CRD's CEL rule; ``chosen`` checks
    it again for specs that did not pass the API server)."""

    s3: S3 | None = None
    azure: Azure | None = None
    gcs: Gcs | None = None

    def chosen(self) -> S3 | Azure | Gcs:
        """The one kind given, or ``RenderError`` naming the choice."""
        given = [kind for kind in (self.s3, self.azure, self.gcs) if kind is not None]
        if len(given) != 1:
            raise RenderError(
                f"spec.destination: set exactly one of s3, azure and gcs ({'none' if not given else len(given)} given)",
                "InvalidSpec",
            )
        return given[0]


@dataclass(frozen=True, slots=True)
class Compression:
    """How each stream is compressed; each part rendered only when given."""

    format: str | None = None
    level: int | None = None
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """Which backups to keep, and (with ``schedule``) the prune CronJob's own timing and identity."""

    schedule: str | None = None
    time_zone: str | None = None
    credentials_secret_ref: NameRef | None = None
    service_account_name: str | None = None
    last: int | None = field(default=None, metadata=reason("InvalidRetention"))
    daily: int | None = field(default=None, metadata=reason("InvalidRetention"))
    weekly: int | None = field(default=None, metadata=reason("InvalidRetention"))
    monthly: int | None = field(default=None, metadata=reason("InvalidRetention"))


@dataclass(frozen=True, slots=True)
class Verify:
    """The restore drill: its schedule, its server, its identity. ``schedule`` is required by the
    CRD; left out it is empty, which ``render.validate`` refuses as a schedule."""

    schedule: str = ""
    time_zone: str | None = None
    suspend: bool = False
    on_backup_server: bool = False
    credentials_secret_ref: NameRef | None = None
    service_account_name: str | None = None
    decryption_secret_ref: SecretKey | None = None
    databases: tuple[str, ...] = ()
    server: Server | None = None


@dataclass(frozen=True, slots=True)
class Encryption:
    """The age recipients every stored object is sealed to: listed, or in a Secret."""

    recipients: tuple[str, ...] = field(default=(), metadata=reason("InvalidRecipients"))
    recipients_secret_ref: SecretKey | None = None


@dataclass(frozen=True, slots=True)
class Signing:
    """The backup pods' signing key and the public keys every reader trusts."""

    private_key_secret_ref: SecretKey | None = field(default=None, metadata=reason("InvalidSigningKeys"))
    public_keys: tuple[str, ...] = field(default=(), metadata=reason("InvalidSigningKeys"))


@dataclass(frozen=True, slots=True)
class Notify:
    urls_secret_ref: SecretKey | None = None
    on_: str | None = None


@dataclass(frozen=True, slots=True)
class Healthcheck:
    url_secret_ref: SecretKey | None = None


@dataclass(frozen=True, slots=True)
class Alerting:
    max_age: str | None = None


@dataclass(frozen=True, slots=True)
class JobSettings:
    """The CronJobs' and Jobs' own settings."""

    concurrency_policy: str = DEFAULT_CONCURRENCY_POLICY
    starting_deadline_seconds: int | None = None
    successful_jobs_history_limit: int = DEFAULT_HISTORY_LIMIT
    failed_jobs_history_limit: int = DEFAULT_HISTORY_LIMIT
    backoff_limit: int = DEFAULT_BACKOFF_LIMIT
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None


POD_RULES = reason("PodNotAllowed")  # what ``podrules`` reported before the spec was typed


@dataclass(frozen=True, slots=True)
class PodSettings:
    """The pods' settings; the Kubernetes objects among them pass through (``podrules`` checks
    the security contexts, env names and metadata prefixes)."""

    image: str | None = None
    image_pull_policy: str | None = None
    resources: Mapping[str, Any] | None = None
    node_selector: Mapping[str, Any] | None = None
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    service_account_name: str | None = None
    image_pull_secrets: tuple[Mapping[str, Any], ...] = ()
    priority_class_name: str | None = None
    security_context: Mapping[str, Any] | None = field(default=None, metadata=POD_RULES)
    container_security_context: Mapping[str, Any] | None = field(default=None, metadata=POD_RULES)
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()
    pod_annotations: Mapping[str, Any] = field(default_factory=dict)
    pod_labels: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PgBackupSpec:
    """A PgBackup's ``spec``."""

    schedule: str
    postgres: Server
    destination: Destination
    time_zone: str = DEFAULT_TIME_ZONE
    suspend: bool = False
    databases: Databases = field(default_factory=Databases)
    compression_level: int | None = None
    compression: Compression = field(default_factory=Compression)
    parallelism: int | None = None
    parallel_databases: int | None = None
    format: str = DEFAULT_FORMAT
    dump_jobs: int | None = None
    globals: bool | None = None
    shrink_alarm: float | None = None
    retention: Retention | None = None
    verify: Verify | None = None
    pg_dump_options: tuple[str, ...] = field(default=(), metadata=reason("InvalidPgDumpOptions"))
    encryption: Encryption | None = None
    signing: Signing | None = None
    notify: Notify | None = None
    healthcheck: Healthcheck | None = None
    alerting: Alerting | None = None
    job: JobSettings = field(default_factory=JobSettings)
    pod: PodSettings = field(default_factory=PodSettings)


def parse_pgbackup(body: Mapping[str, Any]) -> PgBackupSpec:
    """A PgBackup body's ``spec``, read once (``RenderError`` naming the field if malformed)."""
    return parse_object(PgBackupSpec, body.get("spec"), "spec")
