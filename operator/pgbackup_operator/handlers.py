"""kopf handlers: keep each PgBackup's CronJobs as rendered, and its status as observed.

- ``reconcile`` (create, update, resume of a PgBackup): render the backup CronJob and, with
  ``spec.verify`` and ``spec.retention.schedule``, the verify and prune CronJobs; apply them,
  or delete an optional CronJob its field no longer asks for (only one this PgBackup
  controls); set ``Ready``, the trust conditions ``Signed`` and ``VerifyIsolated`` (``trust``),
  ``cronJobName``, ``nextScheduleTime``, ``observedGeneration``;
  act on the ``pgbackup.io/backup-now`` annotation by creating one backup Job per distinct
  id, with the run's timestamp fixed in it, and on ``pgbackup.io/list-requested`` by
  creating one listing Job per distinct value (``listings``).
  A CronJob of a wanted name that is not this PgBackup's is never changed (``kube``):
  ``Ready=False`` with ``CronJobNameTaken``, or, while garbage collection removes the CronJob
  of a deleted PgBackup of the same name, ``Ready=Unknown`` with ``PredecessorLeaving`` and a
  retry every few seconds.
- ``cronjob_changed`` (any event on a CronJob we manage): if this PgBackup's CronJob was
  deleted or edited away from the rendering, apply the rendering again (drift repair, for
  every kind); copy the backup CronJob's ``lastScheduleTime``.
- ``job_changed`` (any event on a Job we manage): the Job's component label says which kind
  it is. Restore Jobs go to their PgRestore (``restores``), listing Jobs publish their
  output (``listings``); backup, verify and prune Jobs to
  their PgBackup's status (``runs``), one Event per outcome, and a sharded run whose every
  shard succeeded gets its one prune Job.

Each handler reads a PgBackup's spec once into the typed ``spec.PgBackupSpec`` and hands it
down; a spec that cannot be read is ``Ready=False`` with the field's path, like one that
cannot be rendered.

There are no delete handlers, timers or daemons, so kopf adds no finalizers: deleting a
PgBackup (or a PgRestore) lets garbage collection remove its CronJobs and Jobs through
ownerReferences. The freshness watch and the metrics (``alerting``) run from one event handler and
one startup task. Handlers are plain functions with keyword arguments; tests can call them
directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiException

from backup_job.core.cron import CronSchedule

from . import api, kube, listings, metrics, render, restores, runs, status, trust
from .api import Body
from .spec import PgBackupSpec, parse_pgbackup

MANAGED = {"app.kubernetes.io/managed-by": api.MANAGED_BY}
READY = "Ready"
# kopf ignores changes to annotations under its own storage prefix, so its bookkeeping must
# not share `pgbackup.io/`: users' `pgbackup.io/backup-now` has to count as a change.
KOPF_PREFIX = f"kopf.{api.GROUP}"
PREDECESSOR_RETRY = 5  # seconds between looks at a CronJob garbage collection is about to delete


default_image = render.default_image


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Keep kopf's bookkeeping in our own annotations, never in status (the schema would prune it)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.peering.standalone = True
    settings.posting.enabled = False  # Events are posted explicitly, one per fact (kube.post_event)
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    kube.load_config()


def next_schedule_time(spec: PgBackupSpec) -> str | None:
    if spec.suspend:
        return None
    try:
        upcoming = CronSchedule.parse(spec.schedule).next_after(datetime.now(UTC), spec.time_zone)
    except ValueError:
        return None
    return status.iso(upcoming)


def _trust(body: Body, spec: PgBackupSpec | None) -> list[Body]:
    """The conditions with the trust conditions (``trust``) set from the spec (as they were, for
    a spec that cannot be read); a Warning Event for each warning the status did not show yet."""
    current = body.get("status", {}).get("conditions") or []
    if spec is None:
        return [dict(c) for c in current]
    for finding in trust.warnings(spec, current):
        kube.post_event(body, "Warning", finding.reason, finding.message)
    return trust.conditions(spec, current, body["metadata"].get("generation"))


def _not_ready(body: Body, patch: kopf.Patch, reason: str, message: str, conditions: list[Body]) -> None:
    metrics.STORE.reconcile_failed()
    patch.status["conditions"] = status.set_condition(
        conditions, READY, False, reason, message, body["metadata"].get("generation")
    )
    patch.status["observedGeneration"] = body["metadata"].get("generation")
    patch.status["nextScheduleTime"] = None
    kube.post_event(body, "Warning", reason, message)


def _ready_message(cronjobs: list[Body], suspended: bool) -> str:
    names = [c["metadata"]["name"] for c in cronjobs]
    subject = f"CronJob {names[0]} is" if len(names) == 1 else f"CronJobs {', '.join(names[:-1])} and {names[-1]} are"
    return f"{subject} up to date" + (" (suspended)" if suspended else "")


# The optional CronJobs: how each is named, and the field whose removal removes it.
OPTIONAL = {
    api.VERIFY: (render.verify_cronjob_name, "spec.verify", "VerifyRemoved"),
    api.PRUNE: (render.prune_cronjob_name, "spec.retention.schedule", "PruneRemoved"),
}


def _apply_optional(body: Body, component: str, cronjob: Body | None, logger: kopf.Logger) -> None:
    """Apply an optional CronJob, or delete ours when the field asking for it is gone."""
    if cronjob is not None:
        kube.apply_cronjob(cronjob)
        logger.info(f"CronJob {cronjob['metadata']['name']} applied")
        return
    meta = body["metadata"]
    namer, field, reason = OPTIONAL[component]
    name = namer(meta["name"])
    if kube.delete_owned_cronjob(meta["namespace"], name, meta["uid"]):
        logger.info(f"CronJob {name} deleted: {field} was removed")
        kube.post_event(body, "Normal", reason, f"CronJob {name} deleted: {field} was removed")


# An unexpected error (a reset connection, a timeout) is retried after RETRY seconds, not
# kopf's default minute: the CronJobs of a new PgBackup should not wait on one lost request.
RETRY = 10


@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL, backoff=RETRY)
@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL, backoff=RETRY)
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, backoff=RETRY)
def reconcile(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    """Read the spec once; render and apply the CronJobs; report readiness; honour backup-now."""
    obj = dict(body)
    try:
        typed = parse_pgbackup(obj)
    except api.RenderError as exc:  # malformed: nothing renders, the trust conditions stay as they were
        _not_ready(obj, patch, exc.reason, str(exc), _trust(obj, None))
        return
    conditions = _trust(obj, typed)
    try:
        rendered = render.render_all(obj, default_image(), typed)
    except api.RenderError as exc:
        _not_ready(obj, patch, exc.reason, str(exc), conditions)
        return
    cronjob = rendered[api.BACKUP]
    assert cronjob is not None
    try:
        applied = kube.apply_cronjob(cronjob)
        for component in OPTIONAL:
            _apply_optional(obj, component, rendered[component], logger)
    except kube.NameTaken as exc:
        _not_ready(obj, patch, "CronJobNameTaken", str(exc), conditions)
        return
    except kube.PredecessorLeaving as exc:
        logger.info(str(exc))
        patch.status["conditions"] = status.set_condition(
            conditions, READY, "Unknown", "PredecessorLeaving", str(exc), obj["metadata"].get("generation")
        )
        raise kopf.TemporaryError(str(exc), delay=PREDECESSOR_RETRY) from exc
    except ApiException as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            _not_ready(
                obj,
                patch,
                "CronJobRejected",
                f"the API server rejected the CronJob: {kube.api_error_message(exc)}",
                conditions,
            )
            return
        metrics.STORE.reconcile_failed()
        raise kopf.TemporaryError(f"applying the CronJob failed: {exc.reason}", delay=RETRY) from exc
    generation = obj["metadata"].get("generation")
    message = _ready_message([c for c in rendered.values() if c is not None], typed.suspend)
    patch.status["conditions"] = status.set_condition(conditions, READY, True, "CronJobApplied", message, generation)
    patch.status["cronJobName"] = cronjob["metadata"]["name"]
    patch.status["observedGeneration"] = generation
    patch.status["nextScheduleTime"] = next_schedule_time(typed)
    logger.info(f"CronJob {cronjob['metadata']['name']} applied")
    _run_now(obj, applied, patch, logger)
    listings.start(obj, typed, patch, logger, default_image())


def _run_now(body: Body, cronjob: Body, patch: kopf.Patch, logger: kopf.Logger) -> None:
    run_id = (body["metadata"].get("annotations") or {}).get(api.RUN_NOW_ANNOTATION)
    if not run_id or run_id == body.get("status", {}).get("lastManualRunId"):
        return
    job = render.render_manual_job(cronjob, run_id, datetime.now(UTC))
    created = kube.create_job(job)
    patch.status["lastManualRunId"] = run_id
    if created:
        logger.info(f"backup-now {run_id!r}: created Job {job['metadata']['name']}")
        kube.post_event(
            body, "Normal", "BackupRequested", f"Job {job['metadata']['name']} started for backup-now={run_id}"
        )


def _owner(meta: Body, namespace: str | None) -> Body | None:
    name = (meta.get("labels") or {}).get(api.NAME_LABEL)
    if not name or not namespace:
        return None
    owner = kube.get_pgbackup(namespace, name)
    if owner is None or owner["metadata"].get("deletionTimestamp"):
        return None
    return owner


def drift(desired: Any, actual: Any, path: str = "") -> str | None:
    """The first field ``actual`` lacks or contradicts from ``desired``, as a dotted path, or
    None. Fields only ``actual`` has (server defaults, others' additions) are not drift."""
    if desired in ({}, []) and actual is None:
        return None  # the API server drops empty maps and lists
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return path or "."
        for key, value in desired.items():
            found = drift(value, actual.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return path
        for index, (d, a) in enumerate(zip(desired, actual, strict=False)):
            found = drift(d, a, f"{path}[{index}]")
            if found:
                return found
        return None
    return path if desired != actual else None


def _desired_cronjob(owner: Body, component: str) -> Body | None:
    """What ``owner`` renders for that component now; None if nothing (or it cannot render)."""
    try:
        return render.render_all(owner, default_image()).get(component)
    except api.RenderError:
        return None  # reconcile reports it


@kopf.on.event("batch", "v1", "cronjobs", labels=MANAGED)
def cronjob_changed(
    type: str, body: kopf.Body, meta: kopf.Meta, namespace: str | None, logger: kopf.Logger, **_: Any
) -> None:
    """Repair a CronJob deleted or edited by hand; mirror the backup CronJob's schedule times."""
    owner = _owner(dict(meta), namespace)
    if owner is None:
        return
    component = (meta.get("labels") or {}).get(api.COMPONENT_LABEL, api.BACKUP)
    desired = _desired_cronjob(owner, component)
    actual = dict(body)
    if desired is None or desired["metadata"]["name"] != actual["metadata"]["name"]:
        return  # not wanted (any more): reconcile deletes a verify CronJob spec.verify no longer asks for
    if kube.controller_uid(actual) != owner["metadata"]["uid"]:
        return  # not this PgBackup's (a predecessor's, or nobody's): reconcile decides, never a repair
    deleted = type == "DELETED"
    changed = drift({"metadata": {"labels": desired["metadata"]["labels"]}, "spec": desired["spec"]}, actual)
    if deleted or changed:
        _repair(owner, desired, "deleted" if deleted else f"changed ({changed})", logger)
        return
    if component == api.BACKUP:
        _mirror_schedule(owner, actual)


def _repair(owner: Body, desired: Body, what: str, logger: kopf.Logger) -> None:
    try:
        kube.apply_cronjob(desired)
    except (kube.NameTaken, kube.PredecessorLeaving) as exc:
        logger.warning(str(exc))  # the name went to another owner meanwhile: not ours to take back
        return
    except ApiException as exc:
        if kube.namespace_terminating(exc):
            return  # the namespace and everything in it is going away
        raise
    message = f"CronJob {desired['metadata']['name']} was {what} outside the operator; restored"
    logger.warning(message)
    kube.post_event(owner, "Warning", "DriftCorrected", message)


def _mirror_schedule(owner: Body, cronjob: Body) -> None:
    last = (cronjob.get("status") or {}).get("lastScheduleTime")
    current = owner.get("status", {})
    update: Body = {}
    if last and last != current.get("lastScheduleTime"):
        update["lastScheduleTime"] = last
    try:
        upcoming = next_schedule_time(parse_pgbackup(owner))
    except api.RenderError:
        upcoming = None  # reconcile reports it
    if upcoming != current.get("nextScheduleTime"):
        update["nextScheduleTime"] = upcoming
    if update:
        kube.patch_pgbackup_status(owner["metadata"]["namespace"], owner["metadata"]["name"], update)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
def job_changed(
    type: str, body: kopf.Body, meta: kopf.Meta, namespace: str | None, logger: kopf.Logger, **_: Any
) -> None:
    """Record a run's progress and outcome in the PgBackup's status, with an Event at the end."""
    if type == "DELETED":
        return
    job = dict(body)
    kind = status.component(job)
    if kind == api.RESTORE:
        restores.job_changed(job, logger)
        return
    owner = _owner(dict(meta), namespace)
    if owner is None:
        return
    if kind == api.LIST:
        listings.job_changed(owner, job, logger)
        return
    records = {api.VERIFY: runs.record_verify, api.PRUNE: runs.record_prune, api.BACKUP: runs.record_backup}
    for _attempt in range(5):
        try:
            records[kind](owner, job, logger)
            break
        except ApiException as exc:
            if exc.status != 409:
                raise
        # The status changed since it was read (the freshness check, another Job): the
        # conditions are written whole, so compute them again from the object as it is now.
        fresh = kube.get_pgbackup(owner["metadata"]["namespace"], owner["metadata"]["name"])
        if fresh is None:
            return
        owner = fresh
    else:
        logger.warning(
            f"the status of {owner['metadata']['name']} kept changing; Job {job['metadata']['name']} "
            "is recorded on its next event"
        )
    if kind == api.BACKUP:
        runs.prune_after(owner, job, logger)
