"""Settings: read once from the environment, validated, then passed around as a frozen value.

Sources, strongest first:

1. the process environment;
2. an optional ``.env`` file in the working directory (python-dotenv; it never overrides a
   variable that is already set);
3. for the few secrets that are usually mounted as files (Kubernetes Secrets, Docker
   secrets), an explicit ``<NAME>_FILE`` variant. Only the names in ``SECRET_FILE_VARIABLES``
   get this treatment: the AWS SDK's own ``*_FILE`` variables (``AWS_WEB_IDENTITY_TOKEN_FILE``
   and friends) keep their SDK meaning and are left to the SDK.

PostgreSQL and S3 connection details stay in the variables their client libraries already
read (``PG*`` for libpq, ``AWS_*`` for botocore). ``export_environment`` puts the effective
variables (``.env`` entries and values read from secret files) into the process environment,
so libpq, pg_dump and botocore all see the same configuration without pgbackup copying it
into arguments. pgbackup itself reads only what it must validate.

Every problem becomes a ``ConfigError`` whose message names the variable, says what was
wrong and what a right value looks like. Secret values never appear in those messages:
``Secret`` hides its value from ``repr`` and ``str``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .errors import ConfigError
from .retention import RetentionPolicy

SECRET_FILE_VARIABLES = (
    "PGPASSWORD",
    "BACKUP_VERIFY_PGPASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)

MIB = 1024 * 1024

# pg_dump options that would change where the output goes, its format, or which database is
# dumped: the pipeline depends on plain SQL on stdout of the database it chose.
REFUSED_PG_DUMP_OPTIONS = {
    "-f": "the dump is streamed from stdout",
    "--file": "the dump is streamed from stdout",
    "-F": "pgbackup stores plain SQL",
    "--format": "pgbackup stores plain SQL",
    "-j": "parallel dumps need the directory format",
    "--jobs": "parallel dumps need the directory format",
    "-Z": "pgbackup compresses the stream itself (BACKUP_COMPRESSION_LEVEL)",
    "--compress": "pgbackup compresses the stream itself (BACKUP_COMPRESSION_LEVEL)",
    "-C": "restore --create recreates the database from the properties pgbackup captures",
    "--create": "restore --create recreates the database from the properties pgbackup captures",
    "-c": "restore --clean drops the old contents inside the restore's transaction",
    "--clean": "restore --clean drops the old contents inside the restore's transaction",
    "-d": "databases are chosen with BACKUP_DATABASES",
    "--dbname": "databases are chosen with BACKUP_DATABASES",
    "-W": "a password prompt would hang the job; use PGPASSWORD or PGPASSWORD_FILE",
    "--password": "a password prompt would hang the job; use PGPASSWORD or PGPASSWORD_FILE",
    "-V": "it prints the version instead of dumping",
    "--version": "it prints the version instead of dumping",
    "-?": "it prints help instead of dumping",
    "--help": "it prints help instead of dumping",
}


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Destination:
    """Where backups go: an S3 bucket and prefix, or a local directory."""

    url: str
    scheme: str  # "s3" or "file"
    bucket: str = ""
    prefix: str = ""  # no leading or trailing slash; may be empty
    directory: Path | None = None


@dataclass(frozen=True)
class S3Settings:
    """Only what the AWS SDK has no variable for; credentials stay in the SDK's chain."""

    addressing_style: str = "auto"
    sse: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything one run needs, validated."""

    destination: Destination
    s3: S3Settings = field(default_factory=S3Settings)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    discovery_database: str = "postgres"
    compression_level: int = 6
    pg_dump_options: tuple[str, ...] = ()
    lock_wait_timeout: int = 300
    database_timeout: int = 0  # seconds; 0 means no limit
    pg_bindir: Path | None = None
    secret_values: tuple[Secret, ...] = ()
    upload_concurrency: int = 4
    part_size: int = 8 * MIB
    progress_interval: int = 30
    log_level: str = "INFO"
    log_format: str = "text"
    termination_log: Path | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    globals: bool = True
    shrink_alarm: float = 0.5  # fraction of the previous backup's size; 0 turns it off

    def secrets(self) -> list[str]:
        """Every secret value this run knows, for the log redaction filter."""
        return [secret.reveal() for secret in self.secret_values]


def _bad(name: str, value: str, problem: str, example: str) -> ConfigError:
    shown = f"{name}={value!r}" if value else f"{name}"
    return ConfigError(f"configuration error: {shown} {problem}; for example {name}={example}")


def load_environment(environ: Mapping[str, str], dotenv_path: Path | None) -> dict[str, str]:
    """The effective variables: the environment over the ``.env`` file, secrets files read."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(environ)
    for name in SECRET_FILE_VARIABLES:
        file_name = f"{name}_FILE"
        path = merged.get(file_name, "")
        if not path:
            continue
        if merged.get(name):
            raise ConfigError(
                f"configuration error: both {name} and {file_name} are set; set only one of them"
            )
        try:
            merged[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"configuration error: {file_name}={path!r} cannot be read ({exc.strerror}); "
                f"point it at a readable file that holds the value of {name}"
            ) from exc
    return merged


def export_environment(effective: Mapping[str, str]) -> None:
    """Make the effective variables visible to libpq, pg_dump and botocore."""
    for name, value in effective.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def parse_destination(value: str) -> Destination:
    name = "BACKUP_DESTINATION"
    example = "s3://my-bucket/postgres or file:///var/backups/postgres"
    if not value:
        raise ConfigError(
            f"configuration error: {name} is not set; for example {name}=s3://my-bucket/postgres"
            f" or {name}=file:///var/backups/postgres"
        )
    parts = urlsplit(value)
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise _bad(name, value, "does not name a valid S3 bucket", example)
        if parts.query or parts.fragment:
            raise _bad(name, value, "must not contain '?' or '#'", example)
        prefix = parts.path.strip("/")
        if "//" in prefix:
            raise _bad(name, value, "has an empty path segment in its prefix", example)
        return Destination(url=value, scheme="s3", bucket=bucket, prefix=prefix)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _bad(name, value, "must be an absolute path (three slashes)", example)
        return Destination(url=value, scheme="file", directory=Path(parts.path))
    raise _bad(name, value, "must start with s3:// or file://", example)


def parse_duration(name: str, value: str, default: int) -> int:
    """Seconds from ``90``, ``90s``, ``15m`` or ``2h``; ``0`` turns a limit off."""
    if value == "":
        return default
    match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", value)
    if not match:
        raise _bad(name, value, "is not a duration", "300, 90s, 15m or 2h")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return int(match.group(1)) * unit


def parse_int(name: str, value: str, default: int, low: int, high: int) -> int:
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise _bad(name, value, f"is not a whole number from {low} to {high}", str(default)) from exc
    if not low <= number <= high:
        raise _bad(name, value, f"is out of range: it must be from {low} to {high}", str(default))
    return number


def parse_choice(name: str, value: str, default: str, choices: tuple[str, ...]) -> str:
    if value == "":
        return default
    folded = value if name == "BACKUP_S3_SSE" else value.lower()
    if folded not in choices:
        raise _bad(name, value, f"must be one of {' | '.join(choices)}", choices[0])
    return folded


def parse_patterns(value: str) -> tuple[str, ...]:
    """Comma-separated names or shell-style globs (fnmatch accepts any string as a glob)."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def parse_pg_dump_options(value: str) -> tuple[str, ...]:
    name = "BACKUP_PG_DUMP_OPTIONS"
    try:
        options = tuple(shlex.split(value))
    except ValueError as exc:
        raise _bad(name, value, f"cannot be split into options ({exc})", "'--exclude-table-data=audit.*'") from exc
    for option in options:
        if not option.startswith("-"):
            raise _bad(name, value, f"contains {option!r}, which is not an option", "'--no-owner'")
        flag = option.split("=", 1)[0]
        if flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
            flag = flag[:2]  # short option with its value attached, e.g. -Fc
        if flag in REFUSED_PG_DUMP_OPTIONS:
            raise ConfigError(
                f"configuration error: BACKUP_PG_DUMP_OPTIONS must not contain {flag}: "
                f"{REFUSED_PG_DUMP_OPTIONS[flag]}; remove it"
            )
    return options


def parse_bindir(value: str) -> Path | None:
    if not value:
        return None
    path = Path(value)
    if not (path / "pg_dump").is_file():
        raise _bad("BACKUP_PG_BINDIR", value, "holds no pg_dump", "/usr/lib/postgresql/18/bin")
    return path


def parse_bool(name: str, value: str, default: bool) -> bool:
    folded = value.strip().lower()
    if folded == "":
        return default
    if folded in ("1", "true", "yes", "on"):
        return True
    if folded in ("0", "false", "no", "off"):
        return False
    raise _bad(name, value, "must be true or false", "true")


def parse_retention(value: str) -> RetentionPolicy:
    if not value.strip():
        return RetentionPolicy()
    try:
        return RetentionPolicy.parse(value)
    except ValueError as exc:
        raise _bad("BACKUP_RETENTION", value, f"is not a retention policy ({exc})",
                   "last=7,daily=14,weekly=8,monthly=12") from exc


def parse_fraction(name: str, value: str, default: float) -> float:
    if not value.strip():
        return default
    try:
        number = float(value.strip().rstrip("%")) / (100 if value.strip().endswith("%") else 1)
    except ValueError as exc:
        raise _bad(name, value, "is not a fraction from 0 to 1", "0.5") from exc
    if not 0 <= number < 1:
        raise _bad(name, value, "must be from 0 (off) to below 1", "0.5")
    return number


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "")
    return Secret(value) if value else None


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Validate the effective variables (see ``load_environment``) into ``Settings``."""
    destination = parse_destination(env.get("BACKUP_DESTINATION", ""))
    sse = parse_choice("BACKUP_S3_SSE", env.get("BACKUP_S3_SSE", ""), "", ("AES256", "aws:kms", ""))
    kms_key_id = env.get("BACKUP_S3_KMS_KEY_ID") or None
    if kms_key_id and sse != "aws:kms":
        raise ConfigError(
            "configuration error: BACKUP_S3_KMS_KEY_ID is set but BACKUP_S3_SSE is not aws:kms; "
            "set BACKUP_S3_SSE=aws:kms or unset BACKUP_S3_KMS_KEY_ID"
        )
    storage_class = env.get("BACKUP_S3_STORAGE_CLASS", "") or None
    if storage_class and not re.fullmatch(r"[A-Z_]+", storage_class):
        raise _bad("BACKUP_S3_STORAGE_CLASS", storage_class, "is not an S3 storage class", "STANDARD_IA")
    secrets = tuple(
        s for s in (_secret(env, name) for name in SECRET_FILE_VARIABLES) if s is not None
    )
    if bool(env.get("AWS_ACCESS_KEY_ID")) != bool(env.get("AWS_SECRET_ACCESS_KEY")):
        raise ConfigError(
            "configuration error: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set "
            "(directly or through *_FILE); set both, or neither to use the SDK's other credentials"
        )
    s3 = S3Settings(
        addressing_style=parse_choice(
            "BACKUP_S3_ADDRESSING_STYLE", env.get("BACKUP_S3_ADDRESSING_STYLE", ""), "auto",
            ("auto", "path", "virtual"),
        ),
        sse=sse or None,
        kms_key_id=kms_key_id,
        storage_class=storage_class,
    )
    return Settings(
        destination=destination,
        s3=s3,
        include=parse_patterns(env.get("BACKUP_DATABASES", "")),
        exclude=parse_patterns(env.get("BACKUP_EXCLUDE_DATABASES", "")),
        discovery_database=env.get("PGDATABASE", "") or "postgres",
        compression_level=parse_int(
            "BACKUP_COMPRESSION_LEVEL", env.get("BACKUP_COMPRESSION_LEVEL", ""), 6, 1, 9
        ),
        pg_dump_options=parse_pg_dump_options(env.get("BACKUP_PG_DUMP_OPTIONS", "")),
        lock_wait_timeout=parse_duration(
            "BACKUP_LOCK_WAIT_TIMEOUT", env.get("BACKUP_LOCK_WAIT_TIMEOUT", ""), 300
        ),
        database_timeout=parse_duration(
            "BACKUP_DATABASE_TIMEOUT", env.get("BACKUP_DATABASE_TIMEOUT", ""), 0
        ),
        pg_bindir=parse_bindir(env.get("BACKUP_PG_BINDIR", "")),
        secret_values=secrets,
        upload_concurrency=parse_int(
            "BACKUP_UPLOAD_CONCURRENCY", env.get("BACKUP_UPLOAD_CONCURRENCY", ""), 4, 1, 32
        ),
        part_size=parse_int("BACKUP_PART_SIZE_MB", env.get("BACKUP_PART_SIZE_MB", ""), 8, 5, 512)
        * MIB,
        progress_interval=parse_duration(
            "BACKUP_PROGRESS_INTERVAL", env.get("BACKUP_PROGRESS_INTERVAL", ""), 30
        ),
        log_level=parse_choice(
            "LOG_LEVEL", env.get("LOG_LEVEL", ""), "info", ("info", "debug", "warning", "error")
        ).upper(),
        log_format=parse_choice("LOG_FORMAT", env.get("LOG_FORMAT", ""), "text", ("text", "json")),
        termination_log=Path(env["BACKUP_TERMINATION_LOG"]) if env.get("BACKUP_TERMINATION_LOG") else None,
        retention=parse_retention(env.get("BACKUP_RETENTION", "")),
        globals=parse_bool("BACKUP_GLOBALS", env.get("BACKUP_GLOBALS", ""), True),
        shrink_alarm=parse_fraction("BACKUP_SHRINK_ALARM", env.get("BACKUP_SHRINK_ALARM", ""), 0.5),
    )


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> Settings:
    """The one entry point: environment (+ ``.env``, + secret files) to ``Settings``.

    Called without ``environ`` it reads ``os.environ`` and, once the settings are valid,
    exports the effective variables back into it for the client libraries.
    """
    use_process_env = environ is None
    if dotenv_path is None:
        dotenv_path = Path.cwd() / ".env"
    effective = load_environment(os.environ if environ is None else environ, dotenv_path)
    settings = parse_settings(effective)
    if use_process_env:
        export_environment(effective)
    return settings
