"""PgRestore: one restore, run once as a Job, reported in the PgRestore's status.

A PgRestore names a PgBackup in its namespace (``spec.backupRef``) and reuses its
destination, server, image and pod settings. The operator:

1. on create (or on resume, when nothing was started yet) reads its spec once (``spec.
   parse_pgrestore``; a malformed one fails it for good, like a bad ``at``), renders the Job
   ``pgrestore-<name>`` running ``pgbackup restore --database=... [--at ...] [--target ...]
   [--table ...]... [--jobs ...] [--into ...] [--create] [--clean] [--with-globals]
   [--allow-unsigned] [--as-superuser]`` in the same
   hardened pod as backups (trusting the PgBackup's ``spec.signing.publicKeys``), owned by the
   PgRestore (deleting the PgRestore deletes the Job), and sets ``phase: Pending``;
2. on every event of that Job, sets ``phase`` (Pending, Running, then Succeeded or Failed),
   ``startTime``, ``completionTime``, ``backupTimestamp`` and ``message`` (both from the
   job's termination message), the ``Restored`` condition, and posts one Event per outcome.

It never runs twice: once ``status.jobName`` is set nothing is created again, even if the Job
is deleted, and the CRD refuses any change to ``spec`` (CEL ``self == oldSelf``). A missing
PgBackup keeps it Pending (``BackupNotFound``) and kopf retries. A ``spec.at`` the job's own
parser refuses fails it at once (``InvalidAt``, ``validate``): no Job is made for it; so do
tables that are not ``schema.name`` (read with the spec), ``into`` without exactly one table,
and ``jobs`` out of range. Whether the backup is split (only its tables can be restored one by
one) is known only from the bucket: the job says so. The
rules about the target (exists and not empty without ``clean``, ``create`` of an existing one)
are the job's own: its one-line error becomes the status message.
"""

from __future__ import annotations

import hashlib
from typing import Any

import kopf
from kubernetes.client import ApiException

from backup_job.core.moments import parse_at
from backup_job.core.termination import TerminationMessage

from . import api, kube, render, status
from .api import RESTORE, RESTORE_KIND, RESTORE_LABEL, RESTORE_PLURAL, Body, RenderError
from .env import destination_labels, restore_identity
from .pod import render_restore_pod_spec
from .spec import PgBackupSpec, PgRestoreSpec, parse_pgbackup, parse_pgrestore
from .spec.pgrestore import MAX_JOBS, MAX_TABLES

JOB_NAME_MAX = 63
RESTORED = "Restored"
PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"


def restore_job_name(name: str) -> str:
    """``pgrestore-<name>``, cut and hashed to fit a Job name (63 characters)."""
    full = f"pgrestore-{name}"
    if len(full) <= JOB_NAME_MAX:
        return full
    tail = f"-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return full[: JOB_NAME_MAX - len(tail)].rstrip("-.") + tail


def restore_command(spec: PgRestoreSpec) -> list[str]:
    """``pgbackup restore`` with the PgRestore's choices; values as ``--flag=value`` so a name
    that starts with a dash stays a value."""
    target = spec.target
    command = ["pgbackup", "restore", f"--database={spec.database}"]
    at = (spec.at or "").strip()
    if at not in ("", "latest"):
        command.append(f"--at={at}")
    if target.database:
        command.append(f"--target={target.database}")
    command += [f"--table={table}" for table in spec.tables]
    if spec.jobs is not None:
        command.append(f"--jobs={spec.jobs}")
    if spec.into is not None:
        command.append(f"--into={spec.into}")
    command += [
        flag
        for flag, wanted in (
            ("--create", target.create),
            ("--clean", target.clean),
            ("--with-globals", spec.globals),
            ("--allow-unsigned", spec.allow_unsigned),
            ("--as-superuser", spec.as_superuser),
        )
        if wanted
    ]
    return command


def validate(spec: PgRestoreSpec) -> None:
    """What the job would refuse in a PgRestore's own fields, refused before any Job: ``spec.at``
    read by the job's own ``--at`` parser (the CRD's pattern admits ``9999-12-31`` and 30
    February), ``RenderError`` with reason ``InvalidAt``; and what the CRD says of ``tables``,
    ``jobs`` and ``into`` together (``InvalidTables``), for specs that did not pass the API
    server."""
    try:
        parse_at(spec.at or "")
    except ValueError as exc:
        raise RenderError(f"spec.at: {exc}", "InvalidAt") from exc
    _validate_tables(spec)


def _validate_tables(spec: PgRestoreSpec) -> None:
    if len(spec.tables) > MAX_TABLES:
        raise RenderError(
            f"spec.tables: {len(spec.tables)} tables, and one PgRestore restores at most {MAX_TABLES}; "
            "spread them over several PgRestores",
            "InvalidTables",
        )
    for index, table in enumerate(spec.tables):
        if table in spec.tables[:index]:
            raise RenderError(f"spec.tables[{index}]: {table!r} is listed twice; list each table once", "InvalidTables")
    if spec.jobs is not None and not 1 <= spec.jobs <= MAX_JOBS:
        raise RenderError(f"spec.jobs: {spec.jobs} is out of range: it must be from 1 to {MAX_JOBS}", "InvalidTables")
    if spec.into is not None and len(spec.tables) != 1:
        raise RenderError(
            f"spec.into: restores one table beside the live one, so spec.tables must name exactly that "
            f"table ({len(spec.tables)} given)",
            "InvalidTables",
        )


def render_restore_job(
    restore: Body,
    backup: Body,
    default_image: str,
    *,
    spec: PgRestoreSpec | None = None,
    backup_spec: PgBackupSpec | None = None,
) -> Body:
    """The Job of a PgRestore, from its PgBackup (``RenderError`` if either cannot render).
    ``spec`` and ``backup_spec``: the two bodies' specs, when the caller has read them already."""
    spec = spec or parse_pgrestore(restore)
    validate(spec)
    backup_spec = backup_spec or parse_pgbackup(backup)
    render.validate(backup_spec)
    meta = restore["metadata"]
    job_labels = {**render.labels(backup["metadata"]["name"], RESTORE), RESTORE_LABEL: meta["name"]}
    job_spec: Body = {
        "backoffLimit": 0,  # a failed restore is looked at, not retried blindly
        "template": {
            "metadata": render.pod_template_metadata(
                backup_spec.pod, job_labels, destination_labels(backup_spec, restore_identity(spec, backup_spec)[0])
            ),
            "spec": render_restore_pod_spec(spec, backup_spec, default_image, restore_command(spec)),
        },
    }
    if spec.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": restore_job_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": job_labels,
            "ownerReferences": [
                {
                    "apiVersion": f"{api.GROUP}/{api.VERSION}",
                    "kind": RESTORE_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def phase(job: Body) -> str:
    """Pending until the Job has a pod, Running while it has one, then how it ended."""
    outcome = status.job_outcome(job)
    if outcome != "Running":
        return outcome
    return RUNNING if (job.get("status") or {}).get("active") else PENDING


def observed(job: Body, told: TerminationMessage | None, current: Body, generation: int | None = None) -> Body:
    """The status fields a restore Job's state gives (``current``: the status as it is;
    ``generation``: the PgRestore's, which the condition says it describes)."""
    now_phase = phase(job)
    job_status = job.get("status") or {}
    update: Body = {"phase": now_phase, "jobName": job["metadata"]["name"]}
    if job_status.get("startTime"):
        update["startTime"] = str(job_status["startTime"])
    if now_phase in (SUCCEEDED, FAILED):
        update["completionTime"] = status.finished_time(job) or status.now()
        update["message"] = (
            told.summary
            if told and told.summary
            else ("restore completed" if now_phase == SUCCEEDED else status.job_failure_reason(job))
        )
        if told and told.timestamp:
            update["backupTimestamp"] = told.timestamp
    truths: dict[str, bool | str] = {PENDING: "Unknown", RUNNING: "Unknown", SUCCEEDED: True, FAILED: False}
    truth = truths[now_phase]
    reason = {PENDING: "JobPending", RUNNING: "JobRunning", SUCCEEDED: "RestoreSucceeded", FAILED: "RestoreFailed"}[
        now_phase
    ]
    message = update.get("message") or f"Job {job['metadata']['name']} is {now_phase.lower()}"
    update["conditions"] = status.set_condition(
        current.get("conditions") or [], RESTORED, truth, reason, message, generation
    )
    return update


def _generation(restore: Body) -> int | None:
    """The PgRestore's ``metadata.generation``, which each ``Restored`` condition records."""
    value = restore["metadata"].get("generation")
    return value if isinstance(value, int) else None


def _patch(restore: Body, update: Body) -> None:
    meta = restore["metadata"]
    kube.patch_status(RESTORE_PLURAL, meta["namespace"], meta["name"], update)


@kopf.on.resume(api.GROUP, api.VERSION, RESTORE_PLURAL)
@kopf.on.create(api.GROUP, api.VERSION, RESTORE_PLURAL)
def start(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Create the restore Job once; a PgRestore that started (or ended) is never started again."""
    restore = dict(body)
    current = restore.get("status") or {}
    if current.get("jobName") or current.get("phase") in (SUCCEEDED, FAILED):
        return
    meta = restore["metadata"]
    try:
        spec = parse_pgrestore(restore)
        validate(spec)
    except RenderError as exc:  # its spec never changes: it fails now, and for good
        _refuse(restore, exc.reason, str(exc))
        return
    backup = kube.get_pgbackup(meta["namespace"], spec.backup_ref.name)
    if backup is None:
        message = f"PgBackup {spec.backup_ref.name} does not exist in namespace {meta['namespace']}"
        _waiting(restore, "BackupNotFound", message)
        raise kopf.TemporaryError(message, delay=30)
    try:
        job = render_restore_job(restore, backup, render.default_image(), spec=spec)
    except api.RenderError as exc:
        message = f"PgBackup {backup['metadata']['name']} cannot be rendered: {exc}"
        _waiting(restore, "BackupInvalid", message)
        raise kopf.TemporaryError(message, delay=60) from exc
    name = job["metadata"]["name"]
    if not kube.create_job(job):
        existing = kube.get_job(meta["namespace"], name)
        if existing is not None and kube.controller_uid(existing) != meta["uid"]:
            _refuse(
                restore,
                "JobNameTaken",
                f"Job {name} exists and belongs to someone else; delete it or name this PgRestore otherwise",
            )
            return
    _patch(
        restore,
        {
            "phase": PENDING,
            "jobName": name,
            "observedGeneration": meta.get("generation"),
            "conditions": status.set_condition(
                current.get("conditions") or [],
                RESTORED,
                "Unknown",
                "JobCreated",
                f"Job {name} created",
                _generation(restore),
            ),
        },
    )
    logger.info(f"restore of {spec.database!r} from PgBackup {backup['metadata']['name']}: Job {name}")
    kube.post_event(restore, "Normal", "RestoreStarted", f"Job {name} restores {spec.database!r}")


def _refuse(restore: Body, reason: str, message: str) -> None:
    """The PgRestore fails without a Job: phase Failed, ``Restored=False`` and a Warning Event."""
    current = restore.get("status") or {}
    _patch(
        restore,
        {
            "phase": FAILED,
            "message": message,
            "conditions": status.set_condition(
                current.get("conditions") or [], RESTORED, False, reason, message, _generation(restore)
            ),
        },
    )
    kube.post_event(restore, "Warning", reason, message)


def _waiting(restore: Body, reason: str, message: str) -> None:
    current = restore.get("status") or {}
    was: Body = next((c for c in current.get("conditions") or [] if c.get("type") == RESTORED), {})
    _patch(
        restore,
        {
            "phase": PENDING,
            "message": message,
            "conditions": status.set_condition(
                current.get("conditions") or [], RESTORED, "Unknown", reason, message, _generation(restore)
            ),
        },
    )
    if was.get("reason") != reason:  # one Event per cause, not one per retry
        kube.post_event(restore, "Warning", reason, message)


def job_changed(job: Body, logger: kopf.Logger) -> None:
    """A restore Job changed: bring its PgRestore's status up to date; one Event per outcome."""
    meta = job["metadata"]
    name = (meta.get("labels") or {}).get(RESTORE_LABEL)
    if not name:
        return
    restore = kube.get_custom(RESTORE_PLURAL, meta["namespace"], name)
    if restore is None or kube.controller_uid(job) != restore["metadata"]["uid"]:
        return
    current = restore.get("status") or {}
    if current.get("phase") in (SUCCEEDED, FAILED):
        return  # it ended: what it said then stays
    told = None
    if status.job_outcome(job) != "Running":
        told = status.termination_message(kube.job_pods(meta["namespace"], meta["name"]))
    update = observed(job, told, current, _generation(restore))
    if all(current.get(key) == value for key, value in update.items()):
        return
    try:
        _patch(restore, update)
    except ApiException as exc:
        if exc.status == 404:
            return  # deleted meanwhile
        raise
    if update["phase"] == SUCCEEDED:
        kube.post_event(restore, "Normal", "RestoreSucceeded", update["message"])
    elif update["phase"] == FAILED:
        logger.warning(f"restore Job {meta['name']} failed: {update['message']}")
        kube.post_event(restore, "Warning", "RestoreFailed", update["message"])
