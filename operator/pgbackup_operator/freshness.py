"""Silence is a failure: what the operator knows about each PgBackup, and when it is stale.

A CronJob that never fires (suspended, operator down, image pull errors, no node) leaves no
failed Job behind, so "failed" alone never alerts on it. Instead, each PgBackup has a
maximum age for its last success: ``spec.alerting.maxAge`` (``26h``, the same syntax as
``BACKUP_DATABASE_TIMEOUT``), or by default twice the longest gap between two runs of its
schedule (in its time zone, looked at over the next ``HORIZON``) plus the job deadline
(``spec.job.activeDeadlineSeconds``, or ``DEFAULT_DEADLINE`` when it has none). A PgBackup
that never succeeded is measured from its creation. Suspending a PgBackup does not silence
it: a suspended schedule is one of the silences this catches (``pgbackup_suspended`` lets
an alert tell them apart).

``Observed`` is the operator's in-memory picture of one PgBackup: the few spec and status
fields the freshness check and the metrics need, computed once per change by a kopf event handler
(``alerting.observe``), so a check of hundreds of PgBackups touches no API and parses no schedule. The
spec is read into the typed ``spec.PgBackupSpec``; one that cannot be read has no maximum age
(like a schedule that never runs, its ``Ready=False`` condition already says so).
Everything here is a pure function of the object and the clock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from backup_job.core.cron import CronSchedule
from backup_job.core.schema import Invalid, duration

from .api import Body, RenderError
from .spec import PgBackupSpec, parse_pgbackup
from .spec.pgbackup import DEFAULT_TIME_ZONE

DEFAULT_DEADLINE = 3600  # seconds allowed for a run whose Job has no activeDeadlineSeconds
HORIZON = timedelta(days=8)  # long enough to see a weekend's or a week's gap between runs
MAX_RUNS = 200  # runs looked at, at most, when measuring the gap
FRESH = "Fresh"


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an RFC 3339 time as the API writes it; None if absent or bad."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def schedule_gap(expression: str, zone: str, now: datetime) -> float | None:
    """The longest time between two consecutive runs from ``now`` on, in seconds; None when
    the expression is invalid or fires fewer than twice in five years.

    ``alerting.observe`` recomputes this on every event of a PgBackup (status changes included), so the
    answer is kept per schedule for the hour: an every-minute schedule costs 200 run times."""
    return _gap(expression, zone, now.replace(minute=0, second=0, microsecond=0))


@lru_cache(maxsize=1024)
def _gap(expression: str, zone: str, now: datetime) -> float | None:
    try:
        schedule = CronSchedule.parse(expression)
        first = schedule.next_after(now, zone)
    except ValueError:
        return None
    moments = [first] if first is not None else []
    while moments and len(moments) < MAX_RUNS and (len(moments) < 2 or moments[-1] - moments[0] < HORIZON):
        following = schedule.next_after(moments[-1], zone)
        if following is None:
            break
        moments.append(following)
    if len(moments) < 2:
        return None
    return max((later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments))


def max_age(spec: PgBackupSpec, now: datetime) -> tuple[float | None, str]:
    """The maximum age of the last success, and how it was chosen (for messages)."""
    given = spec.alerting.max_age if spec.alerting is not None else None
    if given:
        try:
            return float(duration(given)), f"spec.alerting.maxAge {given}"
        except Invalid:
            return None, f"spec.alerting.maxAge {given!r} is not a duration"
    gap = schedule_gap(spec.schedule, spec.time_zone or DEFAULT_TIME_ZONE, now)
    if gap is None:
        return None, "the schedule never runs"
    deadline = spec.job.active_deadline_seconds or DEFAULT_DEADLINE
    return 2 * gap + float(
        deadline
    ), f"twice the schedule's interval plus the job deadline ({human(2 * gap + deadline)})"


def human(seconds: float) -> str:
    """``3d4h``, ``26h0m``, ``5m``: ages in messages."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m" if minutes else f"{whole}s"


@dataclass(frozen=True)
class Observed:
    """One PgBackup as the freshness check and the metrics see it."""

    namespace: str
    name: str
    created: float | None
    suspended: bool
    max_age: float | None
    max_age_source: str
    last_success: float | None
    last_failure: float | None
    last_run: Body = field(default_factory=dict)
    last_verify: Body = field(default_factory=dict)
    last_verify_success: float | None = None
    next_run: float | None = None
    fresh: str | None = None  # the Fresh condition's status as last written: "True", "False" or None

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def age(self, now: float) -> float | None:
        """Seconds since the last success, or since creation when nothing ever succeeded."""
        since = self.last_success if self.last_success is not None else self.created
        return None if since is None else max(0.0, now - since)

    def stale(self, now: float) -> bool:
        age = self.age(now)
        return self.max_age is not None and age is not None and age > self.max_age

    def last_run_ok(self) -> bool | None:
        """Whether the newest finished run succeeded; None before any finished."""
        if self.last_success is None and self.last_failure is None:
            return None
        return (self.last_success or 0.0) >= (self.last_failure or 0.0)


def _readable(body: Body) -> PgBackupSpec | None:
    try:
        return parse_pgbackup(body)
    except RenderError:
        return None  # reconcile reports it


def observe(body: Body, now: datetime | None = None) -> Observed:
    """The ``Observed`` picture of a PgBackup body."""
    meta, status = body.get("metadata", {}), body.get("status") or {}
    spec = _readable(body)
    limit, source = max_age(spec, now or datetime.now(UTC)) if spec else (None, "the spec cannot be read")
    fresh = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == FRESH), None)
    return Observed(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        created=parse_time(meta.get("creationTimestamp")),
        suspended=spec is not None and spec.suspend,
        max_age=limit,
        max_age_source=source,
        last_success=parse_time(status.get("lastSuccessfulTime")),
        last_failure=parse_time(status.get("lastFailedTime")),
        last_run=dict(status.get("lastRun") or {}),
        last_verify=dict(status.get("lastVerify") or {}),
        last_verify_success=parse_time(status.get("lastSuccessfulVerifyTime")),
        next_run=parse_time(status.get("nextScheduleTime")),
        fresh=fresh,
    )


def stale_message(observed: Observed, now: float) -> str:
    age = observed.age(now) or 0.0
    what = "no successful backup for" if observed.last_success is not None else "no backup has succeeded in the"
    since = "" if observed.last_success is not None else " since it was created"
    return f"{what} {human(age)}{since}; the limit is {human(observed.max_age or 0)} ({observed.max_age_source})"
