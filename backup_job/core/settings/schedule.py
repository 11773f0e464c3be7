"""The compose schedule: read by ``pgbackup schedule`` only, so a schedule typo never stops a run."""

from __future__ import annotations

from pathlib import Path

from ..cron import validate_expression
from ..schema import Invalid, Variable, boolean, format_boolean, format_optional, optional_text
from .group import Group


def _schedule(value: str) -> str:
    expression = value.strip()
    if expression:
        try:
            validate_expression(expression)
        except ValueError as exc:
            raise Invalid(str(exc), separator=": ") from exc
    return expression


class ScheduleSettings(Group):
    """What ``pgbackup schedule`` runs when."""

    expression = Variable(
        "BACKUP_SCHEDULE",
        _schedule,
        "The schedule: 5-field cron, a macro (`@daily`), or Supercronic's 7 fields with seconds first and a year last.",
        example="30 2 * * *, */30 * * * * * *",
    )
    crontab = Variable(
        "BACKUP_CRONTAB",
        Path,
        f"A crontab file to use when `{expression.name}` is empty (the repository's `crontab` is the image's default).",
        default="/app/crontab",
        example="/config/crontab",
        note=f"Without {expression.name} the crontab file is used.",
    )
    run_on_start = Variable(
        "BACKUP_RUN_ON_START",
        boolean,
        "Run one backup when the container starts.",
        default="false",
        example="true",
        format=format_boolean,
    )
    verify_expression = Variable(
        "BACKUP_VERIFY_SCHEDULE",
        _schedule,
        "Also run `pgbackup verify` (the restore drill) on this schedule, added to either schedule source.",
        example="0 6 * * 0",
    )
    supercronic = Variable(
        "BACKUP_SUPERCRONIC",
        optional_text,
        "Where Supercronic is (the image ships it).",
        example="/usr/local/bin/supercronic",
        shown_default="`PATH`",
        format=format_optional,
    )
