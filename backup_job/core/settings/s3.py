"""S3: what the AWS SDK has no variable for (``S3Settings``), and the SDK's own variables.

Credentials, region and endpoint stay in the SDK's chain (``AwsSdk`` declares them for the
configuration reference, the operator's rendering and ``*_FILE``); pgbackup parses only the retry settings it
passes to botocore itself and its own ``BACKUP_S3_*`` knobs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import ConfigError
from ..schema import Invalid, Variable, bound, choice, duration, format_optional, integer, optional_text, text
from .group import Group

MIB = 1024 * 1024


def _storage_class(value: str) -> str | None:
    if value and not re.fullmatch(r"[A-Z_]+", value):
        raise Invalid("is not an S3 storage class", "STANDARD_IA")
    return value or None


def _sse(value: str) -> str | None:
    return choice("AES256", "aws:kms", "", fold=False)(value) or None


def _sdk(name: str, doc: str, example: str, secret: bool = False, note: str = "") -> Variable[str]:
    return Variable(
        name,
        text,
        doc,
        example=example,
        note=note,
        shown_default="SDK chain",
        secret=secret,
        file_form=secret,
        owner="sdk",
    )


class S3Settings(Group):
    """Only what the AWS SDK has no variable for, and the SDK's retry settings pgbackup passes on."""

    addressing_style = Variable(
        "BACKUP_S3_ADDRESSING_STYLE",
        choice("auto", "path", "virtual"),
        "`auto`, `path` or `virtual`. Most S3-compatible servers want `path`.",
        default="auto",
        example="path",
    )
    sse = Variable(
        "BACKUP_S3_SSE",
        _sse,
        "Server-side encryption: `AES256` or `aws:kms`.",
        example="aws:kms",
        format=format_optional,
    )
    kms_key_id = Variable(
        "BACKUP_S3_KMS_KEY_ID",
        optional_text,
        "KMS key for `aws:kms`.",
        example="alias/backups",
        shown_default="bucket default",
        format=format_optional,
    )
    storage_class = Variable(
        "BACKUP_S3_STORAGE_CLASS",
        _storage_class,
        "Storage class of dump objects (manifests stay in the default class).",
        example="STANDARD_IA",
        shown_default="bucket default",
        format=format_optional,
    )
    connect_timeout = Variable(
        "BACKUP_S3_CONNECT_TIMEOUT",
        bound,
        "How long one connection attempt to the S3 endpoint may take (at least 1 s).",
        default="10",
        example="5s",
        note="Bounds on every S3 request: connecting, waiting for an answer, and (the SDK's variables) attempts.",
    )
    read_timeout = Variable(
        "BACKUP_S3_READ_TIMEOUT",
        bound,
        "How long one S3 request may wait for the next bytes of its answer before it is "
        "retried (each attempt of `AWS_MAX_ATTEMPTS`; at least 1 s).",
        default="60",
        example="2m",
    )
    max_attempts = Variable(
        "AWS_MAX_ATTEMPTS",
        integer(1, 20),
        "Attempts per S3 request, the first included (the SDK's variable; pgbackup's default differs from the SDK's).",
        default="5",
        example="3",
        owner="sdk",
    )
    retry_mode = Variable(
        "AWS_RETRY_MODE",
        choice("standard", "adaptive", "legacy"),
        "The SDK's retry mode.",
        default="standard",
        example="adaptive",
        owner="sdk",
    )

    @classmethod
    def read(cls, env: Mapping[str, str]) -> S3Settings:
        """The group, and a static key in both halves or neither (``check_aws_keys``)."""
        check_aws_keys(env)
        return super().read(env)

    def settle(self) -> None:
        if self.kms_key_id and self.sse != "aws:kms":
            sse, kms = S3Settings.sse.name, S3Settings.kms_key_id.name
            raise ConfigError(
                f"configuration error: {kms} is set but {sse} is not aws:kms; set {sse}=aws:kms or unset {kms}"
            )


class UploadSettings(Group):
    """How dumps are uploaded, whatever the destination."""

    upload_concurrency = Variable(
        "BACKUP_UPLOAD_CONCURRENCY",
        integer(1, 32),
        "Parts uploaded in parallel, and so held in memory (1-32).",
        default="4",
        example="8",
    )
    abandoned_upload_age = Variable(
        "BACKUP_ABANDONED_UPLOAD_AGE",
        duration,
        "A run aborts unfinished uploads of our layout older than this by the "
        "store's clock, left by killed runs; keep it longer than any run, so a live "
        "run's upload is never touched.",
        default="24h",
        example="48h",
        note="Unfinished uploads older than this were left by killed runs; the next run aborts them.",
    )
    part_size_mb = Variable(
        "BACKUP_PART_SIZE_MB",
        integer(5, 512),
        "First part size in MiB (5-512); grows for very large streams (see [Memory, part sizes "
        "and S3 limits](performance.md#memory-part-sizes-and-s3-limits)).",
        default="8",
        example="16",
    )

    @property
    def part_size(self) -> int:
        """The first part's size in bytes."""
        return self.part_size_mb * MIB


class AwsSdk(Group):
    """The SDK's own variables: declared for the docs' tables, ``*_FILE`` and the operator; read by botocore."""

    region = _sdk("AWS_REGION", "The bucket's region.", example="eu-central-1")
    access_key_id = _sdk(
        "AWS_ACCESS_KEY_ID",
        "Static access key (else the SDK's chain: profiles, IRSA / web identity, instance roles).",
        "/run/secrets/aws_access_key_id",
        secret=True,
    )
    secret_access_key = _sdk(
        "AWS_SECRET_ACCESS_KEY", "Its secret key.", "/run/secrets/aws_secret_access_key", secret=True
    )
    session_token = _sdk(
        "AWS_SESSION_TOKEN", "A session token for temporary credentials.", "/run/secrets/aws_session_token", secret=True
    )
    endpoint_url_s3 = _sdk(
        "AWS_ENDPOINT_URL_S3",
        "An S3-compatible server (or `AWS_ENDPOINT_URL` for every service).",
        example="http://minio:9000",
    )
    request_checksum_calculation = _sdk(
        "AWS_REQUEST_CHECKSUM_CALCULATION",
        "Set `when_required` for stores that "
        "reject CRC checksums: the SDK's defaults and pgbackup's CRC32C are then "
        "left out (see [Integrity in transit]"
        "(encryption.md#integrity-in-transit)).",
        example="when_required",
        note="For stores that reject CRC checksums (the SDK's defaults and pgbackup's CRC32C).",
    )
    response_checksum_validation = _sdk(
        "AWS_RESPONSE_CHECKSUM_VALIDATION", "Likewise for checking responses.", example="when_required"
    )


def check_aws_keys(env: Mapping[str, str]) -> None:
    """A static key needs both halves (directly or through ``*_FILE``)."""
    key, secret = AwsSdk.access_key_id.name, AwsSdk.secret_access_key.name
    if bool(env.get(key)) != bool(env.get(secret)):
        raise ConfigError(
            f"configuration error: only one of {key} and {secret} is set (directly or through "
            "*_FILE); set both, or neither to use the SDK's other credentials"
        )
