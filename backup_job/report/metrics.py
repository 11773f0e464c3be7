"""The last run as Prometheus metrics, for setups without the operator: a textfile for
node_exporter's textfile collector (``BACKUP_METRICS_TEXTFILE``) and/or a Pushgateway
(``BACKUP_METRICS_PUSHGATEWAY_URL``, job ``pgbackup``, grouping key ``destination``, and
``shard`` (``i/N``) for a sharded run, so each shard's pod keeps its own group: a shard's push
never replaces another shard's series, and the Pushgateway adds the ``shard`` label to them).

Series carry a ``destination`` label (the destination URL, which holds no credentials), and
``database`` where they are per database:

    pgbackup_last_run_timestamp_seconds  pgbackup_last_run_success  pgbackup_last_run_duration_seconds
    pgbackup_last_run_bytes  pgbackup_last_run_databases{result}  pgbackup_last_success_timestamp_seconds
    pgbackup_database_last_run_success{database}  pgbackup_database_last_run_bytes{database}
    pgbackup_suspect_backups (when the run listed the destination: backups dated in the future)

A failed run must not erase when the last success was: the textfile carries the previous
file's ``pgbackup_last_success_timestamp_seconds`` over, and a failed run's push is a POST,
which replaces only the series it sends, so the group keeps the last success's. The
textfile is written to a temporary name beside it and renamed, so the collector never reads
half a file. prometheus_client is imported only when one of the two is configured.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.schema import Secret
from ..core.termination import TerminationMessage

JOB = "pgbackup"
SUCCESS = "pgbackup_last_success_timestamp_seconds"


@dataclass(frozen=True)
class DatabaseFigure:
    database: str
    ok: bool
    stored_bytes: int


def build(
    destination: str,
    outcome: TerminationMessage,
    databases: list[DatabaseFigure],
    last_success: float | None,
    now: float | None = None,
) -> Any:
    """A ``CollectorRegistry`` holding the run's series."""
    from prometheus_client import CollectorRegistry, Gauge

    now = time.time() if now is None else now
    registry = CollectorRegistry()
    labels = {"destination": destination}

    def gauge(name: str, documentation: str, value: float, **extra: str) -> None:
        metric = Gauge(name, documentation, [*labels, *extra], registry=registry)
        metric.labels(**labels, **extra).set(value)

    gauge("pgbackup_last_run_timestamp_seconds", "When the last backup run finished.", now)
    gauge(
        "pgbackup_last_run_success", "1 if the last backup run succeeded, 0 if it failed.", 1.0 if outcome.ok else 0.0
    )
    gauge("pgbackup_last_run_duration_seconds", "How long the last backup run took.", outcome.seconds or 0.0)
    gauge("pgbackup_last_run_bytes", "Bytes the last backup run stored.", float(outcome.stored_bytes or 0))
    runs = Gauge(
        "pgbackup_last_run_databases",
        "Databases (and the globals) of the last run, by result.",
        ["destination", "result"],
        registry=registry,
    )
    runs.labels(destination=destination, result="ok").set(outcome.databases_ok or 0)
    runs.labels(destination=destination, result="failed").set(outcome.databases_failed or 0)
    if last_success is not None:
        gauge(SUCCESS, "When the last successful backup run finished.", last_success)
    if outcome.suspect is not None:
        gauge(
            "pgbackup_suspect_backups",
            "Backups in the destination dated in the future (suspect: never picked, "
            "kept or deleted), as the last run listed them.",
            float(outcome.suspect),
        )
    ok = Gauge(
        "pgbackup_database_last_run_success",
        "1 if the database's backup in the last run succeeded.",
        ["destination", "database"],
        registry=registry,
    )
    size = Gauge(
        "pgbackup_database_last_run_bytes",
        "Bytes stored for the database in the last run.",
        ["destination", "database"],
        registry=registry,
    )
    for figure in databases:
        ok.labels(destination=destination, database=figure.database).set(1.0 if figure.ok else 0.0)
        if figure.ok:
            size.labels(destination=destination, database=figure.database).set(figure.stored_bytes)
    return registry


def previous_success(path: Path, destination: str) -> float | None:
    """``pgbackup_last_success_timestamp_seconds`` of the textfile a previous run wrote, if any."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == SUCCESS and sample.labels.get("destination") == destination:
                    return float(sample.value)
    except ValueError:
        return None  # not ours, or damaged: start afresh
    return None


def write_textfile(path: Path, destination: str, outcome: TerminationMessage, databases: list[DatabaseFigure]) -> None:
    from prometheus_client import generate_latest

    now = time.time()
    last_success = now if outcome.ok else previous_success(path, destination)
    data = generate_latest(build(destination, outcome, databases, last_success, now))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def push(
    url: Secret,
    destination: str,
    outcome: TerminationMessage,
    databases: list[DatabaseFigure],
    timeout: float,
    shard: str = "",
) -> None:
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    now = time.time()
    registry = build(destination, outcome, databases, now if outcome.ok else None, now)
    send = push_to_gateway if outcome.ok else pushadd_to_gateway  # a failure keeps the last success's series
    grouping = {"destination": destination, **({"shard": shard} if shard else {})}
    send(url.reveal(), job=JOB, registry=registry, grouping_key=grouping, timeout=timeout)
