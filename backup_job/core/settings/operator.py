"""The operator's own variables (read by ``pgbackup-operator``, never by the job).

``PGBACKUP_ALLOWED_BLOB_ENDPOINTS`` is the installer's word on where the jobs' Azure and GCS
credentials may be sent. A PgBackup's fields are written by whoever may create one in a
namespace, so its ``endpoint`` (a sovereign cloud, a private endpoint) is rendered only when
it is one of these URLs; the list is read here, checked once at start (``endpoints``), and
compared in the operator's ``env`` module. Each entry is an ``https`` URL with a host and
nothing that could carry a credential or change where a request goes (no user, query or
fragment); a trailing slash is not part of the comparison.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..schema import (
    Invalid,
    Variable,
    choice,
    duration,
    format_optional,
    format_patterns,
    integer,
    optional_text,
    patterns,
    text,
)
from .group import Group

ENDPOINT_EXAMPLE = "https://mystorageacct.blob.core.chinacloudapi.cn"


def normalise_endpoint(url: str) -> str:
    """The form endpoints are compared in: no trailing slash."""
    return url.strip().rstrip("/")


def endpoints(value: str) -> tuple[str, ...]:
    """Comma-separated ``https`` URLs, each normalised; ``Invalid`` naming the first bad one."""
    allowed: list[str] = []
    for item in (entry.strip() for entry in value.split(",")):
        if not item:
            continue
        try:
            parts = urlsplit(item)
            parts.port  # noqa: B018  (raises for a port that is no number)
        except ValueError as exc:
            raise Invalid(f"holds {item!r}, which is no URL ({exc})", ENDPOINT_EXAMPLE) from None
        if parts.scheme != "https" or not parts.hostname:
            raise Invalid(f"holds {item!r}: each entry is an https:// URL with a host", ENDPOINT_EXAMPLE)
        if "@" in parts.netloc or parts.query or parts.fragment or item.endswith(("?", "#")):
            where = f"https://{parts.hostname}" if parts.hostname else "an entry"  # a user or query may be a secret
            raise Invalid(
                f"holds a URL for {where} with a user, query or fragment; an entry carries none of them",
                ENDPOINT_EXAMPLE,
                conceal=True,
            )
        allowed.append(normalise_endpoint(item))
    return tuple(allowed)


class OperatorSettings(Group):
    """What the operator watches, which image it runs, and where it reports."""

    namespaces = Variable(
        "PGBACKUP_NAMESPACES",
        patterns,
        "Namespaces the operator watches, comma-separated (globs allowed); `--namespace` does the same.",
        example="db,team-*",
        shown_default="all namespaces",
        owner="operator",
        format=format_patterns,
    )
    image = Variable(
        "PGBACKUP_IMAGE",
        optional_text,
        "The image backup and verify pods run when a PgBackup's `pod.image` is empty.",
        example="registry.example.com/pgbackup:0.1.0",
        shown_default="the operator's own release",
        owner="operator",
        format=format_optional,
    )
    liveness = Variable(
        "PGBACKUP_LIVENESS",
        text,
        "The operator's liveness endpoint (`--liveness`).",
        default="http://0.0.0.0:8080/healthz",
        owner="operator",
    )
    metrics_port = Variable(
        "PGBACKUP_METRICS_PORT",
        integer(0, 65535),
        "The port of the operator's Prometheus metrics (`/metrics`, `--metrics-port`); `0` turns them off.",
        default="9090",
        example="9090, 0",
        owner="operator",
    )
    freshness_interval = Variable(
        "PGBACKUP_FRESHNESS_INTERVAL",
        duration,
        "How often the operator checks every PgBackup's last success against its maximum age (`spec.alerting.maxAge`).",
        default="60s",
        example="30s",
        owner="operator",
    )
    log_format = Variable(
        "PGBACKUP_LOG_FORMAT",
        choice("text", "json"),
        "The operator's log lines (`--log-format`): text, or JSON objects shaped like "
        "the job's (`time`, `level`, `message`, `event`, and `object` for a resource).",
        default="text",
        example="json",
        owner="operator",
    )
    allowed_endpoints = Variable(
        "PGBACKUP_ALLOWED_BLOB_ENDPOINTS",
        endpoints,
        "The only URLs a PgBackup's `destination.azure.endpoint` or `destination.gcs.endpoint` may name "
        "(comma-separated `https://` URLs): the jobs' Azure and Google credentials go nowhere else.",
        example=ENDPOINT_EXAMPLE,
        shown_default="none: the public Azure and GCS endpoints only",
        owner="operator",
        format=format_patterns,
    )
