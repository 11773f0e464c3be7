"""What a finished (or running) Job of a PgBackup means for the PgBackup's status.

- a backup run (``record_backup``) goes to ``lastRun`` (for an Indexed Job, its shards added
  up: ``status.termination_message``), ``lastSuccessfulTime`` / ``lastFailedTime``, the
  ``LastBackupSucceeded`` condition and one Event per outcome; after a sharded run whose
  every shard succeeded, ``prune_after`` creates its one prune Job;
- a verify drill (``record_verify``) goes to ``lastVerify``, ``lastSuccessfulVerifyTime`` and
  ``LastVerifySucceeded``, never to the backup fields;
- a prune Job (``record_prune``) goes to ``lastPrune``.

Every write that replaces the conditions list is conditional on the resourceVersion it read
(``handlers.job_changed`` reads again and retries on 409 Conflict).
"""

from __future__ import annotations

import kopf

from backup_job.core.termination import TerminationMessage

from . import alerting, kube, render, status
from .api import Body, RenderError
from .spec import parse_pgbackup

LAST_BACKUP, LAST_VERIFY = "LastBackupSucceeded", "LastVerifySucceeded"


def prune_after(owner: Body, job: Body, logger: kopf.Logger) -> None:
    """After a sharded run whose every shard succeeded, start its one prune Job (unless
    retention has a schedule of its own). Its fixed name makes a second attempt a no-op."""
    sharded = job.get("spec", {}).get("completionMode") == "Indexed"
    if not sharded or status.job_outcome(job) != "Succeeded":
        return
    try:
        spec = parse_pgbackup(owner)
        if spec.retention is None or spec.retention.schedule:
            return
        prune = render.render_after_run_prune_job(owner, job, render.default_image(), spec)
    except RenderError:
        return  # reconcile reports it
    if kube.create_job(prune):
        run, pruning = job["metadata"]["name"], prune["metadata"]["name"]
        logger.info(f"every shard of Job {run} succeeded: created prune Job {pruning}")
        kube.post_event(
            owner, "Normal", "PruneStarted", f"every shard of Job {run} succeeded; Job {pruning} applies retention"
        )


def _pod_message(job: Body) -> TerminationMessage | None:
    return status.termination_message(kube.job_pods(job["metadata"]["namespace"], job["metadata"]["name"]))


def record_backup(owner: Body, job: Body, logger: kopf.Logger) -> None:
    outcome = status.job_outcome(job)
    message, told = "", None
    if outcome != "Running":
        told = _pod_message(job)
    if outcome == "Failed":
        message = told.summary if told else status.job_failure_reason(job)
    elif outcome == "Succeeded":
        message = told.summary if told else "backup completed"
    figures = status.run_figures(told)
    shards = status.shard_counts(job)
    if shards:
        figures["shards"] = shards
    run = status.last_run(job, message, figures)
    current = owner.get("status", {})
    if run == current.get("lastRun") or not status.is_newer_or_same(run, current.get("lastRun")):
        return
    update: Body = {"lastRun": run}
    conditions = current.get("conditions") or []
    if outcome == "Succeeded":
        update["lastSuccessfulTime"] = run.get("completionTime") or status.now()
        conditions = alerting.fresh_after_success(conditions, run["jobName"])
        update["conditions"] = status.set_condition(
            conditions, LAST_BACKUP, True, "BackupSucceeded", f"Job {run['jobName']} succeeded"
        )
    elif outcome == "Failed":
        update["lastFailedTime"] = run.get("completionTime") or status.now()
        update["conditions"] = status.set_condition(
            conditions, LAST_BACKUP, False, "BackupFailed", f"Job {run['jobName']} failed: {message}"
        )
    kube.patch_pgbackup_status(
        owner["metadata"]["namespace"],
        owner["metadata"]["name"],
        update,
        resource_version=owner["metadata"].get("resourceVersion"),
    )
    previous = current.get("lastRun") or {}
    if previous.get("jobName") == run["jobName"] and previous.get("result") == outcome:
        return  # the same outcome seen again (the Job's status filled in further): one Event per run
    if outcome == "Succeeded":
        kube.post_event(owner, "Normal", "BackupSucceeded", f"Job {run['jobName']} backed up every selected database")
    elif outcome == "Failed":
        logger.warning(f"backup Job {run['jobName']} failed: {message}")
        kube.post_event(owner, "Warning", "BackupFailed", f"Job {run['jobName']} failed: {message}")


def record_prune(owner: Body, job: Body, logger: kopf.Logger) -> None:
    """A finished prune Job: ``lastPrune`` and one Event, once per outcome."""
    if status.job_outcome(job) == "Running":
        return
    record = status.finished_record(job, "")
    if not status.is_new_record(record, owner.get("status", {}).get("lastPrune")):
        return
    succeeded = record["result"] == "Succeeded"
    told = _pod_message(job)
    record["message"] = told.summary if told else ("prune completed" if succeeded else status.job_failure_reason(job))
    kube.patch_pgbackup_status(
        owner["metadata"]["namespace"],
        owner["metadata"]["name"],
        {"lastPrune": record},
        resource_version=owner["metadata"].get("resourceVersion"),
    )
    summary = f"Job {record['job']} {'succeeded' if succeeded else 'failed'}: {record['message']}"
    if not succeeded:
        logger.warning(f"prune {summary}")
    kube.post_event(
        owner, "Normal" if succeeded else "Warning", "PruneSucceeded" if succeeded else "PruneFailed", summary
    )


def record_verify(owner: Body, job: Body, logger: kopf.Logger) -> None:
    """A finished drill: ``lastVerify``, ``LastVerifySucceeded`` and one Event, once per outcome."""
    if status.job_outcome(job) == "Running":
        return
    current = owner.get("status", {})
    record = status.finished_record(job, "")
    if not status.is_new_record(record, current.get("lastVerify")):
        return
    succeeded = record["result"] == "Succeeded"
    told = _pod_message(job)
    record["message"] = told.summary if told else ("verify completed" if succeeded else status.job_failure_reason(job))
    summary = f"Job {record['job']} {'succeeded' if succeeded else 'failed'}: {record['message']}"
    reason = "VerifySucceeded" if succeeded else "VerifyFailed"
    conditions = status.set_condition(current.get("conditions") or [], LAST_VERIFY, succeeded, reason, summary)
    update: Body = {"lastVerify": record, "conditions": conditions}
    if succeeded:
        update["lastSuccessfulVerifyTime"] = record["time"]
    kube.patch_pgbackup_status(
        owner["metadata"]["namespace"],
        owner["metadata"]["name"],
        update,
        resource_version=owner["metadata"].get("resourceVersion"),
    )
    if not succeeded:
        logger.warning(f"verify {summary}")
    kube.post_event(owner, "Normal" if succeeded else "Warning", reason, summary)
