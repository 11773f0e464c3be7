"""``pgbackup schedule``: the compose mode. Validate a schedule, then hand over to Supercronic.

Sources of the schedule, first found wins:

1. ``BACKUP_SCHEDULE``: one expression; the job line ``<expression> pgbackup run`` is written
   to a crontab under ``$TMPDIR`` (the image's root filesystem may be read-only);
2. ``BACKUP_CRONTAB`` (default ``/app/crontab``, the repository's top-level ``crontab``): a
   crontab file used as is.

``BACKUP_VERIFY_SCHEDULE`` adds the restore drill, ``<expression> pgbackup verify``, to
either (the file is then copied under ``$TMPDIR`` with the line appended). Supercronic never
overlaps a job line with itself; a drill may run while a backup runs, since it only reads
complete backups.

Every expression is checked before anything starts, so a typo fails with exit 2 and one line
naming the problem instead of a container that silently never backs up. Accepted forms are
the five-field cron of ``backup_job.cron`` and Supercronic's extended forms: six fields
(with a year) and seven (seconds first, then the five, then a year), e.g. ``*/10 * * * * * *``.

With ``BACKUP_RUN_ON_START=true`` one backup runs before the schedule starts (its failure is
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
from collections.abc import Mapping
from pathlib import Path

from . import logs
from .cron import MACROS, CronSchedule
from .errors import ConfigError

DEFAULT_CRONTAB = Path("/app/crontab")
JOB_COMMAND = "pgbackup run"
VERIFY_COMMAND = "pgbackup verify"
_EXTENDED_RANGES = {  # field name: (low, high), Supercronic's seconds and year fields
    "second": (0, 59),
    "year": (1970, 2099),
}

log = logs.get("schedule")


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
        raise ConfigError(f"configuration error: the crontab {path} cannot be read ({exc.strerror}); "
                          "set BACKUP_SCHEDULE or BACKUP_CRONTAB") from exc
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


def _expression(env: Mapping[str, str], name: str, example: str) -> str:
    expression = env.get(name, "").strip()
    if expression:
        try:
            validate_expression(expression)
        except ValueError as exc:
            raise ConfigError(f"configuration error: {name}={expression!r}: {exc}; "
                              f"for example {name}='{example}'") from exc
    return expression


def crontab_for(env: Mapping[str, str]) -> Path:
    """The crontab Supercronic will run, written or checked; ``ConfigError`` if unusable."""
    expression = _expression(env, "BACKUP_SCHEDULE", "30 2 * * *")
    verify = _expression(env, "BACKUP_VERIFY_SCHEDULE", "0 6 * * 0")
    if expression:
        text = f"# written by pgbackup schedule from BACKUP_SCHEDULE\n{expression} {JOB_COMMAND}\n"
    else:
        path = Path(env.get("BACKUP_CRONTAB", "") or DEFAULT_CRONTAB)
        validate_crontab(path)
        if not verify:
            return path
        text = path.read_text(encoding="utf-8").rstrip("\n") + "\n"
    if verify:
        text += f"# from BACKUP_VERIFY_SCHEDULE\n{verify} {VERIFY_COMMAND}\n"
    target = Path(tempfile.gettempdir()) / "pgbackup.crontab"
    target.write_text(text)
    return target


def run_on_start(env: Mapping[str, str]) -> bool:
    value = env.get("BACKUP_RUN_ON_START", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"configuration error: BACKUP_RUN_ON_START={value!r} must be true or false")


def find_supercronic(env: Mapping[str, str]) -> str:
    found = env.get("BACKUP_SUPERCRONIC") or shutil.which("supercronic")
    if not found:
        raise ConfigError("configuration error: supercronic was not found on PATH; "
                          "the pgbackup image ships it, or set BACKUP_SUPERCRONIC to its path")
    return found


def start(env: Mapping[str, str]) -> int:
    """Validate, optionally run once, then exec Supercronic (returns only on errors)."""
    crontab = crontab_for(env)
    initial = run_on_start(env)
    supercronic = find_supercronic(env)
    check = subprocess.run([supercronic, "-test", str(crontab)], capture_output=True, text=True)
    if check.returncode != 0:
        detail = (check.stderr or check.stdout).strip().splitlines()
        raise ConfigError(f"configuration error: supercronic rejected {crontab}: {detail[-1] if detail else 'no reason given'}")
    log.info("schedule from %s: %s", crontab, "; ".join(
        line for line in crontab.read_text().splitlines() if line.strip() and not line.startswith("#")))
    if initial:
        log.info("BACKUP_RUN_ON_START: running one backup before the schedule starts")
        code = subprocess.run([sys.executable, "-m", "backup_job", "run"]).returncode
        if code != 0:
            log.error("the backup at start failed (exit %d); the schedule starts anyway", code)
    sys.stdout.flush()
    os.execv(supercronic, [supercronic, "-passthrough-logs", str(crontab)])
