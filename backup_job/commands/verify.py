"""``pgbackup verify``: the restore drill that proves backups restore.

For each selected database, the newest complete backup is restored into a scratch database
``pgbackup_verify_<UTC time>_<random>`` on the verify target (the backup server, or the
``settings.SCRATCH_SERVER``), and checked three ways:

1. the stored object matches its manifest's sha256 and size (checked while streaming);
2. psql loaded it with ON_ERROR_STOP and committed: no statement failed;
3. every table's row count equals the rows pg_dump wrote for it, counted from the COPY
   blocks at backup time (``manifest.row_counts``).

The scratch database is created with SIGTERM and SIGINT held until it is recorded for
cleanup, and dropped in a ``finally`` with them held again, so neither
a failure nor a stop request leaves it behind; a drill killed outright (SIGKILL, OOM) leaves
one, and the next drill drops scratch databases older than a day. The globals object, when
present, has its checksum checked too (it is not loaded anywhere).
"""

from __future__ import annotations

import re
import secrets
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..core import logs, signals
from ..core.errors import PgBackupError, one_line
from ..core.layout import GLOBALS, TIMESTAMP_FORMAT, display_name, format_timestamp
from ..core.termination import TerminationMessage
from ..pg import dbprops
from ..pg.databases import count_rows, drop_database
from ..pg.discovery import select_databases
from ..pg.target import Target
from ..pg.tools import find_tool
from ..pipeline.catalog import Catalog
from ..pipeline.load import load_backup, read_verified
from ..pipeline.unseal import Keyring

SCRATCH_PREFIX = "pgbackup_verify_"
STALE_SCRATCH = timedelta(days=1)
_SCRATCH = re.compile(rf"{SCRATCH_PREFIX}(\d{{8}}t\d{{6}}z)_[0-9a-f]+")
log = logs.get("verify")


@dataclass
class DrillResult:
    database: str
    ok: bool
    message: str
    timestamp: str = ""
    tables: int = 0
    rows: int = 0


@dataclass
class VerifyResult:
    results: list[DrillResult] = field(default_factory=list)

    @property
    def failed(self) -> list[DrillResult]:
        return [r for r in self.results if not r.ok]

    def termination(self, seconds: float) -> TerminationMessage:
        """The outcome for the operator (``core.termination``)."""
        return TerminationMessage(self.summary(), command="verify", ok=not self.failed, seconds=seconds,
                                  databases_ok=len(self.results) - len(self.failed),
                                  databases_failed=len(self.failed),
                                  failed=tuple(r.database for r in self.failed))

    def summary(self) -> str:
        ok = len(self.results) - len(self.failed)
        text = f"verify: {ok} of {len(self.results)} backups verified"
        if self.failed:
            text += "; FAILED: " + "; ".join(f"{r.database!r}: {r.message}" for r in self.failed)
        return text


def scratch_name(now: datetime) -> str:
    return f"{SCRATCH_PREFIX}{format_timestamp(now).lower()}_{secrets.token_hex(4)}"


def drop_stale_scratch(target: Target, now: datetime) -> None:
    """Drop scratch databases a killed drill left, once they are older than a day."""
    with closing(target.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.~~) %s",
                       (SCRATCH_PREFIX.replace("_", r"\_") + "%",))
        names = [str(row[0]) for row in cursor.fetchall()]
    for name in names:
        match = _SCRATCH.fullmatch(name)
        if not match:
            continue
        created = datetime.strptime(match.group(1).upper(), TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
        if now - created > STALE_SCRATCH:
            log.warning("dropping scratch database %r left by an earlier verify", name)
            drop_database(target, name)


def drill(catalog: Catalog, target: Target, database: str, psql_path: str, keyring: Keyring | None = None) -> DrillResult:
    """Restore the newest backup of ``database`` into a scratch database and check it."""
    backup = catalog.newest(database)
    if backup is None:
        return DrillResult(database, False, "no complete backup to verify")
    if not backup.complete or backup.manifest is None:
        return _failed(database, backup.timestamp, f"the newest backup ({backup.timestamp}) is {backup.state()}")
    manifest = backup.manifest
    keyring = keyring or Keyring(None)
    try:
        keyring.check(manifest, f"backup {backup.timestamp} of {database!r}")
    except PgBackupError as exc:
        return _failed(database, backup.timestamp, str(exc))
    started = time.monotonic()
    scratch = scratch_name(datetime.now(timezone.utc))
    log.info("verify of %r (backup %s) started in scratch database %r on %s", database, backup.timestamp,
             scratch, target.label, extra=logs.fields(event="verify.started", database=database,
                                                       timestamp=backup.timestamp, scratch=scratch))
    created = False
    try:
        with signals.held(), closing(target.connect()) as connection:  # created means recorded
            dbprops.create_database(connection, scratch, manifest.database_properties, owner=False)
            created = True
        load_backup(catalog.storage, backup, psql_path, target, scratch, clean=False, keyring=keyring)
        expected = manifest.row_counts
        actual = count_rows(target, scratch, sorted(expected))
    except PgBackupError as exc:
        return _failed(database, backup.timestamp, str(exc))
    except Exception as exc:  # e.g. psycopg2 errors from CREATE DATABASE or counting
        return _failed(database, backup.timestamp, one_line(exc))
    finally:
        if created:
            with signals.held():
                try:
                    drop_database(target, scratch)
                except Exception as exc:
                    log.error("could not drop scratch database %r: %s", scratch, exc)
    wrong = [f"{table}: {actual[table]} rows restored, {count} dumped" for table, count in expected.items()
             if actual.get(table) != count]
    if wrong:
        return _failed(database, backup.timestamp, f"row counts differ: {'; '.join(wrong[:5])}")
    rows = sum(expected.values())
    seconds = time.monotonic() - started
    message = (f"checksum ok, loaded without errors, {len(expected)} tables with {rows} rows match"
               if expected else "checksum ok, loaded without errors (no row counts recorded)")
    log.info("verify of %r (backup %s) OK: %s, in %.1f s", database, backup.timestamp, message, seconds,
             extra=logs.fields(event="verify.finished", database=database, timestamp=backup.timestamp,
                               ok=True, tables=len(expected), rows=rows, seconds=round(seconds, 3)))
    return DrillResult(database, True, message, backup.timestamp, len(expected), rows)


def _failed(database: str, timestamp: str, message: str) -> DrillResult:
    log.error("verify of %r (backup %s) FAILED: %s", database, timestamp or "-", message,
              extra=logs.fields(event="verify.failed", database=database, timestamp=timestamp, error=message))
    return DrillResult(database, False, message, timestamp)


def check_globals(catalog: Catalog, keyring: Keyring | None = None) -> DrillResult | None:
    backup = catalog.newest(GLOBALS)
    if backup is None:
        return None
    if not backup.complete or backup.manifest is None:
        return _failed(display_name(GLOBALS), backup.timestamp,
                       f"the newest globals ({backup.timestamp}) are {backup.state()}")
    try:
        (keyring or Keyring(None)).check(backup.manifest, f"the globals of {backup.timestamp}")
        read_verified(catalog.storage.read(backup.manifest.key), backup.manifest, lambda _data: None,
                      keyring=keyring)
    except PgBackupError as exc:
        return _failed(display_name(GLOBALS), backup.timestamp, str(exc))
    log.info("verify of the globals (backup %s) OK: checksum ok", backup.timestamp,
             extra=logs.fields(event="verify.finished", database="", timestamp=backup.timestamp, ok=True))
    return DrillResult(display_name(GLOBALS), True, "checksum ok", backup.timestamp)


def verify(
    catalog: Catalog, target: Target, *, databases: tuple[str, ...] = (), include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (), bindir: Path | None = None, keyring: Keyring | None = None,
) -> VerifyResult:
    """Drill every selected database; ``databases`` (from ``--database``) overrides the filters."""
    psql_path = find_tool("psql", bindir)
    available = tuple(name for name in catalog.databases() if name != GLOBALS)
    if databases:
        chosen = databases
    else:
        chosen = select_databases(available, include, exclude).databases
    result = VerifyResult()
    if not chosen:
        result.results.append(DrillResult("(none)", False, "no backups to verify under "
                                          f"{catalog.storage.describe(catalog.prefix)}"))
        return result
    drop_stale_scratch(target, datetime.now(timezone.utc))
    for database in chosen:
        result.results.append(drill(catalog, target, database, psql_path, keyring))
    checked = check_globals(catalog, keyring) if not databases else None
    if checked is not None:
        result.results.append(checked)
    return result
