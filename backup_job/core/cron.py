"""Five-field cron expressions, as Kubernetes CronJobs read them, and their next run time.

The operator needs the next run time for ``status.nextScheduleTime`` and a clear message for a
bad schedule before the API server sees it; the compose schedule validates the same way. The
grammar follows the parser Kubernetes uses (robfig/cron, standard mode):

- fields ``minute hour day-of-month month day-of-week``; ``*`` or ``?``, numbers, ``a-b``
  ranges, ``/step``, ``,`` lists, month names ``JAN``-``DEC`` and day names ``SUN``-``SAT``;
- day-of-week is 0-6 with 0 = Sunday;
- day-of-month and day-of-week: if either is a bare ``*``, both must match; otherwise either
  may (classic cron's "or");
- macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.

An expression is one line: a control character inside it (a line break, a carriage return, a
tab) is refused, since a schedule is written into a crontab line (``pgbackup schedule``) and a
line break there would start a second job. Leading and trailing whitespace is ignored.

``next_after`` walks calendar days in the schedule's time zone and, on a matching day, the
matching hours and minutes, so even a once-a-leap-year schedule costs a few thousand steps.
Wall-clock times that do not exist (a DST gap) are skipped; ambiguous ones use the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .printable import control_character

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {n: i for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_NO_NAMES: dict[str, int] = {}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, _NO_NAMES),
    ("hour", 0, 23, _NO_NAMES),
    ("day-of-month", 1, 31, _NO_NAMES),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_SEARCH_DAYS = 366 * 5


def one_line(expression: str) -> str:
    """``expression`` without surrounding whitespace; ``ValueError`` if a control character
    is left inside it."""
    text = expression.strip()
    control = control_character(text)
    if control:
        raise ValueError(
            f"contains a control character ({control}); a schedule is one line of fields separated by spaces"
        )
    return text


def _value(text: str, name: str, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"{name} field: {text!r} is not a number")
    return int(text)


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it is a bare star."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
            star = star or step == 1
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, name, names), _value(last, name, names)
        else:
            start = _value(base, name, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"{name} field: {part!r} is outside {low}-{high}")
        if start > end:
            raise ValueError(f"{name} field: range {part!r} runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


@dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field schedule."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse, or raise ``ValueError`` saying which field is wrong and why."""
        text = MACROS.get(one_line(expression).lower(), expression.strip())
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"{expression!r} has {len(fields)} fields; a schedule has 5: "
                "minute hour day-of-month month day-of-week (e.g. '30 2 * * *')"
            )
        parsed = [_parse_field(f, n, lo, hi, names) for f, (n, lo, hi, names) in zip(fields, _FIELDS, strict=False)]
        return cls(
            expression, parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0], parsed[2][1], parsed[4][1]
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def next_after(self, moment: datetime, zone: str = "UTC") -> datetime | None:
        """The first run strictly after ``moment`` (aware), in UTC; None if none in 5 years."""
        tz = load_zone(zone)
        local = moment.astimezone(tz)
        day = local.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime.combine(day, time(hour, minute), tz)
                        if candidate.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != candidate.replace(
                            tzinfo=None
                        ):
                            continue  # inside a DST gap: that wall-clock time does not exist
                        if candidate > local:
                            return candidate.astimezone(UTC)
            day += timedelta(days=1)
        return None


def load_zone(name: str) -> ZoneInfo:
    """An IANA time zone, or ``ValueError`` naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from exc


# Supercronic (the compose schedule) also accepts a year field, and a seconds field first.
_EXTENDED_RANGES = {  # field name: (low, high), Supercronic's seconds and year fields
    "second": (0, 59),
    "year": (1970, 2099),
}


def _check_extended_field(text: str, name: str) -> None:
    low, high = _EXTENDED_RANGES[name]
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{name} field: step {step!r} must be a positive number")
        if base in ("*", "?"):
            continue
        for bound in base.split("-", 1):
            if not bound.isdigit() or not low <= int(bound) <= high:
                raise ValueError(f"{name} field: {part!r} is outside {low}-{high}")


def validate_expression(expression: str) -> None:
    """Raise ``ValueError`` unless Supercronic and Kubernetes-style cron would accept it."""
    one_line(expression)
    fields = expression.split()
    if expression.strip().lower() in MACROS or len(fields) == 5:
        CronSchedule.parse(expression)
        return
    if len(fields) == 6:  # minute hour dom month dow year
        CronSchedule.parse(" ".join(fields[:5]))
        _check_extended_field(fields[5], "year")
        return
    if len(fields) == 7:  # second minute hour dom month dow year
        _check_extended_field(fields[0], "second")
        CronSchedule.parse(" ".join(fields[1:6]))
        _check_extended_field(fields[6], "year")
        return
    raise ValueError(
        f"{expression!r} has {len(fields)} fields; use 5 (minute hour day-of-month month "
        "day-of-week), or 7 with seconds first and a year last"
    )
