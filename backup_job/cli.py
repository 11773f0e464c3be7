"""The ``pgbackup`` command line: the only place that turns errors into exit codes.

Exit codes:

- ``0``: every selected database was backed up;
- ``1``: the run failed: any database failed, or nothing could start (server unreachable,
  bad password, version skew, no databases), or the process was stopped by a signal;
- ``2``: the settings are invalid (including a bad schedule); nothing was attempted.

Every error reaches the user as one line: configuration errors on stderr (logging is not set
up yet, since its own settings may be the wrong ones), everything else as a log line on
stdout. Tracebacks appear only with ``LOG_LEVEL=DEBUG``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from . import __version__, logs, schedule
from .config import load_settings
from .errors import ConfigError, Interrupted, PgBackupError
from .runner import run

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgbackup",
        description="Logical backups of every PostgreSQL database on a server, "
        "streamed to S3-compatible storage or a local directory.",
        epilog="Configuration comes from the environment (and an optional .env file); "
        "see the README for every variable.",
    )
    parser.add_argument("--version", action="version", version=f"pgbackup {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("run", help="back up every selected database once, then exit")
    commands.add_parser("schedule", help="run backups on BACKUP_SCHEDULE (or the crontab) with Supercronic")
    return parser


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"stopped by {signal.Signals(signum).name}; the current backup was aborted")


def _debug() -> bool:
    return os.environ.get("LOG_LEVEL", "").lower() == "debug"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        print(f"pgbackup: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.add_secrets(settings.secrets())
    logger = logs.setup(settings.log_level, settings.log_format)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        if args.command == "schedule":
            return schedule.start(os.environ)
        if args.command == "run":
            result = run(settings)
            if result.failed:
                _write_termination_log(settings.termination_log, result.failure_summary())
                return EXIT_FAILED
            return EXIT_OK
    except ConfigError as exc:
        print(f"pgbackup: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PgBackupError as exc:
        logger.error("run FAILED: %s", exc, exc_info=_debug(),
                     extra=logs.fields(event="run.failed", error=str(exc)))
        _write_termination_log(settings.termination_log, str(exc))
        return EXIT_FAILED
    except Exception as exc:
        logger.error("run FAILED with an unexpected %s: %s", type(exc).__name__, exc,
                     exc_info=_debug(), extra=logs.fields(event="run.failed", error=str(exc)))
        _write_termination_log(settings.termination_log, f"unexpected {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    raise AssertionError(f"unhandled command {args.command}")


def _write_termination_log(path: Path | None, message: str) -> None:
    """Kubernetes shows this file as the container's termination message (max 4 KiB)."""
    if path is None:
        return
    try:
        path.write_text(logs.redact(message)[:4000] + "\n", encoding="utf-8")
    except OSError as exc:
        logs.get("cli").warning("cannot write the termination message to %s: %s", path, exc.strerror)
