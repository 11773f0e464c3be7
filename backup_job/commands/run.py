"""One backup run, from discovery to the summary line.

Order of work:

1. find pg_dump and its version; discover the server version and databases (a short
   connection). A server newer than pg_dump fails the run up front with both versions named,
   instead of pg_dump's own abort once per database;
2. select databases (the include and exclude patterns); nothing selected is a failure;
3. abort unfinished uploads of our layout older than the abandoned-upload age (24 h by
   default): a killed run's, never a live run's, so runs started by hand while a scheduled
   one is running do each other no harm;
4. store the globals (``pg_dumpall --globals-only``: roles, memberships, tablespaces) under
   ``_globals/``, unless the globals setting is off. A server that denies reading role
   passwords (managed services) gets a second attempt without them, said in the log and the
   manifest;
5. back up each database in isolation, up to ``BACKUP_PARALLEL_DATABASES`` at once
   (``parallel``): any error of one database is logged with the database's name and cause
   and counted, and the others go on. While a dump streams, its
   COPY rows are counted per table; the database's own properties (owner, locale, settings,
   GRANTs) were read beforehand, in a second short connection. Both go into the manifest;
6. log one summary line. The result says how many succeeded and failed; the CLI turns it
   into the exit code;
7. only when nothing failed, apply the retention policy (``prune``).

Every database of one run shares the run's start time as its key timestamp. The bytes of
each backup go through ``pipeline.backup.BackupRun``; this module decides what to back up
and keeps one database's failure from touching the others.

The module runs a little over 300 lines on purpose: a run's steps read in order here, and
each is short. The shrink alarm compares each new backup with the previous complete one of the same
database, read from a listing taken at the start. Credentials that may not list the bucket
(write-only backups) turn the alarm off for the run, with one log line saying so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from ..core import cpus, logs
from ..core.errors import DatabaseError, PgBackupError, RunError, one_line
from ..core.layout import READABLE_SUFFIXES, GLOBALS, display_name, format_timestamp, parse_key
from ..core.manifest import Manifest, RunFacts
from ..core.termination import TerminationMessage
from ..report.metrics import DatabaseFigure
from ..core.settings import DATABASES, EXCLUDE_DATABASES, PG_BINDIR, PGUSER, Settings
from ..pg import dbprops
from ..pg.discovery import TEMPLATE, Server, describe_target, discover, select_databases
from ..pg.dump import PgDump, globals_argv
from ..pg.target import backup_server
from ..pg.tools import find_tool, major, tool_version
from ..pipeline.backup import BackupRun, Source
from ..pipeline.stream import StreamStats
from ..pipeline.cpushare import CpuShare
from ..pipeline.catalog import Catalog, load_catalog
from ..storage.base import Storage
from .destination import open_destination
from .parallel import Parallel
from .prune import PruneResult, prune

log = logs.get("run")


@dataclass
class DatabaseResult:
    """The outcome for one database."""

    database: str
    ok: bool
    key: str = ""
    error: str = ""
    stats: StreamStats | None = None
    shrunk: str = ""  # the shrink alarm's warning for this backup


@dataclass
class RunResult:
    """The outcome of a whole run."""

    timestamp: str
    results: list[DatabaseResult] = field(default_factory=list)
    seconds: float = 0.0
    retention: PruneResult | None = None
    retention_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.retention_error

    @property
    def failed(self) -> list[DatabaseResult]:
        return [r for r in self.results if not r.ok]

    @property
    def succeeded(self) -> list[DatabaseResult]:
        return [r for r in self.results if r.ok]

    @property
    def stored_bytes(self) -> int:
        return sum(r.stats.compressed_bytes for r in self.succeeded if r.stats)

    def failure_summary(self) -> str:
        """One line naming every failed database and its cause."""
        if not self.failed:
            return f"every backup succeeded, but retention failed: {self.retention_error}"
        causes = "; ".join(f"{display_name(r.database)!r}: {r.error}" for r in self.failed)
        return f"{len(self.failed)} of {len(self.results)} backups failed: {causes}"

    def summary(self) -> str:
        if not self.ok:
            return self.failure_summary()
        return (f"{len(self.results)} backups succeeded: {logs.human_bytes(self.stored_bytes)} "
                f"stored in {self.seconds:.1f} s")

    def figures(self) -> list[DatabaseFigure]:
        """Per database, for the run's metrics."""
        return [DatabaseFigure(display_name(r.database), r.ok, r.stats.compressed_bytes if r.stats else 0)
                for r in self.results]

    def warnings(self) -> list[str]:
        """What deserves a notification even in a successful run: shrink alarms."""
        return [r.shrunk for r in self.results if r.shrunk]

    def termination(self) -> TerminationMessage:
        """The outcome for the operator (``core.termination``)."""
        return TerminationMessage(
            self.summary(), command="run", ok=self.ok, timestamp=self.timestamp, seconds=self.seconds,
            stored_bytes=self.stored_bytes, databases_ok=len(self.succeeded), databases_failed=len(self.failed),
            failed=tuple(display_name(r.database) for r in self.failed))


@dataclass(frozen=True)
class Tools:
    """The pg_dump this run uses and the server it talks to."""

    pg_dump: str
    pg_dump_version: str
    server: Server
    pg_dumpall: str = ""


def prepare(settings: Settings) -> Tools:
    """Find pg_dump, discover the server, and refuse version skew."""
    pg_dump = find_tool("pg_dump", settings.pg_bindir)
    dump_version = tool_version(pg_dump)
    server = discover(settings.discovery_database)
    if server.major > major(dump_version):
        raise RunError(
            f"pg_dump {dump_version} cannot dump PostgreSQL {server.version} "
            f"({describe_target(settings.discovery_database)}): pg_dump must be at least the "
            f"server's major version",
            hint=f"use pg_dump {server.major} or newer: the pgbackup image ships the newest, or "
            f"set {PG_BINDIR.name} to a PostgreSQL {server.major}+ bin directory",
        )
    pg_dumpall = find_tool("pg_dumpall", settings.pg_bindir) if settings.globals else ""
    return Tools(pg_dump=pg_dump, pg_dump_version=dump_version, server=server, pg_dumpall=pg_dumpall)


def writer(settings: Settings, storage: Storage, tools: Tools, timestamp: str,
           listed: frozenset[str] | None = None) -> BackupRun:
    """The run's writer, with what every manifest of the run shares and the CPUs it shares out."""
    facts = RunFacts(run_timestamp=timestamp, pg_dump_version=tools.pg_dump_version,
                     server_version=tools.server.version, compression=settings.compression.format,
                     compression_level=settings.compression.level,
                     pg_dump_options=settings.pg_dump_options, recipients=settings.encrypt_to)
    return BackupRun(settings, storage, facts, CpuShare(cpus.usable(), settings.compression.threads), listed)


def _sweep_stale_uploads(storage: Storage, prefix: str, before: datetime) -> None:
    def ours(key: str) -> bool:
        parsed = parse_key(prefix, key)
        return parsed is not None and parsed[2] in READABLE_SUFFIXES

    try:
        aborted = storage.abort_stale_uploads(prefix, before, ours)
    except DatabaseError as exc:
        log.warning("could not clean up unfinished uploads: %s", exc)
        return
    for key in aborted:
        log.warning("aborted an unfinished upload left by an earlier run: %s", storage.describe(key))


def attempt(run: BackupRun, source: Source) -> DatabaseResult:
    """Store one source; its failure becomes a result, never an exception (isolation)."""
    dump_key = run.keys(source.database)[0]
    try:
        stored = run.store(source)
    except DatabaseError as exc:
        return DatabaseResult(database=source.database, ok=False, key=dump_key, error=str(exc))
    except Exception as exc:  # one database's surprise never stops the others
        log.debug("unexpected error backing up %r", display_name(source.database), exc_info=True)
        return DatabaseResult(database=source.database, ok=False, key=dump_key,
                              error=f"unexpected {type(exc).__name__}: {exc}")
    return DatabaseResult(database=source.database, ok=True, key=stored.key, stats=stored.stats, shrunk=stored.shrunk)


def backup_database(run: BackupRun, tools: Tools, database: str, properties: dict[str, Any] | None = None,
                    previous: Manifest | None = None) -> DatabaseResult:
    """Back up one database: dump object, then manifest."""
    settings = run.settings

    def make_dump() -> PgDump:
        return PgDump(tools.pg_dump, database, lock_wait_timeout=settings.lock_wait_timeout,
                      extra_options=settings.pg_dump_options, timeout=settings.database_timeout)

    return _logged(attempt(run, Source(database, make_dump, properties=properties, previous=previous)))


def backup_globals(run: BackupRun, tools: Tools) -> DatabaseResult:
    """Store ``pg_dumpall --globals-only``; without role passwords where reading them is denied."""
    settings = run.settings

    def source(role_passwords: bool) -> Source:
        def make_dump() -> PgDump:
            argv = globals_argv(tools.pg_dumpall, settings.discovery_database, role_passwords)
            return PgDump(tools.pg_dumpall, GLOBALS, lock_wait_timeout=0, extra_options=(),
                          timeout=settings.database_timeout, argv=argv)
        return Source(GLOBALS, make_dump, role_passwords=role_passwords, count_rows=False)

    result = attempt(run, source(True))
    if not result.ok and "pg_authid" in result.error and "permission denied" in result.error:
        log.warning(
            "the server does not let %s read role passwords (%s); storing the globals without them",
            os.environ.get(PGUSER.name) or "this user", result.error,
            extra=logs.fields(event="backup.globals_without_passwords", database=GLOBALS),
        )
        result = attempt(run, source(False))
    return _logged(result)


def _logged(result: DatabaseResult) -> DatabaseResult:
    if not result.ok:
        log.error("backup of %r FAILED: %s", display_name(result.database), result.error,
                  extra=logs.fields(event="backup.failed", database=result.database, key=result.key,
                                    error=result.error))
    return result


def run(settings: Settings, started: datetime | None = None) -> RunResult:
    """Back up every selected database; raises ``RunError`` only when nothing can start."""
    clock = time.monotonic()
    started = started or datetime.now(timezone.utc)
    result = RunResult(timestamp=format_timestamp(started))
    tools = prepare(settings)
    selection = select_databases(tools.server.databases, settings.include, settings.exclude)
    if not selection.databases and not selection.missing:
        raise RunError(
            f"no databases to back up: the server has {len(tools.server.databases)} "
            f"connectable databases and the filters selected none",
            hint=f"check {DATABASES.name} and {EXCLUDE_DATABASES.name}",
        )
    storage = open_destination(settings)
    storage.prepare()
    log.info(
        "run %s started: %d databases on PostgreSQL %s with pg_dump %s -> %s",
        result.timestamp, len(selection.databases), tools.server.version, tools.pg_dump_version,
        settings.destination.url,
        extra=logs.fields(event="run.started", timestamp=result.timestamp,
                          databases=list(selection.databases)),
    )
    _sweep_stale_uploads(storage, settings.destination.prefix,
                         started - timedelta(seconds=settings.abandoned_upload_age))
    previous = _previous_backups(settings, storage)
    properties = _database_properties(settings, selection.databases)
    _log_skipped(tools.server)
    for name in selection.missing:
        why = tools.server.skipped.get(name)
        error = (f"cannot be dumped: {why}" if why else f"no such database; check {DATABASES.name}")
        result.results.append(_logged(DatabaseResult(name, ok=False, error=error)))
    backups = writer(settings, storage, tools, result.timestamp, previous.keys() if previous is not None else None)
    jobs: list[Callable[[], DatabaseResult]] = [partial(backup_globals, backups, tools)] if settings.globals else []
    for database in selection.databases:
        last = previous.latest(database) if previous is not None else None
        jobs.append(partial(backup_database, backups, tools, database, properties.get(database),
                            last.manifest if last else None))
    result.results.extend(Parallel(jobs, settings.parallel_databases).run(backups.stop))
    result.seconds = time.monotonic() - clock
    _log_summary(result)
    if settings.retention:
        _apply_retention(settings, storage, result)
    return result


def _log_skipped(server: Server) -> None:
    """One line naming every database left out and why; a warning when one is not a template."""
    if not server.skipped:
        return
    names = ", ".join(f"{name!r} ({why})" for name, why in server.skipped.items())
    worrying = any(why != TEMPLATE for why in server.skipped.values())
    (log.warning if worrying else log.info)(
        "not backed up: %s", names, extra=logs.fields(event="run.skipped", skipped=server.skipped))


def _log_summary(result: RunResult) -> None:
    total = result.stored_bytes
    log_summary = log.error if result.failed else log.info
    log_summary(
        "run %s %s: %d ok, %d failed%s, %s written in %.1f s",
        result.timestamp, "FAILED" if result.failed else "finished",
        len(result.succeeded), len(result.failed),
        f" ({', '.join(display_name(r.database) for r in result.failed)})" if result.failed else "",
        logs.human_bytes(total), result.seconds,
        extra=logs.fields(event="run.finished", ok=len(result.succeeded), failed=len(result.failed),
                          compressed_bytes=total, seconds=round(result.seconds, 3)),
    )


def _apply_retention(settings: Settings, storage: Storage, result: RunResult) -> None:
    if result.failed:
        log.warning("retention skipped: the run had failures, so nothing is deleted",
                    extra=logs.fields(event="retention.skipped"))
        return
    try:
        catalog = load_catalog(storage, settings.destination.prefix)
        result.retention = prune(catalog, settings.retention, datetime.now(timezone.utc))
    except PgBackupError as exc:
        result.retention_error = str(exc)
    else:
        if result.retention.errors:
            result.retention_error = (f"{len(result.retention.errors)} deletions failed, the first: "
                                      f"{result.retention.errors[0]}")
    if result.retention_error:
        log.error("retention FAILED: %s", result.retention_error,
                  extra=logs.fields(event="retention.failed", error=result.retention_error))


def _previous_backups(settings: Settings, storage: Storage) -> Catalog | None:
    """The catalog for the shrink alarm, or None when it is off or cannot be read."""
    if not settings.shrink_alarm:
        return None
    try:
        return load_catalog(storage, settings.destination.prefix)
    except PgBackupError as exc:
        log.info("shrink alarm off for this run: the backups cannot be listed (%s)", exc)
        return None


def _database_properties(settings: Settings, databases: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Owner, locale, settings and GRANTs of each database, for ``restore --create``."""
    try:
        connection = backup_server().connect(settings.discovery_database)
    except RunError as exc:
        log.warning("database properties not captured: %s", exc)
        return {}
    try:
        return dbprops.capture(connection, databases)
    except Exception as exc:  # the dumps are still worth taking without them
        log.warning("database properties not captured: %s", one_line(exc))
        return {}
    finally:
        connection.close()
