"""``pgbackup verify``: the restore drill that proves backups restore.

For each selected database, the newest trusted backup (``pipeline.catalog``: complete and,
with signing keys configured, signed) is restored into a scratch database
``pgbackup_verify_<UTC time>_<random>`` on the verify target and checked three ways:

1. the stored object matches its manifest: every block checked before it is used, then the
   whole sha256 and size (``pipeline.load``);
2. psql loaded it, restricted, with ON_ERROR_STOP and committed: no statement failed (a split
   backup: pg_restore and COPY over as many connections as the drill may use CPUs);
3. every table's row count equals the rows pg_dump wrote for it, counted from the COPY
   blocks at backup time (``manifest.row_counts``).

Where the drill runs: restoring a dump runs its owners' functions (constraints, defaults,
index expressions) with the drill's rights, so a drill on the server the backups come from
would let any database owner run code as the drill's superuser, next to every other
database. So a drill needs a separate scratch server (``settings.SCRATCH_SERVER``), told apart
from the backed-up one by ``system_identifier`` (recorded in each manifest at backup time;
unknown counts as the same server), unless ``BACKUP_VERIFY_ON_BACKUP_SERVER`` says otherwise.

Each database is drilled in isolation: whatever goes wrong with one (a damaged manifest, an
unexpected error) is that database's failure and the others still run. Newer backups the
drill passed over (incomplete, suspect, unsigned, untrusted) are named in a WARNING.

The scratch database is created with SIGTERM and SIGINT held until it is recorded for
cleanup, and dropped in a ``finally`` with them held again, so neither
a failure nor a stop request leaves it behind; a drill killed outright (SIGKILL, OOM) leaves
one, and the next drill drops scratch databases older than a day. The globals object, when
present, has its checksum checked too (it is not loaded anywhere).
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..core import cpus, logs, signals
from ..core.errors import PgBackupError, one_line
from ..core.layout import GLOBALS, TIMESTAMP_FORMAT, display_name, format_timestamp
from ..core.settings import SCRATCH_SERVER, VERIFY_ON_BACKUP_SERVER
from ..core.termination import TerminationMessage
from ..pg import dbprops
from ..pg.databases import count_rows, drop_database
from ..pg.discovery import select_databases
from ..pg.psql import check_restrict
from ..pg.roles import system_identifier
from ..pg.target import Target, backup_server, unenforced
from ..pg.tools import find_tool, tool_version
from ..pipeline.catalog import Backup, Catalog
from ..pipeline.load import load_backup, read_verified
from ..pipeline.unseal import Keyring, database_properties

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
        return TerminationMessage(
            self.summary(),
            command="verify",
            ok=not self.failed,
            seconds=seconds,
            databases_ok=len(self.results) - len(self.failed),
            databases_failed=len(self.failed),
            failed=tuple(r.database for r in self.failed),
        )

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
        cursor.execute(
            "SELECT datname FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.~~) %s",
            (SCRATCH_PREFIX.replace("_", r"\_") + "%",),
        )
        names = [str(row[0]) for row in cursor.fetchall()]
    for name in names:
        match = _SCRATCH.fullmatch(name)
        if not match:
            continue
        created = datetime.strptime(match.group(1).upper(), TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        if now - created > STALE_SCRATCH:
            log.warning("dropping scratch database %r left by an earlier verify", name)
            drop_database(target, name)


@dataclass
class DrillServer:
    """Where drills run, and whether that may be the backed-up server itself."""

    target: Target
    scratch: bool  # a scratch server is configured; else the target is the backup server
    on_backup_server: bool = False  # BACKUP_VERIFY_ON_BACKUP_SERVER
    _identifiers: dict[str, str] = field(default_factory=dict)

    def identifier(self, which: str) -> str:
        """``scratch``'s or ``backup``'s system_identifier, read once ("" when unknown)."""
        if which not in self._identifiers:
            self._identifiers[which] = system_identifier(self.target if which == "scratch" else backup_server())
        return self._identifiers[which]

    def refusal(self, database: str, source: str) -> str:
        """Why ``database`` (backed up from the cluster ``source``, "" unknown) may not be drilled
        here, or "" when it may."""
        if self.on_backup_server:
            return ""
        if not self.scratch:
            why = "no scratch server is configured, so the drill would restore it on the server it was taken from"
        else:
            scratch, backed_up = self.identifier("scratch"), source or self.identifier("backup")
            if scratch and backed_up and scratch != backed_up:
                return ""
            why = (
                "the scratch server is the server it was taken from (the same system_identifier)"
                if scratch and scratch == backed_up
                else "the scratch server cannot be told apart from the server it was "
                "taken from (a system_identifier cannot be read, which counts as the same)"
            )
        return (
            f"not drilled: {why}; restoring runs its owners' functions with the drill's rights next to every "
            f"other database there. Set a separate scratch server ({SCRATCH_SERVER.host.name}, ...), or "
            f"{VERIFY_ON_BACKUP_SERVER.name}=true if every owner of {database!r} is trusted"
        )


def drill(
    catalog: Catalog, server: DrillServer, database: str, psql_path: str, keyring: Keyring | None = None
) -> DrillResult:
    """Restore the newest trusted backup of ``database`` into a scratch database and check it;
    any failure is this database's alone."""
    try:
        return _drill(catalog, server, database, psql_path, keyring or Keyring(None))
    except Exception as exc:  # isolation: one database's surprise never stops the others
        return _failed(database, "", f"unexpected {type(exc).__name__}: {one_line(exc)[:300]}")


def _drill(catalog: Catalog, server: DrillServer, database: str, psql_path: str, keyring: Keyring) -> DrillResult:
    backup = catalog.newest(database)
    _warn_passed_over(catalog, database, backup)
    if backup is None:
        return _failed(
            database,
            "",
            "no complete backup to verify"
            if not any(b.unsigned for b in catalog.of(database))
            else "no signed backup to verify (only unsigned ones)",
        )
    if not backup.trusted or backup.manifest is None:
        return _failed(database, backup.timestamp, f"the newest backup ({backup.timestamp}) is {backup.state()}")
    try:
        keyring.check(backup.manifest, f"backup {backup.timestamp} of {database!r}")
        manifest = catalog.details(backup)
    except PgBackupError as exc:
        return _failed(database, backup.timestamp, str(exc))
    refused = server.refusal(database, manifest.server_system_identifier)
    if refused:
        return _failed(database, backup.timestamp, refused)
    target = server.target
    started = time.monotonic()
    scratch = scratch_name(datetime.now(UTC))
    log.info(
        "verify of %r (backup %s) started in scratch database %r on %s",
        database,
        backup.timestamp,
        scratch,
        target.label,
        extra=logs.fields(event="verify.started", database=database, timestamp=backup.timestamp, scratch=scratch),
    )
    created = False
    try:
        properties = database_properties(manifest, keyring)
        with signals.held(), closing(target.connect()) as connection:  # created means recorded
            # Owned as the original: the dump creates its objects as their owners (SET SESSION
            # AUTHORIZATION), who need the owner's default rights on public. No setting is reapplied.
            dbprops.create_database(connection, scratch, properties, owner=True, reapply=False)
            created = True
        load_backup(catalog, backup, psql_path, target, scratch, clean=False, keyring=keyring, jobs=cpus.usable())
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
    wrong = [
        f"{table}: {actual[table]} rows restored, {count} dumped"
        for table, count in expected.items()
        if actual.get(table) != count
    ]
    if wrong:
        return _failed(database, backup.timestamp, f"row counts differ: {'; '.join(wrong[:5])}")
    rows = sum(expected.values())
    seconds = time.monotonic() - started
    message = (
        f"checksum ok, loaded without errors, {len(expected)} tables with {rows} rows match"
        if expected
        else "checksum ok, loaded without errors (no row counts recorded)"
    )
    log.info(
        "verify of %r (backup %s) OK: %s, in %.1f s",
        database,
        backup.timestamp,
        message,
        seconds,
        extra=logs.fields(
            event="verify.finished",
            database=database,
            timestamp=backup.timestamp,
            ok=True,
            tables=len(expected),
            rows=rows,
            seconds=round(seconds, 3),
        ),
    )
    return DrillResult(database, True, message, backup.timestamp, len(expected), rows)


def _warn_passed_over(catalog: Catalog, database: str, chosen: Backup | None) -> None:
    for backup in catalog.passed_over(database, chosen):
        log.warning(
            "verify of %r passes over the backup of %s: it is %s",
            display_name(database),
            backup.timestamp,
            backup.state(),
            extra=logs.fields(
                event="verify.passed_over", database=database, timestamp=backup.timestamp, state=backup.state()
            ),
        )


def _failed(database: str, timestamp: str, message: str) -> DrillResult:
    log.error(
        "verify of %r (backup %s) FAILED: %s",
        database,
        timestamp or "-",
        message,
        extra=logs.fields(event="verify.failed", database=database, timestamp=timestamp, error=message),
    )
    return DrillResult(database, False, message, timestamp)


def check_globals(catalog: Catalog, keyring: Keyring | None = None) -> DrillResult | None:
    backup = catalog.newest(GLOBALS)
    _warn_passed_over(catalog, GLOBALS, backup)
    if backup is None:
        return None
    if not backup.trusted or backup.manifest is None:
        return _failed(
            display_name(GLOBALS), backup.timestamp, f"the newest globals ({backup.timestamp}) are {backup.state()}"
        )
    try:
        (keyring or Keyring(None)).check(backup.manifest, f"the globals of {backup.timestamp}")
        read_verified(catalog.storage, catalog.details(backup), lambda _data: None, keyring=keyring)
    except PgBackupError as exc:
        return _failed(display_name(GLOBALS), backup.timestamp, str(exc))
    except Exception as exc:  # isolation, as for every database
        return _failed(
            display_name(GLOBALS), backup.timestamp, f"unexpected {type(exc).__name__}: {one_line(exc)[:300]}"
        )
    log.info(
        "verify of the globals (backup %s) OK: checksum ok",
        backup.timestamp,
        extra=logs.fields(event="verify.finished", database="", timestamp=backup.timestamp, ok=True),
    )
    return DrillResult(display_name(GLOBALS), True, "checksum ok", backup.timestamp)


def verify(
    catalog: Catalog,
    server: DrillServer,
    *,
    databases: tuple[str, ...] = (),
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    bindir: Path | None = None,
    keyring: Keyring | None = None,
) -> VerifyResult:
    """Drill every selected database; ``databases`` (from ``--database``) overrides the filters."""
    psql_path = find_tool("psql", bindir)
    psql_version = tool_version(psql_path)
    check_restrict(psql_path, psql_version)
    _warn_unenforced(psql_version)
    target = server.target
    available = tuple(name for name in catalog.databases() if name != GLOBALS)
    if databases:
        chosen = databases
    else:
        chosen = select_databases(available, include, exclude).databases
    result = VerifyResult()
    if not chosen:
        result.results.append(
            DrillResult("(none)", False, f"no backups to verify under {catalog.storage.describe(catalog.prefix)}")
        )
        return result
    drop_stale_scratch(target, datetime.now(UTC))
    for database in chosen:
        result.results.append(drill(catalog, server, database, psql_path, keyring))
    checked = check_globals(catalog, keyring) if not databases else None
    if checked is not None:
        result.results.append(checked)
    return result


@functools.cache
def _warn_unenforced(psql_version: str) -> None:
    """Once per command: say so when psql (or psycopg2's libpq) would ignore PGREQUIREAUTH."""
    warning = unenforced("psql", psql_version)
    if warning:
        log.warning(warning, extra=logs.fields(event="auth.unenforced"))
