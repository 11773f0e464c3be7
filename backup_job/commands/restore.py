"""``pgbackup restore``: one backup back into a database, all or nothing.

Steps for a database:

1. pick the backup: the newest complete one, or the newest at or before ``--at``;
2. check the target: with ``--create`` it must not exist and is created from template0 with
   the captured encoding, locale and owner; without it, it must exist and be empty, unless
   ``--clean``;
3. load it through ``pipeline.load`` into psql, inside one transaction. With ``--clean``
   the transaction starts by dropping every schema, extension and other object of the
   target (``pg.databases.CLEAN_SQL``), so the old contents go only if the new ones arrive
   whole;
4. COMMIT only after the whole object was read and matched its manifest's sha256;
5. with ``--create``, reapply the captured database settings, GRANTs and comment. A database
   this restore created is dropped again if any later step fails.

``restore --globals`` loads the newest roles-and-tablespaces object. pg_dumpall writes
``CREATE ROLE`` for every role, including the one restoring, so that file is meant to be run
to the end with "already exists" errors tolerated: it is read whole and checked first
(it is small), then loaded without ON_ERROR_STOP; any other error fails the restore.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..core import logs, signals
from ..core.errors import NotFoundError, RestoreError, one_line
from ..core.layout import GLOBALS, display_name
from ..core.moments import parse_at as parse_at  # re-exported: --at was parsed here before the operator needed it
from ..pg import dbprops
from ..pg.databases import count_objects, database_exists, drop_database
from ..pg.psql import Psql, error_line
from ..pg.target import Target
from ..pg.tools import find_tool
from ..pipeline.catalog import Backup, Catalog, load_catalog
from ..pipeline.load import ReadStats, load_backup, read_verified
from ..pipeline.unseal import Keyring
from ..storage.base import Storage

GLOBALS_LIMIT = 256 * 1024 * 1024
log = logs.get("restore")


def choose(catalog: Catalog, database: str, at: datetime | None) -> Backup:
    """The backup to restore: the newest (at or before ``at``) that a run finished. A damaged
    or unknown one is refused by name, never passed over for an older one in silence;
    ``NotFoundError`` says what exists when there is none."""
    backup = catalog.newest(database, at)
    name = display_name(database)
    if backup is not None and backup.complete:
        return backup
    if backup is not None:
        older = catalog.latest(database, backup.time - timedelta(seconds=1))
        choice = (f"restore an older one with --at {older.timestamp}" if older is not None
                  else "no older complete backup exists")
        raise RestoreError(f"the backup of {name!r} from {backup.timestamp} is {backup.state()}; {choice}",
                           hint="`pgbackup list` shows every backup and its state")
    complete = catalog.complete(database)
    where = catalog.storage.describe(catalog.prefix)
    if not complete:
        raise NotFoundError(f"no complete backup of {name!r} under {where}; `pgbackup list` shows what exists")
    oldest = complete[-1].timestamp
    raise NotFoundError(
        f"no backup of {name!r} at or before {at.isoformat() if at else 'now'}; the oldest is {oldest}"
    )


@dataclass
class RestoreResult:
    database: str
    target: str
    backup: Backup
    stats: ReadStats
    seconds: float


def restore_database(
    storage: Storage, prefix: str, target: Target, database: str, *, at: datetime | None = None,
    into: str | None = None, create: bool = False, clean: bool = False, bindir: Path | None = None,
    keyring: Keyring | None = None,
) -> RestoreResult:
    """Restore ``database``'s backup into ``into`` (default: the same name)."""
    started = time.monotonic()
    catalog = load_catalog(storage, prefix)
    backup = choose(catalog, database, at)
    assert backup.manifest is not None
    keyring = keyring or Keyring(None)
    keyring.check(backup.manifest, f"backup {backup.timestamp} of {display_name(database)!r}")
    name = into or database
    psql_path = find_tool("psql", bindir)
    exists = database_exists(target, name)
    if create and exists:
        raise RestoreError(f"database {name!r} exists already on {target.label}; drop it, pick another "
                           f"--target, or restore into it without --create")
    if not create and not exists:
        raise NotFoundError(f"database {name!r} does not exist on {target.label}; add --create to create it")
    if exists and not clean:
        objects = count_objects(target, name)
        if objects:
            raise RestoreError(f"database {name!r} is not empty ({objects} objects); restore with --clean to "
                               f"replace its contents, or into an empty or new database (--target, --create)")
    log.info("restore of %r from %s (%s) into %r started%s", display_name(database), backup.timestamp,
             storage.describe(backup.manifest.key), name, " (--clean)" if clean else "",
             extra=logs.fields(event="restore.started", database=database, target=name, timestamp=backup.timestamp))
    created = False
    try:
        if create:
            properties = backup.manifest.database_properties
            with signals.held(), closing(target.connect()) as connection:  # created means recorded
                try:
                    dbprops.create_database(connection, name, properties, owner=True)
                except Exception as exc:
                    raise RestoreError(f"CREATE DATABASE {name!r} failed: {one_line(exc)}",
                                       hint=_owner_hint(exc)) from exc
                created = True
        stats = load_backup(storage, backup, psql_path, target, name, clean=clean, keyring=keyring)
        if create:
            with closing(target.connect()) as connection:
                try:
                    dbprops.apply_properties(connection, name, backup.manifest.database_properties)
                except Exception as exc:
                    raise RestoreError(f"reapplying the settings of database {name!r} failed: {one_line(exc)}",
                                       hint=_owner_hint(exc)) from exc
    except BaseException:
        if created:
            _drop_quietly(target, name)
        raise
    seconds = time.monotonic() - started
    log.info("restore of %r into %r finished: %s from %s, sha256 verified, in %.1f s",
             display_name(database), name, logs.human_bytes(stats.raw_bytes), backup.timestamp, seconds,
             extra=logs.fields(event="restore.finished", database=database, target=name,
                               raw_bytes=stats.raw_bytes, seconds=round(seconds, 3)))
    return RestoreResult(database, name, backup, stats, seconds)


def restore_globals(
    storage: Storage, prefix: str, target: Target, *, at: datetime | None, bindir: Path | None = None,
    keyring: Keyring | None = None,
) -> int:
    """Load the roles and tablespaces; the number of statements that failed as expected."""
    catalog = load_catalog(storage, prefix)
    backup = choose(catalog, GLOBALS, at)
    assert backup.manifest is not None
    keyring = keyring or Keyring(None)
    keyring.check(backup.manifest, f"the globals of {backup.timestamp}")
    psql_path = find_tool("psql", bindir)
    data = bytearray()
    stored = storage.read_all(backup.manifest.key, GLOBALS_LIMIT)  # small: checked whole before loading
    read_verified([stored], backup.manifest, data.extend, keyring=keyring)
    log.info("restore of the globals from %s started (sha256 verified)", backup.timestamp,
             extra=logs.fields(event="restore.started", database="", timestamp=backup.timestamp))
    psql = Psql(psql_path, target.child_env(target.maintenance_database), transaction=False, stop_on_error=False)
    try:
        psql.write(bytes(data))
        psql.finish(commit=False)
    except BaseException:
        psql.abort()
        raise
    errors = list(psql.errors)
    unexpected = [line for line in errors if "already exists" not in line]
    if unexpected:
        first = error_line(unexpected[0])
        raise RestoreError(f"{len(unexpected)} statements of the globals failed, the first at {first}")
    if backup.manifest.role_passwords is False:
        log.warning("the globals of %s were stored without role passwords (the server did not allow "
                    "reading them); set passwords with ALTER ROLE ... PASSWORD", backup.timestamp)
    log.info("restore of the globals finished: %d roles or tablespaces existed already and were updated",
             len(errors), extra=logs.fields(event="restore.finished", database=""))
    return len(errors)


def _owner_hint(exc: Exception) -> str | None:
    if "role" in str(exc) and "does not exist" in str(exc):
        return "restore the roles first with `pgbackup restore --globals`"
    return None


def _drop_quietly(target: Target, name: str) -> None:
    try:
        with signals.held():
            drop_database(target, name)
    except Exception as exc:  # the original error matters more; say what is left behind
        log.error("could not drop database %r created by this restore: %s", name, exc)
