"""The PgBackup API as the operator speaks it: group, version, kind, label keys, and the
plain-dict body type and spec error every other module uses."""

from __future__ import annotations

from typing import Any

GROUP = "pgbackup.io"
VERSION = "v1alpha1"
PLURAL = "pgbackups"
KIND = "PgBackup"
NAME_LABEL = f"{GROUP}/name"
MANUAL_LABEL = f"{GROUP}/manual"
COMPONENT_LABEL = "app.kubernetes.io/component"
BACKUP, VERIFY = "backup", "verify"
RUN_NOW_ANNOTATION = f"{GROUP}/backup-now"
MANAGED_BY = "pgbackup-operator"
Body = dict[str, Any]


class RenderError(ValueError):
    """The PgBackup cannot be turned into CronJobs; the message says which field and why."""

    def __init__(self, message: str, reason: str = "InvalidSpec") -> None:
        super().__init__(message)
        self.reason = reason  # CamelCase, for the Ready condition and the Event
