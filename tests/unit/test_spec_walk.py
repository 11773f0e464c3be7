"""The typed spec held against the CRDs, both ways, and the CRDs' status against the code.

The dataclasses of ``pgbackup_operator.spec`` are written by hand and checked here against
``deploy/crd.yaml`` and ``deploy/crd-pgrestore.yaml``, walking each ``spec`` schema:

- every field the schema declares is a field of the typed spec (so it is read), and every
  field of the typed spec is declared (so nothing is read that the API server drops);
- the JSON types agree (string, integer, number, boolean, object, array), and a field the
  classes require is required by the schema too;
- a ``Mapping`` field is a pass-through subtree: declared or not below it, it counts as read;
- every field of the typed spec is read by the operator, at its own path: specs that set every
  field between them go through the operator's handlers (reconcile, the freshness check, the
  prune after a sharded run, a PgRestore's start), with a stand-in for the API calls, and each
  read of a field of a parsed object is recorded under that object's CRD path (``Reads``). A
  name alone proves nothing: ``suspend`` is a field of the spec and of ``spec.verify``, and
  ``Server`` is ``spec.postgres``, ``spec.verify.server`` and a PgRestore's
  ``spec.target.server``; each of those paths must be read on its own. A pass-through field
  counts as read when the operator reads it to copy it.

And each CRD's ``status`` schema against what the operator writes, by path, both ways: the
same handlers, and the Job events that report runs, drills, prunes and restores, write into
the stand-in (``Cluster``), and every declared path must be among the paths written, every
written path declared (the API server would drop it).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import sys
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import kopf
import pytest
import yaml

import pgbackup_operator
from backup_job.core import settings as job_settings
from backup_job.core.termination import TerminationMessage
from pgbackup_operator import api, freshness, handlers, kube, render, restores, runs, status, trust
from pgbackup_operator.spec import PgBackupSpec, PgRestoreSpec, parse_pgbackup, pgbackup, pgrestore, read
from pgbackup_operator.spec.read import crd_name, hints, optional

from ..kit.helpers import ROOT

CRDS = {"deploy/crd.yaml": PgBackupSpec, "deploy/crd-pgrestore.yaml": PgRestoreSpec}
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
OPERATOR_CODE = os.path.dirname(pgbackup_operator.__file__) + os.sep  # where a read counts from
ALLOWLIST = job_settings.OPERATOR_ALLOWED_ENDPOINTS.name
LOG = logging.getLogger(__name__)


@cache
def openapi(crd: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / crd).read_text())
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def mismatches(cls: type[Any], schema: dict[str, Any], path: str) -> list[str]:
    """Where the dataclass ``cls`` and the object schema at ``path`` disagree."""
    declared: dict[str, Any] = schema.get("properties") or {}
    fields = {crd_name(field.name): field for field in dataclasses.fields(cls)}
    found = [
        f"{path}.{key}: declared in the CRD but read nowhere (no field of {cls.__name__})"
        for key in sorted(declared.keys() - fields.keys())
    ]
    found += [
        f"{path}.{key}: read ({cls.__name__}.{fields[key].name}) but not declared in the CRD"
        for key in sorted(fields.keys() - declared.keys())
    ]
    required = set(schema.get("required") or [])
    for key in sorted(fields.keys() & declared.keys()):
        field = fields[key]
        if (
            field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
            and key not in required
        ):
            found.append(f"{path}.{key}: required by {cls.__name__} but optional in the CRD")
        found += compare(hints(cls)[field.name], declared[key], f"{path}.{key}")
    return found


def compare(annotation: Any, schema: dict[str, Any], path: str) -> list[str]:
    kind = optional(annotation)
    declared = schema.get("type")
    if typing.get_origin(kind) is Mapping:
        return (
            [] if declared == "object" else [f"{path}: a pass-through object in the typed spec, {declared} in the CRD"]
        )
    if typing.get_origin(kind) is tuple:
        if declared != "array":
            return [f"{path}: a list in the typed spec, {declared} in the CRD"]
        return compare(typing.get_args(kind)[0], schema.get("items") or {}, f"{path}[]")
    if dataclasses.is_dataclass(kind):
        if declared != "object":
            return [f"{path}: an object in the typed spec, {declared} in the CRD"]
        return mismatches(kind, schema, path)  # type: ignore[arg-type]
    if JSON_TYPES.get(kind) != declared:
        return [f"{path}: {JSON_TYPES.get(kind, kind)} in the typed spec, {declared} in the CRD"]
    return []


def classes(cls: type[Any]) -> list[type[Any]]:
    """``cls`` and every dataclass below it."""
    found = [cls]
    for annotation in hints(cls).values():
        kind = optional(annotation)
        if typing.get_origin(kind) is tuple:
            kind = typing.get_args(kind)[0]
        if dataclasses.is_dataclass(kind):
            found += [c for c in classes(kind) if c not in found]  # type: ignore[arg-type]
    return found


@pytest.mark.parametrize("crd", sorted(CRDS))
def test_every_declared_spec_field_is_read_and_every_read_field_declared(crd: str) -> None:
    spec = openapi(crd)["properties"]["spec"]
    assert mismatches(CRDS[crd], spec, "spec") == []


def field_paths(cls: type[Any], path: str = "spec") -> list[str]:
    """The CRD path of every field of ``cls`` and of the dataclasses below it (``[]``: each item)."""
    found = []
    for field in dataclasses.fields(cls):
        here = f"{path}.{crd_name(field.name)}"
        found.append(here)
        kind = optional(hints(cls)[field.name])
        if typing.get_origin(kind) is tuple:
            kind, here = typing.get_args(kind)[0], f"{here}[]"
        if dataclasses.is_dataclass(kind):
            found += field_paths(kind, here)  # type: ignore[arg-type]
    return found


class Reads:
    """Which field of which parsed object the operator's code reads, by the object's CRD path.

    Every object the reader builds (``spec.read.parse_object``, wrapped) is registered under the
    path it was read from (``spec.verify.server``), and each class of the typed spec has its
    ``__getattribute__`` wrapped, so a field read counts for that path, not for every class
    that has a field of that name. Only reads from the operator's own code count: the test's,
    and the methods ``dataclasses`` generates (``__eq__``, ``__repr__``), are not the operator
    honouring a field."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built: dict[int, tuple[object, str]] = {}
        self.read: set[str] = set()
        original = read.parse_object

        def registering(cls: type[Any], value: Any, path: str, why: str = read.INVALID) -> Any:
            made = original(cls, value, path, why)
            self.built[id(made)] = (made, re.sub(r"\[\d+\]", "[]", path))
            return made

        for module in (read, pgbackup, pgrestore):  # each holds its own name for it
            monkeypatch.setattr(module, "parse_object", registering)
        for cls in {*classes(PgBackupSpec), *classes(PgRestoreSpec)}:
            monkeypatch.setattr(cls, "__getattribute__", self._recording({f.name for f in dataclasses.fields(cls)}))

    def _recording(self, names: set[str]) -> Any:
        def getattribute(obj: object, name: str) -> Any:
            value = object.__getattribute__(obj, name)
            if name in names and sys._getframe(1).f_code.co_filename.startswith(OPERATOR_CODE):
                made, path = self.built.get(id(obj), (None, ""))
                if made is obj:
                    self.read.add(f"{path}.{crd_name(name)}")
            return value

        return getattribute

    def unread(self, root: type[Any]) -> list[str]:
        return [path for path in field_paths(root) if path not in self.read]


# Specs that set every field between them, each one a spec the API server would accept:
# where the CRD allows only one of some fields (a user or its Secret, the destination's kind,
# recipients or their Secret) or one field hides another from the code (``compression.level``
# wins over ``compressionLevel``, a suspended PgBackup suspends its drills whatever
# ``verify.suspend`` says), another spec sets the other.
PUBLIC_KEY = "ed25519:vVou7SwWohd6TEsUiRUKI7DjgihzvjjvPR38Krc+iTA="  # the suite's test key
RECIPIENT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfe01WyMGxBUoK1maT6gAWpOiMhCcSDGhUwQ2e6z2oA"
ALLOWED_ENDPOINTS = "https://blob.example.net,https://gcs.example.net"
TLS = {"caSecretRef": {"name": "pg-ca", "key": "root.crt"}, "clientCertSecretRef": {"name": "pg-client"}}
SERVER: dict[str, Any] = {
    "host": "pg.db.svc",
    "port": 5433,
    "database": "app",
    "sslMode": "verify-full",
    "user": "backup",
    "passwordSecretRef": {"name": "pg", "key": "pw"},
    "tls": TLS,
    "requireAuth": "scram-sha-256",
    "allowCleartextPassword": True,
}
SERVER_BY_SECRET = {
    **{key: value for key, value in SERVER.items() if key != "user"},
    "userSecretRef": {"name": "pg", "key": "user"},
}
FULL_BACKUP: dict[str, Any] = {
    "schedule": "30 2 * * *",
    "timeZone": "Europe/Berlin",
    "postgres": SERVER,
    "destination": {
        "s3": {
            "bucket": "backups",
            "prefix": "pg/",
            "region": "eu-west-1",
            "endpoint": "https://s3.example.net",
            "pathStyle": True,
            "checksumCompatibility": True,
            "serverSideEncryption": "aws:kms",
            "kmsKeyId": "key-1",
            "storageClass": "STANDARD_IA",
            "credentialsSecretRef": {"name": "s3"},
        }
    },
    "databases": {"include": ["app*"], "exclude": ["app_test"]},
    "compression": {"format": "zstd", "level": 3, "threads": 2},
    "parallelDatabases": 2,
    "format": "split",
    "dumpJobs": 2,
    "globals": True,
    "shrinkAlarm": 0.5,
    "retention": {
        "schedule": "0 4 * * *",
        "timeZone": "Etc/UTC",
        "credentialsSecretRef": {"name": "prune-s3"},
        "serviceAccountName": "pruner",
        "last": 3,
        "daily": 7,
        "weekly": 4,
        "monthly": 6,
    },
    "verify": {
        "schedule": "@weekly",
        "timeZone": "Etc/UTC",
        "suspend": True,
        "onBackupServer": True,
        "credentialsSecretRef": {"name": "verify-s3"},
        "serviceAccountName": "driller",
        "decryptionSecretRef": {"name": "age", "key": "identity"},
        "databases": ["app"],
        "server": SERVER_BY_SECRET,
    },
    "pgDumpOptions": ["--no-owner"],
    "encryption": {"recipientsSecretRef": {"name": "age", "key": "recipients"}},
    "signing": {"privateKeySecretRef": {"name": "signing", "key": "pem"}, "publicKeys": [PUBLIC_KEY]},
    "notify": {"urlsSecretRef": {"name": "notify", "key": "urls"}, "on": "failure"},
    "healthcheck": {"urlSecretRef": {"name": "ping", "key": "url"}},
    "alerting": {"maxAge": "26h"},
    "job": {
        "concurrencyPolicy": "Replace",
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 2,
        "failedJobsHistoryLimit": 5,
        "backoffLimit": 1,
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 86400,
    },
    "pod": {
        "image": "registry.example.net/pgbackup:1",
        "imagePullPolicy": "IfNotPresent",
        "resources": {"limits": {"memory": "256Mi"}},
        "nodeSelector": {"pool": "backup"},
        "tolerations": [{"key": "backup", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "serviceAccountName": "backup",
        "imagePullSecrets": [{"name": "registry"}],
        "priorityClassName": "low",
        "securityContext": {"runAsUser": 10001, "fsGroup": 10001},
        "containerSecurityContext": {"runAsGroup": 10001},
        "env": [{"name": "TZ", "value": "UTC"}],
        "envFrom": [{"configMapRef": {"name": "extra"}}],
        "podAnnotations": {"team": "db"},
        "podLabels": {"team": "db"},
    },
}
# A suspended, sharded PgBackup pruning after each run; the older compressionLevel; recipients listed.
SHARDED_BACKUP: dict[str, Any] = {
    "schedule": "0 * * * *",
    "suspend": True,
    "postgres": SERVER_BY_SECRET,
    "destination": {
        "azure": {
            "account": "acct01",
            "container": "pg",
            "prefix": "prod/",
            "credentialsSecretRef": {"name": "azure"},
            "endpoint": "https://blob.example.net",
        }
    },
    "compressionLevel": 4,
    "parallelism": 3,
    "retention": {"last": 3},
    "encryption": {"recipients": [RECIPIENT]},
}
GCS_BACKUP: dict[str, Any] = {
    "schedule": "0 3 * * *",
    "postgres": SERVER,
    "destination": {
        "gcs": {
            "bucket": "pg-backups",
            "prefix": "prod/",
            "credentialsSecretRef": {"name": "gcs"},
            "endpoint": "https://gcs.example.net",
        }
    },
}
FULL_RESTORE: dict[str, Any] = {
    "backupRef": {"name": "full"},
    "database": "app",
    "at": "2026-11-26",
    "globals": True,
    "target": {"database": "app_copy", "create": True, "clean": True, "server": SERVER_BY_SECRET},
    "credentialsSecretRef": {"name": "restore-s3"},
    "serviceAccountName": "restorer",
    "decryptionSecretRef": {"name": "age", "key": "identity"},
    "allowUnsigned": True,
    "asSuperuser": True,
    "activeDeadlineSeconds": 7200,
    "tables": ["public.orders"],
    "jobs": 4,
    "into": "public.orders_restored",
}
BACKUPS = {"full": FULL_BACKUP, "sharded": SHARDED_BACKUP, "gcs": GCS_BACKUP}
RESTORES = {"restore": FULL_RESTORE}


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": "db", "uid": f"{name}-uid", "generation": 1}
    return {"apiVersion": "pgbackup.io/v1alpha1", "kind": kind, "metadata": meta, "spec": copy.deepcopy(spec)}


WHEN, FINISHED = "2026-11-26T02:00:00Z", "2026-11-26T02:10:00Z"
PLURALS = {"deploy/crd.yaml": api.PLURAL, "deploy/crd-pgrestore.yaml": api.RESTORE_PLURAL}


def job_of(
    owner: str, component: str, name: str, outcome: str = "Succeeded", shards: int = 0, manual: bool = False
) -> dict[str, Any]:
    """A finished Job of ``owner`` as the API server shows it; with ``shards``, an Indexed Job
    whose last shard failed unless it ``Succeeded``."""
    labels = {**render.labels(owner, component), **({api.MANUAL_LABEL: "true"} if manual else {})}
    condition = "Complete" if outcome == "Succeeded" else "Failed"
    job_status: dict[str, Any] = {
        "startTime": WHEN,
        "conditions": [{"type": condition, "status": "True", "lastTransitionTime": FINISHED}],
        **({"completionTime": FINISHED} if outcome == "Succeeded" else {}),
    }
    spec: dict[str, Any] = {}
    if shards:
        spec = {"completionMode": "Indexed", "completions": shards}
        failed = 0 if outcome == "Succeeded" else 1
        job_status.update({"succeeded": shards - failed, **({"failedIndexes": str(shards - 1)} if failed else {})})
    meta = {"name": name, "namespace": "db", "uid": f"{name}-uid", "labels": labels, "creationTimestamp": WHEN}
    return {"metadata": meta, "spec": spec, "status": job_status}


def pod_told(told: TerminationMessage, index: int | None = None) -> dict[str, Any]:
    """A finished pod whose termination message is ``told``; ``index``: its shard's."""
    annotations = {} if index is None else {status.COMPLETION_INDEX: str(index)}
    terminated = {"message": told.encode().decode(), "finishedAt": FINISHED}
    return {
        "metadata": {"annotations": annotations},
        "status": {"containerStatuses": [{"state": {"terminated": terminated}}]},
    }


class Cluster:
    """A stand-in for the few API calls the operator's handlers make: the PgBackups and
    PgRestores given, each Job's pods (with their termination messages); what the handlers
    create and every status they write (merge patches, and the reconcile handler's kopf patch)
    is kept, by plural."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, backups: Mapping[str, Any], restores_: Mapping[str, Any]
    ) -> None:
        self.objects = {
            api.PLURAL: {name: resource("PgBackup", name, spec) for name, spec in backups.items()},
            api.RESTORE_PLURAL: {name: resource("PgRestore", name, spec) for name, spec in restores_.items()},
        }
        self.applied: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.written: dict[str, list[dict[str, Any]]] = {api.PLURAL: [], api.RESTORE_PLURAL: []}
        self.pods: dict[str, list[dict[str, Any]]] = {}
        monkeypatch.setenv(ALLOWLIST, ALLOWED_ENDPOINTS)
        monkeypatch.setattr(kube, "apply_cronjob", self._apply)
        monkeypatch.setattr(kube, "delete_owned_cronjob", lambda namespace, name, uid: False)
        monkeypatch.setattr(kube, "post_event", lambda *args: None)
        monkeypatch.setattr(kube, "create_job", self._create)
        monkeypatch.setattr(
            kube, "get_custom", lambda plural, namespace, name: copy.deepcopy(self.objects[plural][name])
        )
        monkeypatch.setattr(kube, "job_pods", lambda namespace, name: copy.deepcopy(self.pods.get(name, [])))
        monkeypatch.setattr(
            kube, "patch_status", lambda plural, namespace, name, update, *_: self._write(plural, update)
        )

    def _apply(self, cronjob: dict[str, Any]) -> dict[str, Any]:
        """The CronJob as the API server returns it, with its uid."""
        applied = {**cronjob, "metadata": {**cronjob["metadata"], "uid": f"{cronjob['metadata']['name']}-uid"}}
        self.applied.append(applied)
        return applied

    def _create(self, job: dict[str, Any]) -> bool:
        self.created.append(job)
        return True

    def _write(self, plural: str, update: dict[str, Any]) -> None:
        self.written[plural].append(copy.deepcopy(update))

    def reconcile(self, name: str) -> dict[str, Any]:
        """The reconcile handler on a PgBackup; its status patch, also kept."""
        patch = kopf.Patch()
        handlers.reconcile(body=copy.deepcopy(self.objects[api.PLURAL][name]), patch=patch, logger=LOG)
        self._write(api.PLURAL, dict(patch.status))
        return dict(patch.status)

    def job_event(self, job: dict[str, Any]) -> None:
        handlers.job_changed(type="MODIFIED", body=job, meta=job["metadata"], namespace="db", logger=LOG)


def operate(cluster: Cluster) -> None:
    """What the operator does with each resource's spec, its handlers called as kopf calls
    them: reconcile each PgBackup (render and apply its CronJobs, the trust conditions, the
    next run), observe it for the freshness check, follow a sharded run with its prune Job, and
    start each PgRestore's Job. Each must get as far as it would in a cluster, so that every
    field on the way is read."""
    for name, body in cluster.objects[api.PLURAL].items():
        ready = {c["type"]: c for c in cluster.reconcile(name)["conditions"]}["Ready"]
        assert ready["status"] == "True", f"{name}: {ready['message']}"
        assert freshness.observe(body).max_age is not None, name
        runs.prune_after(body, job_of(name, api.BACKUP, f"pgbackup-{name}-1", shards=3), LOG)
    assert [job["metadata"]["name"] for job in cluster.created] == ["pgbackup-sharded-1-prune"]
    for name, restore in cluster.objects[api.RESTORE_PLURAL].items():
        restores.start(body=copy.deepcopy(restore), logger=LOG)
        assert cluster.written[api.RESTORE_PLURAL][-1]["phase"] == restores.PENDING, name


@pytest.mark.parametrize("crd", sorted(CRDS))
def test_every_field_of_the_typed_spec_is_read_by_the_operator(crd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = Reads(monkeypatch)
    operate(Cluster(monkeypatch, BACKUPS, RESTORES))
    assert reads.unread(CRDS[crd]) == []


def test_a_field_counts_as_read_only_where_the_operator_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: the verify section's ``suspend`` is read only by the verify
    CronJob, never where another class's ``suspend`` is; and reads by anything but the
    operator's code (this test, a dataclass's generated ``__eq__``) do not count."""
    reads = Reads(monkeypatch)
    spec = parse_pgbackup(resource("PgBackup", "full", FULL_BACKUP))
    assert spec.verify is not None and spec.verify.suspend and spec == copy.copy(spec)
    trust.conditions(spec, [])
    handlers.next_schedule_time(spec)
    unread = reads.unread(PgBackupSpec)
    assert {"spec.suspend", "spec.verify.onBackupServer", "spec.verify.server.host"} <= reads.read
    assert {"spec.verify.suspend", "spec.verify.server.sslMode", "spec.postgres.host"} <= set(unread)


def report(cluster: Cluster) -> None:
    """Every status the operator writes, each written once: a PgBackup reconciled with a
    backup-now request and a listing request, its CronJob's schedule mirrored, a manual sharded run that failed in
    one shard, a run that succeeded, a drill and a prune; and a PgRestore's Job that ended."""
    body = cluster.objects[api.PLURAL]["full"]
    body["metadata"]["annotations"] = {api.RUN_NOW_ANNOTATION: "now-1", api.LIST_ANNOTATION: "list-1"}
    cluster.reconcile("full")
    cronjob = {**cluster.applied[-3], "status": {"lastScheduleTime": WHEN}}
    assert cronjob["metadata"]["name"] == "pgbackup-full", "the backup CronJob is applied first"
    handlers.cronjob_changed(type="MODIFIED", body=cronjob, meta=cronjob["metadata"], namespace="db", logger=LOG)
    stamp = "20261126T020000Z"
    ran = TerminationMessage(
        "2 backups", "run", True, stamp, 12.5, stored_bytes=4096, databases_ok=2, databases_failed=0
    )
    lost = TerminationMessage("app_b failed", "run", False, stamp, 3.0, databases_failed=1, failed=("app_b",))
    cluster.pods = {
        "pgbackup-full-manual": [pod_told(ran, 0), pod_told(lost, 1)],
        "pgbackup-full-2": [pod_told(ran)],
        "pgbackup-full-verify-1": [pod_told(TerminationMessage("2 databases restored", "verify", True))],
        "pgbackup-full-prune-1": [pod_told(TerminationMessage("1 backup deleted", "prune", True))],
    }
    for job in (
        job_of("full", api.BACKUP, "pgbackup-full-manual", "Failed", shards=2, manual=True),
        job_of("full", api.BACKUP, "pgbackup-full-2"),
        job_of("full", api.VERIFY, "pgbackup-full-verify-1"),
        job_of("full", api.PRUNE, "pgbackup-full-prune-1"),
    ):
        cluster.job_event(job)
    [restore_job] = [job for job in cluster.created if job["metadata"]["name"] == "pgrestore-restore"]
    cluster.pods[restore_job["metadata"]["name"]] = [
        pod_told(TerminationMessage("app restored", "restore", True, stamp))
    ]
    cluster.job_event({**restore_job, "status": job_of("full", api.RESTORE, restore_job["metadata"]["name"])["status"]})


def status_paths(schema: dict[str, Any], path: str = "status") -> set[str]:
    """Every path the status schema declares, nested objects and list items included."""
    found: set[str] = set()
    for key, below in (schema.get("properties") or {}).items():
        found |= {f"{path}.{key}", *status_paths(below, f"{path}.{key}")}
    if "items" in schema:
        found |= status_paths(schema["items"], f"{path}[]")
    return found


def written_paths(value: Any, path: str = "status") -> set[str]:
    """Every path a status write sets, each list's items as ``[]``."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, below in value.items():
            found |= {f"{path}.{key}", *written_paths(below, f"{path}.{key}")}
    elif isinstance(value, list):
        for item in value:
            found |= written_paths(item, f"{path}[]")
    return found


def status_mismatches(schema: dict[str, Any], updates: Sequence[Mapping[str, Any]]) -> list[str]:
    """Where the status schema and the status writes disagree, by path."""
    declared = status_paths(schema)
    written = set().union(*(written_paths(update) for update in updates))
    return [f"{path}: declared, never written" for path in sorted(declared - written)] + [
        f"{path}: written, not declared (the API server drops it)" for path in sorted(written - declared)
    ]


@pytest.mark.parametrize("crd", sorted(CRDS))
def test_every_declared_status_field_is_written_and_every_written_one_declared(
    crd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster(monkeypatch, BACKUPS, RESTORES)
    operate(cluster)
    report(cluster)
    assert status_mismatches(openapi(crd)["properties"]["status"], cluster.written[PLURALS[crd]]) == []


def test_the_walk_sees_a_field_declared_on_one_side_only() -> None:
    """The checks above can fail: a schema with a field the class lacks, and one without a
    field the class has, a type that disagrees; a status field nobody writes, and one written
    that the schema lacks."""
    spec = openapi("deploy/crd-pgrestore.yaml")["properties"]["spec"]
    extra = {**spec, "properties": {**spec["properties"], "colour": {"type": "string"}}}
    assert mismatches(PgRestoreSpec, extra, "spec") == [
        "spec.colour: declared in the CRD but read nowhere (no field of PgRestoreSpec)"
    ]
    missing = {**spec, "properties": {k: v for k, v in spec["properties"].items() if k != "at"}}
    assert mismatches(PgRestoreSpec, missing, "spec") == [
        "spec.at: read (PgRestoreSpec.at) but not declared in the CRD"
    ]
    retyped = {**spec, "properties": {**spec["properties"], "globals": {"type": "string"}}}
    assert mismatches(PgRestoreSpec, retyped, "spec") == ["spec.globals: boolean in the typed spec, string in the CRD"]
    schema = {
        "properties": {
            "phase": {"type": "string"},
            "lastRun": {"type": "object", "properties": {"jobName": {"type": "string"}}},
        }
    }
    assert status_mismatches(schema, [{"lastRun": {"jobName": "j", "phase": "Failed"}}]) == [
        "status.phase: declared, never written",
        "status.lastRun.phase: written, not declared (the API server drops it)",
    ], "a key written at another level is not the declared one"
