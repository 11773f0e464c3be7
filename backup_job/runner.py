"""One backup run, from discovery to the summary line.

Order of work:

1. find pg_dump and its version; discover the server version and databases (one
   connection). A server newer than pg_dump fails the run up front with both versions named,
   instead of pg_dump's own abort once per database;
2. select databases; nothing selected is a failure;
3. abort unfinished uploads a killed earlier run left in our layout;
4. back up each database in isolation: any error of one database is logged with the
   database's name and cause and counted, and the run moves on;
5. log one summary line. The result says how many succeeded and failed; the CLI turns it
   into the exit code.

Every database of one run shares the run's start time as its key timestamp.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import logs
from .compress import GzipCompressor
from .config import Settings
from .discovery import Server, describe_target, discover, select_databases
from .dump import PgDump, find_tool, major, tool_version
from .errors import BackupExistsError, DatabaseError, Interrupted, RunError
from .layout import DUMP_SUFFIX, backup_keys, format_timestamp, parse_key
from .manifest import Manifest, isoformat
from .pipeline import StreamStats, stream_backup
from .storage import Storage, open_storage

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

    @property
    def failed(self) -> list[DatabaseResult]:
        return [r for r in self.results if not r.ok]

    @property
    def succeeded(self) -> list[DatabaseResult]:
        return [r for r in self.results if r.ok]

    def failure_summary(self) -> str:
        """One line naming every failed database and its cause."""
        causes = "; ".join(f"{r.database!r}: {r.error}" for r in self.failed)
        return f"{len(self.failed)} of {len(self.results)} databases failed: {causes}"


@dataclass(frozen=True)
class Tools:
    """The pg_dump this run uses and the server it talks to."""

    pg_dump: str
    pg_dump_version: str
    server: Server


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
    return Tools(pg_dump=pg_dump, pg_dump_version=dump_version, server=server)


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


def backup_database(
    settings: Settings, storage: Storage, tools: Tools, database: str, timestamp: str
) -> DatabaseResult:
    """Back up one database: dump object, then manifest. Never raises for its own failures."""
    keys = backup_keys(settings.destination.prefix, database, timestamp)
    where = storage.describe(keys.dump)
    fields = {"database": database, "key": keys.dump}
    log.info("backup of %r started -> %s", database, where, extra=logs.fields(event="backup.started", **fields))
    started_at = datetime.now(timezone.utc)

    def progress(stats: StreamStats) -> None:
        log.info(
            "backup of %r in progress: %s read, %s written, %s",
            database, logs.human_bytes(stats.raw_bytes), logs.human_bytes(stats.compressed_bytes),
            _rate(stats.raw_bytes, stats.seconds),
            extra=logs.fields(event="backup.progress", raw_bytes=stats.raw_bytes,
                              compressed_bytes=stats.compressed_bytes, **fields),
        )

    try:
        if storage.exists(keys.dump) or storage.exists(keys.manifest):
            raise BackupExistsError(f"{where} exists already; pgbackup never overwrites a backup")
        dump = PgDump(
            tools.pg_dump, database,
            lock_wait_timeout=settings.lock_wait_timeout,
            extra_options=settings.pg_dump_options,
            timeout=settings.database_timeout,
        )
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
        )
        finished_at = datetime.now(timezone.utc)
        manifest = Manifest(
            database=database, key=keys.dump, run_timestamp=timestamp,
            raw_bytes=stats.raw_bytes, compressed_bytes=stats.compressed_bytes,
            sha256=stats.sha256, parts=stats.parts,
            pg_dump_version=tools.pg_dump_version, server_version=tools.server.version,
            started_at=isoformat(started_at), finished_at=isoformat(finished_at),
            duration_seconds=round(stats.seconds, 3),
            compression_level=settings.compression_level,
            pg_dump_options=list(settings.pg_dump_options),
        )
        try:
            storage.put(keys.manifest, manifest.to_json(), "application/json")
        except BaseException:
            _remove_quietly(storage, keys.dump)
            raise
    except DatabaseError as exc:
        return _failed(database, keys.dump, str(exc))
    except Interrupted:
        raise
    except Exception as exc:  # isolation: one database's surprise never stops the others
        log.debug("unexpected error backing up %r", database, exc_info=True)
        return _failed(database, keys.dump, f"unexpected {type(exc).__name__}: {exc}")
    log.info(
        "backup of %r finished: %s compressed (%s raw) in %.1f s, %s, sha256 %s -> %s",
        database, logs.human_bytes(stats.compressed_bytes), logs.human_bytes(stats.raw_bytes),
        stats.seconds, _rate(stats.raw_bytes, stats.seconds), stats.sha256[:12], where,
        extra=logs.fields(event="backup.finished", raw_bytes=stats.raw_bytes,
                          compressed_bytes=stats.compressed_bytes, seconds=round(stats.seconds, 3),
                          sha256=stats.sha256, manifest=keys.manifest, **fields),
    )
    return DatabaseResult(database=database, ok=True, key=keys.dump, stats=stats)


def _remove_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except DatabaseError as exc:
        log.error("could not remove %s after its manifest failed: %s", storage.describe(key), exc)


def _failed(database: str, key: str, reason: str) -> DatabaseResult:
    log.error(
        "backup of %r FAILED: %s", database, reason,
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
    for name in selection.missing:
        result.results.append(_failed(
            name, "", "no such database (or it does not allow connections); "
            "check BACKUP_DATABASES",
        ))
    for database in selection.databases:
        result.results.append(backup_database(settings, storage, tools, database, result.timestamp))
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
    return result
