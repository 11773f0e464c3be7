"""The operator's Prometheus metrics: one set of series per PgBackup, built at scrape time.

The series are not counters the operator increments as things happen; they are read from
``Observed`` pictures of each PgBackup's status (``freshness``), which a kopf event handler
(``alerting.observe``) keeps current. So they are rebuilt from status when the operator
restarts, and a deleted PgBackup's series vanish with it: ``Store`` holds exactly the
PgBackups ``alerting.OBSERVED`` holds (the handler puts each change and drops a deleted one;
the freshness loop drops anything else ``OBSERVED`` no longer has).

Per PgBackup, with ``namespace`` and ``name`` labels (timestamps in seconds since the epoch;
a series is absent while its value is unknown, e.g. before the first success):

    pgbackup_last_success_timestamp_seconds   pgbackup_last_run_timestamp_seconds
    pgbackup_last_run_success (1/0)           pgbackup_last_run_duration_seconds
    pgbackup_last_run_bytes (stored)          pgbackup_last_run_databases{result="ok|failed"}
    pgbackup_last_verify_success_timestamp_seconds  pgbackup_last_verify_success (1/0)
    pgbackup_next_run_timestamp_seconds       pgbackup_suspended (1/0)
    pgbackup_stale (1/0)                      pgbackup_max_age_seconds

and the operator's own: ``pgbackup_operator_info{version}``, ``pgbackup_operator_pgbackups``,
``pgbackup_operator_reconcile_errors_total``, ``pgbackup_operator_freshness_checks_total``,
``pgbackup_operator_last_freshness_check_timestamp_seconds`` (a stuck loop shows) and
``pgbackup_operator_freshness_check_duration_seconds``.

The HTTP server is prometheus_client's, on its own thread (``serve``); kopf's liveness
endpoint keeps its port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from backup_job import __version__

from .freshness import Observed, parse_time

LABELS = ["namespace", "name"]


class Store:
    """The PgBackups the metrics describe, shared between kopf's loop and the scrape thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Observed] = {}
        self.reconcile_errors = 0
        self.freshness_checks = 0
        self.last_freshness_check: float | None = None
        self.freshness_check_seconds = 0.0

    def put(self, observed: Observed) -> None:
        with self._lock:
            self._items[observed.key] = observed

    def keep_only(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget every PgBackup not among ``keys`` (deleted, or no longer watched)."""
        wanted = set(keys)
        with self._lock:
            for key in [k for k in self._items if k not in wanted]:
                del self._items[key]

    def checked(self, seconds: float) -> None:
        with self._lock:
            self.freshness_check_seconds = seconds
            self.freshness_checks += 1
            self.last_freshness_check = time.time()

    def reconcile_failed(self) -> None:
        with self._lock:
            self.reconcile_errors += 1

    def snapshot(self) -> list[Observed]:
        with self._lock:
            return sorted(self._items.values(), key=lambda o: o.key)


STORE = Store()


def _gauge(name: str, documentation: str, extra: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=LABELS + (extra or []))


class PgBackupCollector(Collector):
    """Builds every series from the ``Store`` at each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = time.time()
        items = self.store.snapshot()
        families = {
            "success": _gauge(
                "pgbackup_last_success_timestamp_seconds", "When the last successful backup run finished."
            ),
            "run": _gauge(
                "pgbackup_last_run_timestamp_seconds", "When the last backup run finished (or started, while running)."
            ),
            "ok": _gauge("pgbackup_last_run_success", "1 if the last finished backup run succeeded, 0 if it failed."),
            "duration": _gauge("pgbackup_last_run_duration_seconds", "How long the last finished backup run took."),
            "bytes": _gauge("pgbackup_last_run_bytes", "Bytes the last finished backup run stored."),
            "databases": _gauge(
                "pgbackup_last_run_databases",
                "Databases (and the globals) of the last finished run, by result.",
                ["result"],
            ),
            "verified": _gauge(
                "pgbackup_last_verify_success_timestamp_seconds", "When the last successful verify drill finished."
            ),
            "verify_ok": _gauge(
                "pgbackup_last_verify_success", "1 if the last verify drill succeeded, 0 if it failed."
            ),
            "next": _gauge("pgbackup_next_run_timestamp_seconds", "When the next backup run is scheduled."),
            "suspended": _gauge("pgbackup_suspended", "1 if the PgBackup is suspended."),
            "stale": _gauge("pgbackup_stale", "1 if the last success is older than the PgBackup's maximum age."),
            "max_age": _gauge(
                "pgbackup_max_age_seconds", "The maximum age of the last success before the PgBackup is stale."
            ),
        }
        for item in items:
            labels = [item.namespace, item.name]
            run = item.last_run
            if item.last_success is not None:
                families["success"].add_metric(labels, item.last_success)
            finished = parse_time(run.get("completionTime")) or parse_time(run.get("startTime"))
            if finished is not None:
                families["run"].add_metric(labels, finished)
            ok = item.last_run_ok()
            if ok is not None:
                families["ok"].add_metric(labels, 1.0 if ok else 0.0)
            if run.get("result") in ("Succeeded", "Failed"):
                if isinstance(run.get("durationSeconds"), (int, float)):
                    families["duration"].add_metric(labels, float(run["durationSeconds"]))
                if isinstance(run.get("bytes"), int):
                    families["bytes"].add_metric(labels, float(run["bytes"]))
                databases = run.get("databases") or {}
                for result in ("ok", "failed"):
                    if isinstance(databases.get(result), int):
                        families["databases"].add_metric([*labels, result], float(databases[result]))
            if item.last_verify_success is not None:
                families["verified"].add_metric(labels, item.last_verify_success)
            if item.last_verify.get("result") in ("Succeeded", "Failed"):
                families["verify_ok"].add_metric(labels, 1.0 if item.last_verify["result"] == "Succeeded" else 0.0)
            if item.next_run is not None:
                families["next"].add_metric(labels, item.next_run)
            families["suspended"].add_metric(labels, 1.0 if item.suspended else 0.0)
            families["stale"].add_metric(labels, 1.0 if item.stale(now) else 0.0)
            if item.max_age is not None:
                families["max_age"].add_metric(labels, item.max_age)
        yield from families.values()
        info = GaugeMetricFamily("pgbackup_operator_info", "The running operator's version.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        yield GaugeMetricFamily("pgbackup_operator_pgbackups", "PgBackups the operator watches.", value=len(items))
        yield CounterMetricFamily(
            "pgbackup_operator_reconcile_errors",
            "PgBackups that could not be reconciled.",
            value=self.store.reconcile_errors,
        )
        yield CounterMetricFamily(
            "pgbackup_operator_freshness_checks",
            "Freshness checks over every PgBackup.",
            value=self.store.freshness_checks,
        )
        if self.store.last_freshness_check is not None:
            yield GaugeMetricFamily(
                "pgbackup_operator_last_freshness_check_timestamp_seconds",
                "When the last freshness check finished.",
                value=self.store.last_freshness_check,
            )
            yield GaugeMetricFamily(
                "pgbackup_operator_freshness_check_duration_seconds",
                "How long the last freshness check over every PgBackup took.",
                value=self.store.freshness_check_seconds,
            )


def registry(store: Store = STORE) -> CollectorRegistry:
    """A registry with only our collector (no process or platform series of the client's)."""
    result = CollectorRegistry(auto_describe=False)
    result.register(PgBackupCollector(store))
    return result


def serve(port: int, store: Store = STORE) -> None:
    """Serve ``/metrics`` on ``port`` (all interfaces) from a daemon thread."""
    start_http_server(port, addr="0.0.0.0", registry=registry(store))
