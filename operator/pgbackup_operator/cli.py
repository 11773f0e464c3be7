"""``pgbackup-operator``: run the kopf operator with a liveness endpoint.

Watches every namespace by default, or only those given with ``--namespace`` (repeatable)
or ``PGBACKUP_NAMESPACES`` (comma-separated). Runs standalone (no kopf peering): deploy
exactly one replica. ``PGBACKUP_IMAGE`` sets the image backup pods run when a PgBackup does
not name one; the Helm chart points it at the operator's own image.
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


class OneLineFormatter(logging.Formatter):
    """Wraps kopf's formatter so a traceback stays on its event's line (one event per line)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record).replace("\n", "\\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgbackup-operator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pgbackup-operator {__version__}")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: all namespaces")
    parser.add_argument("--liveness", default=os.environ.get("PGBACKUP_LIVENESS", "http://0.0.0.0:8080/healthz"),
                        help="liveness endpoint URL (default %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    namespaces = list(args.namespace) or [
        n.strip() for n in os.environ.get("PGBACKUP_NAMESPACES", "").split(",") if n.strip()
    ]
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.FULL)
    for handler in logging.getLogger().handlers:  # kopf logs to stderr; `kubectl logs` reads stdout
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stdout)
            handler.setFormatter(OneLineFormatter(handler.formatter))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from . import handlers, kube

    assert handlers.reconcile  # importing the module registers the handlers with kopf
    try:
        kube.load_config()
    except Exception as exc:  # the client raises ConfigException or OSError subclasses
        print(f"pgbackup-operator: no Kubernetes credentials: {str(exc).rstrip('.')}; run it in a pod with a "
              "ServiceAccount, or set KUBECONFIG", file=sys.stderr)
        return 2

    print(
        f"pgbackup-operator {__version__} watching "
        f"{'namespaces ' + ', '.join(namespaces) if namespaces else 'all namespaces'}",
        file=sys.stdout, flush=True,
    )
    try:
        kopf.run(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    return 0
