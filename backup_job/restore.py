"""``pgbackup restore``: one backup back into a database, all or nothing.

Steps for a database:

1. pick the backup: the newest complete one, or the newest at or before ``--at``;
2. check the target: with ``--create`` it must not exist and is created from template0 with
   the captured encoding, locale and owner; without it, it must exist and be empty, unless
   ``--clean``;
3. load it through ``load.read_verified`` into psql, inside one transaction. With ``--clean``
   the transaction starts by dropping every schema, extension and other object of the
   target (``CLEAN_SQL``), so the old contents go only if the new ones arrive whole;
4. COMMIT only after the whole object was read and matched its manifest's sha256;
5. with ``--create``, reapply the captured database settings, GRANTs and comment. A database
   this restore created is dropped again if any later step fails.

``restore --globals`` loads the newest roles-and-tablespaces object. pg_dumpall writes
``CREATE ROLE`` for every role, including the one restoring, so that file is meant to be run
to the end with "already exists" errors tolerated: it is read whole and checked first
(it is small), then loaded without ON_ERROR_STOP; any other error fails the restore.
"""

from __future__ import annotations

import re
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from psycopg2 import sql

from . import dbprops, logs, signals
from .catalog import Backup, Catalog, load_catalog
from .dump import find_tool
from .errors import NotFoundError, RestoreError
from .layout import GLOBALS, display_name, parse_timestamp
from .load import Psql, ReadStats, read_verified
from .pipeline import ProgressReporter, StreamStats
from .storage.base import Storage
from .target import Target

GLOBALS_LIMIT = 256 * 1024 * 1024
log = logs.get("restore")

# Everything a plain dump may create, dropped inside the restore's transaction. The public
# schema is recreated with its owner, privileges and comment, since dumps assume it exists.
CLEAN_SQL = r"""
DO $pgbackup_clean$
DECLARE
    r record;
    public_owner oid;
    public_acl aclitem[];
    public_comment text;
BEGIN
    FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
        EXECUTE format('DROP EVENT TRIGGER %I', r.evtname);
    END LOOP;
    FOR r IN SELECT pubname FROM pg_catalog.pg_publication LOOP
        EXECUTE format('DROP PUBLICATION %I', r.pubname);
    END LOOP;
    FOR r IN SELECT extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' LOOP
        EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
    END LOOP;
    FOR r IN SELECT nspname FROM pg_catalog.pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
               AND nspname !~ '^pg_' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
    END LOOP;
    FOR r IN SELECT srvname FROM pg_catalog.pg_foreign_server LOOP
        EXECUTE format('DROP SERVER IF EXISTS %I CASCADE', r.srvname);
    END LOOP;
    FOR r IN SELECT fdwname FROM pg_catalog.pg_foreign_data_wrapper LOOP
        EXECUTE format('DROP FOREIGN DATA WRAPPER IF EXISTS %I CASCADE', r.fdwname);
    END LOOP;
    PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
    SELECT n.nspowner, n.nspacl, pg_catalog.obj_description(n.oid, 'pg_namespace')
      INTO public_owner, public_acl, public_comment
      FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public';
    IF FOUND THEN
        DROP SCHEMA public CASCADE;
        EXECUTE format('CREATE SCHEMA public AUTHORIZATION %I', pg_catalog.pg_get_userbyid(public_owner));
        FOR r IN SELECT * FROM pg_catalog.aclexplode(public_acl) WHERE grantee <> public_owner LOOP
            EXECUTE format('GRANT %s ON SCHEMA public TO %s%s', r.privilege_type,
                CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END,
                CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        IF public_comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON SCHEMA public IS %L', public_comment);
        END IF;
    END IF;
END
$pgbackup_clean$;
"""

# Objects a database gets only from someone: anything outside the system schemas.
_CONTENTS_SQL = r"""
SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
     + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
     + (SELECT count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND t.typtype IN ('d', 'e', 'r', 'b'))
     + (SELECT count(*) FROM pg_catalog.pg_namespace
         WHERE nspname NOT IN ('information_schema', 'public') AND nspname !~ '^pg_')
     + (SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql')
     + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)
"""


def parse_at(text: str) -> datetime | None:
    """``latest`` -> None; ``20261126T020000Z``, ISO 8601 (UTC if no offset), or a date
    (meaning the end of that UTC day) -> a moment. ``ValueError`` otherwise."""
    value = text.strip()
    if value.lower() in ("", "latest"):
        return None
    if re.fullmatch(r"\d{8}T\d{6}Z", value):
        return parse_timestamp(value)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        day = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        return day + timedelta(days=1) - timedelta(microseconds=1)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"--at {text!r} is not a time; use latest, 2026-11-26, 2026-11-26T02:30:00Z or 20261126T023000Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def choose(catalog: Catalog, database: str, at: datetime | None) -> Backup:
    """The backup to restore, or ``NotFoundError`` saying what exists."""
    backup = catalog.latest(database, at)
    if backup is not None:
        return backup
    name = display_name(database)
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


def _database_exists(target: Target, name: str) -> bool:
    with closing(target.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None


def count_objects(target: Target, name: str) -> int:
    connection = target.connect(name)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_CONTENTS_SQL)
            row = cursor.fetchone()
            return int(row[0]) if row else 0
    finally:
        connection.close()


def drop_database(target: Target, name: str) -> None:
    """Drop ``name``, disconnecting sessions still in it; raises only when it cannot."""
    connection = target.connect()
    try:
        force = sql.SQL(" WITH (FORCE)") if int(connection.server_version) >= 130000 else sql.SQL("")
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))
    finally:
        connection.close()


def load_backup(
    storage: Storage, backup: Backup, psql_path: str, target: Target, database: str, *, clean: bool
) -> ReadStats:
    """Stream one backup into ``database`` inside one transaction; COMMIT only when verified."""
    assert backup.manifest is not None
    manifest = backup.manifest
    name = display_name(backup.database)
    stats = StreamStats()
    read = ReadStats()

    def progress(current: StreamStats) -> None:
        log.info("restore of %r in progress: %s of %s read", name, logs.human_bytes(read.compressed_bytes),
                 logs.human_bytes(manifest.compressed_bytes),
                 extra=logs.fields(event="restore.progress", compressed_bytes=read.compressed_bytes))

    psql = Psql(psql_path, target.child_env(database), transaction=True)
    try:
        if clean:
            psql.write(CLEAN_SQL.encode())
        with ProgressReporter(stats, progress, 30):
            read_verified(storage.read(manifest.key), manifest, psql.write, read)
        psql.commit()
    except BaseException:
        psql.abort()
        raise
    return read


def restore_database(
    storage: Storage, prefix: str, target: Target, database: str, *, at: datetime | None = None,
    into: str | None = None, create: bool = False, clean: bool = False, bindir: Path | None = None,
) -> RestoreResult:
    """Restore ``database``'s backup into ``into`` (default: the same name)."""
    started = time.monotonic()
    catalog = load_catalog(storage, prefix)
    backup = choose(catalog, database, at)
    assert backup.manifest is not None
    name = into or database
    psql_path = find_tool("psql", bindir)
    exists = _database_exists(target, name)
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
                    raise RestoreError(f"CREATE DATABASE {name!r} failed: {_pg_message(exc)}",
                                       hint=_owner_hint(exc)) from exc
                created = True
        stats = load_backup(storage, backup, psql_path, target, name, clean=clean)
        if create:
            with closing(target.connect()) as connection:
                try:
                    dbprops.apply_properties(connection, name, backup.manifest.database_properties)
                except Exception as exc:
                    raise RestoreError(f"reapplying the settings of database {name!r} failed: {_pg_message(exc)}",
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
    storage: Storage, prefix: str, target: Target, *, at: datetime | None, bindir: Path | None = None
) -> int:
    """Load the roles and tablespaces; the number of statements that failed as expected."""
    catalog = load_catalog(storage, prefix)
    backup = choose(catalog, GLOBALS, at)
    assert backup.manifest is not None
    psql_path = find_tool("psql", bindir)
    data = bytearray()
    stored = storage.read_all(backup.manifest.key, GLOBALS_LIMIT)  # small: checked whole before loading
    read_verified([stored], backup.manifest, data.extend)
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
        first = re.sub(r"^psql:<stdin>:(\d+): ", r"line \1: ", unexpected[0])
        raise RestoreError(f"{len(unexpected)} statements of the globals failed, the first at {first}")
    if backup.manifest.role_passwords is False:
        log.warning("the globals of %s were stored without role passwords (the server did not allow "
                    "reading them); set passwords with ALTER ROLE ... PASSWORD", backup.timestamp)
    log.info("restore of the globals finished: %d roles or tablespaces existed already and were updated",
             len(errors), extra=logs.fields(event="restore.finished", database=""))
    return len(errors)


def _pg_message(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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
