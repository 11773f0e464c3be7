"""One backup run, from discovery to the summary line.

Order of work:

1. find pg_dump and its version; discover the server version and databases (a short
   connection). A server newer than pg_dump fails the run up front with both versions named,
   instead of pg_dump's own abort once per database;
2. select databases (the include and exclude patterns); nothing selected is a failure. A
   shard (``BACKUP_SHARD=i/N``) then keeps its own part of the selection (``shards``): it may
   be empty, which is a success with 0 databases;
3. abort unfinished uploads of our layout older than the abandoned-upload age (24 h by
   default) by the store's clock (``sweep``): a killed run's, never a live run's, so runs
   started by hand while a scheduled one is running do each other no harm;
4. store the globals, in shard 0 only (``pg_dumpall --globals-only``: roles, memberships, tablespaces) under
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
7. only when nothing failed, apply the retention policy (``prune``; refused up front with
   N > 1 shards, since no shard knows the others succeeded). A sharded run that succeeded
   checks whether the whole run is stored, for the healthcheck's success ping (``shards``).

A stop request (SIGTERM) may come at any step: ``Parallel`` stops the backups under way and
waits only for what can clean up within the stop's bound (``core.stopping``), and the
``result`` the caller holds says what was stored before the stop, for its one stopped line.

Every database of one run shares the run's key timestamp: its start by the clock, or the
one the pods of a Kubernetes Job agree on (``core.runkey``: ``BACKUP_RUN_TIMESTAMP``, the
CronJob's scheduled minute in ``BACKUP_JOB_NAME``). The bytes of each backup go through
``pipeline.backup.BackupRun``; this module decides what to back up and keeps one database's
failure from touching the others. The results are ``outcome``'s.

The module runs a little over 300 lines on purpose: a run's steps read in order here, and
each is short. The shrink alarm compares each new backup with the previous complete one of the same
database, read from a listing taken at the start. Credentials that may not list the bucket
(write-only backups) turn the alarm off for the run, with one log line saying so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from ..core import cpus, logs, stopping
from ..core.errors import DatabaseError, Interrupted, PgBackupError, RunError, one_line
from ..core.layout import GLOBALS, display_name, format_timestamp
from ..core.manifest import Manifest, RunFacts
from ..core.runkey import run_moment
from ..core.settings import DATABASES, EXCLUDE_DATABASES, JOB_NAME, PG_BINDIR, PGUSER, Settings, check_command
from ..core.signing import SigningKey
from ..pg import connections, dbprops
from ..pg.discovery import TEMPLATE, Server, describe_target, discover, select_databases
from ..pg.dump import PgDump, globals_argv
from ..pg.roles import database_owners, system_identifier
from ..pg.target import backup_server, unenforced
from ..pg.tools import find_tool, major, tool_version
from ..pipeline.backup import BackupRun, Source
from ..pipeline.catalog import Catalog
from ..pipeline.cpushare import CpuShare
from ..pipeline.split import SplitPlan
from ..storage.base import Storage
from . import shards
from .destination import open_catalog, open_destination, open_signer
from .outcome import DatabaseResult, RunResult
from .parallel import Parallel
from .prune import prune
from .sweep import sweep_unfinished_uploads

log = logs.get("run")


@dataclass(frozen=True)
class Tools:
    """The pg_dump this run uses and the server it talks to."""

    pg_dump: str
    pg_dump_version: str
    server: Server
    pg_dumpall: str = ""
    system_identifier: str = ""  # "" when the role may not read it
    database: str = "postgres"  # the database discovery connected to (pg_dumpall's too)
    split: SplitPlan | None = None  # BACKUP_FORMAT=split: how each database is read


def prepare(settings: Settings) -> Tools:
    """Find pg_dump, discover the server, and refuse version skew."""
    pg_dump = find_tool("pg_dump", settings.dump.pg_bindir)
    dump_version = tool_version(pg_dump)
    server = discover(settings.postgres.discovery_database)
    if server.major > major(dump_version):
        raise RunError(
            f"pg_dump {dump_version} cannot dump PostgreSQL {server.version} "
            f"({describe_target(settings.postgres.discovery_database)}): pg_dump must be at least the "
            f"server's major version",
            hint=f"use pg_dump {server.major} or newer: the pgbackup image ships the newest, or "
            f"set {PG_BINDIR.name} to a PostgreSQL {server.major}+ bin directory",
        )
    pg_dumpall = find_tool("pg_dumpall", settings.dump.pg_bindir) if settings.dump.globals else ""
    warning = unenforced("pg_dump", dump_version)
    if warning:
        log.warning(warning, extra=logs.fields(event="auth.unenforced"))
    split = split_plan(settings, pg_dump, server) if settings.dump.format == "split" else None
    return Tools(
        split=split,
        pg_dump=pg_dump,
        pg_dump_version=dump_version,
        server=server,
        pg_dumpall=pg_dumpall,
        system_identifier=system_identifier(backup_server(), settings.postgres.discovery_database),
        database=settings.postgres.discovery_database,
    )


def split_plan(settings: Settings, pg_dump: str, server: Server) -> SplitPlan:
    """How this run reads each database in the split format, with the readers per database
    fitted into the connections the server has free (``connections.fit``)."""
    wanted = settings.dump.dump_jobs or cpus.usable()
    jobs = connections.fit(
        backup_server(), settings.postgres.discovery_database, wanted, settings.dump.parallel_databases
    )
    return SplitPlan(
        pg_dump=pg_dump,
        pg_restore=find_tool("pg_restore", settings.dump.pg_bindir),
        psql=find_tool("psql", settings.dump.pg_bindir),
        server_major=server.major,
        jobs=jobs,
        lock_wait_timeout=settings.dump.lock_wait_timeout,
        options=settings.dump.pg_dump_options,
        timeout=settings.dump.database_timeout,
        range_pages=settings.dump.split_table_mb * 1024 * 1024 // 8192,
    )


def writer(
    settings: Settings,
    storage: Storage,
    tools: Tools,
    timestamp: str,
    listed: frozenset[str] | None = None,
    signer: SigningKey | None = None,
) -> BackupRun:
    """The run's writer, with what every manifest of the run shares and the CPUs it shares out."""
    facts = RunFacts(
        run_timestamp=timestamp,
        pg_dump_version=tools.pg_dump_version,
        server_version=tools.server.version,
        compression=settings.compression.format,
        compression_level=settings.compression.level,
        pg_dump_options=settings.dump.pg_dump_options,
        recipients=settings.encryption.encrypt_to,
        server_system_identifier=tools.system_identifier,
        **({"run_id": settings.run.run_id} if settings.run.run_id else {}),
    )
    return BackupRun(
        settings.destination.prefix,
        storage,
        facts,
        dump=settings.dump,
        compression=settings.compression,
        encryption=settings.encryption,
        run=settings.run,
        upload=settings.upload,
        cpus=CpuShare(cpus.usable(), settings.compression.threads),
        listed=listed,
        signer=signer,
    )


def attempt(run: BackupRun, source: Source) -> DatabaseResult:
    """Store one source; its failure becomes a result, never an exception (isolation)."""
    dump_key = run.keys(source.database)[0]
    try:
        stored = run.store(source)
    except DatabaseError as exc:
        return DatabaseResult(database=source.database, ok=False, key=dump_key, error=str(exc))
    except Exception as exc:  # one database's surprise never stops the others
        log.debug("unexpected error backing up %r", display_name(source.database), exc_info=True)
        return DatabaseResult(
            database=source.database, ok=False, key=dump_key, error=f"unexpected {type(exc).__name__}: {exc}"
        )
    return DatabaseResult(database=source.database, ok=True, key=stored.key, stats=stored.stats, shrunk=stored.shrunk)


def key_moment(settings: Settings, now: datetime) -> datetime:
    """The run's key moment (``core.runkey``); warns when a Job name's number was not taken."""
    moment, _origin, ignored = run_moment(settings.run.run_timestamp, settings.run.job_name, now)
    if ignored:
        log.warning(
            "%s=%s gives no run timestamp: %s; the run uses the clock",
            JOB_NAME.name,
            settings.run.job_name,
            ignored,
            extra=logs.fields(event="run.timestamp_from_clock"),
        )
    return moment


def backup_database(
    run: BackupRun,
    tools: Tools,
    database: str,
    properties: dict[str, Any] | None = None,
    previous: Manifest | None = None,
) -> DatabaseResult:
    """Back up one database: dump object, then manifest."""
    dump = run.dump

    def make_dump() -> PgDump:
        return PgDump(
            tools.pg_dump,
            database,
            lock_wait_timeout=dump.lock_wait_timeout,
            extra_options=dump.pg_dump_options,
            timeout=dump.database_timeout,
        )

    with stopping.abandonable():  # a query to a server that stopped answering: a stop does not wait for it
        owners = _owners(database)
    source = Source(database, make_dump, properties=properties, previous=previous, owners=owners, split=tools.split)
    return _logged(attempt(run, source))


def _owners(database: str) -> list[str] | None:
    """The roles owning objects in ``database`` (whose code a restore runs), or None when they
    cannot be read; the backup goes on either way."""
    try:
        return database_owners(backup_server(), database)
    except Exception as exc:  # psycopg2's errors, or a database that went away: the dump will say
        log.warning(
            "the owners of %r were not recorded (%s); restoring it as a superuser will need --as-superuser",
            display_name(database),
            one_line(exc)[:200],
            extra=logs.fields(event="backup.owners_unknown", database=database),
        )
        return None


def backup_globals(run: BackupRun, tools: Tools) -> DatabaseResult:
    """Store ``pg_dumpall --globals-only``; without role passwords where reading them is denied."""

    def source(role_passwords: bool) -> Source:
        def make_dump() -> PgDump:
            argv = globals_argv(tools.pg_dumpall, tools.database, role_passwords)
            return PgDump(
                tools.pg_dumpall,
                GLOBALS,
                lock_wait_timeout=0,
                extra_options=(),
                timeout=run.dump.database_timeout,
                argv=argv,
            )

        return Source(GLOBALS, make_dump, role_passwords=role_passwords, count_rows=False)

    result = attempt(run, source(True))
    if not result.ok and "pg_authid" in result.error and "permission denied" in result.error:
        log.warning(
            "the server does not let %s read role passwords (%s); storing the globals without them",
            os.environ.get(PGUSER.name) or "this user",
            result.error,
            extra=logs.fields(event="backup.globals_without_passwords", database=GLOBALS),
        )
        result = attempt(run, source(False))
    return _logged(result)


def _logged(result: DatabaseResult) -> DatabaseResult:
    if not result.ok and not stopping.requested():  # after a stop, the run's stopped line names it
        log.error(
            "backup of %r FAILED: %s",
            display_name(result.database),
            result.error,
            extra=logs.fields(event="backup.failed", database=result.database, key=result.key, error=result.error),
        )
    return result


def run(settings: Settings, started: datetime | None = None, result: RunResult | None = None) -> RunResult:
    """Back up every selected database (this shard's); raises ``RunError`` only when nothing can
    start. ``started`` overrides the run's key moment (``core.runkey``). ``result`` (the caller's,
    to be filled in) is what a stop request (``Interrupted``) leaves: what was stored before it."""
    check_command(settings, "run")
    signer = open_signer(settings)  # a key that cannot be used stops the run before anything starts
    clock = time.monotonic()
    now = datetime.now(UTC)
    if result is None:
        result = RunResult(timestamp=format_timestamp(started or key_moment(settings, now)), shard=settings.run.shard)
    tools = prepare(settings)
    selection = select_databases(tools.server.databases, settings.dump.include, settings.dump.exclude)
    if not selection.databases and not selection.missing:
        raise RunError(
            f"no databases to back up: the server has {len(tools.server.databases)} "
            f"connectable databases and the filters selected none",
            hint=f"check {DATABASES.name} and {EXCLUDE_DATABASES.name}",
        )
    mine = shards.plan(selection, settings.run.shard, settings.dump.globals)
    result.planned = [*([GLOBALS] if mine.globals else []), *mine.databases, *mine.missing]
    storage = open_destination(settings)
    storage.prepare()
    log.info(
        "run %s started: %d databases%s on PostgreSQL %s with pg_dump %s -> %s",
        result.label,
        len(mine.databases),
        f" of {len(selection.databases)}" if settings.run.shard.sharded else "",
        tools.server.version,
        tools.pg_dump_version,
        settings.destination.url,
        extra=logs.fields(
            event="run.started",
            timestamp=result.timestamp,
            databases=list(mine.databases),
            **({"shard": str(settings.run.shard)} if settings.run.shard.sharded else {}),
        ),
    )
    sweep_unfinished_uploads(
        storage, settings.destination.prefix, timedelta(seconds=settings.upload.abandoned_upload_age)
    )
    previous = _previous_backups(settings, storage, signer)
    result.suspect = _warn_suspect(previous)
    properties = _database_properties(settings, mine.databases)
    _log_skipped(tools.server)
    for name in mine.missing:
        why = tools.server.skipped.get(name)
        error = f"cannot be dumped: {why}" if why else f"no such database; check {DATABASES.name}"
        result.results.append(_logged(DatabaseResult(name, ok=False, error=error)))
    backups = writer(
        settings, storage, tools, result.timestamp, previous.keys() if previous is not None else None, signer
    )
    jobs: list[Callable[[], DatabaseResult]] = [partial(backup_globals, backups, tools)] if mine.globals else []
    for database in mine.databases:
        last = previous.latest(database) if previous is not None else None
        jobs.append(
            partial(
                backup_database, backups, tools, database, properties.get(database), last.manifest if last else None
            )
        )
    parallel = Parallel(jobs, settings.dump.parallel_databases)
    try:
        result.results.extend(parallel.run(backups.stop))
    except Interrupted:
        result.results.extend(parallel.done())  # stored before the stop; nothing after it counts
        result.finishing = backups.finishing()
        result.seconds = time.monotonic() - clock
        raise
    result.seconds = time.monotonic() - clock
    _log_summary(result)
    if settings.run.retention:
        _apply_retention(settings, storage, result, signer)
    if result.ok and settings.run.shard.sharded and settings.report.healthcheck_url is not None:
        result.ping_success = shards.announce_whole_run(
            storage, settings.destination.prefix, result.timestamp, settings.run.run_id, mine
        )
    return result


def _log_skipped(server: Server) -> None:
    """One line naming every database left out and why; a warning when one is not a template."""
    if not server.skipped:
        return
    names = ", ".join(f"{name!r} ({why})" for name, why in server.skipped.items())
    worrying = any(why != TEMPLATE for why in server.skipped.values())
    (log.warning if worrying else log.info)(
        "not backed up: %s", names, extra=logs.fields(event="run.skipped", skipped=server.skipped)
    )


def _log_summary(result: RunResult) -> None:
    total = result.stored_bytes
    log_summary = log.error if result.failed else log.info
    log_summary(
        "run %s %s: %d ok, %d failed%s, %s written in %.1f s",
        result.label,
        "FAILED" if result.failed else "finished",
        len(result.succeeded),
        len(result.failed),
        f" ({', '.join(display_name(r.database) for r in result.failed)})" if result.failed else "",
        logs.human_bytes(total),
        result.seconds,
        extra=logs.fields(
            event="run.finished",
            ok=len(result.succeeded),
            failed=len(result.failed),
            compressed_bytes=total,
            seconds=round(result.seconds, 3),
            **({"shard": str(result.shard)} if result.shard.sharded else {}),
        ),
    )


def _apply_retention(settings: Settings, storage: Storage, result: RunResult, signer: SigningKey | None) -> None:
    if result.failed:
        log.warning(
            "retention skipped: the run had failures, so nothing is deleted",
            extra=logs.fields(event="retention.skipped"),
        )
        return
    try:
        catalog = open_catalog(settings, storage, signer)
        result.retention = prune(catalog, settings.run.retention, datetime.now(UTC))
    except PgBackupError as exc:
        result.retention_error = str(exc)
    else:
        result.retention_error = result.retention.trouble()
    if result.retention_error:
        log.error(
            "retention FAILED: %s",
            result.retention_error,
            extra=logs.fields(event="retention.failed", error=result.retention_error),
        )


def _warn_suspect(catalog: Catalog | None) -> int | None:
    """Log the backups dated in the future (a forger's or a wrong clock's); their number, or
    None when the destination was not listed."""
    if catalog is None:
        return None
    suspects = catalog.suspects()
    if suspects:
        log.warning(
            "%d backups in the destination are SUSPECT, dated in the future: %s; never picked, kept or "
            "deleted by retention; look at them (`pgbackup list`)",
            len(suspects),
            ", ".join(f"{display_name(b.database)!r} {b.timestamp}" for b in suspects[:5]),
            extra=logs.fields(event="run.suspect", count=len(suspects)),
        )
    return len(suspects)


def _previous_backups(settings: Settings, storage: Storage, signer: SigningKey | None) -> Catalog | None:
    """The catalog for the shrink alarm, or None when it is off or cannot be read."""
    if not settings.run.shrink_alarm:
        return None
    try:
        return open_catalog(settings, storage, signer)
    except PgBackupError as exc:
        log.info("shrink alarm off for this run: the backups cannot be listed (%s)", exc)
        return None


def _database_properties(settings: Settings, databases: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Owner, locale, settings and GRANTs of each database, for ``restore --create``."""
    if not databases:
        return {}
    try:
        connection = backup_server().connect(settings.postgres.discovery_database)
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
