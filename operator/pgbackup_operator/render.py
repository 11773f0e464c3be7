"""Rendering: a PgBackup in, the CronJobs that run it out. Pure functions, no cluster needed.

A PgBackup renders to up to three CronJobs, and they are the whole contract between the
operator and the job: each pod runs a ``pgbackup`` command from the configured image with
the job's settings as environment variables (``PG*``, the store's ``AWS_*``, ``AZURE_*`` or
``GOOGLE_*``, ``BACKUP_*``).

- the backup CronJob ``pgbackup-<name>`` runs ``pgbackup run`` on ``spec.schedule``; it
  carries the dump settings (compression, pg_dump options, globals, retention, shrink alarm).
  With ``spec.parallelism`` N above 1 its Job is an Indexed Job of N pods (shards);
- with ``spec.verify``, the verify CronJob ``pgbackup-<name>-verify`` runs ``pgbackup
  verify`` (a restore drill) on its own schedule. It shares the destination, the pod
  settings and the hardening, but none of the dump settings: in particular it never carries
  the retention policy, so a drill can never delete a backup. It restores into
  ``spec.verify.server`` when given, else into the backup server, which the job allows only
  with ``spec.verify.onBackupServer`` (it is rendered either way: the job's refusal and the
  ``VerifyIsolated`` condition say what to do);
- with ``spec.retention.schedule``, the prune CronJob ``pgbackup-<name>-prune`` runs
  ``pgbackup prune`` with the retention's own credentials, and the backup pods stop pruning.
  A sharded run without that schedule gets one prune Job once every shard succeeded
  (``render_after_run_prune_job``).

With ``spec.signing`` the backup pods sign every manifest with the private key mounted from
its Secret, and every pod that reads backups trusts only ``spec.signing.publicKeys``.

The spec is read once (``spec.parse_pgbackup``; ``render_all`` takes it ready-made from a
handler that read it already) and every function here reads the typed ``PgBackupSpec``; the
body is used for its metadata only. The environment comes from ``env``, the pod from ``pod``,
names and labels from ``names``, the vocabulary (group, ``Body``, ``RenderError``) from ``api``.
"""

from __future__ import annotations

import os
from datetime import datetime

from backup_job import __version__
from backup_job.core import dumpoptions, keys, signing
from backup_job.core import settings as job_settings
from backup_job.core.cron import CronSchedule, load_zone
from backup_job.core.layout import format_timestamp
from backup_job.core.schema import Invalid
from backup_job.core.settings import OPERATOR_IMAGE
from backup_job.core.settings.dump import SPLIT_REFUSED

from .api import AFTER_LABEL, BACKUP, MANUAL_LABEL, PRUNE, RUN_NOW_ANNOTATION, VERIFY, Body, RenderError
from .env import DUMP_JOBS, FORMAT, allowed_endpoint, destination_labels, parallelism, retention_policy
from .names import after_run_prune_job_name as after_run_prune_job_name  # re-exported: names of what is rendered
from .names import cronjob_name as cronjob_name
from .names import labels as labels
from .names import manual_job_name as manual_job_name
from .names import owner_reference as owner_reference
from .names import prune_cronjob_name as prune_cronjob_name
from .names import verify_cronjob_name as verify_cronjob_name
from .pod import render_pod_spec, render_prune_pod_spec, render_verify_pod_spec
from .spec import NameRef, PgBackupSpec, PodSettings, parse_pgbackup
from .spec.pgbackup import DEFAULT_BACKOFF_LIMIT as DEFAULT_BACKOFF_LIMIT  # re-exported: the CRD's defaults
from .spec.pgbackup import DEFAULT_CONCURRENCY_POLICY as DEFAULT_CONCURRENCY_POLICY
from .spec.pgbackup import DEFAULT_HISTORY_LIMIT as DEFAULT_HISTORY_LIMIT
from .spec.pgbackup import DEFAULT_TIME_ZONE as DEFAULT_TIME_ZONE
from .spec.pgbackup import SPLIT, Retention, Signing, Verify

DEFAULT_IMAGE = f"ghcr.io/pgbackup/pgbackup:{__version__}"


def default_image() -> str:
    """The image pods run unless ``spec.pod.image`` says otherwise: ``PGBACKUP_IMAGE``, else this version's."""
    return OPERATOR_IMAGE.read(os.environ) or DEFAULT_IMAGE


def _validate_timing(schedule: str, zone: str, field: str) -> None:
    try:
        CronSchedule.parse(schedule)
    except ValueError as exc:
        raise RenderError(f"{field}.schedule: {exc}", "InvalidSchedule") from exc
    try:
        load_zone(zone)
    except ValueError as exc:
        raise RenderError(f"{field}.timeZone: {exc}", "InvalidTimeZone") from exc


def verify_time_zone(spec: PgBackupSpec, verify: Verify) -> str:
    return verify.time_zone or spec.time_zone or DEFAULT_TIME_ZONE


def prune_time_zone(spec: PgBackupSpec, retention: Retention) -> str:
    return retention.time_zone or spec.time_zone or DEFAULT_TIME_ZONE


def validate(spec: PgBackupSpec) -> None:
    """What the API server's schema cannot check: cron fields, time zones, pg_dump options as
    the job reads them, and (for callers that bypass the schema) a retention policy that keeps
    something and one kind of destination; and an Azure or GCS endpoint the operator's
    allowlist does not hold (``env.allowed_endpoint``)."""
    _validate_timing(spec.schedule, spec.time_zone, "spec")
    _validate_pg_dump_options(spec.pg_dump_options)
    _validate_format(spec)
    retention_policy(spec)
    compression = spec.compression
    low, high = job_settings.LEVELS[compression.format or job_settings.COMPRESSION.default_value]
    if compression.level is not None and not low <= compression.level <= high:
        raise RenderError(
            f"spec.compression.level: {compression.level} is out of range for "
            f"{compression.format or 'gzip'}: it must be from {low} to {high}",
            "InvalidLevel",
        )
    if spec.verify is not None:
        _validate_timing(spec.verify.schedule, verify_time_zone(spec, spec.verify), "spec.verify")
    if spec.retention is not None and spec.retention.schedule:
        _validate_timing(spec.retention.schedule, prune_time_zone(spec, spec.retention), "spec.retention")
    recipients = spec.encryption.recipients if spec.encryption is not None else ()
    for index, entry in enumerate(recipients):
        try:
            keys.recipient(entry.strip())
        except Invalid as exc:
            raise RenderError(f"spec.encryption.recipients[{index}]: {exc.problem}", "InvalidRecipients") from exc
    _validate_signing(spec.signing)
    spec.destination.chosen()
    allowed_endpoint(spec)


def _validate_pg_dump_options(options: tuple[str, ...]) -> None:
    """``spec.pgDumpOptions`` through the job's own parser (``BACKUP_PG_DUMP_OPTIONS``), so what
    the job would refuse never reaches a pod: above all ``--host``, ``--port`` and ``--username``
    in any spelling (``-h``, ``--ho=``, ``-vh``), which would send the server's password to a
    server the PgBackup's author chose. The CRD's pattern (each item starts with ``-``) cannot
    tell those apart."""
    variable = job_settings.PG_DUMP_OPTIONS
    try:
        variable.parse(variable.render(options))
    except Invalid as exc:
        raise RenderError(f"spec.pgDumpOptions: {exc.problem}", "InvalidPgDumpOptions") from exc


def _validate_format(spec: PgBackupSpec) -> None:
    """``spec.format`` and ``spec.dumpJobs`` as the job's own parsers read them, and
    ``dumpJobs`` only with ``format: split`` (the CRD says both; this is for specs that did not
    pass the API server): a plain dump is one pg_dump stream, it has no connections to spread.
    With split, the pg_dump options a split backup cannot honour (the job's ``SPLIT_REFUSED``,
    ``--data-only``, ``--inserts``...), which the CRD cannot tell from the others."""
    for field, variable, value in (("format", FORMAT, spec.format), ("dumpJobs", DUMP_JOBS, spec.dump_jobs)):
        if value is None:
            continue
        try:
            read = variable.parse(str(value))
        except Invalid as exc:
            raise RenderError(f"spec.{field}: {value!r} {exc.problem}", "InvalidFormat") from exc
        if read != value:  # the job folds case; the CRD's enum does not
            raise RenderError(f"spec.{field}: {value!r} must be written {read!r}", "InvalidFormat")
    if spec.dump_jobs is not None and spec.format != SPLIT:
        raise RenderError(
            f"spec.dumpJobs: only a split backup dumps a database over several connections, and "
            f"spec.format is {spec.format!r}; set spec.format to split, or remove spec.dumpJobs",
            "InvalidFormat",
        )
    if spec.format != SPLIT:
        return
    for option in dumpoptions.parse(list(spec.pg_dump_options)):  # _validate_pg_dump_options read them
        if option.meaning in SPLIT_REFUSED:
            raise RenderError(
                f"spec.pgDumpOptions: must not contain {option.shown} with spec.format split: "
                f"{SPLIT_REFUSED[option.meaning]}",
                "InvalidPgDumpOptions",
            )


def _validate_signing(given: Signing | None) -> None:
    """``spec.signing`` as the CRD declares it, for callers that bypass the API server: a
    private key to sign with and at least one public key, each one ``ed25519:<base64>``."""
    if given is None:
        return
    if given.private_key_secret_ref is None or not given.private_key_secret_ref.name:
        raise RenderError(
            "spec.signing.privateKeySecretRef: name the Secret holding the backup job's private key "
            "(`pgbackup keygen --private-key FILE` makes one)",
            "InvalidSigningKeys",
        )
    if not given.public_keys:
        raise RenderError(
            "spec.signing.publicKeys: give at least one public key (`pgbackup keygen` prints it); "
            "readers trust only these",
            "InvalidSigningKeys",
        )
    for index, entry in enumerate(given.public_keys):
        try:
            signing.parse_public_key(entry)
        except Invalid as exc:
            raise RenderError(f"spec.signing.publicKeys[{index}]: {exc.problem}", "InvalidSigningKeys") from exc


def pod_template_metadata(pod: PodSettings, common: dict[str, str], identity: dict[str, str] | None = None) -> Body:
    """A pod template's metadata: ``spec.pod.podLabels`` under the operator's labels and the
    destination's ``identity`` labels (``env.destination_labels``), and
    ``spec.pod.podAnnotations`` (``podrules`` checked both)."""
    metadata: Body = {"labels": {**pod.pod_labels, **(identity or {}), **common}}
    if pod.pod_annotations:
        metadata["annotations"] = dict(pod.pod_annotations)
    return metadata


def _job_spec(
    spec: PgBackupSpec, common: dict[str, str], pod_spec: Body, shards: int = 1, credentials: NameRef | None = None
) -> Body:
    """A Job's spec; with ``shards`` above 1 an Indexed Job of that many pods, run at once,
    each retried on its own (``backoffLimitPerIndex``: one shard's failure never stops the
    others) and replaced only once the failed pod is gone (no two pods of a shard overlap).
    ``credentials``: the job's own store credentials, which decide its identity labels."""
    job = spec.job
    retries = job.backoff_limit
    metadata = pod_template_metadata(spec.pod, common, destination_labels(spec, credentials))
    job_spec: Body = {"template": {"metadata": metadata, "spec": pod_spec}}
    if shards > 1:
        job_spec.update(
            {
                "completionMode": "Indexed",
                "completions": shards,
                "parallelism": shards,
                "backoffLimitPerIndex": retries,
                "podReplacementPolicy": "Failed",
            }
        )
    else:
        job_spec["backoffLimit"] = retries
    for key, value in (
        ("activeDeadlineSeconds", job.active_deadline_seconds),
        ("ttlSecondsAfterFinished", job.ttl_seconds_after_finished),
    ):
        if value is not None:
            job_spec[key] = value
    return job_spec


def _cronjob(
    body: Body,
    spec: PgBackupSpec,
    name: str,
    component: str,
    timing: Body,
    pod_spec: Body,
    shards: int = 1,
    credentials: NameRef | None = None,
) -> Body:
    """A CronJob owned by the PgBackup; ``timing`` holds schedule, timeZone, suspend, concurrencyPolicy."""
    job = spec.job
    common = labels(body["metadata"]["name"], component)
    cron_spec: Body = {
        **timing,
        "successfulJobsHistoryLimit": job.successful_jobs_history_limit,
        "failedJobsHistoryLimit": job.failed_jobs_history_limit,
        "jobTemplate": {"metadata": {"labels": common}, "spec": _job_spec(spec, common, pod_spec, shards, credentials)},
    }
    if job.starting_deadline_seconds is not None:
        cron_spec["startingDeadlineSeconds"] = job.starting_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": body["metadata"]["namespace"],
            "labels": common,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": cron_spec,
    }


def render_all(
    body: Body, default_image: str = DEFAULT_IMAGE, spec: PgBackupSpec | None = None
) -> dict[str, Body | None]:
    """Every CronJob a PgBackup renders, by component: backup, verify (None without
    ``spec.verify``) and prune (None without ``spec.retention.schedule``), validated once;
    raises ``RenderError`` for a spec it cannot honour. ``spec``: the body's, when the caller
    has read it already (``parse_pgbackup``)."""
    spec = spec or parse_pgbackup(body)
    validate(spec)
    return {
        BACKUP: _backup_cronjob(body, spec, default_image),
        VERIFY: _verify_cronjob(body, spec, default_image),
        PRUNE: _prune_cronjob(body, spec, default_image),
    }


def render_cronjobs(body: Body, default_image: str = DEFAULT_IMAGE) -> tuple[Body, Body | None]:
    """The backup CronJob and the verify CronJob (``render_all``)."""
    rendered = render_all(body, default_image)
    backup = rendered[BACKUP]
    assert backup is not None
    return backup, rendered[VERIFY]


def render_prune_cronjob(body: Body, default_image: str = DEFAULT_IMAGE) -> Body | None:
    """The prune CronJob alone (``render_all``)."""
    return render_all(body, default_image)[PRUNE]


def render_cronjob(body: Body, default_image: str = DEFAULT_IMAGE) -> Body:
    """The backup CronJob alone (``render_cronjobs``)."""
    return render_cronjobs(body, default_image)[0]


def render_verify_cronjob(body: Body, default_image: str = DEFAULT_IMAGE) -> Body | None:
    """The verify CronJob alone (``render_cronjobs``)."""
    return render_cronjobs(body, default_image)[1]


def _backup_cronjob(body: Body, spec: PgBackupSpec, default_image: str) -> Body:
    timing = {
        "schedule": spec.schedule,
        "timeZone": spec.time_zone,
        "suspend": spec.suspend,
        "concurrencyPolicy": spec.job.concurrency_policy,
    }
    return _cronjob(
        body,
        spec,
        cronjob_name(body["metadata"]["name"]),
        BACKUP,
        timing,
        render_pod_spec(spec, default_image),
        parallelism(spec),
    )


def _prune_cronjob(body: Body, spec: PgBackupSpec, default_image: str) -> Body | None:
    """With ``spec.retention.schedule``: prune with the retention's own credentials, never
    overlapping, suspended with the PgBackup."""
    retention = spec.retention
    if retention is None or not retention.schedule:
        return None
    timing = {
        "schedule": retention.schedule,
        "timeZone": prune_time_zone(spec, retention),
        "suspend": spec.suspend,
        "concurrencyPolicy": "Forbid",
    }
    return _cronjob(
        body,
        spec,
        prune_cronjob_name(body["metadata"]["name"]),
        PRUNE,
        timing,
        render_prune_pod_spec(spec, retention, default_image),
        credentials=retention.credentials_secret_ref,
    )


def render_after_run_prune_job(
    owner: Body, backup_job: Body, default_image: str = DEFAULT_IMAGE, spec: PgBackupSpec | None = None
) -> Body:
    """The prune Job that follows a sharded run whose every shard succeeded: owned by that
    backup Job (it goes with it), named after it (so it is created once). ``spec``: the
    owner's, when the caller has read it already."""
    spec = spec or parse_pgbackup(owner)
    retention = spec.retention or Retention()
    common = {**labels(owner["metadata"]["name"], PRUNE), AFTER_LABEL: backup_job["metadata"]["name"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": after_run_prune_job_name(backup_job["metadata"]["name"]),
            "namespace": backup_job["metadata"]["namespace"],
            "labels": common,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": backup_job["metadata"]["name"],
                    "uid": backup_job["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": _job_spec(
            spec,
            common,
            render_prune_pod_spec(spec, retention, default_image),
            credentials=retention.credentials_secret_ref,
        ),
    }


def _verify_cronjob(body: Body, spec: PgBackupSpec, default_image: str) -> Body | None:
    """Suspending the PgBackup suspends the drills too; drills never overlap (``Forbid``)
    whatever the backup's concurrencyPolicy."""
    verify = spec.verify
    if verify is None:
        return None
    timing = {
        "schedule": verify.schedule,
        "timeZone": verify_time_zone(spec, verify),
        "suspend": spec.suspend or verify.suspend,
        "concurrencyPolicy": "Forbid",
    }
    return _cronjob(
        body,
        spec,
        verify_cronjob_name(body["metadata"]["name"]),
        VERIFY,
        timing,
        render_verify_pod_spec(spec, verify, default_image),
        credentials=verify.credentials_secret_ref,
    )


def render_manual_job(cronjob: Body, run_id: str, started: datetime) -> Body:
    """A Job from the CronJob's template, for the backup-now annotation. Its run timestamp is
    ``started``, fixed here once for every pod (and shard) of the Job."""
    template = cronjob["spec"]["jobTemplate"]
    job_labels = {**template["metadata"]["labels"], MANUAL_LABEL: "true"}
    spec = dict(template["spec"])
    pod_spec = dict(spec["template"]["spec"])
    stamp = {"name": job_settings.RUN_TIMESTAMP.name, "value": format_timestamp(started)}
    pod_spec["containers"] = [
        {**container, "env": [*(container.get("env") or []), stamp]} for container in pod_spec["containers"]
    ]
    spec["template"] = {
        **spec["template"],
        "metadata": {
            **spec["template"].get("metadata", {}),
            "labels": {**spec["template"]["metadata"].get("labels", {}), MANUAL_LABEL: "true"},
        },
        "spec": pod_spec,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": manual_job_name(cronjob["metadata"]["name"], run_id),
            "namespace": cronjob["metadata"]["namespace"],
            "labels": job_labels,
            "annotations": {RUN_NOW_ANNOTATION: run_id},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cronjob["metadata"]["name"],
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
