"""The ``pgbackup`` command line: the only place that turns errors into exit codes.

Commands: ``run`` (one backup run), ``schedule`` (compose mode), ``list``, ``restore``,
``verify`` and ``prune``; each lives in its own module and this one only wires them up.

Exit codes, the same for every command:

- ``0``: everything asked for was done (every database backed up, restored, verified);
- ``1``: it failed: any database failed, a backup or database was not found, a checksum
  did not match, retention could not delete, nothing could start (server unreachable, bad
  password, version skew), or the process was stopped by a signal (``core.stopping``: one
  line naming what was stored and what not, within its bound, whenever the signal came);
- ``2``: the settings or arguments are invalid (including a bad schedule); nothing was
  attempted.

Every error reaches the user as one line: configuration errors on stderr (logging is not set
up yet, since its own settings may be the wrong ones), everything else as a log line on
stdout. Tracebacks appear only at the debug log level. Before anything else, every command
warns on stderr, once each, about the ``BACKUP_*`` / ``PGBACKUP_*`` variables nothing reads
(a typo silently meant the default), naming the closest known one and never the value.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from .commands import keygen, listing, schedule
from .commands.destination import open_catalog, open_destination, open_signer
from .commands.outcome import RunResult
from .commands.prune import prune
from .commands.restore import parse_at, restore_database, restore_globals
from .commands.run import key_moment, run
from .commands.verify import DrillServer, verify
from .core import cpus, logs, memory, pgauth, stopping, termination
from .core.errors import ConfigError, Interrupted, PgBackupError
from .core.layout import format_timestamp
from .core.settings import (
    DATABASES,
    DESTINATION,
    EXCLUDE_DATABASES,
    LOG_LEVEL,
    RETENTION,
    SCRATCH_SERVER,
    SIGNING_KEY_FILE,
    SIGNING_PUBLIC_KEYS,
    TERMINATION_LOG,
    Settings,
    check_command,
    job_environment,
    load_settings,
    parse_schedule,
    unknown_variables,
)
from .core.termination import TerminationMessage
from .pg.target import backup_server, verify_server
from .pipeline.unseal import Keyring
from .report.metrics import DatabaseFigure
from .report.reporter import Reporter

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
CONNECTING = ("run", "restore", "verify")  # the commands that talk to PostgreSQL


def _jobs(value: str) -> int:
    """``--jobs``: a whole number from 1 to 64."""
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 64, not {value!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgbackup",
        description="Logical backups of every PostgreSQL database on a server, "
        "streamed to S3-compatible storage or a local directory.",
        epilog="Configuration comes from the environment (and an optional .env file); "
        "see docs/configuration.md#configuration for every variable.",
    )
    parser.add_argument("--version", action="version", version=f"pgbackup {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("run", help="back up every selected database once, then exit")
    commands.add_parser("schedule", help="run backups on the configured schedule (or crontab) with Supercronic")

    listing_parser = commands.add_parser("list", help=f"show the backups under {DESTINATION.name}, newest first")
    listing_parser.add_argument("--database", metavar="NAME", help="only this database's backups")
    listing_parser.add_argument("--json", action="store_true", help="one JSON document for scripts")

    restore = commands.add_parser(
        "restore",
        help="load a backup into a database, in one transaction, checksum verified",
        description="Stream a backup into a database with psql. Nothing is committed unless the "
        "whole object was read and matched its manifest's sha256.",
    )
    what = restore.add_mutually_exclusive_group(required=True)
    what.add_argument("--database", metavar="NAME", help="the database whose backup to restore")
    what.add_argument("--globals", action="store_true", help="restore the roles and tablespaces instead")
    restore.add_argument(
        "--at",
        default="latest",
        metavar="TIME",
        help="the newest backup at or before TIME (UTC unless it says otherwise): "
        "2026-11-26 (the end of that day), 2026-11-26T02:30:00Z or 20261126T023000Z; "
        "default: latest",
    )
    restore.add_argument("--target", metavar="NAME", help="the database to load into (default: the same name)")
    restore.add_argument(
        "--create",
        action="store_true",
        help="create the target with the backed-up owner, encoding, locale, settings and GRANTs",
    )
    restore.add_argument(
        "--clean",
        action="store_true",
        help="replace the contents of a non-empty target (dropped inside the same transaction)",
    )
    restore.add_argument(
        "--with-globals",
        action="store_true",
        help="first restore the roles and tablespaces (the newest globals at or before TIME), as a fresh server needs",
    )
    restore.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="also consider backups without a trusted signature (made before signing keys were "
        "configured) and let --clean run one: whoever can write the bucket could have made it",
    )
    restore.add_argument(
        "--as-superuser",
        action="store_true",
        help="restore as a superuser a database whose objects belong to other roles: their code "
        "(constraints, defaults, index expressions) can then act with superuser rights; only when "
        "every owner is trusted (else restore as the database's owner)",
    )
    restore.add_argument(
        "--table",
        metavar="SCHEMA.NAME",
        action="append",
        default=[],
        help="restore only this table of a split backup (repeatable): its definition, owned sequences, rows, "
        "indexes and constraints; foreign keys to tables not restored are skipped and named. The table must "
        "not exist in the target",
    )
    restore.add_argument(
        "--into",
        metavar="SCHEMA.NAME",
        help="with one --table: restore it under this name, beside the live table (through a scratch database "
        "on the target server, dropped at the end; needs CREATEDB)",
    )
    restore.add_argument(
        "--jobs",
        type=_jobs,
        default=0,
        metavar="N",
        help="connections that load a split backup's tables and build its indexes at once (1-64; default: "
        "the CPUs this process may use)",
    )

    drill = commands.add_parser("verify", help="restore the newest backups into scratch databases and check them")
    drill.add_argument(
        "--database",
        metavar="NAME",
        action="append",
        default=[],
        help="only this database (repeatable); default: every database with backups "
        f"that {DATABASES.name} / {EXCLUDE_DATABASES.name} select",
    )

    pruning = commands.add_parser("prune", help=f"delete backups outside {RETENTION.name}")
    pruning.add_argument("--dry-run", action="store_true", help="only log what would be deleted")

    keygen = commands.add_parser(
        "keygen",
        help="make a signing key pair: the private key into a new file, the public key printed",
        description="Write a new ed25519 private key (PEM, mode "
        f"0600) for {SIGNING_KEY_FILE.name} and print its public key for "
        f"{SIGNING_PUBLIC_KEYS.name}.",
    )
    keygen.add_argument("--private-key", metavar="FILE", required=True, help="the new file (never overwritten)")
    return parser


def _debug() -> bool:
    return os.environ.get(LOG_LEVEL.name, "").lower() == "debug"


def _refused(summary: str, command: str) -> None:
    """The termination message of a job refused before its settings were read (exit 2)."""
    path = termination.configured_path(TERMINATION_LOG.name, os.environ, Path.cwd() / ".env")
    termination.write(path, TerminationMessage(summary, command=command, ok=False))


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line. On a usage error argparse prints its usage and error and exits
    2; the termination message then carries that error line, and the command when it was a
    command's own arguments that were wrong."""
    parser, printed = _parser(), io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # not --help or --version
            _refused_arguments(parser.prog, printed.getvalue())
        raise
    finally:
        sys.stderr.write(printed.getvalue())


def _refused_arguments(prog: str, printed: str) -> None:
    """The termination message for argparse's error line (``pgbackup restore: error: ...``)."""
    errors = list(re.finditer(rf"^{re.escape(prog)}(?: (\S+))?: error: .*$", printed, re.MULTILINE))
    if errors:
        _refused(errors[-1].group(0), errors[-1].group(1) or "")


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    for warning in unknown_variables(job_environment()):  # before anything can fail: a typo may be the reason it does
        print(f"pgbackup: warning: {warning}", file=sys.stderr)
    if args.command == "keygen":  # needs no settings: it makes the key the settings will name
        try:
            print(keygen.write(Path(args.private_key)))
        except ConfigError as exc:
            print(f"pgbackup: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return EXIT_OK
    try:
        settings = load_settings()
        check_command(settings, args.command)
        if args.command in CONNECTING:
            pgauth.check(os.environ)
    except ConfigError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        print(f"pgbackup: {exc}", file=sys.stderr)
        _refused(str(exc), args.command)
        return EXIT_CONFIG
    logs.add_secrets(settings.secrets())
    level = settings.log.level
    if args.command == "list" and level != "DEBUG":
        level = "ERROR"  # stdout is the listing (or its JSON); only errors may join it
    logger = logs.setup(level, settings.log.format)
    stopping.listen()  # already listening when started as ``pgbackup``: the entry point's first step
    memory.pin_mmap_threshold()
    report = Report(settings, args.command)
    if args.command == "run":  # named from the start, so that even a stop in the first instant names it
        report.result = RunResult(
            timestamp=format_timestamp(key_moment(settings, datetime.now(UTC))), shard=settings.run.shard
        )
        report.timestamp = report.result.timestamp
    stopping.last_word(lambda: _stopped(logger, report))
    try:
        with stopping.armed():
            report.started()
            code = _dispatch(args, settings, report)
    except Interrupted:
        code = EXIT_FAILED
    except ConfigError as exc:
        print(f"pgbackup: {exc}", file=sys.stderr)
        report(TerminationMessage(str(exc), command=args.command, ok=False))
        code = EXIT_CONFIG
    except PgBackupError as exc:
        logger.error(
            "%s FAILED: %s", args.command, exc, exc_info=_debug(), extra=logs.fields(event="run.failed", error=str(exc))
        )
        report(TerminationMessage(str(exc), command=args.command, ok=False))
        code = EXIT_FAILED
    except Exception as exc:
        logger.error(
            "%s FAILED with an unexpected %s: %s",
            args.command,
            type(exc).__name__,
            exc,
            exc_info=_debug(),
            extra=logs.fields(event="run.failed", error=str(exc)),
        )
        report(TerminationMessage(f"unexpected {type(exc).__name__}: {exc}", command=args.command, ok=False))
        code = EXIT_FAILED
    if stopping.requested():  # during the work, or after its outcome was reported: either way it was stopped
        stopping.once(lambda: _stopped(logger, report))
        return EXIT_FAILED
    return code


def _stopped(logger: logging.Logger, report: Report) -> None:
    """The one line of a stopped command, and its termination message, within the stop's bound."""
    message = report.stopped(stopping.requested() or "a signal")
    logger.error(
        "%s",
        message.summary,
        extra=logs.fields(event=f"{report.command}.stopped", signal=stopping.requested(), failed=list(message.failed)),
    )
    report(message, budget=stopping.remaining(stopping.REPORT_BY))


def _dispatch(args: argparse.Namespace, settings: Settings, report: Report) -> int:
    if args.command == "schedule":
        return schedule.start(parse_schedule(os.environ))
    if args.command == "run":
        result = run(settings, result=report.result)
        report(result.termination(), result.figures(), result.warnings(), result.ping_success)  # on success too
        return EXIT_OK if result.ok else EXIT_FAILED
    storage = open_destination(settings)
    catalog = open_catalog(settings, storage, open_signer(settings))
    if args.command == "list":
        print(listing.render(catalog, args.database, as_json=args.json), end="")
        return EXIT_OK
    if args.command == "restore":
        try:
            at = parse_at(args.at)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if args.globals and (
            args.target or args.create or args.clean or args.with_globals or args.table or args.jobs or args.into
        ):
            raise ConfigError(
                "--target, --create, --clean, --with-globals, --table, --into and --jobs apply to --database, "
                "not to --globals"
            )
        if args.globals or args.with_globals:
            restore_globals(
                catalog,
                backup_server(),
                at=at,
                bindir=settings.dump.pg_bindir,
                keyring=Keyring(settings.encryption.decrypt_identity),
                allow_unsigned=args.allow_unsigned,
                limit=settings.trust.globals_limit,
            )
        if args.globals:
            report(TerminationMessage("the globals were restored", command="restore", ok=True))
            return EXIT_OK
        restored = restore_database(
            catalog,
            backup_server(),
            args.database,
            at=at,
            into=args.target,
            create=args.create,
            clean=args.clean,
            bindir=settings.dump.pg_bindir,
            keyring=Keyring(settings.encryption.decrypt_identity),
            allow_unsigned=args.allow_unsigned,
            as_superuser=args.as_superuser,
            jobs=args.jobs or cpus.usable(),
            tables=args.table,
            into_table=args.into,
        )
        report(
            TerminationMessage(  # the PgRestore's status: which backup, how long
                f"restored {restored.database!r} from {restored.backup.timestamp} into {restored.target!r}"
                f"{' (roles and tablespaces first)' if args.with_globals else ''} in {restored.seconds:.1f} s",
                command="restore",
                ok=True,
                timestamp=restored.backup.timestamp,
                seconds=restored.seconds,
            )
        )
        return EXIT_OK
    if args.command == "verify":
        clock = time.monotonic()
        server = DrillServer(
            verify_server(os.environ),
            scratch=bool(SCRATCH_SERVER.host.read(os.environ)),
            on_backup_server=settings.trust.verify_on_backup_server,
        )
        outcome = verify(
            catalog,
            server,
            databases=tuple(args.database),
            include=settings.dump.include,
            exclude=settings.dump.exclude,
            bindir=settings.dump.pg_bindir,
            keyring=Keyring(settings.encryption.decrypt_identity),
        )
        summary = outcome.summary()
        report(outcome.termination(time.monotonic() - clock))  # the operator's lastVerify
        if outcome.failed:
            logs.get("verify").error(summary, extra=logs.fields(event="verify.summary", failed=len(outcome.failed)))
            return EXIT_FAILED
        logs.get("verify").info(summary, extra=logs.fields(event="verify.summary", failed=0))
        return EXIT_OK
    if args.command == "prune":
        if not settings.run.retention:
            raise ConfigError(
                f"configuration error: {RETENTION.name} is not set, so prune has no policy; "
                f"for example {RETENTION.name}={RETENTION.example}"
            )
        pruned = prune(catalog, settings.run.retention, datetime.now(UTC), dry_run=args.dry_run)
        if pruned.trouble():
            report(TerminationMessage(pruned.trouble(), command="prune", ok=False))
            return EXIT_FAILED
        report(
            TerminationMessage(
                f"prune: {len(pruned.deleted)} objects {'would be ' if args.dry_run else ''}deleted, "
                f"{pruned.kept} backups kept"
                + (f", {len(pruned.suspect)} suspect or untrusted left alone" if pruned.suspect else "")
                + (
                    f", {len(pruned.proven)} proven ({logs.human_bytes(pruned.proof_bytes)} read)"
                    if pruned.proven
                    else ""
                ),
                command="prune",
                ok=True,
                suspect=len(pruned.suspect),
            )
        )
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command}")


class Report:
    """Where a command's outcome goes: the termination message (Kubernetes, the operator),
    and through ``report.Reporter`` to notifications, pings and metrics when configured."""

    def __init__(self, settings: Settings, command: str) -> None:
        self.settings = settings
        self.command = command
        self.timestamp = ""  # the run's, once known
        self.result: RunResult | None = None  # the run's, filled in as it goes: what a stop reports
        self.shard = str(settings.run.shard) if command == "run" and settings.run.shard.sharded else ""
        self.reporter = (
            Reporter(settings.report, settings.destination.url, command, self.shard)
            if settings.report.wanted and command in ("run", "verify", "prune")
            else None
        )

    def started(self) -> None:
        if self.reporter is not None:
            self.reporter.started()

    def stopped(self, signal: str) -> TerminationMessage:
        """The outcome of the command stopped by ``signal``."""
        if self.result is not None:
            return self.result.stopped(signal)
        return TerminationMessage(
            f"{self.command} stopped by {signal}; what it was doing was abandoned", command=self.command, ok=False
        )

    def __call__(
        self,
        message: TerminationMessage,
        databases: list[DatabaseFigure] | None = None,
        warnings: list[str] | None = None,
        success_ping: bool = True,
        budget: float | None = None,
    ) -> None:
        """Write the termination message, then notify; ``budget``: the seconds notifying may take in all."""
        if self.command == "run":  # a run that could not start still names its timestamp and shard
            message = replace(message, timestamp=message.timestamp or self.timestamp, shard=message.shard or self.shard)
        termination.write(self.settings.run.termination_log, message)
        if self.reporter is not None:
            self.reporter.finished(message, databases, warnings, success_ping, budget)
