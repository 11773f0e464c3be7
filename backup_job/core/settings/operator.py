"""The operator's own variables (read by ``pgbackup-operator``, never by the job)."""

from __future__ import annotations

from ..schema import (
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
