"""The operator's few calls to the Kubernetes API, through the official client.

kopf watches and patches the PgBackup it is handling; everything else goes through here:
applying a CronJob (server-side apply, field manager ``pgbackup-operator``, so a field
someone removed by hand comes back and fields others own are left alone), deleting the
verify or prune CronJob when the field asking for it goes away, creating manual, prune and
restore and listing Jobs, reading a finished
Job's Pods for the termination message (and a listing Job's log), publishing a listing in a
ConfigMap, reading a PgBackup from an event about one of its
children, and patching the status of a PgBackup or PgRestore.

Server-side apply with ``force`` takes over any object of the name (and our owner reference
would then have garbage collection delete it with the PgBackup), so before applying a CronJob
we look at who controls it (``_check_owner``). Only a CronJob this PgBackup controls is
updated. Any other existing CronJob is ``NameTaken`` and left untouched: one without a
controller (an admin's ``pgbackup-legacy``, whatever a PgBackup named ``legacy`` wants), and
one another object controls (``pgbackup-a-verify`` is the verify CronJob of ``a`` and the
backup CronJob of ``a-verify``: it stays with the first, no tug of war). Two exceptions: a
CronJob without a controller whose ``pgbackup.io/adopt`` label names this PgBackup is adopted
(only someone who may write CronJobs can set that label), and one still controlled by an
earlier, deleted PgBackup of the same name is ``PredecessorLeaving``: garbage collection is
about to delete it, so the caller waits. Deleting works only on a CronJob this PgBackup
controls, with the uid as a precondition.

No function here reads Secrets; the operator's RBAC does not allow it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, cast

import kubernetes
from kubernetes.client import ApiException

from .api import ADOPT_LABEL, GROUP, KIND, PLURAL, VERSION, Body

FIELD_MANAGER = "pgbackup-operator"
_loaded = False


def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    global _loaded
    if _loaded:
        return
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    _loaded = True


def _api() -> kubernetes.client.ApiClient:
    load_config()
    return kubernetes.client.ApiClient()


def _plain(obj: Any) -> Body:
    return dict(_api().sanitize_for_serialization(obj))


class NameTaken(Exception):
    """A CronJob of the wanted name exists and this PgBackup does not control it."""


class PredecessorLeaving(Exception):
    """A CronJob of the wanted name still belongs to a deleted PgBackup of the same name;
    garbage collection deletes it soon."""


def controller(obj: Body) -> Body | None:
    """The object's controlling owner reference, if any."""
    return next((ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("controller")), None)


def controller_uid(obj: Body) -> str | None:
    """The uid of the object's controlling owner, if any."""
    ref = controller(obj)
    return None if ref is None else ref.get("uid")


def _check_owner(cronjob: Body) -> None:
    """Return if ``cronjob`` (rendered, with its PgBackup as controller) may be applied over
    what exists; else ``NameTaken`` or ``PredecessorLeaving`` (see the module's docstring)."""
    meta = cronjob["metadata"]
    existing = get_cronjob(meta["namespace"], meta["name"])
    if existing is None:
        return
    wanted, found = controller(cronjob) or {}, controller(existing)
    if found is None:
        if (existing["metadata"].get("labels") or {}).get(ADOPT_LABEL) == wanted.get("name"):
            return
        raise NameTaken(
            f"CronJob {meta['name']} exists and no PgBackup owns it; it is left alone. Delete it, or "
            f"label it {ADOPT_LABEL}={wanted.get('name')} to hand it to this PgBackup, then change or "
            "annotate the PgBackup"
        )
    if found.get("uid") == wanted.get("uid"):
        return
    if (found.get("kind"), found.get("name"), str(found.get("apiVersion", "")).split("/")[0]) == (
        KIND,
        wanted.get("name"),
        GROUP,
    ):
        raise PredecessorLeaving(
            f"CronJob {meta['name']} still belongs to a deleted PgBackup {wanted.get('name')} "
            "(garbage collection deletes it); waiting"
        )
    raise NameTaken(
        f"CronJob {meta['name']} already belongs to {found.get('kind')} {found.get('name')}; "
        "give this PgBackup another name"
    )


def apply_cronjob(cronjob: Body) -> Body:
    """Create or update the CronJob by server-side apply, taking over conflicting fields;
    ``NameTaken`` or ``PredecessorLeaving`` if a CronJob of that name is not ours to change."""
    _check_owner(cronjob)
    batch = kubernetes.client.BatchV1Api(_api())
    result = batch.patch_namespaced_cron_job(
        cronjob["metadata"]["name"],
        cronjob["metadata"]["namespace"],
        cronjob,  # sent as JSON, which is YAML
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return _plain(result)


def create_job(job: Body) -> bool:
    """Create a Job; False if one of that name exists already."""
    batch = kubernetes.client.BatchV1Api(_api())
    try:
        batch.create_namespaced_job(job["metadata"]["namespace"], cast(Any, job), field_manager=FIELD_MANAGER)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def get_cronjob(namespace: str, name: str) -> Body | None:
    batch = kubernetes.client.BatchV1Api(_api())
    try:
        return _plain(batch.read_namespaced_cron_job(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete_owned_cronjob(namespace: str, name: str, owner_uid: str) -> bool:
    """Delete the CronJob if ``owner_uid`` controls it (its Jobs go by garbage collection);
    whether one was deleted."""
    existing = get_cronjob(namespace, name)
    if existing is None or controller_uid(existing) != owner_uid:
        return False
    batch = kubernetes.client.BatchV1Api(_api())
    options = kubernetes.client.V1DeleteOptions(
        propagation_policy="Background",
        preconditions=kubernetes.client.V1Preconditions(uid=existing["metadata"]["uid"]),
    )
    try:
        batch.delete_namespaced_cron_job(name, namespace, body=options)
    except ApiException as exc:
        if exc.status in (404, 409):  # gone already, or replaced by another object meanwhile
            return False
        raise
    return True


def job_pods(namespace: str, job_name: str) -> list[Body]:
    core = kubernetes.client.CoreV1Api(_api())
    pods = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}")
    return [_plain(pod) for pod in pods.items]


def pod_log(namespace: str, pod: str, container: str, limit_bytes: int) -> str:
    """The first ``limit_bytes`` of a container's log (``pods/log``)."""
    core = kubernetes.client.CoreV1Api(_api())
    return str(core.read_namespaced_pod_log(pod, namespace, container=container, limit_bytes=limit_bytes))


def put_config_map(config_map: Body) -> None:
    """Create the ConfigMap, or replace the data of the one of that name whose first owner
    reference is the rendered one's controller (the check and the write one JSON patch, so the
    operator never reads a ConfigMap: it has no ``get`` on them); ``NameTaken`` if the one of
    that name is another object's or nobody's."""
    core = kubernetes.client.CoreV1Api(_api())
    meta = config_map["metadata"]
    try:
        core.create_namespaced_config_map(meta["namespace"], cast(Any, config_map), field_manager=FIELD_MANAGER)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise
    owner = controller(config_map) or {}
    patch = [
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": owner.get("uid")},
        {"op": "test", "path": "/metadata/ownerReferences/0/controller", "value": True},
        {"op": "replace", "path": "/data", "value": config_map["data"]},
    ]
    try:
        core.patch_namespaced_config_map(
            meta["name"],
            meta["namespace"],
            patch,
            field_manager=FIELD_MANAGER,
            _content_type="application/json-patch+json",
        )
    except ApiException as exc:
        if exc.status in (400, 409, 422, 500):  # a test that failed, or a path that is not there
            raise NameTaken(f"ConfigMap {meta['name']} exists and is not this PgBackup's; it is left alone") from exc
        raise


def get_job(namespace: str, name: str) -> Body | None:
    batch = kubernetes.client.BatchV1Api(_api())
    try:
        return _plain(batch.read_namespaced_job(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def get_custom(plural: str, namespace: str, name: str) -> Body | None:
    """One of our objects (``pgbackups``, ``pgrestores``), or None if there is none."""
    custom = kubernetes.client.CustomObjectsApi(_api())
    try:
        return cast(Body, custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def get_pgbackup(namespace: str, name: str) -> Body | None:
    return get_custom(PLURAL, namespace, name)


def patch_status(plural: str, namespace: str, name: str, status: Body, resource_version: str | None = None) -> None:
    """Merge ``status`` in; with ``resource_version``, only if the object is still that version
    (else the API server answers 409 Conflict), for writes computed from what was read."""
    custom = kubernetes.client.CustomObjectsApi(_api())
    body: Body = {"status": status}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        plural,
        name,
        body,
        _content_type="application/merge-patch+json",
    )


def patch_pgbackup_status(namespace: str, name: str, status: Body, resource_version: str | None = None) -> None:
    patch_status(PLURAL, namespace, name, status, resource_version)


def post_event(obj: Body, type_: str, reason: str, message: str) -> None:
    """A core/v1 Event about ``obj`` (shown by ``kubectl describe``); failures only logged."""
    meta = obj["metadata"]
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
            "kind": obj.get("kind", "PgBackup"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": FIELD_MANAGER,
        "firstTimestamp": moment,
        "lastTimestamp": moment,
        "count": 1,
    }
    try:
        kubernetes.client.CoreV1Api(_api()).create_namespaced_event(meta["namespace"], cast(Any, event))
    except ApiException as exc:
        logging.getLogger(__name__).warning("could not post the %s event %s: %s", type_, reason, exc.reason)


def namespace_terminating(exc: ApiException) -> bool:
    """Whether a write failed only because the namespace is being deleted or is gone."""
    return (exc.status == 403 and "NamespaceTerminating" in (exc.body or "")) or (
        exc.status == 404 and '"kind":"namespaces"' in (exc.body or "").replace(" ", "")
    )


def api_error_message(exc: ApiException) -> str:
    """The API server's own message from an error response, else the status line."""
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except ValueError:
        return f"{exc.status} {exc.reason}"
