"""One run: its identity and shard, what follows it (retention, the shrink alarm), how it reports.

The run's identity (``core.runkey``) is shared by every shard and retried pod of one run; the
operator renders it from the Job. Retention applies after runs without failures; sharded
runs refuse it (``check_command``), since one shard cannot know the others succeeded.
"""

from __future__ import annotations

from ..retention import RetentionPolicy
from ..runkey import EXAMPLE_RUN_ID, format_run_timestamp, parse_run_id, parse_run_timestamp
from ..schema import Invalid, Variable, choice, format_number, format_optional, fraction, optional_path, optional_text
from ..shard import parse_shard
from .group import Group


def _retention(value: str) -> RetentionPolicy:
    if not value.strip():
        return RetentionPolicy()
    try:
        return RetentionPolicy.parse(value)
    except ValueError as exc:
        raise Invalid(f"is not a retention policy ({exc})", "last=7,daily=14,weekly=8,monthly=12") from exc


def _log_level(value: str) -> str:
    return choice("info", "debug", "warning", "error")(value).upper()


class RunSettings(Group):
    """The run's identity and part, and what it does after its backups."""

    job_name = Variable(
        "BACKUP_JOB_NAME",
        optional_text,
        "The Kubernetes Job's name (the operator renders the pod's `batch.kubernetes.io/job-name` "
        "label). Unless the run timestamp is given, a name ending in `-<digits>` (the CronJob "
        "controller's scheduled time, in minutes since the Unix epoch, UTC) gives the run's "
        "timestamp; any other name, or a number that is no plausible minute, leaves the clock.",
        example="pgbackup-prod-29400000",
        note="The operator sets the run's job name, timestamp, id and shard; compose runs one pod: leave them unset.",
        format=format_optional,
    )
    run_timestamp = Variable(
        "BACKUP_RUN_TIMESTAMP",
        parse_run_timestamp,
        "The run's key timestamp instead of the clock, shared by every shard and retried pod "
        "of one run: `20261130T020000Z`, or RFC 3339 with `Z` or an offset (kept in UTC, "
        f"whole seconds). First of three: this, else `{job_name.name}`'s scheduled minute, "
        "else the clock at the start.",
        example="20261130T020000Z, 2026-11-30T03:00:00+01:00",
        shown_default=f"from `{job_name.name}`, else the clock",
        format=format_run_timestamp,
    )
    run_id = Variable(
        "BACKUP_RUN_ID",
        parse_run_id,
        "The run's id in its manifests and object metadata instead of a random one (the operator "
        "renders the Job's uid). A retried pod with the same id and timestamp counts its own "
        "complete backups as done instead of as conflicts.",
        example=EXAMPLE_RUN_ID,
        shown_default="random, per run",
        format=format_optional,
    )
    retention = Variable(
        "BACKUP_RETENTION",
        _retention,
        "Grandfather-father-son retention, applied after runs without failures and by `pgbackup prune`.",
        example="last=7,daily=14,weekly=8,monthly=12",
        note="Grandfather-father-son: any subset of last=N,daily=N,weekly=N,monthly=N. Unset keeps everything.",
        shown_default="none (keep all)",
        format=RetentionPolicy.describe,
    )
    shard = Variable(
        "BACKUP_SHARD",
        parse_shard,
        "`i/N`: back up only the selected databases whose name's hash modulo N is i (see [Sharding a "
        "server over several pods](performance.md#sharding-a-server-over-several-pods)); "
        "shard 0 also stores the globals. With N > 1 every shard needs "
        f"the same run timestamp (`{run_timestamp.name}`, or a CronJob's `{job_name.name}`), and "
        f"`{retention.name}` is refused: run `pgbackup prune` after every shard of the run.",
        example="0/3",
        note="One server over several pods (docs/performance.md#sharding-a-server-over-several-pods).",
        shown_default="`0/1` (one pod, every database)",
    )
    shrink_alarm = Variable(
        "BACKUP_SHRINK_ALARM",
        fraction,
        "Warn and flag a backup smaller than this fraction of the previous one; `0` turns it off.",
        default="0.5",
        example="0.8, 0",
        note="Warn when a backup is smaller than this fraction of the previous one (0 = off).",
        format=format_number,
    )
    termination_log = Variable(
        "BACKUP_TERMINATION_LOG",
        optional_path,
        "Write the outcome in one line here (Kubernetes shows it as the container's termination message).",
        example="/dev/termination-log",
        format=format_optional,
    )


class LogSettings(Group):
    """The log: one line per event on stdout."""

    level = Variable(
        "LOG_LEVEL", _log_level, "`debug` also prints tracebacks.", default="info", example="debug", format=str.lower
    )
    format = Variable(
        "LOG_FORMAT",
        choice("text", "json"),
        "One line per event either way, on stdout.",
        default="text",
        example="json",
    )
