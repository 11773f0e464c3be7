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

from datetime import UTC, datetime
from typing import Any

from backup_job.core.termination import MAX_FAILED, TerminationMessage

from .api import Body


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def set_condition(
    conditions: list[Body], type_: str, status: bool | str, reason: str, message: str, generation: int | None = None
) -> list[Body]:
    """A new conditions list with ``type_`` set (``status``: True, False or "Unknown"); the
    transition time moves only on a change."""
    value = status if isinstance(status, str) else ("True" if status else "False")
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


COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def _newest(pods: list[Body]) -> tuple[str, TerminationMessage] | None:
    best: tuple[str, TerminationMessage] | None = None
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            message = TerminationMessage.decode(terminated.get("message") or "")
            if message.summary:
                finished = str(terminated.get("finishedAt") or "")
                if best is None or finished >= best[0]:
                    best = (finished, message)
    return best


def termination_message(pods: list[Body]) -> TerminationMessage | None:
    """The run's termination message: the newest non-empty one among the pods; for the pods
    of an Indexed Job (shards), the newest of each index, added up (``add_up``)."""
    indexes: dict[str, list[Body]] = {}
    for pod in pods:
        index = (pod.get("metadata", {}).get("annotations") or {}).get(COMPLETION_INDEX)
        indexes.setdefault(index or "", []).append(pod)
    if len(indexes) <= 1:
        best = _newest(pods)
        return best[1] if best else None
    newest = [_newest(group) for _index, group in sorted(indexes.items(), key=lambda item: int(item[0] or -1))]
    return add_up([found[1] for found in newest if found], len(indexes))


def add_up(messages: list[TerminationMessage], shards: int) -> TerminationMessage:
    """One run's outcome from its shards' messages: a success only when every shard told of
    one; counts and bytes added, the longest time, every failure named."""
    ok = len(messages) == shards and all(m.ok for m in messages)
    failed = tuple(name for m in messages for name in m.failed)
    if ok:
        databases = sum(m.databases_ok or 0 for m in messages)
        summary = (
            f"{databases} backups succeeded in {shards} shards: "
            f"{human_size(sum(m.stored_bytes or 0 for m in messages))} stored"
        )
    else:
        told = [m.summary for m in messages if not m.ok]
        silent = shards - len(messages)
        summary = "; ".join(told + ([f"{silent} of {shards} shards told nothing"] if silent else []))
    seconds = [m.seconds for m in messages if m.seconds is not None]
    return TerminationMessage(
        summary,
        command="run",
        ok=ok,
        timestamp=next((m.timestamp for m in messages if m.timestamp), ""),
        seconds=max(seconds) if seconds else None,
        stored_bytes=sum(m.stored_bytes or 0 for m in messages),
        databases_ok=sum(m.databases_ok or 0 for m in messages),
        databases_failed=sum(m.databases_failed or 0 for m in messages),
        failed=failed[:MAX_FAILED],
        failed_truncated=len(failed) > MAX_FAILED or any(m.failed_truncated for m in messages),
    )


def shard_counts(job: Body) -> Body | None:
    """An Indexed Job's pods by outcome (``lastRun.shards``); None for a single-pod Job."""
    spec = job.get("spec", {})
    if spec.get("completionMode") != "Indexed":
        return None
    status = job.get("status", {})
    failed_indexes = [i for i in str(status.get("failedIndexes") or "").split(",") if i]
    return {
        "total": int(spec.get("completions") or 1),
        "succeeded": int(status.get("succeeded") or 0),
        "failed": _count_indexes(failed_indexes),
    }


def _count_indexes(ranges: list[str]) -> int:
    """How many indexes ``1,3-5`` names (the Job's failedIndexes)."""
    total = 0
    for item in ranges:
        low, _, high = item.partition("-")
        total += int(high or low) - int(low) + 1
    return total


def human_duration(seconds: float) -> str:
    """``45s``, ``12m5s``, ``3h2m``: what ``kubectl get pgb -o wide`` shows."""
    whole = round(seconds)
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
    """``backup``, ``verify``, ``prune``, ``restore`` or ``list``: what a Job of ours does."""
    labels = job.get("metadata", {}).get("labels") or {}
    found = labels.get("app.kubernetes.io/component")
    return found if found in ("verify", "prune", "restore", "list") else "backup"


def finished_time(job: Body) -> str | None:
    """When a finished Job finished: its completionTime, else its terminal condition's time."""
    status = job.get("status", {})
    if status.get("completionTime"):
        return _time(status["completionTime"])
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in (
            "Complete",
            "Failed",
            "SuccessCriteriaMet",
            "FailureTarget",
        ):
            return _time(condition.get("lastTransitionTime"))
    return None


def finished_record(job: Body, message: str) -> Body:
    """A finished verify or prune Job as ``status.lastVerify`` / ``status.lastPrune`` record it."""
    return {
        "time": finished_time(job) or now(),
        "result": job_outcome(job),
        "message": message,
        "job": job["metadata"]["name"],
    }


def is_new_record(record: Body, current: Body | None) -> bool:
    """Whether ``record`` is news: another Job than ``current``, or another result, and not older."""
    if not current:
        return True
    if current.get("job") == record["job"]:
        return bool(current.get("result") != record["result"])
    return str(record["time"]) >= str(current.get("time", ""))
