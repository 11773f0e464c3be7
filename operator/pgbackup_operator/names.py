"""Names and labels of what the operator makes: fixed and deterministic, so applying twice
never makes two of anything.

CronJobs are ``pgbackup-<name>``, ``pgbackup-<name>-verify`` and ``pgbackup-<name>-prune``,
shortened with a hash to fit the 52 characters a CronJob name may have (its Jobs add 11).
The hash inputs carry a ``verify:`` / ``prune:`` tag (a colon never occurs in a name), so the
names of two kinds never meet for different PgBackups; where the plain texts meet
(``pgbackup-a-verify`` is also the backup CronJob of ``a-verify``) the first owner keeps it
(``kube.NameTaken``). Jobs the operator creates are named after what they are for: a
backup-now id, a listing request, or the sharded run a prune Job follows, so a second attempt
is a no-op. The listing of a bucket is published in the ConfigMap ``pgbackup-<name>-backups``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from backup_job import __version__

from .api import BACKUP, COMPONENT_LABEL, GROUP, KIND, MANAGED_BY, NAME_LABEL, VERSION, Body

CRONJOB_NAME_MAX = 52
JOB_NAME_MAX = 63


def _fit(stem: str, suffix: str, key: str) -> str:
    """``stem + suffix`` if it fits a CronJob name, else ``stem`` cut short + suffix + a hash of ``key``."""
    if len(stem + suffix) <= CRONJOB_NAME_MAX:
        return stem + suffix
    tail = f"{suffix}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return stem[: CRONJOB_NAME_MAX - len(tail)].rstrip("-.") + tail


def cronjob_name(name: str) -> str:
    """``pgbackup-<name>``, or a hashed short form when that exceeds 52 characters."""
    return _fit(f"pgbackup-{name}", "", name)


def verify_cronjob_name(name: str) -> str:
    """``pgbackup-<name>-verify``, or ``pgbackup-<name cut>-verify-<hash>`` when too long.

    The hash input carries a ``verify:`` tag (a colon never occurs in a name), so it differs
    from the backup name's hash input for every pair of PgBackup names."""
    return _fit(f"pgbackup-{name}", "-verify", f"verify:{name}")


def prune_cronjob_name(name: str) -> str:
    """``pgbackup-<name>-prune``, or ``pgbackup-<name cut>-prune-<hash>`` when too long (the
    hash input's ``prune:`` tag keeps it apart from every other name's, as for verify)."""
    return _fit(f"pgbackup-{name}", "-prune", f"prune:{name}")


def after_run_prune_job_name(job: str) -> str:
    """The one prune Job after the sharded backup Job ``job``: a fixed name, so it is made once."""
    if len(job) + len("-prune") <= JOB_NAME_MAX:
        return f"{job}-prune"
    tail = f"-prune-{hashlib.sha256(job.encode()).hexdigest()[:8]}"
    return job[: JOB_NAME_MAX - len(tail)].rstrip("-.") + tail


def manual_job_name(cronjob: str, run_id: str) -> str:
    """A fixed Job name per backup-now id, so one id never makes a second Job."""
    return f"{cronjob}-m{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def list_job_name(cronjob: str, request: str) -> str:
    """A fixed Job name per listing request, so one request never makes a second Job."""
    return f"{cronjob}-l{hashlib.sha256(request.encode()).hexdigest()[:8]}"


def listing_name(name: str) -> str:
    """The ConfigMap ``pgbackup-<name>-backups`` holding the last listing of the bucket, hashed
    short like the CronJobs' names (``backups:`` tag) when too long."""
    return _fit(f"pgbackup-{name}", "-backups", f"backups:{name}")


def labels(name: str, component: str = BACKUP) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "pgbackup",
        "app.kubernetes.io/instance": name,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": "pgbackup",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": __version__,
        NAME_LABEL: name,
    }


def owner_reference(body: Body) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
