"""The PgBackup and PgRestore API as the operator speaks it: group, version, kind, label keys, and the
plain-dict body type (metadata, status, the objects the operator renders; specs are read into
``spec``'s dataclasses) and the spec error every other module uses."""

from __future__ import annotations

from typing import Any

GROUP = "pgbackup.io"
VERSION = "v1alpha1"
PLURAL = "pgbackups"
KIND = "PgBackup"
RESTORE_PLURAL = "pgrestores"
RESTORE_KIND = "PgRestore"
NAME_LABEL = f"{GROUP}/name"  # the PgBackup a CronJob or Job belongs to
RESTORE_LABEL = f"{GROUP}/restore"  # the PgRestore a restore Job belongs to
MANUAL_LABEL = f"{GROUP}/manual"
ADOPT_LABEL = f"{GROUP}/adopt"  # on a CronJob without owner: the PgBackup that may take it over
AFTER_LABEL = f"{GROUP}/after"  # on a prune Job: the sharded backup Job it follows
COMPONENT_LABEL = "app.kubernetes.io/component"
BACKUP, VERIFY, PRUNE, RESTORE, LIST = "backup", "verify", "prune", "restore", "list"
RUN_NOW_ANNOTATION = f"{GROUP}/backup-now"
LIST_ANNOTATION = f"{GROUP}/list-requested"  # a new value asks for a listing of the bucket
LIST_DATABASE_ANNOTATION = f"{GROUP}/list-database"  # with it: only this database's backups
MANAGED_BY = "pgbackup-operator"
Body = dict[str, Any]


class RenderError(ValueError):
    """The PgBackup cannot be turned into CronJobs; the message says which field and why."""

    def __init__(self, message: str, reason: str = "InvalidSpec") -> None:
        super().__init__(message)
        self.reason = reason  # CamelCase, for the Ready condition and the Event
