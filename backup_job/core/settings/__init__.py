"""Settings: every environment variable pgbackup reads, declared once, in typed groups.

Each setting is one ``Variable`` (``core.schema``: name, parser, default, secrecy, ``*_FILE``
form, one-line doc) written in the body of the group it belongs to (``group.Group``), which
makes it that group's field too. Everything else derives from those declarations: reading
(``parse_settings`` reads each group of ``Settings`` whole), the tables of docs/configuration.md
(``GROUPS``, ``devenv.settings_docs``), ``.env.example`` (``devenv.env_example``), the operator's
rendering of a PgBackup into a pod's environment (it imports the variables, never their names as
text), and the warning about ``BACKUP_*`` variables nothing reads (``environment``). Adding a
setting is one edit, its declaration in its group, then ``python -m devenv.settings_docs``.

The groups, one module each: ``destination`` (where backups go), ``s3`` (the S3 client and
uploads), ``azure`` and ``gcs`` (those stores' credentials and endpoint), ``postgres``
(libpq's variables, the authentication policy, the scratch server), ``dump`` (what is
dumped and how), ``compression``, ``encryption``, ``trust`` (signatures
and read limits), ``run`` (the run's identity, retention, the log), ``report``,
``schedule`` (only ``pgbackup schedule`` reads them, so a schedule typo never stops a run)
and ``operator`` (read by ``pgbackup-operator``).

``Settings`` holds the groups one command needs; commands hand each part of the job only the
groups it uses. PostgreSQL and S3 connection details stay in the variables their client
libraries read (``PG*`` for libpq, ``AWS_*`` for botocore): ``load_settings`` exports the
effective values (``.env`` entries, secret files) into the process environment for botocore,
and ``pg.target`` passes the libpq ones to each connection and client program explicitly.

The names below the groups (``DATABASES``, ``PGHOST``...) are the declarations under the
names the rest of the code and the operator use; a new setting needs none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_type_hints

from ..errors import ConfigError
from ..runkey import scheduled_minute
from ..schema import Secret as Secret
from ..schema import Variable
from .azure import AzureSettings as AzureSettings
from .compression import DEFAULT_LEVEL as DEFAULT_LEVEL
from .compression import LEVELS as LEVELS
from .compression import Compression as Compression
from .destination import BACKENDS as BACKENDS
from .destination import DESTINATION as DESTINATION
from .destination import Backend as Backend
from .destination import Destination as Destination
from .dump import REFUSED_PG_DUMP_OPTIONS as REFUSED_PG_DUMP_OPTIONS
from .dump import DumpSettings as DumpSettings
from .encryption import EncryptionSettings as EncryptionSettings
from .environment import ELSEWHERE as ELSEWHERE
from .environment import describe_unknown, dotenv_names, known_names, unknown
from .environment import export_environment as export_environment
from .environment import load_environment as _load_environment
from .gcs import GcsSettings as GcsSettings
from .group import Group as Group
from .operator import OperatorSettings as OperatorSettings
from .postgres import SCRATCH_SERVER as SCRATCH_SERVER
from .postgres import SOURCE_SERVER as SOURCE_SERVER
from .postgres import AuthPolicy as AuthPolicy
from .postgres import PostgresSettings as PostgresSettings
from .postgres import ScratchServer as ScratchServer
from .postgres import ServerVariables as ServerVariables
from .report import ReportSettings as ReportSettings
from .run import LogSettings as LogSettings
from .run import RunSettings as RunSettings
from .s3 import AwsSdk as AwsSdk
from .s3 import S3Settings as S3Settings
from .s3 import UploadSettings as UploadSettings
from .schedule import ScheduleSettings as ScheduleSettings
from .trust import TrustSettings as TrustSettings

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything one command needs, validated, by group."""

    destination: Destination
    secret_values: tuple[Secret, ...]
    storage: Group | None  # the options of the destination's kind (``BACKENDS``); None: it has none
    upload: UploadSettings
    postgres: PostgresSettings
    dump: DumpSettings
    compression: Compression
    encryption: EncryptionSettings
    trust: TrustSettings
    run: RunSettings
    report: ReportSettings
    log: LogSettings

    def secrets(self) -> list[str]:
        """Every secret value this run knows, for the log redaction filter (each notification
        URL on its own too: a log line may name one of several)."""
        return [secret.reveal() for secret in self.secret_values] + [url.reveal() for url in self.report.notify_urls]


def _own(owner: str, *groups: type[Group]) -> tuple[Variable[Any], ...]:
    return tuple(variable for group in groups for variable in group.variables() if variable.owner == owner)


# The tables of docs/configuration.md: each table is whole groups.
GROUPS: dict[str, tuple[Variable[Any], ...]] = {
    "schedule": ScheduleSettings.variables(),
    "job": (
        DESTINATION,
        *_own("pgbackup", DumpSettings, Compression, RunSettings, S3Settings, UploadSettings, LogSettings),
    ),
    "encryption": EncryptionSettings.variables(),
    "trust": TrustSettings.variables(),
    "report": ReportSettings.variables(),
    "postgres": (*PostgresSettings.variables(), *AuthPolicy.variables()),
    "scratch": ScratchServer.variables(),
    "s3": _own("sdk", AwsSdk, S3Settings),
    "azure": AzureSettings.variables(),
    "gcs": GcsSettings.variables(),
    "operator": OperatorSettings.variables(),
}
ALL: tuple[Variable[Any], ...] = tuple(variable for group in GROUPS.values() for variable in group)
BY_NAME = {variable.name: variable for variable in ALL}
KNOWN = known_names(ALL)
JOB, OPERATOR, POSTGRES, SCRATCH, S3 = (
    GROUPS["job"],
    GROUPS["operator"],
    GROUPS["postgres"],
    GROUPS["scratch"],
    GROUPS["s3"],
)


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Validate the effective variables (see ``load_environment``) into ``Settings``: the
    destination and its kind's options, then every group ``Settings`` holds, each read whole."""
    destination = DESTINATION.read(env)
    options = BACKENDS[destination.scheme].options
    hints = get_type_hints(Settings)
    groups: dict[str, Any] = {}
    for field in fields(Settings):
        kind = hints[field.name]
        if isinstance(kind, type) and issubclass(kind, Group):
            groups[field.name] = kind.read(env)
    return Settings(
        destination=destination,
        storage=options.read(env) if options is not None else None,
        secret_values=tuple(Secret(env[v.name]) for v in ALL if v.secret and env.get(v.name)),
        **groups,
    )


def check_command(settings: Settings, command: str) -> None:
    """Refuse settings that are valid alone but wrong for ``command``, in one line."""
    run = settings.run
    if command == "run" and run.shard.sharded and run.retention:
        raise ConfigError(
            f"configuration error: {RETENTION.name} is refused with {SHARD.name}={run.shard} (N > 1): one "
            f"shard cannot know that the others succeeded; unset {RETENTION.name} for the shards and run "
            f"`pgbackup prune` once every shard of the run has finished"
        )
    if command == "run" and run.shard.sharded and run.run_timestamp is None:
        _shared_timestamp(run)
    if command == "schedule" and (run.run_timestamp is not None or run.run_id is not None):
        name = RUN_TIMESTAMP.name if run.run_timestamp is not None else RUN_ID.name
        raise ConfigError(
            f"configuration error: {name} names one run, and `pgbackup schedule` starts many "
            f"(each would meet the first one's backups); unset {name}"
        )


def _shared_timestamp(run: RunSettings) -> None:
    """A sharded run's pods must agree on its timestamp: given, or a CronJob's Job name's minute."""
    minute, why = scheduled_minute(run.job_name or "", datetime.now(UTC))
    if minute is not None:
        return
    job = (
        f"{JOB_NAME.name} is not set"
        if not run.job_name
        else f"{JOB_NAME.name}={run.job_name!r} gives none ({why or 'it does not end in -<digits>'})"
    )
    raise ConfigError(
        f"configuration error: {SHARD.name}={run.shard} needs a run timestamp shared by every "
        f"shard, and {job}; set {RUN_TIMESTAMP.name} to the same value in every shard, for example "
        f"{RUN_TIMESTAMP.name}={RUN_TIMESTAMP.examples()[0]}"
    )


def parse_schedule(env: Mapping[str, str]) -> ScheduleSettings:
    return ScheduleSettings.read(env)


def load_environment(environ: Mapping[str, str], dotenv_path: Path | None) -> dict[str, str]:
    """The effective variables: the environment over the ``.env`` file, secret files read."""
    return _load_environment(environ, dotenv_path, ALL)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``BACKUP_*`` / ``PGBACKUP_*`` variable in ``environ`` that nothing reads;
    names only, never a value."""
    return [describe_unknown(name, closest) for name, closest in unknown(environ, KNOWN)]


def job_environment(dotenv_path: Path | None = None) -> dict[str, str]:
    """What the job reads variables from, before secret files: the process environment over
    the ``.env`` file (default: the working directory's)."""
    return {**dotenv_names(Path.cwd() / ".env" if dotenv_path is None else dotenv_path), **os.environ}


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> Settings:
    """The one entry point: environment (+ ``.env``, + secret files) to ``Settings``.

    Called without ``environ`` it reads ``os.environ`` and, once the settings are valid,
    exports the effective variables back into it for the client libraries.
    """
    effective = load_environment(
        os.environ if environ is None else environ, Path.cwd() / ".env" if dotenv_path is None else dotenv_path
    )
    settings = parse_settings(effective)
    if environ is None:
        export_environment(effective)
    return settings


# --- the declarations under the names the rest of the code uses ------------------------------
S3_ADDRESSING_STYLE, S3_SSE, S3_KMS_KEY_ID = S3Settings.addressing_style, S3Settings.sse, S3Settings.kms_key_id
S3_STORAGE_CLASS, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE = (
    S3Settings.storage_class,
    S3Settings.max_attempts,
    S3Settings.retry_mode,
)
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY = AwsSdk.region, AwsSdk.access_key_id, AwsSdk.secret_access_key
AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_S3 = AwsSdk.session_token, AwsSdk.endpoint_url_s3
AWS_REQUEST_CHECKSUM_CALCULATION = AwsSdk.request_checksum_calculation
AWS_RESPONSE_CHECKSUM_VALIDATION = AwsSdk.response_checksum_validation
AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN = (
    AzureSettings.connection_string,
    AzureSettings.account_key,
    AzureSettings.sas_token,
)
AZURE_ENDPOINT, GOOGLE_APPLICATION_CREDENTIALS = AzureSettings.endpoint, GcsSettings.application_credentials
GCS_ENDPOINT = GcsSettings.endpoint
DATABASES, EXCLUDE_DATABASES, PARALLEL_DATABASES = (
    DumpSettings.include,
    DumpSettings.exclude,
    DumpSettings.parallel_databases,
)
PG_DUMP_OPTIONS, LOCK_WAIT_TIMEOUT = DumpSettings.pg_dump_options, DumpSettings.lock_wait_timeout
DATABASE_TIMEOUT, PG_BINDIR, GLOBALS = DumpSettings.database_timeout, DumpSettings.pg_bindir, DumpSettings.globals
COMPRESSION, COMPRESSION_LEVEL, COMPRESSION_THREADS = Compression.format, Compression.level, Compression.threads
JOB_NAME, RUN_TIMESTAMP, RUN_ID, SHARD = (
    RunSettings.job_name,
    RunSettings.run_timestamp,
    RunSettings.run_id,
    RunSettings.shard,
)
RETENTION, SHRINK_ALARM, TERMINATION_LOG = RunSettings.retention, RunSettings.shrink_alarm, RunSettings.termination_log
LOG_LEVEL, LOG_FORMAT = LogSettings.level, LogSettings.format
ENCRYPT_RECIPIENTS, DECRYPT_IDENTITY_PATH = EncryptionSettings.encrypt_to, EncryptionSettings.decrypt_identity
SIGNING_KEY_FILE, SIGNING_PUBLIC_KEYS, CLOCK_SKEW = (
    TrustSettings.signing_key,
    TrustSettings.public_keys,
    TrustSettings.clock_skew,
)
MANIFEST_LIMIT_MB, GLOBALS_LIMIT_MB = TrustSettings.manifest_limit_mb, TrustSettings.globals_limit_mb
VERIFY_ON_BACKUP_SERVER = TrustSettings.verify_on_backup_server
NOTIFY_URLS, NOTIFY_ON, HEALTHCHECK_URL = (
    ReportSettings.notify_urls,
    ReportSettings.notify_always,
    ReportSettings.healthcheck_url,
)
SCHEDULE, CRONTAB, RUN_ON_START = ScheduleSettings.expression, ScheduleSettings.crontab, ScheduleSettings.run_on_start
VERIFY_SCHEDULE, SUPERCRONIC = ScheduleSettings.verify_expression, ScheduleSettings.supercronic
OPERATOR_NAMESPACES, OPERATOR_IMAGE = OperatorSettings.namespaces, OperatorSettings.image
OPERATOR_LIVENESS, OPERATOR_METRICS_PORT = OperatorSettings.liveness, OperatorSettings.metrics_port
OPERATOR_FRESHNESS_INTERVAL, OPERATOR_LOG_FORMAT = OperatorSettings.freshness_interval, OperatorSettings.log_format
OPERATOR_ALLOWED_ENDPOINTS = OperatorSettings.allowed_endpoints
PGHOST, PGPORT, PGUSER, PGPASSWORD = (
    PostgresSettings.host,
    PostgresSettings.port,
    PostgresSettings.user,
    PostgresSettings.password,
)
PGDATABASE, PGSSLMODE, PGSSLROOTCERT = PostgresSettings.database, PostgresSettings.sslmode, PostgresSettings.sslrootcert
PGSSLCERT, PGSSLKEY, PGAPPNAME = PostgresSettings.sslcert, PostgresSettings.sslkey, PostgresSettings.appname
ALLOW_CLEARTEXT_PASSWORD, REQUIRE_AUTH, CHANNEL_BINDING = (
    AuthPolicy.allow_cleartext_password,
    AuthPolicy.require_auth,
    AuthPolicy.channel_binding,
)
