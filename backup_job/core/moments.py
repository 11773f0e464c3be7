"""Moments a user names: ``pgbackup restore --at``, and a PgRestore's ``spec.at``.

``parse_at`` reads the forms the help text and the PgRestore CRD promise, and nothing else:

- ``latest`` (or nothing): None, the newest backup;
- a backup timestamp as the object keys spell it, ``20261126T023000Z``;
- a date, ``2026-11-26``: the end of that UTC day, so that day's backups count;
- an ISO 8601 time, ``2026-11-26T02:30:00Z`` or ``2026-11-26 02:30``, in UTC unless it gives
  an offset (``+01:00``, ``-0500``).

The answer is an aware datetime in UTC. Any other value is a ``ValueError`` whose message is
one line naming ``--at``, the value (escaped, and shortened when long) and the accepted forms:
an impossible date (month 13, 30 February), an offset of a day or more, a date before 1970 (no
backup is older than the Unix clock) or after 9998 (the last year whose end of day and
offsets stay within what a datetime can hold). The operator checks ``spec.at`` with the same
function, so it lives in core.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, timezone

from .printable import escape

FORMS = (
    "latest, 2026-11-26 (the end of that UTC day), 2026-11-26T02:30:00Z (UTC unless it gives an "
    "offset) or 20261126T023000Z"
)
FIRST_YEAR, LAST_YEAR = 1970, 9998
SHOWN = 40  # characters of a refused value shown at most
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)


class _Refused(ValueError):
    """Why a value is not a moment, in words that never repeat the value."""


def parse_at(text: str) -> datetime | None:
    """``latest`` -> None; any other accepted form -> that moment in UTC; ``ValueError``
    (one line naming ``--at``, the value and the accepted forms) otherwise."""
    value = text.strip()
    if value.lower() in ("", "latest"):
        return None
    try:
        moment = _moment(value.upper())
    except _Refused as exc:
        raise ValueError(f"--at {_shown(text)} {exc}; use {FORMS}") from exc
    return moment


def _moment(value: str) -> datetime:
    if match := _STAMP.fullmatch(value):
        return _in_range(_build(match.groups()))
    if match := _DATE.fullmatch(value):
        day = _build(match.groups())
        return _in_range(datetime.combine(day.date(), time.max, UTC))
    if match := _TIME.fullmatch(value):
        zulu, sign, hours, minutes = match.groups()[7:]
        return _in_range(_build(match.groups()[:7], None if zulu else _offset(sign, hours, minutes)))
    raise _Refused("is not a time")


def _build(fields: Sequence[str | None], zone: timezone | None = None) -> datetime:
    """The moment of year, month, day and optionally hour, minute, second and a fraction of
    a second (digits, None where the value has none), in ``zone`` (None: UTC)."""
    padded = [*fields, None, None, None, None][:7]
    year, month, day, hour, minute, second = (int(field or 0) for field in padded[:6])
    microsecond = int((padded[6] or "0").ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone or UTC)
    except ValueError as exc:  # month 13, 30 February, hour 25: the message names only the field
        raise _Refused(f"is not a valid time ({exc})") from exc


def _offset(sign: str | None, hours: str | None, minutes: str | None) -> timezone | None:
    """The zone of a ``+01:00`` offset; None (UTC) when the value gives none."""
    if sign is None or hours is None or minutes is None:
        return None
    if int(hours) > 23 or int(minutes) > 59:
        raise _Refused("has an offset of a day or more")
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


def _in_range(moment: datetime) -> datetime:
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise _Refused(f"is out of range (years {FIRST_YEAR} to {LAST_YEAR})")
    utc = moment.astimezone(UTC)  # within a day of a year in range: never overflows
    if not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise _Refused(f"is out of range (years {FIRST_YEAR} to {LAST_YEAR})")
    return utc


def _shown(text: str) -> str:
    """The value as a message shows it: escaped, quoted, its start alone when long."""
    shown = escape(text)
    if len(shown) > SHOWN:
        return f"'{shown[:SHOWN]}...' ({len(text)} characters)"
    return f"'{shown}'"
