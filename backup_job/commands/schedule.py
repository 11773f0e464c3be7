"""``pgbackup schedule``: the compose mode. Validate a schedule, then hand over to Supercronic.

Sources of the schedule, first found wins:

1. ``settings.SCHEDULE``: one expression; the job line ``<expression> pgbackup run`` is written
   to a crontab under ``$TMPDIR`` (the image's root filesystem may be read-only);
2. ``settings.CRONTAB`` (default ``/app/crontab``, the repository's top-level ``crontab``): a
   crontab file used as is.

``settings.VERIFY_SCHEDULE`` adds the restore drill, ``<expression> pgbackup verify``, to
either (the file is then copied under ``$TMPDIR`` with the line appended). Supercronic never
overlaps a job line with itself; a drill may run while a backup runs, since it only reads
complete backups.

Every expression is checked before anything starts, so a typo fails with exit 2 and one line
naming the problem instead of a container that silently never backs up. Accepted forms are
the five-field cron of ``core.cron`` and Supercronic's extended forms: six fields
(with a year) and seven (seconds first, then the five, then a year), e.g. ``*/10 * * * * * *``.

With ``settings.RUN_ON_START`` one backup runs before the schedule starts (its failure is
logged, the schedule still starts). Then the process *execs* Supercronic with
``-passthrough-logs``: each run's own log lines reach stdout untouched, runs never overlap
(Supercronic's default), and SIGTERM reaches Supercronic directly, which lets a running
backup finish and exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..core import logs
from ..core.cron import validate_expression
from ..core.errors import ConfigError
from ..core.settings import CRONTAB, RUN_ON_START, SCHEDULE, SUPERCRONIC, VERIFY_SCHEDULE, ScheduleSettings

JOB_COMMAND = "pgbackup run"
VERIFY_COMMAND = "pgbackup verify"
log = logs.get("schedule")


def split_crontab_line(line: str) -> tuple[str, str]:
    """``(expression, command)`` of one crontab line."""
    if line.startswith("@"):
        macro, _, command = line.partition(" ")
        return macro, command.strip()
    for count in (7, 6, 5):
        parts = line.split(None, count)
        if len(parts) == count + 1:
            try:
                validate_expression(" ".join(parts[:count]))
            except ValueError:
                continue
            return " ".join(parts[:count]), parts[count]
    parts = line.split(None, 5)
    return " ".join(parts[:5]), parts[5] if len(parts) > 5 else ""


def validate_crontab(path: Path) -> int:
    """Check every job line of a crontab file; the number of jobs."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"configuration error: the crontab {path} cannot be read ({exc.strerror}); "
            f"set {SCHEDULE.name} or {CRONTAB.name}"
        ) from exc
    jobs = 0
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#") or ("=" in line.split()[0] and not line.startswith("@")):
            continue  # blank, comment, or environment assignment
        expression, command = split_crontab_line(line)
        try:
            validate_expression(expression)
        except ValueError as exc:
            raise ConfigError(f"configuration error: {path} line {number}: {exc}") from exc
        if not command:
            raise ConfigError(f"configuration error: {path} line {number}: a schedule without a command")
        jobs += 1
    if jobs == 0:
        raise ConfigError(f"configuration error: {path} has no job lines; add e.g. '30 2 * * * {JOB_COMMAND}'")
    return jobs


def crontab_for(schedule: ScheduleSettings) -> Path:
    """The crontab Supercronic will run, written or checked; ``ConfigError`` if unusable."""
    if schedule.expression:
        text = f"# written by pgbackup schedule from {SCHEDULE.name}\n{schedule.expression} {JOB_COMMAND}\n"
    else:
        validate_crontab(schedule.crontab)
        if not schedule.verify_expression:
            return schedule.crontab
        text = schedule.crontab.read_text(encoding="utf-8").rstrip("\n") + "\n"
    if schedule.verify_expression:
        text += f"# from {VERIFY_SCHEDULE.name}\n{schedule.verify_expression} {VERIFY_COMMAND}\n"
    target = Path(tempfile.gettempdir()) / "pgbackup.crontab"
    target.write_text(text)
    return target


def find_supercronic(schedule: ScheduleSettings) -> str:
    if schedule.supercronic:
        if not (os.path.isfile(schedule.supercronic) and os.access(schedule.supercronic, os.X_OK)):
            raise ConfigError(
                f"configuration error: {SUPERCRONIC.name}={schedule.supercronic!r} is not an executable "
                "file; point it at Supercronic, or unset it to find supercronic on PATH"
            )
        return schedule.supercronic
    found = shutil.which("supercronic")
    if not found:
        raise ConfigError(
            "configuration error: supercronic was not found on PATH; "
            f"the pgbackup image ships it, or set {SUPERCRONIC.name} to its path"
        )
    return found


def start(schedule: ScheduleSettings) -> int:
    """Validate, optionally run once, then exec Supercronic (returns only on errors)."""
    crontab = crontab_for(schedule)
    supercronic = find_supercronic(schedule)
    check = subprocess.run([supercronic, "-test", str(crontab)], capture_output=True, text=True)
    if check.returncode != 0:
        detail = (check.stderr or check.stdout).strip().splitlines()
        raise ConfigError(
            f"configuration error: supercronic rejected {crontab}: {detail[-1] if detail else 'no reason given'}"
        )
    log.info(
        "schedule from %s: %s",
        crontab,
        "; ".join(line for line in crontab.read_text().splitlines() if line.strip() and not line.startswith("#")),
    )
    if schedule.run_on_start:
        log.info("%s: running one backup before the schedule starts", RUN_ON_START.name)
        code = subprocess.run([sys.executable, "-m", "backup_job", "run"]).returncode
        if code != 0:
            log.error("the backup at start failed (exit %d); the schedule starts anyway", code)
    sys.stdout.flush()
    os.execv(supercronic, [supercronic, "-passthrough-logs", str(crontab)])
