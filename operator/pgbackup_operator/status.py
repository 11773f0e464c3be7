"""Status: pure functions from observed Jobs, Pods and CronJobs to PgBackup status fields.

Conditions follow the Kubernetes conventions: ``type``, ``status`` ("True"/"False"/
"Unknown"), a CamelCase ``reason``, a human ``message``, and ``lastTransitionTime``, which
changes only when ``status`` changes. Three types:

- ``Ready``: the CronJobs are rendered and applied as the spec asks;
- ``LastBackupSucceeded``: the outcome of the most recent finished backup run;
- ``LastVerifySucceeded``: the outcome of the most recent finished verify drill.

A Job's outcome is read from its conditions (``Complete`` / ``Failed``) and which of the two
kinds it is from its ``app.kubernetes.io/component`` label (``backup`` or ``verify``; Jobs
without one are backups, as every Job was before verify existed). Backups are tracked from
the start (``lastRun`` shows a running Job); drills only once finished (``lastVerify``).

The message is the container's termination message, which ``pgbackup run`` and ``pgbackup
verify`` write as one line naming each failed database and why (``backup_job.core.termination``
declares its format for both ends); for a failed Job without one, the Job's own condition
message is the fallback.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from backup_job.core.termination import TerminationMessage

from .api import Body



def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def set_condition(
    conditions: list[Body], type_: str, status: bool, reason: str, message: str, generation: int | None = None
) -> list[Body]:
    """A new conditions list with ``type_`` set; the transition time moves only on a change."""
    value = "True" if status else "False"
    result = [dict(c) for c in conditions if c.get("type") != type_]
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    condition: Body = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now() if changed else previous.get("lastTransitionTime", now()),  # type: ignore[union-attr]
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    result.append(condition)
    return sorted(result, key=lambda c: str(c["type"]))


def job_outcome(job: Body) -> str:
    """``Succeeded``, ``Failed`` or ``Running``."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if condition.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"


def job_failure_reason(job: Body) -> str:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") in ("Failed", "FailureTarget") and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "the Job failed")
    return "the Job failed"


def termination_message(pods: list[Body]) -> TerminationMessage | None:
    """The newest non-empty termination message of the backup container among the pods."""
    best: tuple[str, TerminationMessage] | None = None
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            message = TerminationMessage.decode(terminated.get("message") or "")
            if message.summary:
                finished = str(terminated.get("finishedAt") or "")
                if best is None or finished >= best[0]:
                    best = (finished, message)
    return best[1] if best else None


def human_duration(seconds: float) -> str:
    """``45s``, ``12m5s``, ``3h2m``: what ``kubectl get pgb -o wide`` shows."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60}s"
    return f"{whole // 3600}h{whole % 3600 // 60}m"


def human_size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def run_figures(message: TerminationMessage | None) -> Body:
    """The ``lastRun`` fields a job's termination message carries (none from an older job)."""
    if message is None or message.command not in ("", "run"):
        return {}
    figures: Body = {}
    if message.seconds is not None:
        figures["durationSeconds"] = message.seconds
        figures["duration"] = human_duration(message.seconds)
    if message.stored_bytes is not None:
        figures["bytes"] = message.stored_bytes
        figures["size"] = human_size(message.stored_bytes)
    if message.databases_ok is not None or message.databases_failed is not None:
        figures["databases"] = {"ok": message.databases_ok or 0, "failed": message.databases_failed or 0}
    if message.failed:
        figures["failedDatabases"] = list(message.failed)
    if message.timestamp:
        figures["timestamp"] = message.timestamp
    return figures


def _time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def last_run(job: Body, message: str, figures: Body | None = None) -> Body:
    """The ``status.lastRun`` object for a Job; ``figures`` from ``run_figures``."""
    status = job.get("status", {})
    labels = job.get("metadata", {}).get("labels") or {}
    outcome = job_outcome(job)
    finished = None
    if outcome != "Running":
        finished = status.get("completionTime")
        for condition in status.get("conditions") or []:
            if condition.get("type") in ("Failed", "Complete") and condition.get("status") == "True":
                finished = finished or condition.get("lastTransitionTime")
    run: Body = {
        "jobName": job["metadata"]["name"],
        "manual": labels.get("pgbackup.io/manual") == "true",
        "startTime": _time(status.get("startTime")) or _time(job["metadata"].get("creationTimestamp")),
        "result": outcome,
        "message": message,
    }
    if finished:
        run["completionTime"] = _time(finished)
    run.update(figures or {})
    return {k: v for k, v in run.items() if v is not None}


def is_newer_or_same(run: Body, current: Body | None) -> bool:
    """Whether ``run`` may replace ``current`` as the last run (never go back in time)."""
    if not current:
        return True
    if current.get("jobName") == run.get("jobName"):
        return True
    return str(run.get("startTime", "")) >= str(current.get("startTime", ""))


def component(job: Body) -> str:
    """``backup`` or ``verify``: which CronJob (or backup-now) a Job comes from."""
    labels = job.get("metadata", {}).get("labels") or {}
    return "verify" if labels.get("app.kubernetes.io/component") == "verify" else "backup"


def finished_time(job: Body) -> str | None:
    """When a finished Job finished: its completionTime, else its terminal condition's time."""
    status = job.get("status", {})
    if status.get("completionTime"):
        return _time(status["completionTime"])
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in (
                "Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"):
            return _time(condition.get("lastTransitionTime"))
    return None


def last_verify(job: Body, message: str) -> Body:
    """The ``status.lastVerify`` object for a finished verify Job."""
    return {
        "time": finished_time(job) or now(),
        "result": job_outcome(job),
        "message": message,
        "job": job["metadata"]["name"],
    }


def is_new_verify(record: Body, current: Body | None) -> bool:
    """Whether ``record`` is news: another Job than ``current``, or another result, and not older."""
    if not current:
        return True
    if current.get("job") == record["job"]:
        return bool(current.get("result") != record["result"])
    return str(record["time"]) >= str(current.get("time", ""))
