"""What names one run: its key timestamp and its id, shared by every shard and every retried pod.

A run's objects are keyed by its timestamp (``layout``), so the pods of one run must agree on
it without talking to each other. The timestamp comes from, first that applies:

1. ``BACKUP_RUN_TIMESTAMP`` (``20261130T020000Z``, or RFC 3339 with ``Z`` or an offset),
   normalised to UTC and whole seconds;
2. ``BACKUP_JOB_NAME`` ending in ``-<digits>``: the Kubernetes CronJob controller names each
   Job ``<cronjob>-<scheduled time in minutes since the Unix epoch, UTC>``, so every pod of
   that Job, retried or sharded, reads the same minute from it. A number that cannot be such
   a minute (before ``EARLIEST`` or more than ``FUTURE_SLACK`` ahead of the clock: a Job
   named by hand, ``backup-2``) is ignored with a reason, and the clock is used;
3. the clock when the run starts, as a single pod always did.

The run id (``BACKUP_RUN_ID``; the operator renders the Job's uid) replaces the random id a
run otherwise draws (``manifest.RunFacts``): it says which objects this run wrote, so a
retried pod can recognise its own complete backups. It goes into S3 object metadata, hence
the plain ASCII form.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .layout import TIMESTAMP_FORMAT, format_timestamp
from .schema import Invalid

EXAMPLE_TIMESTAMP = "20261130T020000Z"
EXAMPLE_RUN_ID = "3f0c9a4e-7b1d-4c52-9e8a-5d2f61b0c7aa"
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)  # no CronJob of pgbackup was scheduled before
FUTURE_SLACK = timedelta(days=1)  # clock skew between the controller and the node, with room to spare
_LAYOUT = re.compile(r"\d{8}T\d{6}Z")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_JOB_MINUTE = re.compile(r"-(\d{1,12})")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def parse_run_timestamp(value: str) -> datetime | None:
    """The moment ``value`` names, in UTC, whole seconds; None when unset."""
    text = value.strip()
    if not text:
        return None
    try:
        if _LAYOUT.fullmatch(text):
            return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        if _RFC3339.fullmatch(text):
            moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
            return moment.astimezone(UTC).replace(microsecond=0)
    except ValueError as exc:  # the right shape, an impossible date (month 13)
        raise Invalid(f"is not a valid moment ({exc})", EXAMPLE_TIMESTAMP) from exc
    raise Invalid(
        "is not a timestamp: use 20261130T020000Z or RFC 3339 with Z or an offset (2026-11-30T02:00:00Z)",
        EXAMPLE_TIMESTAMP,
    )


def format_run_timestamp(moment: datetime | None) -> str:
    return "" if moment is None else format_timestamp(moment)


def parse_run_id(value: str) -> str | None:
    """A run id of letters, digits and ``._:-`` (at most 128); None when unset."""
    text = value.strip()
    if not text:
        return None
    if not _RUN_ID.fullmatch(text):
        raise Invalid(
            "must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", EXAMPLE_RUN_ID
        )
    return text


def scheduled_minute(job_name: str, now: datetime) -> tuple[datetime | None, str]:
    """The scheduled time a CronJob's Job name carries, or None and why not ("" when the name
    carries no number at all)."""
    match = _JOB_MINUTE.search(job_name)
    if not match or match.end() != len(job_name):
        return None, ""
    moment = datetime.fromtimestamp(int(match.group(1)) * 60, UTC)
    if moment < EARLIEST or moment > now + FUTURE_SLACK:
        return None, (
            f"its number {match.group(1)} is not a CronJob's scheduled minute "
            f"({format_timestamp(moment)} is {'too early' if moment < EARLIEST else 'in the future'})"
        )
    return moment, ""


def run_moment(explicit: datetime | None, job_name: str | None, now: datetime) -> tuple[datetime, str, str]:
    """The run's key moment, where it came from (``timestamp``, ``job_name`` or ``clock``) and,
    when a job name's number was not taken for a scheduled minute, why (see the module
    docstring)."""
    if explicit is not None:
        return explicit, "timestamp", ""
    if job_name:
        moment, why = scheduled_minute(job_name, now)
        if moment is not None:
            return moment, "job_name", ""
        return now, "clock", why
    return now, "clock", ""
