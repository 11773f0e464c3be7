"""The bucket's listing on request, for people who may read a PgBackup but hold no bucket
credentials and may not create Jobs (``kubectl pgbackup list``).

1. Whoever may patch the PgBackup sets the annotation ``pgbackup.io/list-requested`` to a new
   value (and ``pgbackup.io/list-database`` for one database's backups). ``reconcile`` makes
   one Job per distinct value (``names.list_job_name``; ``status.lastListRequest`` keeps a
   value whose Job is gone from making another), running ``pgbackup list [--database=D]`` in
   the hardened pod with the drills' read identity (``pod.render_list_pod_spec``): no server,
   no signing key, no service-account token unless the drills have their own account.
2. When that Job ends, and its request is still the annotation's (a late answer to an older
   request never overwrites a newer one), the operator reads the pod's log (``pods/log``: a pod cannot write to
   the API, so it can forge nothing but its own output) and publishes it in the ConfigMap
   ``pgbackup-<name>-backups``, owned by the PgBackup: ``request`` (the annotation's value, so
   the asker knows the answer is theirs), ``database``, ``result`` (Succeeded or Failed),
   ``time`` and ``listing`` (the table, or the job's error). The operator never reads a
   ConfigMap (``kube.put_config_map``): writing it again, on a later event of the same Job,
   writes the same answer.

The listing's words come from the bucket, so whoever can write the bucket chooses them.
``pgbackup list`` escapes every cell already; the operator does not rely on that (the image is
the PgBackup author's choice) and escapes every unprintable character but the line breaks
again, and keeps at most ``MAX_LISTING`` bytes, cut at a line with a note, well inside a
ConfigMap's 1 MiB.
"""

from __future__ import annotations

from datetime import UTC, datetime

import kopf
from kubernetes.client import ApiException

from backup_job.core.printable import escape

from . import kube, status
from .api import LIST, LIST_ANNOTATION, LIST_DATABASE_ANNOTATION, Body, RenderError
from .names import cronjob_name, labels, list_job_name, listing_name, owner_reference
from .pod import render_list_pod_spec
from .spec import PgBackupSpec

MAX_LISTING = 512 * 1024  # bytes of listing published; a ConfigMap holds at most 1 MiB
MAX_DATABASE = 63  # PostgreSQL's longest identifier
REQUEST_KEY = "request"


def request(body: Body) -> tuple[str, str | None] | None:
    """The listing asked for and not yet acted on: (request, database or None); else None.
    ``RenderError`` for a database annotation that no database can be named."""
    annotations = body["metadata"].get("annotations") or {}
    wanted = annotations.get(LIST_ANNOTATION)
    if not wanted or wanted == body.get("status", {}).get("lastListRequest"):
        return None
    database = annotations.get(LIST_DATABASE_ANNOTATION) or None
    if database is not None and (len(database.encode()) > MAX_DATABASE or not database.isprintable()):
        raise RenderError(
            f"metadata.annotations[{LIST_DATABASE_ANNOTATION}]: not a database name "
            f"(at most {MAX_DATABASE} bytes, printable); set it to one, or remove it",
            "InvalidListRequest",
        )
    return wanted, database


def render_list_job(body: Body, spec: PgBackupSpec, wanted: str, database: str | None, default_image: str) -> Body:
    """The Job that lists the bucket for request ``wanted``, owned by the PgBackup."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    common = labels(name, LIST)
    command = ["pgbackup", "list", *([f"--database={database}"] if database is not None else [])]
    pod_spec = render_list_pod_spec(spec, default_image, command)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": list_job_name(cronjob_name(name), wanted),
            "namespace": namespace,
            "labels": common,
            "annotations": {LIST_ANNOTATION: wanted, LIST_DATABASE_ANNOTATION: database or ""},
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "backoffLimit": 0,  # a failed listing is reported, and asked for again by a person
            "ttlSecondsAfterFinished": 600,
            "activeDeadlineSeconds": 600,
            "template": {"metadata": {"labels": common}, "spec": pod_spec},
        },
    }


def sanitize(text: str) -> str:
    """``text`` with every unprintable character but ``\\n`` escaped, at most ``MAX_LISTING``
    bytes, cut at a line break with a note saying so."""
    clean = "".join(char if char.isprintable() or char == "\n" else escape(char) for char in text)
    data = clean.encode()
    if len(data) <= MAX_LISTING:
        return clean
    kept = data[:MAX_LISTING].decode(errors="ignore")
    kept = kept[: kept.rfind("\n") + 1] if "\n" in kept else kept
    return kept + f"... cut at {MAX_LISTING} bytes: list fewer with --database\n"


def job_changed(owner: Body, job: Body, logger: kopf.Logger) -> None:
    """Publish a finished listing Job's output in the PgBackup's ConfigMap, if it answers the
    request the PgBackup's annotation holds now (an older one's never overwrites a newer)."""
    outcome = status.job_outcome(job)
    if outcome == "Running":
        return
    meta = job["metadata"]
    annotations = meta.get("annotations") or {}
    wanted = annotations.get(LIST_ANNOTATION, "")
    namespace = meta["namespace"]
    current = (owner["metadata"].get("annotations") or {}).get(LIST_ANNOTATION)
    if wanted != current:
        return  # a newer request's answer (or none) belongs in the ConfigMap, not this one
    pods = sorted(kube.job_pods(namespace, meta["name"]), key=lambda p: str(p["metadata"].get("creationTimestamp")))
    text = ""
    if pods:
        try:
            text = kube.pod_log(namespace, pods[-1]["metadata"]["name"], "pgbackup", MAX_LISTING + 1)
        except ApiException as exc:
            text = f"the listing's log could not be read: {kube.api_error_message(exc)}\n"
    if outcome == "Failed" and not text.strip():
        text = status.job_failure_reason(job) + "\n"
    database = annotations.get(LIST_DATABASE_ANNOTATION, "")
    if publish(owner, wanted, database, outcome, status.finished_time(job), text):
        logger.info(f"listing {wanted!r}: {outcome}, published in ConfigMap {listing_name(owner['metadata']['name'])}")


def publish(owner: Body, wanted: str, database: str, outcome: str, finished: str | None, text: str) -> bool:
    """Write the ConfigMap of ``owner``'s listings with this answer (``sanitize``d); False,
    with a Warning Event, when a ConfigMap of that name is not the PgBackup's."""
    meta = owner["metadata"]
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": listing_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": labels(meta["name"], LIST),
            "ownerReferences": [owner_reference(owner)],
        },
        "data": {
            REQUEST_KEY: wanted,
            "database": database,
            "result": outcome,
            "time": finished or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "listing": sanitize(text),
        },
    }
    try:
        kube.put_config_map(config_map)
    except kube.NameTaken as exc:
        kube.post_event(owner, "Warning", "ListingNotPublished", str(exc))
        return False
    return True


def start(body: Body, spec: PgBackupSpec, patch: kopf.Patch, logger: kopf.Logger, default_image: str) -> None:
    """Act on a new listing request: its Job, and the request recorded in status."""
    try:
        asked = request(body)
    except RenderError as exc:  # answered at once, as a failed listing
        wanted = (body["metadata"].get("annotations") or {}).get(LIST_ANNOTATION, "")
        publish(body, wanted, "", "Failed", None, str(exc) + "\n")
        patch.status["lastListRequest"] = wanted
        return
    if asked is None:
        return
    wanted, database = asked
    job = render_list_job(body, spec, wanted, database, default_image)
    created = kube.create_job(job)
    patch.status["lastListRequest"] = wanted
    if created:
        logger.info(f"listing {wanted!r}: created Job {job['metadata']['name']}")
