"""One backup run, from discovery to the summary line.

Order of work:

1. find pg_dump and its version; discover the server version and databases (one
   connection). A server newer than pg_dump fails the run up front with both versions named,
   instead of pg_dump's own abort once per database;
2. select databases; nothing selected is a failure;
3. abort unfinished uploads a killed earlier run left in our layout;
4. store the globals (``pg_dumpall --globals-only``: roles, memberships, tablespaces) under
   ``_globals/``, unless ``BACKUP_GLOBALS=false``. A server that denies reading role
   passwords (managed services) gets a second attempt without them, said in the log and the
   manifest;
5. back up each database in isolation: any error of one database is logged with the
   database's name and cause and counted, and the run moves on. While a dump streams, its
   COPY rows are counted per table; the database's own properties (owner, locale, settings,
   GRANTs) were read in step 1. Both go into the manifest;
6. log one summary line. The result says how many succeeded and failed; the CLI turns it
   into the exit code;
7. only when nothing failed, apply ``BACKUP_RETENTION``.

Every database of one run shares the run's start time as its key timestamp.

The shrink alarm compares each new backup with the previous complete one of the same
database, read from a listing taken at the start. Credentials that may not list the bucket
(write-only backups) turn the alarm off for the run, with one log line saying so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from typing import Any

from . import dbprops, logs
from .catalog import Catalog, load_catalog
from .compress import GzipCompressor
from .config import Settings
from .copycount import CopyRowCounter
from .discovery import Server, describe_target, discover, select_databases
from .dump import PgDump, find_tool, globals_argv, major, tool_version
from .errors import BackupExistsError, DatabaseError, PgBackupError, RunError
from .layout import DUMP_SUFFIX, GLOBALS, backup_keys, display_name, format_timestamp, parse_key
from .manifest import Manifest, isoformat
from .pipeline import StreamStats, stream_backup
from .retention import PruneResult, prune
from .storage import Storage, open_storage
from .target import backup_server

log = logs.get("run")


@dataclass
class DatabaseResult:
    """The outcome for one database."""

    database: str
    ok: bool
    key: str = ""
    error: str = ""
    stats: StreamStats | None = None


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

    def failure_summary(self) -> str:
        """One line naming every failed database and its cause."""
        if not self.failed:
            return f"every backup succeeded, but retention failed: {self.retention_error}"
        causes = "; ".join(f"{display_name(r.database)!r}: {r.error}" for r in self.failed)
        return f"{len(self.failed)} of {len(self.results)} backups failed: {causes}"


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
            f"set BACKUP_PG_BINDIR to a PostgreSQL {server.major}+ bin directory",
        )
    pg_dumpall = find_tool("pg_dumpall", settings.pg_bindir) if settings.globals else ""
    return Tools(pg_dump=pg_dump, pg_dump_version=dump_version, server=server, pg_dumpall=pg_dumpall)


def _rate(count: int, seconds: float) -> str:
    return f"{logs.human_bytes(count / seconds if seconds > 0 else 0)}/s"


def _sweep_stale_uploads(storage: Storage, prefix: str, before: datetime) -> None:
    def ours(key: str) -> bool:
        parsed = parse_key(prefix, key)
        return parsed is not None and parsed[2] == DUMP_SUFFIX

    try:
        aborted = storage.abort_stale_uploads(prefix, before, ours)
    except DatabaseError as exc:
        log.warning("could not clean up unfinished uploads: %s", exc)
        return
    for key in aborted:
        log.warning("aborted an unfinished upload left by an earlier run: %s", storage.describe(key))


@dataclass
class Source:
    """What one backup object is made from, and what its manifest says about it."""

    database: str  # GLOBALS for the roles and tablespaces
    make_dump: Callable[[], PgDump]  # a new process per attempt
    properties: dict[str, Any] | None = None
    previous: Manifest | None = None  # the last complete backup, for the shrink alarm
    role_passwords: bool | None = None
    count_rows: bool = True


def backup_database(
    settings: Settings, storage: Storage, tools: Tools, database: str, timestamp: str,
    properties: dict[str, Any] | None = None, previous: Manifest | None = None,
) -> DatabaseResult:
    """Back up one database: dump object, then manifest. Never raises for its own failures."""
    def make_dump() -> PgDump:
        return PgDump(tools.pg_dump, database, lock_wait_timeout=settings.lock_wait_timeout,
                      extra_options=settings.pg_dump_options, timeout=settings.database_timeout)

    source = Source(database, make_dump, properties=properties, previous=previous)
    return store_backup(settings, storage, tools, source, timestamp)


def backup_globals(settings: Settings, storage: Storage, tools: Tools, timestamp: str) -> DatabaseResult:
    """Store ``pg_dumpall --globals-only``; without role passwords where reading them is denied."""
    def source(role_passwords: bool) -> Source:
        def make_dump() -> PgDump:
            argv = globals_argv(tools.pg_dumpall, settings.discovery_database, role_passwords)
            return PgDump(tools.pg_dumpall, GLOBALS, lock_wait_timeout=0, extra_options=(),
                          timeout=settings.database_timeout, argv=argv)
        return Source(GLOBALS, make_dump, role_passwords=role_passwords, count_rows=False)

    result = store_backup(settings, storage, tools, source(True), timestamp, quiet_failure=True)
    if result.ok:
        return result
    if "pg_authid" in result.error and "permission denied" in result.error:
        log.warning(
            "the server does not let %s read role passwords (%s); storing the globals without them",
            os.environ.get("PGUSER") or "this user", result.error,
            extra=logs.fields(event="backup.globals_without_passwords", database=GLOBALS),
        )
        result = store_backup(settings, storage, tools, source(False), timestamp, quiet_failure=True)
    if not result.ok:
        return _failed(GLOBALS, result.key, result.error)
    return result


def store_backup(
    settings: Settings, storage: Storage, tools: Tools, source: Source, timestamp: str,
    quiet_failure: bool = False,
) -> DatabaseResult:
    """Stream one source to its object, then write its manifest."""
    database = source.database
    name = display_name(database)
    keys = backup_keys(settings.destination.prefix, database, timestamp)
    where = storage.describe(keys.dump)
    fields = {"database": database, "key": keys.dump}
    log.info("backup of %r started -> %s", name, where, extra=logs.fields(event="backup.started", **fields))
    started_at = datetime.now(timezone.utc)
    counter = CopyRowCounter()

    def progress(stats: StreamStats) -> None:
        log.info(
            "backup of %r in progress: %s read, %s written, %s",
            name, logs.human_bytes(stats.raw_bytes), logs.human_bytes(stats.compressed_bytes),
            _rate(stats.raw_bytes, stats.seconds),
            extra=logs.fields(event="backup.progress", raw_bytes=stats.raw_bytes,
                              compressed_bytes=stats.compressed_bytes, **fields),
        )

    try:
        if storage.exists(keys.dump) or storage.exists(keys.manifest):
            raise BackupExistsError(f"{where} exists already; pgbackup never overwrites a backup")
        dump = source.make_dump()
        try:
            upload = storage.start_upload(keys.dump, "application/gzip")
        except BaseException:
            dump.kill()
            dump.close()
            raise
        stats = stream_backup(
            dump, GzipCompressor(settings.compression_level), upload,
            base_part_size=settings.part_size, progress=progress,
            progress_interval=settings.progress_interval,
            observe=counter.feed if source.count_rows else None,
        )
        finished_at = datetime.now(timezone.utc)
        shrink = _shrink_alarm(settings.shrink_alarm, source.previous, stats.compressed_bytes)
        manifest = Manifest(
            database=database, key=keys.dump, run_timestamp=timestamp,
            raw_bytes=stats.raw_bytes, compressed_bytes=stats.compressed_bytes,
            sha256=stats.sha256, parts=stats.parts,
            pg_dump_version=tools.pg_dump_version, server_version=tools.server.version,
            started_at=isoformat(started_at), finished_at=isoformat(finished_at),
            duration_seconds=round(stats.seconds, 3),
            compression_level=settings.compression_level,
            pg_dump_options=list(settings.pg_dump_options) if database != GLOBALS else [],
            kind="globals" if database == GLOBALS else "database",
            row_counts=dict(sorted(counter.counts.items())),
            database_properties=source.properties,
            role_passwords=source.role_passwords,
            shrink_alarm=shrink,
        )
        try:
            storage.put(keys.manifest, manifest.to_json(), "application/json")
        except BaseException:
            _remove_quietly(storage, keys.dump)
            raise
    except DatabaseError as exc:
        if quiet_failure:
            return DatabaseResult(database=database, ok=False, key=keys.dump, error=str(exc))
        return _failed(database, keys.dump, str(exc))
    except Exception as exc:  # isolation: one database's surprise never stops the others
        log.debug("unexpected error backing up %r", name, exc_info=True)
        return _failed(database, keys.dump, f"unexpected {type(exc).__name__}: {exc}")
    rows = sum(counter.counts.values())
    log.info(
        "backup of %r finished: %s compressed (%s raw%s) in %.1f s, %s, sha256 %s -> %s",
        name, logs.human_bytes(stats.compressed_bytes), logs.human_bytes(stats.raw_bytes),
        f", {len(counter.counts)} tables, {rows} rows" if source.count_rows else "",
        stats.seconds, _rate(stats.raw_bytes, stats.seconds), stats.sha256[:12], where,
        extra=logs.fields(event="backup.finished", raw_bytes=stats.raw_bytes,
                          compressed_bytes=stats.compressed_bytes, seconds=round(stats.seconds, 3),
                          sha256=stats.sha256, manifest=keys.manifest, tables=len(counter.counts),
                          rows=rows, **fields),
    )
    if shrink is not None:
        log.warning(
            "backup of %r SHRANK: %s compressed is below %d%% of the previous backup (%s, %s); "
            "check that data was not lost",
            name, logs.human_bytes(stats.compressed_bytes), round(settings.shrink_alarm * 100),
            shrink["previous_timestamp"], logs.human_bytes(shrink["previous_compressed_bytes"]),
            extra=logs.fields(event="backup.shrunk", **fields, **shrink),
        )
    return DatabaseResult(database=database, ok=True, key=keys.dump, stats=stats)


def _shrink_alarm(fraction: float, previous: Manifest | None, size: int) -> dict[str, Any] | None:
    if not fraction or previous is None or size >= fraction * previous.compressed_bytes:
        return None
    return {
        "previous_timestamp": previous.run_timestamp,
        "previous_compressed_bytes": previous.compressed_bytes,
        "fraction": fraction,
    }


def _remove_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except DatabaseError as exc:
        log.error("could not remove %s after its manifest failed: %s", storage.describe(key), exc)


def _failed(database: str, key: str, reason: str) -> DatabaseResult:
    log.error(
        "backup of %r FAILED: %s", display_name(database), reason,
        extra=logs.fields(event="backup.failed", database=database, key=key, error=reason),
    )
    return DatabaseResult(database=database, ok=False, key=key, error=reason)


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
            hint="check BACKUP_DATABASES and BACKUP_EXCLUDE_DATABASES",
        )
    storage = open_storage(settings)
    log.info(
        "run %s started: %d databases on PostgreSQL %s with pg_dump %s -> %s",
        result.timestamp, len(selection.databases), tools.server.version, tools.pg_dump_version,
        settings.destination.url,
        extra=logs.fields(event="run.started", timestamp=result.timestamp,
                          databases=list(selection.databases)),
    )
    _sweep_stale_uploads(storage, settings.destination.prefix, started)
    previous = _previous_backups(settings, storage)
    properties = _database_properties(settings, selection.databases)
    for name in selection.missing:
        result.results.append(_failed(
            name, "", "no such database (or it does not allow connections); "
            "check BACKUP_DATABASES",
        ))
    if settings.globals:
        result.results.append(backup_globals(settings, storage, tools, result.timestamp))
    for database in selection.databases:
        last = previous.latest(database) if previous is not None else None
        result.results.append(backup_database(
            settings, storage, tools, database, result.timestamp,
            properties=properties.get(database), previous=last.manifest if last else None,
        ))
    result.seconds = time.monotonic() - clock
    total = sum(r.stats.compressed_bytes for r in result.succeeded if r.stats)
    log_summary = log.error if result.failed else log.info
    log_summary(
        "run %s %s: %d ok, %d failed%s, %s written in %.1f s",
        result.timestamp, "FAILED" if result.failed else "finished",
        len(result.succeeded), len(result.failed),
        f" ({', '.join(r.database for r in result.failed)})" if result.failed else "",
        logs.human_bytes(total), result.seconds,
        extra=logs.fields(event="run.finished", ok=len(result.succeeded), failed=len(result.failed),
                          compressed_bytes=total, seconds=round(result.seconds, 3)),
    )
    if settings.retention:
        _apply_retention(settings, storage, result)
    return result


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
        log.warning("database properties not captured: %s", " ".join(str(exc).split()))
        return {}
    finally:
        connection.close()
