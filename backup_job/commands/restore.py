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
to the end with "already exists" errors tolerated: it is read whole (at most
``BACKUP_GLOBALS_LIMIT_MB`` once decompressed) and checked first, then loaded without
ON_ERROR_STOP; any other error, a refused meta-command included, fails the restore.

What a restore trusts, and what it needs said explicitly:

- only trusted backups are picked (``pipeline.catalog``): with signing keys configured, an
  unsigned backup is restored only with ``allow_unsigned`` (``--allow-unsigned``), and
  suspect or untrusted ones never; the newer ones passed over, incomplete ones (a dump
  without its manifest) included, are named in a WARNING;
- ``--clean`` drops the target's contents inside the restore's transaction, which a dump's own
  ``COMMIT`` would end early: only a signed backup's SQL is known to hold none, so an unsigned
  one needs ``--allow-unsigned`` as well;
- a restore runs the code of every role owning objects in the database (constraints,
  defaults, index expressions), in a session that code can turn back into the restoring
  role's (``RESET SESSION AUTHORIZATION``, even after pg_dump's per-object ``SET SESSION
  AUTHORIZATION``): a superuser restores a database whose owners (``manifest.owners``) are
  not all superusers only with ``as_superuser`` (``--as-superuser``); restoring as the
  database's owner needs nothing.
"""

from __future__ import annotations

import functools
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from psycopg2 import sql

from ..core import logs, signals
from ..core.errors import NotFoundError, RestoreError, one_line
from ..core.layout import GLOBALS, display_name
from ..core.moments import parse_at as parse_at  # re-exported: --at was parsed here before the operator needed it
from ..core.settings import GLOBALS_LIMIT_MB, SIGNING_KEY_FILE, SIGNING_PUBLIC_KEYS, DumpSettings
from ..pg import dbprops
from ..pg.databases import count_objects, database_exists, drop_database, table_name_parts
from ..pg.psql import Psql, check_restrict, error_line
from ..pg.roles import is_superuser, superuser_roles
from ..pg.target import Target, unenforced
from ..pg.tools import find_tool, tool_version
from ..pipeline.catalog import Backup, Catalog
from ..pipeline.load import ReadStats, load_backup, read_verified
from ..pipeline.unseal import Keyring, database_properties
from . import beside

GLOBALS_LIMIT = 256 * 1024 * 1024  # the default of BACKUP_GLOBALS_LIMIT_MB
log = logs.get("restore")


def choose(catalog: Catalog, database: str, at: datetime | None, allow_unsigned: bool = False) -> Backup:
    """The backup to restore: the newest trusted one (at or before ``at``), or with
    ``allow_unsigned`` the newest trusted or unsigned one. A damaged or unknown one is refused
    by name, never passed over for an older one in silence; the incomplete, suspect, unsigned and
    untrusted ones passed over are named in a WARNING; ``NotFoundError`` says what exists when there is none."""
    backup = catalog.newest(database, at)
    name = display_name(database)
    if allow_unsigned:
        newer_unsigned = [b for b in catalog.passed_over(database, backup, at) if b.unsigned]
        backup = newer_unsigned[0] if newer_unsigned else backup
    _warn_passed_over(catalog, database, backup, at)
    if backup is not None and (backup.trusted or (allow_unsigned and backup.unsigned)):
        return backup
    if backup is not None:
        older = catalog.latest(database, backup.time - timedelta(seconds=1))
        choice = (
            f"restore an older one with --at {older.timestamp}"
            if older is not None
            else "no older complete backup exists"
        )
        raise RestoreError(
            f"the backup of {name!r} from {backup.timestamp} is {backup.state()}; {choice}",
            hint="`pgbackup list` shows every backup and its state",
        )
    complete = catalog.complete(database)
    where = catalog.storage.describe(catalog.prefix)
    if not complete:
        some_unsigned = any(b.unsigned for b in catalog.of(database))
        raise NotFoundError(
            f"no complete {'signed ' if some_unsigned else ''}backup of {name!r} under {where}; "
            f"`pgbackup list` shows what exists"
            f"{'; restore an unsigned one with --allow-unsigned' if some_unsigned else ''}"
        )
    oldest = complete[-1].timestamp
    raise NotFoundError(f"no backup of {name!r} at or before {at.isoformat() if at else 'now'}; the oldest is {oldest}")


def _warn_passed_over(catalog: Catalog, database: str, chosen: Backup | None, at: datetime | None) -> None:
    for backup in catalog.passed_over(database, chosen, at):
        if backup is chosen:
            continue
        log.warning(
            "the backup of %r from %s is not restored: it is %s",
            display_name(database),
            backup.timestamp,
            backup.state(),
            extra=logs.fields(
                event="restore.passed_over", database=database, timestamp=backup.timestamp, state=backup.state()
            ),
        )


@dataclass
class RestoreResult:
    database: str
    target: str
    backup: Backup
    stats: ReadStats
    seconds: float


def restore_database(
    catalog: Catalog,
    target: Target,
    database: str,
    *,
    at: datetime | None = None,
    into: str | None = None,
    create: bool = False,
    clean: bool = False,
    bindir: Path | None = None,
    keyring: Keyring | None = None,
    allow_unsigned: bool = False,
    as_superuser: bool = False,
    jobs: int = 1,
    tables: list[str] | None = None,
    into_table: str | None = None,
) -> RestoreResult:
    """Restore ``database``'s backup into ``into`` (default: the same name); of a split
    backup, over ``jobs`` connections, and only ``tables`` when any are named."""
    started = time.monotonic()
    backup = choose(catalog, database, at, allow_unsigned)
    assert backup.manifest is not None
    tables = _check_split_request(catalog, backup, tables or [], create=create, clean=clean)
    keyring = keyring or Keyring(None)
    keyring.check(backup.manifest, f"backup {backup.timestamp} of {display_name(database)!r}")
    if clean and not backup.signed_by and not allow_unsigned:
        raise RestoreError(
            f"--clean drops the contents of the target inside the restore's transaction, and the backup of "
            f"{display_name(database)!r} from {backup.timestamp} is not signed: its SQL could commit that drop "
            f"early (whoever can write the bucket could have made it)",
            hint=f"sign backups ({SIGNING_KEY_FILE.name}, {SIGNING_PUBLIC_KEYS.name}), or add --allow-unsigned",
        )
    name = into or database
    psql_path = _psql(bindir)
    if not as_superuser:
        _refuse_owners_code_as_superuser(target, backup)
    in_use = into_table is not None or (bool(tables) and database_exists(target, name))
    if in_use and not backup.signed_by and not allow_unsigned:
        raise RestoreError(
            f"--table restores into a database that is in use, and the backup of {display_name(database)!r} from "
            f"{backup.timestamp} is not signed: its schema's SQL would run there, and whoever can write the bucket "
            "could have made it",
            hint=f"sign backups ({SIGNING_KEY_FILE.name}, {SIGNING_PUBLIC_KEYS.name}), restore the table into a new "
            "database (--target NAME --create), or add --allow-unsigned",
        )
    if into_table is not None:
        return _restore_beside(catalog, backup, target, name, tables, into_table, psql_path, keyring, jobs, started)
    storage = catalog.storage
    exists = database_exists(target, name)
    if create and exists:
        raise RestoreError(
            f"database {name!r} exists already on {target.label}; drop it, pick another "
            f"--target, or restore into it without --create"
        )
    if not create and not exists:
        raise NotFoundError(f"database {name!r} does not exist on {target.label}; add --create to create it")
    if tables and exists:
        _refuse_existing_tables(target, name, tables)
    elif exists and not clean:
        objects = count_objects(target, name)
        if objects:
            raise RestoreError(
                f"database {name!r} is not empty ({objects} objects); restore with --clean to "
                f"replace its contents, or into an empty or new database (--target, --create)"
            )
    log.info(
        "restore of %r from %s (%s) into %r started%s",
        display_name(database),
        backup.timestamp,
        storage.describe(backup.manifest.key),
        name,
        " (--clean)" if clean else "",
        extra=logs.fields(event="restore.started", database=database, target=name, timestamp=backup.timestamp),
    )
    created = False
    loading = False
    try:
        properties = database_properties(backup.manifest, keyring) if create else None
        if create:
            with signals.held(), closing(target.connect()) as connection:  # created means recorded
                try:
                    dbprops.create_database(connection, name, properties, owner=True)
                except RestoreError:
                    raise  # a property refused before anything was created: its own line
                except Exception as exc:
                    raise RestoreError(
                        f"CREATE DATABASE {name!r} failed: {one_line(exc)}", hint=_owner_hint(exc)
                    ) from exc
                created = True
        loading = bool(tables) and not created
        stats = load_backup(
            catalog, backup, psql_path, target, name, clean=clean, keyring=keyring, jobs=jobs, tables=tables
        )
        loading = False
        if create:
            with closing(target.connect()) as connection:
                try:
                    dbprops.apply_properties(connection, name, properties)
                except RestoreError:
                    raise
                except Exception as exc:
                    raise RestoreError(
                        f"reapplying the settings of database {name!r} failed: {one_line(exc)}", hint=_owner_hint(exc)
                    ) from exc
    except BaseException:
        if created:
            _drop_quietly(target, name)
        elif loading:
            _drop_tables_quietly(target, name, tables)
        raise
    seconds = time.monotonic() - started
    log.info(
        "restore of %r into %r finished: %s from %s, sha256 verified, in %.1f s",
        display_name(database),
        name,
        logs.human_bytes(stats.raw_bytes),
        backup.timestamp,
        seconds,
        extra=logs.fields(
            event="restore.finished",
            database=database,
            target=name,
            raw_bytes=stats.raw_bytes,
            seconds=round(seconds, 3),
        ),
    )
    return RestoreResult(database, name, backup, stats, seconds)


def _restore_beside(
    catalog: Catalog,
    backup: Backup,
    target: Target,
    database: str,
    tables: list[str],
    into_table: str,
    psql_path: str,
    keyring: Keyring,
    jobs: int,
    started: float,
) -> RestoreResult:
    """``--table T --into S.N`` (``beside``): T restored as S.N in ``database``, through a scratch database."""
    if len(tables) != 1:
        raise RestoreError("--into names the new name of one table: give exactly one --table with it")
    schema, new_name = beside.parse_into(into_table)
    if not database_exists(target, database):
        raise NotFoundError(f"database {database!r} does not exist on {target.label}")
    beside.check_destination(target, database, schema, new_name)
    table = tables[0]
    scratch = beside.scratch_name()
    log.info(
        "restore of %s of %r from %s into %s.%s of %r started, through scratch database %r",
        table,
        display_name(backup.database),
        backup.timestamp,
        schema,
        new_name,
        database,
        scratch,
        extra=logs.fields(event="restore.started", database=backup.database, target=database, table=table),
    )
    created = False
    try:
        properties = database_properties(backup.manifest, keyring) if backup.manifest is not None else None
        with signals.held(), closing(target.connect()) as connection:  # created means recorded
            dbprops.create_database(connection, scratch, properties, owner=False, reapply=False)
            created = True
        beside.create_schema(target, scratch, table)
        stats = load_backup(
            catalog, backup, psql_path, target, scratch, clean=False, keyring=keyring, jobs=jobs, tables=[table]
        )
        beside.rename_in_scratch(target, scratch, table, schema, new_name)
        bindir = Path(psql_path).parent
        beside.copy_table(
            str(bindir / "pg_dump"), str(bindir / "pg_restore"), target, scratch, database, schema, new_name
        )
    finally:
        if created:
            beside.drop_scratch(target, scratch)
    seconds = time.monotonic() - started
    log.info(
        "restore of %s into %s.%s of %r finished: %s from %s, sha256 verified, in %.1f s",
        table,
        schema,
        new_name,
        database,
        logs.human_bytes(stats.raw_bytes),
        backup.timestamp,
        seconds,
        extra=logs.fields(event="restore.finished", database=backup.database, target=database, table=table),
    )
    return RestoreResult(backup.database, database, backup, stats, seconds)


def _check_split_request(
    catalog: Catalog, backup: Backup, tables: list[str], *, create: bool, clean: bool
) -> list[str]:
    """What a split backup's restore is asked, checked: ``--table`` names tables the backup
    holds; a whole split backup goes into a new database; ``--clean`` is for plain ones. Returns
    the tables in the manifest's spelling."""
    assert backup.manifest is not None
    name = display_name(backup.database)
    if not backup.manifest.split:
        if tables:
            raise RestoreError(
                f"the backup of {name!r} from {backup.timestamp} is a plain SQL dump, which restores whole: "
                f"--table needs a split backup ({DumpSettings.format.name}=split)",
                hint="restore it whole into another database (--target NAME --create) and copy the table from there",
            )
        return []
    if clean:
        raise RestoreError(
            f"the backup of {name!r} from {backup.timestamp} is split: it is restored into a new database "
            "(--create), which is dropped again if the restore fails; --clean applies to plain backups",
            hint="restore into a new database with --target NAME --create, or chosen tables with --table",
        )
    if not tables and not create:
        raise RestoreError(
            f"the backup of {name!r} from {backup.timestamp} is split: it is restored whole only into a new "
            "database, so that a failure leaves nothing behind; add --create (with --target for another name)",
        )
    if not tables:
        return []
    manifest = catalog.details(backup)  # the catalog's is slim: no tables
    known = set(manifest.row_counts) | set(manifest.relations)
    spelled = []
    for table in tables:
        found = table if table in known else _respelled(table, known)
        if found is None:
            raise NotFoundError(
                f"the backup of {name!r} from {backup.timestamp} holds no table {table!r}; "
                f"it holds {len(known)} tables, e.g. {', '.join(sorted(known)[:5])}",
                hint="name a table as schema.name",
            )
        spelled.append(found)
    return spelled


def _respelled(table: str, known: set[str]) -> str | None:
    """``table`` as the manifest spells it: ``Schema.Name`` may be written quoted or not."""
    try:
        schema, name = table_name_parts(table)
    except RestoreError:
        return None
    parts = table.split(".", 1) if '"' not in table else None
    if parts is not None and len(parts) == 2:  # unquoted: folded to lower case, as SQL does
        schema, name = schema.lower(), name.lower()
    return next((k for k in known if table_name_parts(k) == (schema, name)), None)


def _refuse_existing_tables(target: Target, database: str, tables: list[str]) -> None:
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        for table in tables:
            schema, name = table_name_parts(table)
            cursor.execute("SELECT pg_catalog.to_regclass(%s)", (sql.Identifier(schema, name).as_string(connection),))
            row = cursor.fetchone()
            if row and row[0] is not None:
                raise RestoreError(
                    f"table {table} exists already in {database!r} on {target.label}; pgbackup never restores over "
                    "a table",
                    hint="drop or rename it first, or restore into another database (--target)",
                )


def _drop_tables_quietly(target: Target, database: str, tables: list[str]) -> None:
    """Drop the tables a failed ``--table`` restore created (they did not exist before it)."""
    try:
        with signals.held(), closing(target.connect(database)) as connection, connection.cursor() as cursor:
            for table in tables:
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*table_name_parts(table))))
    except Exception as exc:
        log.error("could not drop the tables %s this restore created in %r: %s", ", ".join(tables), database, exc)


def _refuse_owners_code_as_superuser(target: Target, backup: Backup) -> None:
    """A superuser restoring a database runs the code of every role that owns objects in it
    (CHECK constraints, defaults, index expressions, functions), in a session that code can turn
    back into the superuser's (RESET SESSION AUTHORIZATION): refuse unless every owner is a
    superuser, so no database owner gains the restoring role's rights by its own restore."""
    assert backup.manifest is not None
    if not is_superuser(target):
        return
    owners = backup.manifest.owners
    name = display_name(backup.database)
    others: list[str] | None = None
    if owners is not None:
        found = superuser_roles(target, owners)
        missing = [owner for owner in owners if owner not in found]
        if missing:
            raise NotFoundError(
                f"the backup of {name!r} holds objects of roles that do not exist on {target.label} "
                f"({', '.join(repr(o) for o in missing[:5])})",
                hint="restore the roles first with `pgbackup restore --globals` (or --with-globals)",
            )
        others = [owner for owner in owners if not found[owner]]
    if others == []:
        return
    whose = (
        f"roles that are not superusers ({', '.join(repr(o) for o in others[:5])})"
        if others
        else "roles it does not record (made before pgbackup recorded them)"
    )
    raise RestoreError(
        f"the backup of {name!r} from {backup.timestamp} holds objects of {whose}; restored by a superuser, their "
        f"code (constraints, defaults, index expressions) would run in a session it can turn into the superuser's",
        hint=f"restore as the database's owner (PGUSER), or add --as-superuser if every owner of {name!r} is trusted",
    )


def _psql(bindir: Path | None) -> str:
    """psql, refused unless it can be restricted (``pg.psql``)."""
    path = find_tool("psql", bindir)
    version = tool_version(path)
    check_restrict(path, version)
    _warn_unenforced(version)
    return path


def restore_globals(
    catalog: Catalog,
    target: Target,
    *,
    at: datetime | None,
    bindir: Path | None = None,
    keyring: Keyring | None = None,
    allow_unsigned: bool = False,
    limit: int = GLOBALS_LIMIT,
) -> int:
    """Load the roles and tablespaces; the number of statements that failed as expected."""
    backup = choose(catalog, GLOBALS, at, allow_unsigned)
    assert backup.manifest is not None
    keyring = keyring or Keyring(None)
    keyring.check(backup.manifest, f"the globals of {backup.timestamp}")
    psql_path = _psql(bindir)
    data = bytearray()

    def held(piece: bytes) -> None:  # read whole and checked before loading, within the limit
        if len(data) + len(piece) > limit:
            raise RestoreError(
                f"the globals of {backup.timestamp} hold more than {limit // (1024 * 1024)} MiB once "
                f"decompressed, more than {GLOBALS_LIMIT_MB.name} allows",
                hint=f"raise {GLOBALS_LIMIT_MB.name} if the server really has that many roles",
            )
        data.extend(piece)

    read_verified(catalog.storage, catalog.details(backup), held, keyring=keyring)
    log.info(
        "restore of the globals from %s started (sha256 verified)",
        backup.timestamp,
        extra=logs.fields(event="restore.started", database="", timestamp=backup.timestamp),
    )
    psql = Psql(psql_path, target.child_env(target.maintenance_database), transaction=False, stop_on_error=False)
    try:
        psql.write_dump(bytes(data))
        psql.finish_dump()
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
        log.warning(
            "the globals of %s were stored without role passwords (the server did not allow "
            "reading them); set passwords with ALTER ROLE ... PASSWORD",
            backup.timestamp,
        )
    log.info(
        "restore of the globals finished: %d roles or tablespaces existed already and were updated",
        len(errors),
        extra=logs.fields(event="restore.finished", database=""),
    )
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


@functools.cache
def _warn_unenforced(psql_version: str) -> None:
    """Once per command: say so when psql (or psycopg2's libpq) would ignore PGREQUIREAUTH."""
    warning = unenforced("psql", psql_version)
    if warning:
        log.warning(warning, extra=logs.fields(event="auth.unenforced"))
