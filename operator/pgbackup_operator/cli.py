"""``pgbackup-operator``: run the kopf operator with a liveness endpoint.

Its settings are the operator group of ``backup_job.core.settings`` (namespaces, default
image, liveness URL); ``DESCRIPTION`` tells users about them by name. Runs standalone (no
kopf peering): deploy exactly one replica.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from backup_job import __version__
from backup_job.core.errors import ConfigError
from backup_job.core.logs import JsonFormatter
from backup_job.core.settings import (
    OPERATOR_ALLOWED_ENDPOINTS,
    OPERATOR_FRESHNESS_INTERVAL,
    OPERATOR_IMAGE,
    OPERATOR_LIVENESS,
    OPERATOR_LOG_FORMAT,
    OPERATOR_METRICS_PORT,
    OPERATOR_NAMESPACES,
    unknown_variables,
)


class OneLineFormatter(logging.Formatter):
    """Wraps kopf's formatter so a traceback stays on its event's line (one event per line)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record).replace("\n", "\\n")


class OperatorJsonFormatter(JsonFormatter):
    """The job's JSON line shape, with ``event`` naming the logger and ``object`` the resource
    a kopf handler was working on."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", {}))
        fields.setdefault("event", f"operator.{record.name}")
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            fields["object"] = "/".join(str(ref[k]) for k in ("namespace", "name") if ref.get(k))
        record.fields = fields
        return super().format(record)


DESCRIPTION = f"""Run the pgbackup operator: PgBackup resources in, CronJobs that back up out.

Watches every namespace by default, or only those given with --namespace (repeatable) or
{OPERATOR_NAMESPACES.name} (comma-separated). Runs standalone (no peering): deploy exactly one
replica. {OPERATOR_IMAGE.name} sets the image backup pods run when a PgBackup does not name one;
the Helm chart points it at the operator's own image.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgbackup-operator", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pgbackup-operator {__version__}")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument(
        "--liveness", default=OPERATOR_LIVENESS.read(os.environ), help="liveness endpoint URL (default %(default)s)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help=f"serve Prometheus metrics on this port; 0 turns them off (default: "
        f"{OPERATOR_METRICS_PORT.name} or {OPERATOR_METRICS_PORT.default})",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help=f"log lines as text or JSON (default: {OPERATOR_LOG_FORMAT.name} or text)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for warning in unknown_variables(os.environ):
        print(f"pgbackup-operator: warning: {warning}", file=sys.stderr)
    try:
        namespaces = list(args.namespace) or list(OPERATOR_NAMESPACES.read(os.environ))
        metrics_port = OPERATOR_METRICS_PORT.read(os.environ) if args.metrics_port is None else args.metrics_port
        interval = OPERATOR_FRESHNESS_INTERVAL.read(os.environ)
        log_format = args.log_format or OPERATOR_LOG_FORMAT.read(os.environ)
        OPERATOR_ALLOWED_ENDPOINTS.read(os.environ)  # read again at each render; a bad entry stops the start
    except ConfigError as exc:
        print(f"pgbackup-operator: {exc}", file=sys.stderr)
        return 2
    if not 0 <= metrics_port <= 65535:
        print(
            f"pgbackup-operator: --metrics-port {metrics_port} is not a port; use 1-65535, or 0 for none",
            file=sys.stderr,
        )
        return 2
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.FULL)
    for handler in logging.getLogger().handlers:  # kopf logs to stderr; `kubectl logs` reads stdout
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stdout)
            handler.setFormatter(
                OperatorJsonFormatter() if log_format == "json" else OneLineFormatter(handler.formatter)
            )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from . import handlers, kube

    assert handlers.reconcile  # importing the module registers the handlers with kopf
    try:
        kube.load_config()
    except Exception as exc:  # the client raises ConfigException or OSError subclasses
        print(
            f"pgbackup-operator: no Kubernetes credentials: {str(exc).rstrip('.')}; run it in a pod with a "
            "ServiceAccount, or set KUBECONFIG",
            file=sys.stderr,
        )
        return 2

    print(
        f"pgbackup-operator {__version__} watching "
        f"{'namespaces ' + ', '.join(namespaces) if namespaces else 'all namespaces'}",
        file=sys.stdout,
        flush=True,
    )
    try:
        kopf.run(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
            memo=kopf.Memo(metrics_port=metrics_port, freshness_interval=max(1, interval)),
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    return 0
