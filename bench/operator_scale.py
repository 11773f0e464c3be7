"""Benchmark: the operator with many PgBackups, for its memory and its freshness check.

Starts the Go-built control plane (``devenv.kube``) and ``pgbackup-operator`` with an admin
kubeconfig, creates N PgBackups (default 200) in one namespace, waits until every one is
``Ready`` and has a ``Fresh`` condition, then reads the operator's peak and current RSS
(``/proc``), and from its own metrics how long one freshness check over all of them took
and how many series it serves. Prints one table.

Usage: .venv/bin/python -m bench.operator_scale [--count 200]
Not part of the test suite (about a minute on 2 cores once the control plane is built).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from devenv.kube import ControlPlane, build
from devenv.postgres import free_port
from devenv.process import stop
from devenv.wait import wait_for

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"


def spec(index: int) -> dict[str, object]:
    return {
        "schedule": f"{index % 60} {index % 24} * * *",
        "timeZone": "Etc/UTC",
        "postgres": {"host": f"db-{index}.example", "user": "backup", "passwordSecretRef": {"name": "pg"}},
        "destination": {"s3": {"bucket": "backups", "prefix": f"db-{index}"}},
    }


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def scrape(port: int) -> dict[str, float]:
    """Per metric name: the operator's own value, or for per-PgBackup metrics how many series."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + (1.0 if sample.labels.get("name") else sample.value)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="pgbackup-bench-k8s-"))
    plane = ControlPlane(build(), state)
    plane.up(crds=(ROOT / "deploy" / "crd.yaml",))
    operator = None
    try:
        plane.kubectl("create", "namespace", NAMESPACE)
        metrics_port, liveness = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PG", "AWS_", "BACKUP_"))},
            "KUBECONFIG": str(plane.kubeconfig),
            "PGBACKUP_FRESHNESS_INTERVAL": "5s",
        }
        log = (state / "operator.log").open("wb")
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgbackup_operator",
                "--namespace",
                NAMESPACE,
                "--liveness",
                f"http://127.0.0.1:{liveness}/healthz",
                "--metrics-port",
                str(metrics_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _answers(metrics_port), timeout=60, what="the operator's metrics")
        idle_peak, idle = rss_kib(operator.pid)
        started = time.monotonic()
        documents = [
            {
                "apiVersion": "pgbackup.io/v1alpha1",
                "kind": "PgBackup",
                "metadata": {"name": f"db-{i}", "namespace": NAMESPACE},
                "spec": spec(i),
            }
            for i in range(args.count)
        ]
        plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))

        def settled() -> bool:
            listed = yaml.safe_load(plane.kubectl("get", "pgb", "-n", NAMESPACE, "-o", "yaml").stdout)["items"]
            types = [
                {c["type"]: c["status"] for c in (item.get("status") or {}).get("conditions") or []} for item in listed
            ]
            return len(types) == args.count and all(t.get("Ready") == "True" and "Fresh" in t for t in types)

        wait_for(settled, timeout=600, interval=2, what=f"{args.count} PgBackups Ready and Fresh")
        settle = time.monotonic() - started
        checks = scrape(metrics_port)["pgbackup_operator_freshness_checks_total"]
        wait_for(
            lambda: scrape(metrics_port)["pgbackup_operator_freshness_checks_total"] >= checks + 2,
            timeout=60,
            what="two more freshness checks",
        )
        figures = scrape(metrics_port)
        peak, now = rss_kib(operator.pid)
        per_pgbackup = sum(count for name, count in figures.items() if not name.startswith("pgbackup_operator"))
        print(
            "| PgBackups | reconciled, Ready and Fresh in | operator RSS idle | RSS now | peak RSS | "
            "one freshness check | series per PgBackup (no runs yet) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {args.count} | {settle:.0f} s | {idle / 1024:.0f} MiB | {now / 1024:.0f} MiB | {peak / 1024:.0f} MiB | "
            f"{figures['pgbackup_operator_freshness_check_duration_seconds'] * 1e3:.2f} ms | "
            f"{per_pgbackup / args.count:.0f} |"
        )
        print(f"(idle peak {idle_peak / 1024:.0f} MiB; freshness check every 5 s here, 60 s by default)")
    finally:
        stop(operator)
        plane.down()
    return 0


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
