"""Alerting on a real control plane: a run's figures in status and metrics, the failed-run
alert firing on the scraped series (promtool), silence turning Fresh=False with one Event,
series vanishing on delete, and metrics rebuilt by a restarted operator from status alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_job.core.termination import TerminationMessage
from devenv.wait import wait_for

from ..kit import promtool
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from .test_operator import spec


def value(operator: OperatorProcess, metric: str, **labels: str) -> float | None:
    wanted = dict(labels)
    for name, found in promtool.series_from_scrape(operator.scrape(), wanted).items():
        if name.split("{")[0] == metric:
            return found
    return None


def run_job(
    kube: KubeEnv, kubelet: Kubelet, namespace: str, name: str, suffix: str, message: TerminationMessage
) -> str:
    """A backup Job whose Pod the stand-in kubelet reports finished with ``message``."""
    cronjob = kube.cronjob(namespace, f"pgbackup-{name}")
    assert cronjob is not None
    job = kube.start_job(cronjob, suffix)
    pod = kube.pod_of(namespace, job)
    assert pod is not None
    kubelet.finish(pod, 0 if message.ok else 1, message.encode().decode())
    return job


def ready(kube: KubeEnv, namespace: str, name: str) -> None:
    wait_for(
        lambda: (kube.condition(namespace, name, "Ready") or {}).get("status") == "True",
        timeout=30,
        what=f"{name} Ready",
    )


FAILED = TerminationMessage(
    "1 of 3 backups failed: 'orders': pg_dump failed (exit 1): permission denied for table x",
    command="run",
    ok=False,
    timestamp="20261130T020000Z",
    seconds=754.4,
    stored_bytes=165288497,
    databases_ok=2,
    databases_failed=1,
    failed=("orders",),
)
SUCCEEDED = TerminationMessage(
    "3 backups succeeded: 1.2 GiB stored in 61.0 s",
    command="run",
    ok=True,
    timestamp="20261130T030000Z",
    seconds=61.0,
    stored_bytes=1288490189,
    databases_ok=3,
    databases_failed=0,
)


def test_a_failed_run_shows_in_status_metrics_and_the_alert(
    kube: KubeEnv, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    kube.create_pgbackup(namespace, "shop", spec())
    ready(kube, namespace, "shop")
    kubelet = Kubelet(kube, tmp_path, tmp_path)
    labels = {"namespace": namespace, "name": "shop"}

    failed = run_job(kube, kubelet, namespace, "shop", "1", FAILED)
    wait_for(
        lambda: value(operator, "pgbackup_last_run_success", **labels) == 0.0,
        timeout=30,
        what="pgbackup_last_run_success 0",
    )
    run = kube.pgbackup(namespace, "shop")["status"]["lastRun"]
    assert (run["jobName"], run["result"], run["message"]) == (failed, "Failed", FAILED.summary)
    assert (run["duration"], run["durationSeconds"], run["bytes"], run["size"]) == (
        "12m34s",
        754.4,
        165288497,
        "157.6 MiB",
    )
    assert run["databases"] == {"ok": 2, "failed": 1} and run["failedDatabases"] == ["orders"]
    assert value(operator, "pgbackup_last_run_databases", result="failed", **labels) == 1.0
    assert value(operator, "pgbackup_last_run_duration_seconds", **labels) == 754.4
    assert value(operator, "pgbackup_last_success_timestamp_seconds", **labels) is None  # never succeeded

    scraped = operator.scrape()
    checked = promtool.run("check", "metrics", stdin=scraped)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ours = promtool.series_from_scrape(scraped, labels)
    ours.update(
        {k: v for k, v in promtool.series_from_scrape(scraped).items() if k.startswith("pgbackup_operator_info")}
    )
    fired = promtool.alert_test(ours, {"PgBackupLastRunFailed": [labels]}, workdir=tmp_path)
    assert fired.returncode == 0, fired.stdout + fired.stderr

    wide = kube.plane.kubectl("get", "pgb", "shop", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "SIZE" in wide[0] and "DURATION" in wide[0] and "157.6 MiB" in wide[1] and "12m34s" in wide[1]

    run_job(kube, kubelet, namespace, "shop", "2", SUCCEEDED)
    wait_for(
        lambda: value(operator, "pgbackup_last_run_success", **labels) == 1.0,
        timeout=30,
        what="pgbackup_last_run_success 1",
    )
    assert value(operator, "pgbackup_last_run_bytes", **labels) == 1288490189.0
    assert value(operator, "pgbackup_last_run_databases", result="failed", **labels) == 0.0
    assert value(operator, "pgbackup_last_success_timestamp_seconds", **labels) is not None
    scraped = operator.scrape()
    ours = promtool.series_from_scrape(scraped, labels)
    ours.update(
        {k: v for k, v in promtool.series_from_scrape(scraped).items() if k.startswith("pgbackup_operator_info")}
    )
    quiet = promtool.alert_test(ours, {}, workdir=tmp_path)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr

    kube.custom.delete_namespaced_custom_object("pgbackup.io", "v1alpha1", namespace, "pgbackups", "shop")
    wait_for(
        lambda: not promtool.series_from_scrape(operator.scrape(), labels),
        timeout=30,
        what="the deleted PgBackup's series to vanish",
    )


def test_silence_turns_fresh_false_with_one_event_and_a_success_clears_it(
    kube: KubeEnv, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    # Never succeeded, and created longer ago than its maximum age.
    kube.create_pgbackup(namespace, "quiet", spec(schedule="0 0 1 1 *", alerting={"maxAge": "2s"}))

    def fresh(name: str) -> dict[str, Any]:
        return kube.condition(namespace, name, "Fresh") or {}

    # 60 s: a create reconcile that lands after the first Fresh=False can erase it, and the
    # checker writes it again after its 30 s patience.
    wait_for(lambda: fresh("quiet").get("status") == "False", timeout=60, what="Fresh=False")
    condition = fresh("quiet")
    assert condition["reason"] == "NoRecentBackup"
    assert "no backup has succeeded" in condition["message"] and "since it was created" in condition["message"]
    assert value(operator, "pgbackup_stale", namespace=namespace, name="quiet") == 1.0

    # A last success two days old against a one-hour limit; then a real successful run.
    kube.create_pgbackup(namespace, "old", spec(alerting={"maxAge": "1h"}))
    ready(kube, namespace, "old")
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.custom.patch_namespaced_custom_object_status(
        "pgbackup.io",
        "v1alpha1",
        namespace,
        "pgbackups",
        "old",
        {"status": {"lastSuccessfulTime": two_days_ago}},
        _content_type="application/merge-patch+json",
    )
    wait_for(lambda: fresh("old").get("status") == "False", timeout=30, what="Fresh=False after two days")
    assert fresh("old")["message"].startswith("no successful backup for 2d0h; the limit is 1h0m")
    wait_for(
        lambda: [e["reason"] for e in kube.events(namespace, "old")].count("NoRecentBackup") == 1,
        timeout=30,
        what="one NoRecentBackup event",
    )

    run_job(kube, Kubelet(kube, tmp_path, tmp_path), namespace, "old", "1", SUCCEEDED)
    wait_for(lambda: fresh("old").get("status") == "True", timeout=30, what="Fresh=True after a success")
    wait_for(
        lambda: value(operator, "pgbackup_stale", namespace=namespace, name="old") == 0.0,
        timeout=30,
        what="pgbackup_stale 0",
    )
    warnings = [e for e in kube.events(namespace, "old") if e["reason"] == "NoRecentBackup"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"  # one Event per silence, not one per check


@pytest.fixture
def restart_namespace(kube: KubeEnv) -> Iterator[str]:
    name = f"r-{uuid.uuid4().hex[:8]}"  # outside the session operator's t-* namespaces
    kube.core.create_namespace({"metadata": {"name": name}})
    yield name
    kube.core.delete_namespace(name)


def test_a_restarted_operator_rebuilds_metrics_from_status(
    kube: KubeEnv, restart_namespace: str, tmp_path: Path
) -> None:
    namespace, labels = restart_namespace, {"namespace": restart_namespace, "name": "kept"}
    with OperatorProcess(kube, namespaces=[namespace]) as first:
        kube.create_pgbackup(namespace, "kept", spec())
        ready(kube, namespace, "kept")
        run_job(kube, Kubelet(kube, tmp_path, tmp_path), namespace, "kept", "1", FAILED)
        wait_for(lambda: value(first, "pgbackup_last_run_success", **labels) == 0.0, timeout=30, what="the failed run")

        def finished() -> float | None:  # the Job's Failed condition may come a moment after its FailureTarget
            done = kube.pgbackup(namespace, "kept")["status"]["lastRun"].get("completionTime")
            return None if done is None else datetime.fromisoformat(done.replace("Z", "+00:00")).timestamp()

        wait_for(
            lambda: (
                finished() is not None and value(first, "pgbackup_last_run_timestamp_seconds", **labels) == finished()
            ),
            timeout=30,
            what="the run's completion time in the metrics",
        )
        before = promtool.series_from_scrape(first.scrape(), labels)
    with OperatorProcess(kube, namespaces=[namespace]) as second:
        wait_for(
            lambda: value(second, "pgbackup_last_run_success", **labels) is not None,
            timeout=30,
            what="the restarted operator's series",
        )
        after = promtool.series_from_scrape(second.scrape(), labels)
    assert after == before and after  # the same series and values, from status alone
