"""Settings: every environment variable pgbackup reads, declared once, parsed into frozen values.

Each ``Variable`` below is the single declaration of its name, parser, default, secrecy,
``*_FILE`` form and one-line doc (``schema`` explains the fields). Everything else derives
from these declarations: ``load_settings`` (the job), the operator's rendering of a PgBackup
into a pod's environment (it imports these variables, never their names as text), the
configuration reference's tables (docs/configuration.md) and the check of ``.env.example`` (``docs``).

Sources, strongest first:

1. the process environment;
2. an optional ``.env`` file in the working directory (python-dotenv; it never overrides a
   variable that is already set);
3. for the variables declared with ``file_form``, ``<NAME>_FILE`` names a file holding the
   value (Kubernetes Secrets, Docker secrets). The AWS SDK's own ``*_FILE`` variables
   (``AWS_WEB_IDENTITY_TOKEN_FILE`` and friends) keep their SDK meaning and are left to it.

PostgreSQL and S3 connection details stay in the variables their client libraries read
(``PG*`` for libpq, ``AWS_*`` for botocore): ``load_settings`` exports the effective values
(``.env`` entries, secret files) into the process environment so libpq, pg_dump and botocore
see the same configuration, and pgbackup itself parses only what it must validate.

The module is long on purpose (over 400 lines): it is the one list of every variable, and
splitting it would scatter what the schema exists to keep in one place.

Groups: ``Settings`` (every command), ``ScheduleSettings`` (only ``pgbackup schedule`` reads
them, so a schedule typo never stops a run), the operator's own (read by
``pgbackup-operator``) and ``ServerVariables`` (the libpq variables of
one server: the backup server's (``SOURCE_SERVER``), or the scratch server's for verify).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from . import authmethods, dumpoptions
from .cron import validate_expression
from .errors import ConfigError
from .printable import control_character
from .retention import RetentionPolicy
from . import keys, signing
from .runkey import EXAMPLE_RUN_ID, format_run_timestamp, parse_run_id, parse_run_timestamp, scheduled_minute
from .shard import Shard, parse_shard
from .schema import (Invalid, Secret, Variable, boolean, bound, choice, duration, format_boolean, format_number,
                     format_patterns, fraction, integer, optional_integer, optional_text, patterns, text)

MIB = 1024 * 1024


@dataclass(frozen=True)
class Destination:
    """Where backups go: an S3 bucket and prefix, or a local directory."""

    url: str
    scheme: str  # "s3" or "file"
    bucket: str = ""
    prefix: str = ""  # no leading or trailing slash; may be empty
    directory: Path | None = None


def _destination(value: str) -> Destination:
    example = "s3://my-bucket/postgres or file:///var/backups/postgres"
    if not value:
        raise Invalid("is not set", example)
    control = control_character(value)
    if control:  # urlsplit drops tabs and line breaks: the place used would not be the one written
        raise Invalid(f"contains a control character ({control}); remove it", example)
    if "?" in value or "#" in value:  # urlsplit would cut them off (with what follows) in silence
        raise Invalid("must not contain '?' or '#' (a bucket prefix or directory is the path alone)", example)
    parts = urlsplit(value)
    if parts.scheme == "s3":
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", parts.netloc):
            raise Invalid("does not name a valid S3 bucket", example)
        prefix = parts.path.strip("/")
        if "//" in prefix:
            raise Invalid("has an empty path segment in its prefix", example)
        return Destination(url=value, scheme="s3", bucket=parts.netloc, prefix=prefix)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise Invalid("must be an absolute path (three slashes)", example)
        return Destination(url=value, scheme="file", directory=Path(parts.path))
    raise Invalid("must start with s3:// or file://", example)


def _pg_dump_options(value: str) -> tuple[str, ...]:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise Invalid(f"cannot be split into options ({exc})", "'--exclude-table-data=audit.*'") from exc
    try:
        options = dumpoptions.parse(words)
    except dumpoptions.OptionError as exc:
        raise Invalid(f"is not usable: {exc}", "'--no-owner'") from exc
    for option in options:
        if option.meaning in REFUSED_PG_DUMP_OPTIONS:
            written = f" (written {option.written!r})" if option.written.split("=")[0] != option.shown else ""
            raise Invalid(f"must not contain {option.shown}{written}: {REFUSED_PG_DUMP_OPTIONS[option.meaning]}; "
                          "remove it", "'--no-owner'")
    return tuple(words)


def _bindir(value: str) -> Path | None:
    if value and not (Path(value) / "pg_dump").is_file():
        raise Invalid("holds no pg_dump", "/usr/lib/postgresql/18/bin")
    return Path(value) if value else None


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def _retention(value: str) -> RetentionPolicy:
    if not value.strip():
        return RetentionPolicy()
    try:
        return RetentionPolicy.parse(value)
    except ValueError as exc:
        raise Invalid(f"is not a retention policy ({exc})", "last=7,daily=14,weekly=8,monthly=12") from exc


def _storage_class(value: str) -> str | None:
    if value and not re.fullmatch(r"[A-Z_]+", value):
        raise Invalid("is not an S3 storage class", "STANDARD_IA")
    return value or None


def _log_level(value: str) -> str:
    return choice("info", "debug", "warning", "error")(value).upper()


def _schedule(value: str) -> str:
    expression = value.strip()
    if expression:
        try:
            validate_expression(expression)
        except ValueError as exc:
            raise Invalid(str(exc), separator=": ") from exc
    return expression


def _optional(value: object) -> str:
    return "" if value is None else str(value)


# --- where backups go ---------------------------------------------------------------------
DESTINATION = Variable("BACKUP_DESTINATION", _destination, "Bucket and optional prefix, or an absolute directory.",
                       example="s3://my-backups/postgres, file:///var/backups/pg", shown_default="(required)")
S3_ADDRESSING_STYLE = Variable("BACKUP_S3_ADDRESSING_STYLE", choice("auto", "path", "virtual"),
                               "`auto`, `path` or `virtual`. Most S3-compatible servers want `path`.",
                               default="auto", example="path")
S3_SSE = Variable("BACKUP_S3_SSE", choice("AES256", "aws:kms", "", fold=False),
                  "Server-side encryption: `AES256` or `aws:kms`.", example="aws:kms")
S3_KMS_KEY_ID = Variable("BACKUP_S3_KMS_KEY_ID", optional_text, "KMS key for `aws:kms`.", example="alias/backups",
                         shown_default="bucket default", format=_optional)
S3_STORAGE_CLASS = Variable("BACKUP_S3_STORAGE_CLASS", _storage_class,
                            "Storage class of dump objects (manifests stay in the default class).",
                            example="STANDARD_IA", shown_default="bucket default", format=_optional)
S3_CONNECT_TIMEOUT = Variable("BACKUP_S3_CONNECT_TIMEOUT", bound,
                               "How long one connection attempt to the S3 endpoint may take (at least 1 s).",
                               default="10",
                               example="5s")
S3_READ_TIMEOUT = Variable("BACKUP_S3_READ_TIMEOUT", bound,
                           "How long one S3 request may wait for the next bytes of its answer before it is "
                           "retried (each attempt of `AWS_MAX_ATTEMPTS`; at least 1 s).", default="60", example="2m")
UPLOAD_CONCURRENCY = Variable("BACKUP_UPLOAD_CONCURRENCY", integer(1, 32),
                              "Parts uploaded in parallel, and so held in memory (1-32).", default="4", example="8")
PART_SIZE_MB = Variable("BACKUP_PART_SIZE_MB", integer(5, 512),
                        "First part size in MiB (5-512); grows for very large streams (see [Memory, part sizes "
                        "and S3 limits](performance.md#memory-part-sizes-and-s3-limits)).", default="8", example="16")

# --- what and how -------------------------------------------------------------------------
DATABASES = Variable("BACKUP_DATABASES", patterns,
                     "Comma-separated names or shell-style globs to back up. A plain name that does not exist "
                     "fails (that name).", example="app,analytics_*", shown_default="all", format=format_patterns)
EXCLUDE_DATABASES = Variable("BACKUP_EXCLUDE_DATABASES", patterns,
                             "Names or globs to skip; applied after the include list.", example="*_test,scratch",
                             format=format_patterns)
COMPRESSION = Variable("BACKUP_COMPRESSION", choice("gzip", "zstd"),
                       "`gzip` (one standard gzip stream, `.sql.gz`) or `zstd` (`.sql.zst`, about 10% smaller; "
                       "restore it by hand with `zstd -dc`). See [Performance](performance.md).",
                       default="gzip", example="zstd")
COMPRESSION_LEVEL = Variable("BACKUP_COMPRESSION_LEVEL", optional_integer(1, 19),
                             "gzip: 1-9, zstd: 1-19. What each level means in speed and size: see "
                             "[Performance](performance.md#compression-levels).",
                             example="1, 9", shown_default="6 (gzip), 3 (zstd)", format=_optional)
COMPRESSION_THREADS = Variable("BACKUP_COMPRESSION_THREADS", optional_integer(1, 64),
                               "Compression threads of one database's stream (1-64).", example="2",
                               shown_default="the CPUs this process may use (affinity, cgroup CPU limit), "
                               "divided among the databases running at once", format=_optional)
PARALLEL_DATABASES = Variable("BACKUP_PARALLEL_DATABASES", integer(1, 32),
                              "Databases dumped and uploaded at once (1-32); each still fails alone. Memory grows "
                              "with it: see [Memory, part sizes and S3 limits]"
                              "(performance.md#memory-part-sizes-and-s3-limits).", default="4", example="1, 8")
PG_DUMP_OPTIONS = Variable("BACKUP_PG_DUMP_OPTIONS", _pg_dump_options,
                           "Extra pg_dump options (shell quoting), read as pg_dump 18 reads them. Options that "
                           "change the output file, format, compression, database or server (`-f -F -j -Z -d -W -h -p "
                           "-U`), that restore does itself (`-C`, `-c`), and `--restrict-key`, are refused however "
                           "they are written (`--form=c`, `-vFc`); so are options pg_dump would reject and words "
                           "that are not options.", example="--exclude-table-data='audit.*' --no-owner",
                           format=shlex.join)
LOCK_WAIT_TIMEOUT = Variable("BACKUP_LOCK_WAIT_TIMEOUT", duration,
                             "pg_dump's `--lock-wait-timeout`: give up instead of queueing behind DDL. `0` waits "
                             "forever.", default="300", example="90s, 5m")
DATABASE_TIMEOUT = Variable("BACKUP_DATABASE_TIMEOUT", duration,
                            "Per-database limit, pg_dump and upload together; a backup still running then is "
                            "stopped and fails. `0`: none.",
                            default="0", example="2h")
PG_BINDIR = Variable("BACKUP_PG_BINDIR", _bindir, "Where `pg_dump` is, if not on `PATH`.",
                     example="/usr/lib/postgresql/18/bin", shown_default="`PATH`", format=_optional)
ABANDONED_UPLOAD_AGE = Variable("BACKUP_ABANDONED_UPLOAD_AGE", duration,
                                "A run aborts unfinished uploads of our layout older than this by the "
                                "store's clock, left by killed runs; keep it longer than any run, so a live "
                                "run's upload is never touched.", default="24h", example="48h")
PROGRESS_INTERVAL = Variable("BACKUP_PROGRESS_INTERVAL", duration,
                             "How often a running dump logs its progress; `0` turns it off.",
                             default="30", example="10s")
GLOBALS = Variable("BACKUP_GLOBALS", boolean,
                   "Also store the roles and tablespaces (`pg_dumpall --globals-only`) with each run.",
                   default="true", example="false", format=format_boolean)
RETENTION = Variable("BACKUP_RETENTION", _retention,
                     "Grandfather-father-son retention, applied after runs without failures and by `pgbackup "
                     "prune`.", example="last=7,daily=14,weekly=8,monthly=12", shown_default="none (keep all)",
                     format=RetentionPolicy.describe)
SHRINK_ALARM = Variable("BACKUP_SHRINK_ALARM", fraction,
                        "Warn and flag a backup smaller than this fraction of the previous one; `0` turns it off.",
                        default="0.5", example="0.8, 0", format=format_number)
TERMINATION_LOG = Variable("BACKUP_TERMINATION_LOG", _optional_path,
                           "Write the outcome in one line here (Kubernetes shows it as the container's "
                           "termination message).", example="/dev/termination-log", format=_optional)
# --- one run spread over several pods, and the run's identity (the operator renders these) ---
JOB_NAME = Variable("BACKUP_JOB_NAME", optional_text,
                    "The Kubernetes Job's name (the operator renders the pod's `batch.kubernetes.io/job-name` "
                    "label). Unless the run timestamp is given, a name ending in `-<digits>` (the CronJob "
                    "controller's scheduled time, in minutes since the Unix epoch, UTC) gives the run's "
                    "timestamp; any other name, or a number that is no plausible minute, leaves the clock.",
                    example="pgbackup-prod-29400000", format=_optional)
RUN_TIMESTAMP = Variable("BACKUP_RUN_TIMESTAMP", parse_run_timestamp,
                         "The run's key timestamp instead of the clock, shared by every shard and retried pod of "
                         "one run: `20261130T020000Z`, or RFC 3339 with `Z` or an offset (kept in UTC, whole "
                         f"seconds). First of three: this, else `{JOB_NAME.name}`'s scheduled minute, else the "
                         "clock at the start.", example="20261130T020000Z, 2026-11-30T03:00:00+01:00",
                         shown_default=f"from `{JOB_NAME.name}`, else the clock", format=format_run_timestamp)
RUN_ID = Variable("BACKUP_RUN_ID", parse_run_id,
                  "The run's id in its manifests and object metadata instead of a random one (the operator "
                  "renders the Job's uid). A retried pod with the same id and timestamp counts its own complete "
                  "backups as done instead of as conflicts.", example=EXAMPLE_RUN_ID,
                  shown_default="random, per run", format=_optional)
SHARD = Variable("BACKUP_SHARD", parse_shard,
                 "`i/N`: back up only the selected databases whose name's hash modulo N is i (see [Sharding a "
                 "server over several pods](performance.md#sharding-a-server-over-several-pods)); shard 0 also "
                 f"stores the globals. With N > 1 every shard needs the "
                 f"same run timestamp (`{RUN_TIMESTAMP.name}`, or a CronJob's `{JOB_NAME.name}`), and "
                 f"`{RETENTION.name}` is refused: run `pgbackup prune` after every shard of the run.", example="0/3",
                 shown_default="`0/1` (one pod, every database)")
# --- client-side encryption (age) -----------------------------------------------------------
ENCRYPT_RECIPIENTS = Variable("BACKUP_ENCRYPT_RECIPIENTS", keys.parse_recipients,
                              "Encrypt every stored dump and globals object to these age recipients (`age1...`) "
                              "or SSH public keys (`ssh-ed25519`, `ssh-rsa`), separated by commas or newlines. "
                              "Public keys: the job never needs a private one.",
                              example="age1nw3km0dvdajfha6vqe5t4xv9ragwhv74p7a6k8pgcs62gly5td0sy3t46j",
                              shown_default="none (not encrypted)", file_form=True, format=", ".join)
DECRYPT_IDENTITY_PATH = Variable("BACKUP_DECRYPT_IDENTITY_PATH", _optional_path,
                                 "The age identity file (`AGE-SECRET-KEY-1...` lines) or unencrypted SSH private "
                                 "key that `restore` and `verify` decrypt with. Read only when decrypting, never "
                                 "put into the environment.", example="/run/secrets/age-identity.txt",
                                 format=_optional)


# --- signed manifests and what a reader trusts (``core.signing``) ----------------------------
SIGNING_KEY_FILE = Variable("BACKUP_SIGNING_KEY_FILE", _optional_path,
                            "The backup job's ed25519 private key (PEM, from `pgbackup keygen`): every manifest it "
                            "writes is signed with it. Only `run` reads it; without it, backups are unsigned and "
                            "whoever can write the bucket is trusted like the database superuser.",
                            example="/run/secrets/pgbackup-signing.pem", format=_optional)
SIGNING_PUBLIC_KEYS = Variable("BACKUP_SIGNING_PUBLIC_KEYS", signing.parse_public_keys,
                               "Public keys (`ed25519:...`, commas or newlines) whose signatures `list`, `prune`, "
                               "`verify` and `restore` accept; several at once for rotation. Set, unsigned backups "
                               "are never picked as latest, never kept by retention and restored only with "
                               "`--allow-unsigned`.", example="ed25519:" + "A" * 43 + "=",
                               shown_default="none (no signatures checked)", file_form=True,
                               format=signing.format_public_keys)
CLOCK_SKEW = Variable("BACKUP_CLOCK_SKEW", duration,
                      "How far a backup's timestamp may lie ahead of now, and of when its manifest was stored, "
                      "before it is *suspect* (listed, never latest, never kept or deleted by retention).",
                      default="15m", example="5m")
MANIFEST_LIMIT_MB = Variable("BACKUP_MANIFEST_LIMIT_MB", integer(1, 1024),
                             "The largest manifest read, in MiB (the default holds 100,000 tables and the block "
                             "digests of a 1 TiB dump); a larger one marks its backup damaged.",
                             default="16", example="64")
VERIFY_ON_BACKUP_SERVER = Variable("BACKUP_VERIFY_ON_BACKUP_SERVER", boolean,
                                   "Let `pgbackup verify` drill on the server the backups come from. Off, the "
                                   "drill needs a separate scratch server (see [Security model]"
                                   "(security.md#a-database-owners-code)), because restoring a database runs its "
                                   "owners' functions with the drill's rights, next "
                                   "to every other database of the server.", default="false", example="true",
                                   format=format_boolean)
GLOBALS_LIMIT_MB = Variable("BACKUP_GLOBALS_LIMIT_MB", integer(1, 65536),
                            "The most globals (roles and tablespaces) `restore --globals` holds once decompressed, "
                            "in MiB.", default="256", example="1024")


# --- where outcomes go besides the log (``backup_job.report``) ------------------------------
def _urls(value: str) -> tuple[str, ...]:
    urls = tuple(value.split())
    bad = [url for url in urls if "://" not in url]
    if bad:
        raise Invalid("holds an entry that is not a URL (scheme://...)", "slack://TokenA/TokenB/TokenC")
    return urls


def _http_url(value: str) -> str | None:
    """An http(s) URL urllib can reach as written. These variables are secret: no message
    here repeats any part of the value."""
    example = "https://hc-ping.com/<uuid>"
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise Invalid("must be an http:// or https:// URL", example)
    if control_character(value) or " " in value:  # urlsplit drops some; a request line breaks on the rest
        raise Invalid("contains a space or a control character; percent-encode or remove it", example)
    parts = urlsplit(value)
    if "@" in parts.netloc:  # urllib sends no credentials from a URL: it resolves "user:pass@host" as a name
        raise Invalid("must not contain user:password@: pgbackup sends no credentials from a URL; use one that "
                      "needs none, or whose path carries its token", example)
    if not parts.hostname:
        raise Invalid("names no host", example)
    try:
        parts.port
    except ValueError as exc:
        raise Invalid("has an invalid port (1-65535)", example) from exc
    return value


NOTIFY_URLS = Variable("BACKUP_NOTIFY_URLS", _urls,
                       "Where to send notifications: Apprise URLs separated by spaces or newlines (Slack, "
                       "Teams, Discord, Matrix, ntfy, email, JSON webhooks...). They carry tokens: use the "
                       "`_FILE` form.", example="/run/secrets/notify_urls",
                       shown_default="none", secret=True, file_form=True, format=" ".join)
NOTIFY_ON = Variable("BACKUP_NOTIFY_ON", choice("failure", "always"),
                     "`failure`: failed runs, failed verify drills and shrink alarms; `always`: every run too.",
                     default="failure", example="always")
HEALTHCHECK_URL = Variable("BACKUP_HEALTHCHECK_URL", _http_url,
                           "A dead man's switch (healthchecks.io convention): `<url>/start` when a run starts, "
                           "`<url>` on success, `<url>/fail` on failure; the monitor alerts when pings stop.",
                           example="/run/secrets/healthcheck_url", shown_default="none", secret=True, file_form=True,
                           format=_optional)
METRICS_TEXTFILE = Variable("BACKUP_METRICS_TEXTFILE", _optional_path,
                            "Write the last run's metrics here, atomically, for node_exporter's textfile "
                            "collector.", example="/var/lib/node_exporter/pgbackup.prom", format=_optional)
METRICS_PUSHGATEWAY_URL = Variable("BACKUP_METRICS_PUSHGATEWAY_URL", _http_url,
                                   "Push the last run's metrics to this Prometheus Pushgateway (job `pgbackup`, "
                                   "grouped by destination).", example="/run/secrets/pushgateway_url",
                                   shown_default="none", secret=True, file_form=True, format=_optional)
NOTIFY_TIMEOUT = Variable("BACKUP_NOTIFY_TIMEOUT", duration,
                          "The most time notifications, pings and metric pushes may take together at each "
                          "step; they never change the run's exit code.", default="10s", example="5s")


LOG_LEVEL = Variable("LOG_LEVEL", _log_level, "`debug` also prints tracebacks.", default="info", example="debug",
                     format=str.lower)
LOG_FORMAT = Variable("LOG_FORMAT", choice("text", "json"), "One line per event either way, on stdout.",
                      default="text", example="json")

# pg_dump options that would change where the output goes, its format, which database is
# dumped, or which server and user: the pipeline depends on plain SQL on stdout of the database
# it chose, and another host or port would receive PGPASSWORD (whoever writes a PgBackup's
# pgDumpOptions could collect it). Matched by meaning, however the option is spelled (a
# prefix, bundled, an alias).
_PASSWORD_PROMPT = "a password prompt would hang the job; use PGPASSWORD or PGPASSWORD_FILE"
_SERVER = "the server and user come from PGHOST, PGPORT and PGUSER (another server would receive PGPASSWORD)"
REFUSED_PG_DUMP_OPTIONS = {  # by meaning (core.dumpoptions): every spelling of these is refused
    "file": "the dump is streamed from stdout",
    "format": "pgbackup stores plain SQL",
    "jobs": "parallel dumps need the directory format",
    "compress": f"pgbackup compresses the stream itself ({COMPRESSION.name}, {COMPRESSION_LEVEL.name})",
    "create": "restore --create recreates the database from the properties pgbackup captures",
    "clean": "restore --clean drops the old contents inside the restore's transaction",
    "dbname": f"databases are chosen with {DATABASES.name}",
    "password": _PASSWORD_PROMPT,
    "host": _SERVER,
    "port": _SERVER,
    "username": _SERVER,
    "restrict-key": "pgbackup chooses a dump's \\restrict key itself, and strips it when it restores",
    "version": "it prints the version instead of dumping",
    "help": "it prints help instead of dumping",
}


# --- the compose schedule (read by `pgbackup schedule` only) ------------------------------
SCHEDULE = Variable("BACKUP_SCHEDULE", _schedule,
                    "The schedule: 5-field cron, a macro (`@daily`), or Supercronic's 7 fields with seconds first "
                    "and a year last.", example="30 2 * * *, */30 * * * * * *")
CRONTAB = Variable("BACKUP_CRONTAB", Path,
                   f"A crontab file to use when `{SCHEDULE.name}` is empty (the repository's `crontab` is the "
                   "image's default).", default="/app/crontab", example="/config/crontab")
RUN_ON_START = Variable("BACKUP_RUN_ON_START", boolean, "Run one backup when the container starts.",
                        default="false", example="true", format=format_boolean)
VERIFY_SCHEDULE = Variable("BACKUP_VERIFY_SCHEDULE", _schedule,
                           "Also run `pgbackup verify` (the restore drill) on this schedule, added to either "
                           "schedule source.", example="0 6 * * 0")
SUPERCRONIC = Variable("BACKUP_SUPERCRONIC", optional_text, "Where Supercronic is (the image ships it).",
                       example="/usr/local/bin/supercronic", shown_default="`PATH`", format=_optional)


# --- the operator (pgbackup-operator) -----------------------------------------------------
OPERATOR_NAMESPACES = Variable("PGBACKUP_NAMESPACES", patterns,
                               "Namespaces the operator watches, comma-separated (globs allowed); `--namespace` "
                               "does the same.", example="db,team-*", shown_default="all namespaces",
                               owner="operator", format=format_patterns)
OPERATOR_IMAGE = Variable("PGBACKUP_IMAGE", optional_text,
                          "The image backup and verify pods run when a PgBackup's `pod.image` is empty.",
                          example="registry.example.com/pgbackup:0.1.0", shown_default="the operator's own release",
                          owner="operator", format=_optional)
OPERATOR_LIVENESS = Variable("PGBACKUP_LIVENESS", text, "The operator's liveness endpoint (`--liveness`).",
                             default="http://0.0.0.0:8080/healthz", owner="operator")
OPERATOR_METRICS_PORT = Variable("PGBACKUP_METRICS_PORT", integer(0, 65535),
                                 "The port of the operator's Prometheus metrics (`/metrics`, `--metrics-port`); "
                                 "`0` turns them off.", default="9090", example="9090, 0", owner="operator")
OPERATOR_LOG_FORMAT = Variable("PGBACKUP_LOG_FORMAT", choice("text", "json"),
                               "The operator's log lines (`--log-format`): text, or JSON objects shaped like "
                               "the job's (`time`, `level`, `message`, `event`, and `object` for a resource).",
                               default="text", example="json", owner="operator")
OPERATOR_FRESHNESS_INTERVAL = Variable("PGBACKUP_FRESHNESS_INTERVAL", duration,
                                       "How often the operator checks every PgBackup's last success against "
                                       "its maximum age (`spec.alerting.maxAge`).", default="60s", example="30s",
                                       owner="operator")


# --- PostgreSQL: libpq's own variables, and a scratch server's for verify ----------------
def _libpq(name: str, doc: str, example: str, secret: bool = False, default: str = "") -> Variable[str]:
    return Variable(name, text, doc, example=example, default=default, shown_default="" if default else "libpq's",
                    secret=secret, file_form=secret, owner="libpq")


def _scratch(name: str, libpq: Variable[str], example: str) -> Variable[str]:
    return Variable(name, text, f"`{libpq.name}` of the scratch server.", example=example,
                    shown_default="the backup server's", secret=libpq.secret, file_form=libpq.secret)


PGHOST = _libpq("PGHOST", "The server: host name, address or socket directory.", example="db.internal")
PGPORT = _libpq("PGPORT", "Its port.", example="6432", default="5432")
PGUSER = _libpq("PGUSER", "The user pg_dump and discovery connect as.", example="backup")
PGPASSWORD = _libpq("PGPASSWORD", "Its password (or use libpq's `PGPASSFILE`).", "/run/secrets/pgpassword",
                    secret=True)
PGDATABASE = Variable("PGDATABASE", text, "The database discovery connects to.", default="postgres",
                      example="template1", owner="libpq")
PGSSLMODE = _libpq("PGSSLMODE", "TLS mode.", example="verify-full", default="prefer")
PGSSLROOTCERT = _libpq("PGSSLROOTCERT", "CA certificate file for `verify-ca` / `verify-full`.",
                       example="/etc/pgbackup/tls/ca/ca.crt")
PGSSLCERT = _libpq("PGSSLCERT", "Client certificate file.", example="/etc/pgbackup/tls/client/tls.crt")
PGSSLKEY = _libpq("PGSSLKEY", "Client key file.", example="/etc/pgbackup/tls/client/tls.key")
PGAPPNAME = _libpq("PGAPPNAME", "The name the server shows for pgbackup's sessions.", example="pgbackup")
ALLOW_CLEARTEXT_PASSWORD = Variable("BACKUP_ALLOW_CLEARTEXT_PASSWORD", boolean,
                                    "Let a server ask for the password in cleartext (`password` in pg_hba.conf: "
                                    "the IAM tokens of RDS, Cloud SQL, Entra ID); only with "
                                    f"`{PGSSLMODE.name}=verify-full`, so it goes only to the server whose "
                                    "certificate names it.", default="false", example="true", format=format_boolean)
REQUIRE_AUTH = Variable("PGREQUIREAUTH", authmethods.parse,
                        "The authentication requests pgbackup and its client programs answer (libpq's "
                        "`require_auth`, libpq 16+). A list that allows `password` (cleartext) is refused unless "
                        f"`{PGSSLMODE.name}=verify-full` and `{ALLOW_CLEARTEXT_PASSWORD.name}=true`. See [Passwords "
                        "on the wire](security.md#passwords-on-the-wire).", example=authmethods.EXAMPLE,
                        shown_default=f"`scram-sha-256,none` (with `{ALLOW_CLEARTEXT_PASSWORD.name}`: "
                        "`scram-sha-256,password,none`)", owner="libpq", format=authmethods.describe)
CHANNEL_BINDING = Variable("PGCHANNELBINDING", choice("require", "prefer", "disable", ""),
                           "Channel binding (libpq's `channel_binding`): `require` makes a server prove over TLS "
                           "that it holds the password's SCRAM verifier. `prefer` for a server or pooler that "
                           "cannot.", example="prefer",
                           shown_default="`require` when TLS is required, a password is given, no client "
                           "certificate is, and only `scram-sha-256` or `none` are allowed; else libpq's `prefer`",
                           owner="libpq", format=_optional)

VERIFY_PGHOST = _scratch("BACKUP_VERIFY_PGHOST", PGHOST, example="scratch.internal")
VERIFY_PGPORT = _scratch("BACKUP_VERIFY_PGPORT", PGPORT, example="5432")
VERIFY_PGUSER = _scratch("BACKUP_VERIFY_PGUSER", PGUSER, example="drill")
VERIFY_PGPASSWORD = _scratch("BACKUP_VERIFY_PGPASSWORD", PGPASSWORD, example="/run/secrets/scratch")
VERIFY_PGDATABASE = _scratch("BACKUP_VERIFY_PGDATABASE", PGDATABASE, example="postgres")
VERIFY_PGSSLMODE = _scratch("BACKUP_VERIFY_PGSSLMODE", PGSSLMODE, example="verify-full")
VERIFY_PGSSLROOTCERT = _scratch("BACKUP_VERIFY_PGSSLROOTCERT", PGSSLROOTCERT,
                                example="/etc/pgbackup/verify-tls/ca/ca.crt")
VERIFY_PGSSLCERT = _scratch("BACKUP_VERIFY_PGSSLCERT", PGSSLCERT, example="/etc/pgbackup/verify-tls/client/tls.crt")
VERIFY_PGSSLKEY = _scratch("BACKUP_VERIFY_PGSSLKEY", PGSSLKEY, example="/etc/pgbackup/verify-tls/client/tls.key")


@dataclass(frozen=True)
class ServerVariables:
    """The variables that describe one PostgreSQL server, field by field."""

    host: Variable[str]
    port: Variable[str]
    user: Variable[str]
    password: Variable[str]
    database: Variable[str]
    sslmode: Variable[str]
    sslrootcert: Variable[str]
    sslcert: Variable[str]
    sslkey: Variable[str]

    def variables(self) -> tuple[Variable[str], ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


SOURCE_SERVER = ServerVariables(PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT,
                                PGSSLCERT, PGSSLKEY)
SCRATCH_SERVER = ServerVariables(VERIFY_PGHOST, VERIFY_PGPORT, VERIFY_PGUSER, VERIFY_PGPASSWORD, VERIFY_PGDATABASE,
                                 VERIFY_PGSSLMODE, VERIFY_PGSSLROOTCERT, VERIFY_PGSSLCERT, VERIFY_PGSSLKEY)


# --- S3: the AWS SDK's own variables ------------------------------------------------------
def _sdk(name: str, doc: str, example: str, secret: bool = False) -> Variable[str]:
    return Variable(name, text, doc, example=example, shown_default="SDK chain", secret=secret, file_form=secret,
                    owner="sdk")


AWS_REGION = _sdk("AWS_REGION", "The bucket's region.", example="eu-central-1")
AWS_ACCESS_KEY_ID = _sdk("AWS_ACCESS_KEY_ID", "Static access key (else the SDK's chain: profiles, IRSA / web "
                         "identity, instance roles).", "/run/secrets/aws_access_key_id", secret=True)
AWS_SECRET_ACCESS_KEY = _sdk("AWS_SECRET_ACCESS_KEY", "Its secret key.", "/run/secrets/aws_secret_access_key",
                             secret=True)
AWS_SESSION_TOKEN = _sdk("AWS_SESSION_TOKEN", "A session token for temporary credentials.",
                         "/run/secrets/aws_session_token", secret=True)
AWS_ENDPOINT_URL_S3 = _sdk("AWS_ENDPOINT_URL_S3", "An S3-compatible server (or `AWS_ENDPOINT_URL` for every "
                           "service).", example="http://minio:9000")
AWS_MAX_ATTEMPTS = Variable("AWS_MAX_ATTEMPTS", integer(1, 20),
                            "Attempts per S3 request, the first included (the SDK's variable; pgbackup's "
                            "default differs from the SDK's).", default="5", example="3", owner="sdk")
AWS_RETRY_MODE = Variable("AWS_RETRY_MODE", choice("standard", "adaptive", "legacy"),
                          "The SDK's retry mode.", default="standard", example="adaptive", owner="sdk")
AWS_REQUEST_CHECKSUM_CALCULATION = _sdk("AWS_REQUEST_CHECKSUM_CALCULATION", "Set `when_required` for stores that "
                                        "reject CRC checksums: the SDK's defaults and pgbackup's CRC32C are then "
                                        "left out (see [Integrity in transit]"
                                        "(encryption.md#integrity-in-transit)).", example="when_required")
AWS_RESPONSE_CHECKSUM_VALIDATION = _sdk("AWS_RESPONSE_CHECKSUM_VALIDATION", "Likewise for checking responses.",
                                        example="when_required")

# The groups, in the order docs/configuration.md shows them.
JOB = (DESTINATION, DATABASES, EXCLUDE_DATABASES, COMPRESSION, COMPRESSION_LEVEL, COMPRESSION_THREADS,
       PARALLEL_DATABASES, SHARD, RUN_TIMESTAMP, JOB_NAME, RUN_ID, PG_DUMP_OPTIONS, LOCK_WAIT_TIMEOUT,
       DATABASE_TIMEOUT, PG_BINDIR, S3_ADDRESSING_STYLE, S3_SSE, S3_KMS_KEY_ID, S3_STORAGE_CLASS, S3_CONNECT_TIMEOUT,
       S3_READ_TIMEOUT, UPLOAD_CONCURRENCY, ABANDONED_UPLOAD_AGE,
       PART_SIZE_MB, PROGRESS_INTERVAL, GLOBALS, RETENTION, SHRINK_ALARM, TERMINATION_LOG, LOG_LEVEL, LOG_FORMAT)
SCHEDULE_VARIABLES = (SCHEDULE, CRONTAB, RUN_ON_START, VERIFY_SCHEDULE, SUPERCRONIC)
ENCRYPTION = (ENCRYPT_RECIPIENTS, DECRYPT_IDENTITY_PATH)
TRUST = (SIGNING_KEY_FILE, SIGNING_PUBLIC_KEYS, CLOCK_SKEW, VERIFY_ON_BACKUP_SERVER, MANIFEST_LIMIT_MB,
         GLOBALS_LIMIT_MB)
REPORT = (NOTIFY_URLS, NOTIFY_ON, HEALTHCHECK_URL, METRICS_TEXTFILE, METRICS_PUSHGATEWAY_URL, NOTIFY_TIMEOUT)
OPERATOR = (OPERATOR_NAMESPACES, OPERATOR_IMAGE, OPERATOR_LIVENESS, OPERATOR_METRICS_PORT, OPERATOR_FRESHNESS_INTERVAL,
            OPERATOR_LOG_FORMAT)
POSTGRES: tuple[Variable[Any], ...] = (*SOURCE_SERVER.variables(), PGAPPNAME, REQUIRE_AUTH, CHANNEL_BINDING,
                                       ALLOW_CLEARTEXT_PASSWORD)
SCRATCH = SCRATCH_SERVER.variables()
S3 = (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_S3,
      AWS_MAX_ATTEMPTS, AWS_RETRY_MODE, AWS_REQUEST_CHECKSUM_CALCULATION, AWS_RESPONSE_CHECKSUM_VALIDATION)
GROUPS: dict[str, tuple[Variable[Any], ...]] = {
    "schedule": SCHEDULE_VARIABLES, "job": JOB, "encryption": ENCRYPTION, "trust": TRUST, "report": REPORT, "postgres": POSTGRES, "scratch": SCRATCH, "s3": S3,
    "operator": OPERATOR}
ALL: tuple[Variable[Any], ...] = tuple(variable for group in GROUPS.values() for variable in group)
BY_NAME = {variable.name: variable for variable in ALL}


LEVELS = {"gzip": (1, 9), "zstd": (1, 19)}  # the level range of each format, in its own words
DEFAULT_LEVEL = {"gzip": 6, "zstd": 3}


@dataclass(frozen=True)
class Compression:
    """What the user asked for; ``pipeline.compress`` maps it onto a library."""

    format: str = "gzip"  # "gzip" or "zstd"
    level: int = 6  # in the format's own scale (gzip 1-9, zstd 1-19)
    threads: int | None = None  # per database stream; None: the usable CPUs shared out


@dataclass(frozen=True)
class S3Settings:
    """Only what the AWS SDK has no variable for; credentials stay in the SDK's chain."""

    addressing_style: str = "auto"
    sse: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    connect_timeout: int = 10  # seconds
    read_timeout: int = 60  # seconds
    max_attempts: int = 5
    retry_mode: str = "standard"


@dataclass(frozen=True)
class Settings:
    """Everything one command needs, validated."""

    destination: Destination
    s3: S3Settings
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    discovery_database: str
    compression: Compression
    parallel_databases: int
    pg_dump_options: tuple[str, ...]
    lock_wait_timeout: int  # seconds; 0 waits forever
    database_timeout: int  # seconds; 0 means no limit
    pg_bindir: Path | None
    secret_values: tuple[Secret, ...]
    upload_concurrency: int
    part_size: int  # bytes
    progress_interval: int  # seconds; 0 turns progress lines off
    abandoned_upload_age: int  # seconds
    log_level: str
    log_format: str
    termination_log: Path | None
    retention: RetentionPolicy
    globals: bool
    shrink_alarm: float  # fraction of the previous backup's size; 0 turns it off

    report: "ReportSettings"
    encrypt_to: tuple[str, ...] = ()  # age recipients; empty: stored as plain compressed SQL
    decrypt_identity: Path | None = None  # read only when something is decrypted
    shard: Shard = Shard()  # this pod's part of the run; Shard(0, 1): every database
    run_timestamp: datetime | None = None  # the run's key moment when given (core.runkey)
    job_name: str | None = None  # the Kubernetes Job's name: its scheduled minute, if a CronJob's
    run_id: str | None = None  # None: a random id per run
    signing_key: Path | None = None  # the private key's file; read when a run starts
    public_keys: tuple[signing.PublicKey, ...] = ()  # whose signatures list/prune/verify/restore accept
    clock_skew: int = 900  # seconds
    manifest_limit: int = 16 * MIB  # bytes
    globals_limit: int = 256 * MIB  # bytes, decompressed
    verify_on_backup_server: bool = False  # drills may run on the backed-up server itself

    def secrets(self) -> list[str]:
        """Every secret value this run knows, for the log redaction filter (each notification
        URL on its own too: a log line may name one of several)."""
        return [secret.reveal() for secret in self.secret_values] + [url.reveal() for url in self.report.notify_urls]


@dataclass(frozen=True)
class ReportSettings:
    """Where a run's outcome goes besides the log and the termination message."""

    notify_urls: tuple[Secret, ...]
    notify_always: bool
    healthcheck_url: Secret | None
    metrics_textfile: Path | None
    pushgateway_url: Secret | None
    timeout: int  # seconds

    @property
    def wanted(self) -> bool:
        return bool(self.notify_urls or self.healthcheck_url or self.metrics_textfile or self.pushgateway_url)


@dataclass(frozen=True)
class ScheduleSettings:
    """What ``pgbackup schedule`` runs when."""

    expression: str  # empty: use the crontab file
    crontab: Path
    run_on_start: bool
    verify_expression: str
    supercronic: str | None


def _compression(env: Mapping[str, str]) -> Compression:
    """The format, and its level checked against that format's range (gzip 1-9, zstd 1-19)."""
    fmt = COMPRESSION.read(env)
    level = COMPRESSION_LEVEL.read(env)
    low, high = LEVELS[fmt]
    if level is not None and not low <= level <= high:
        raise COMPRESSION_LEVEL.problem(str(level), Invalid(
            f"is out of range for {fmt}: it must be from {low} to {high}", str(DEFAULT_LEVEL[fmt])))
    return Compression(fmt, DEFAULT_LEVEL[fmt] if level is None else level, COMPRESSION_THREADS.read(env))


def _both_aws_keys(env: Mapping[str, str]) -> None:
    if bool(env.get(AWS_ACCESS_KEY_ID.name)) != bool(env.get(AWS_SECRET_ACCESS_KEY.name)):
        raise ConfigError(
            f"configuration error: only one of {AWS_ACCESS_KEY_ID.name} and {AWS_SECRET_ACCESS_KEY.name} is set "
            "(directly or through *_FILE); set both, or neither to use the SDK's other credentials"
        )


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Validate the effective variables (see ``load_environment``) into ``Settings``."""
    destination = DESTINATION.read(env)
    s3 = S3Settings(S3_ADDRESSING_STYLE.read(env), S3_SSE.read(env) or None, S3_KMS_KEY_ID.read(env),
                    S3_STORAGE_CLASS.read(env), S3_CONNECT_TIMEOUT.read(env), S3_READ_TIMEOUT.read(env),
                    AWS_MAX_ATTEMPTS.read(env), AWS_RETRY_MODE.read(env))
    if s3.kms_key_id and s3.sse != "aws:kms":
        raise ConfigError(f"configuration error: {S3_KMS_KEY_ID.name} is set but {S3_SSE.name} is not aws:kms; "
                          f"set {S3_SSE.name}=aws:kms or unset {S3_KMS_KEY_ID.name}")
    _both_aws_keys(env)
    return Settings(
        destination=destination, s3=s3,
        include=DATABASES.read(env), exclude=EXCLUDE_DATABASES.read(env),
        discovery_database=PGDATABASE.read(env),
        compression=_compression(env), parallel_databases=PARALLEL_DATABASES.read(env),
        pg_dump_options=PG_DUMP_OPTIONS.read(env),
        lock_wait_timeout=LOCK_WAIT_TIMEOUT.read(env), database_timeout=DATABASE_TIMEOUT.read(env),
        pg_bindir=PG_BINDIR.read(env),
        secret_values=tuple(Secret(env[v.name]) for v in ALL if v.secret and env.get(v.name)),
        upload_concurrency=UPLOAD_CONCURRENCY.read(env), part_size=PART_SIZE_MB.read(env) * MIB,
        progress_interval=PROGRESS_INTERVAL.read(env), abandoned_upload_age=ABANDONED_UPLOAD_AGE.read(env),
        log_level=LOG_LEVEL.read(env), log_format=LOG_FORMAT.read(env),
        termination_log=TERMINATION_LOG.read(env),
        retention=RETENTION.read(env), globals=GLOBALS.read(env), shrink_alarm=SHRINK_ALARM.read(env),
        report=_report(env),
        encrypt_to=ENCRYPT_RECIPIENTS.read(env), decrypt_identity=DECRYPT_IDENTITY_PATH.read(env),
        shard=SHARD.read(env), run_timestamp=RUN_TIMESTAMP.read(env), job_name=JOB_NAME.read(env),
        run_id=RUN_ID.read(env), signing_key=SIGNING_KEY_FILE.read(env), public_keys=SIGNING_PUBLIC_KEYS.read(env),
        clock_skew=CLOCK_SKEW.read(env), manifest_limit=MANIFEST_LIMIT_MB.read(env) * MIB,
        globals_limit=GLOBALS_LIMIT_MB.read(env) * MIB, verify_on_backup_server=VERIFY_ON_BACKUP_SERVER.read(env),
    )


def check_command(settings: Settings, command: str) -> None:
    """Refuse settings that are valid alone but wrong for ``command``, in one line."""
    if command == "run" and settings.shard.sharded and settings.retention:
        raise ConfigError(
            f"configuration error: {RETENTION.name} is refused with {SHARD.name}={settings.shard} (N > 1): one "
            f"shard cannot know that the others succeeded; unset {RETENTION.name} for the shards and run "
            f"`pgbackup prune` once every shard of the run has finished")
    if command == "run" and settings.shard.sharded and settings.run_timestamp is None:
        _shared_timestamp(settings)
    if command == "schedule" and (settings.run_timestamp is not None or settings.run_id is not None):
        name = RUN_TIMESTAMP.name if settings.run_timestamp is not None else RUN_ID.name
        raise ConfigError(f"configuration error: {name} names one run, and `pgbackup schedule` starts many "
                          f"(each would meet the first one's backups); unset {name}")


def _shared_timestamp(settings: Settings) -> None:
    """A sharded run's pods must agree on its timestamp: given, or a CronJob's Job name's minute."""
    minute, why = scheduled_minute(settings.job_name or "", datetime.now(timezone.utc))
    if minute is not None:
        return
    job = (f"{JOB_NAME.name} is not set" if not settings.job_name
           else f"{JOB_NAME.name}={settings.job_name!r} gives none ({why or 'it does not end in -<digits>'})")
    raise ConfigError(f"configuration error: {SHARD.name}={settings.shard} needs a run timestamp shared by every "
                      f"shard, and {job}; set {RUN_TIMESTAMP.name} to the same value in every shard, for example "
                      f"{RUN_TIMESTAMP.name}={RUN_TIMESTAMP.examples()[0]}")


def _report(env: Mapping[str, str]) -> ReportSettings:
    healthcheck, pushgateway = HEALTHCHECK_URL.read(env), METRICS_PUSHGATEWAY_URL.read(env)
    return ReportSettings(
        notify_urls=tuple(Secret(url) for url in NOTIFY_URLS.read(env)),
        notify_always=NOTIFY_ON.read(env) == "always",
        healthcheck_url=Secret(healthcheck.rstrip("/")) if healthcheck else None,
        metrics_textfile=METRICS_TEXTFILE.read(env),
        pushgateway_url=Secret(pushgateway) if pushgateway else None,
        timeout=max(1, NOTIFY_TIMEOUT.read(env)),
    )


def parse_schedule(env: Mapping[str, str]) -> ScheduleSettings:
    return ScheduleSettings(SCHEDULE.read(env), CRONTAB.read(env), RUN_ON_START.read(env),
                            VERIFY_SCHEDULE.read(env), SUPERCRONIC.read(env))


def load_environment(environ: Mapping[str, str], dotenv_path: Path | None) -> dict[str, str]:
    """The effective variables: the environment over the ``.env`` file, secret files read."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(environ)
    for variable in (v for v in ALL if v.file_form):
        path = merged.get(variable.file_name, "")
        if not path:
            continue
        if merged.get(variable.name):
            raise ConfigError(f"configuration error: both {variable.name} and {variable.file_name} are set; "
                              "set only one of them")
        try:
            merged[variable.name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"configuration error: {variable.file_name}={path!r} cannot be read ({exc.strerror}); "
                f"point it at a readable file that holds the value of {variable.name}"
            ) from exc
    return merged


def export_environment(effective: Mapping[str, str]) -> None:
    """Make the effective variables visible to libpq, pg_dump and botocore."""
    for name, value in effective.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> Settings:
    """The one entry point: environment (+ ``.env``, + secret files) to ``Settings``.

    Called without ``environ`` it reads ``os.environ`` and, once the settings are valid,
    exports the effective variables back into it for the client libraries.
    """
    effective = load_environment(os.environ if environ is None else environ,
                                 Path.cwd() / ".env" if dotenv_path is None else dotenv_path)
    settings = parse_settings(effective)
    if environ is None:
        export_environment(effective)
    return settings
