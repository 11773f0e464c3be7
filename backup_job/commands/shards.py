"""One shard's part of a run, and whether the run as a whole is stored (``BACKUP_SHARD=i/N``).

``plan`` takes the selection over the whole server (every shard discovers every database and
applies the same include and exclude lists) and keeps this shard's databases
(``core.shard``): the ones whose name hashes to its index, the explicitly named ones that do
not exist under the same rule (each reported once across the run), and the globals for shard
0 only. Since every shard knows the whole selection, it also knows every other shard's set.

``announce_whole_run`` decides the healthcheck's success ping of a sharded run. One shard's
success says nothing about the others, so after its own success a shard lists the
destination and looks for a complete backup of this run (same timestamp and, when
``BACKUP_RUN_ID`` is set, same run id) of every database of the whole run and of the
globals. Only a shard that sees them all (the last to finish) answers True. Two shards that
finish at the same moment may both see the run complete and both ping: harmless, a success
ping is idempotent. A shard that finished early, or that cannot list (write-only
credentials), answers False with one log line saying why; a failed or killed shard leaves
its databases without such a backup, so no shard ever pings success for that run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import logs
from ..core.errors import PgBackupError
from ..core.layout import GLOBALS, display_name
from ..core.shard import Shard
from ..pg.discovery import Selection
from ..pipeline.catalog import Backup, load_catalog
from ..storage.base import Storage

log = logs.get("run")


@dataclass(frozen=True)
class ShardPlan:
    """What one shard backs up, and what the whole run holds."""

    shard: Shard
    databases: tuple[str, ...]  # this shard's
    missing: tuple[str, ...]  # explicitly named, not there, and this shard's to report
    globals: bool  # this shard stores the globals
    run_databases: tuple[str, ...]  # every shard's databases, the globals (GLOBALS) included when stored
    run_missing: bool  # some shard reports a named database that is not there: the run fails


def plan(selection: Selection, shard: Shard, globals_wanted: bool) -> ShardPlan:
    """This shard's part of ``selection`` (the whole server's)."""
    return ShardPlan(
        shard=shard,
        databases=tuple(d for d in selection.databases if shard.owns(d)),
        missing=tuple(d for d in selection.missing if shard.owns(d)),
        globals=globals_wanted and shard.stores_globals,
        run_databases=(*((GLOBALS,) if globals_wanted else ()), *selection.databases),
        run_missing=bool(selection.missing),
    )


def not_stored(storage: Storage, prefix: str, timestamp: str, run_id: str | None, wanted: tuple[str, ...]) -> str:
    """Why the run of ``timestamp`` (and ``run_id``) is not completely stored, or "" when every
    database in ``wanted`` has a complete backup of it. Raises ``PgBackupError`` when the
    destination cannot be listed or read."""
    catalog = load_catalog(storage, prefix)
    found = {b.database: b for b in catalog.backups if b.timestamp == timestamp}
    absent = [
        d
        for d in wanted
        if d not in found or (found[d].dump is None and not found[d].members) or found[d].manifest_object is None
    ]
    if absent:
        return f"{len(absent)} of {len(wanted)} backups are not stored yet, {display_name(absent[0])!r} first"
    backups: list[Backup] = [found[d] for d in wanted]
    catalog.load_manifests(backups)
    for backup in backups:
        name = display_name(backup.database)
        if not backup.complete:
            return f"the backup of {name!r} is {backup.state()}"
        if backup.manifest is not None and run_id is not None and backup.manifest.run_id != run_id:
            return f"the backup of {name!r} at this timestamp was written by another run ({backup.manifest.run_id})"
    return ""


def announce_whole_run(storage: Storage, prefix: str, timestamp: str, run_id: str | None, mine: ShardPlan) -> bool:
    """Whether this shard, having succeeded, may ping success for the whole run; logs why not."""
    fields = logs.fields(event="run.whole", timestamp=timestamp, shard=str(mine.shard))
    if mine.run_missing:
        log.info(
            "no success ping from shard %s: the run names databases that do not exist, so it failed "
            "(their shard says so)",
            mine.shard,
            extra=fields,
        )
        return False
    try:
        why = not_stored(storage, prefix, timestamp, run_id, mine.run_databases)
    except PgBackupError as exc:
        log.warning(
            "no success ping from shard %s: cannot list the destination to see whether every shard "
            "of run %s has finished (%s)",
            mine.shard,
            timestamp,
            exc,
            extra=fields,
        )
        return False
    if why:
        log.info(
            "no success ping from shard %s: run %s is not completely stored yet (%s); the last shard to "
            "finish sends it",
            mine.shard,
            timestamp,
            why,
            extra=fields,
        )
        return False
    log.info(
        "every shard of run %s has stored its backups (%d): shard %s sends the success ping",
        timestamp,
        len(mine.run_databases),
        mine.shard,
        extra=fields,
    )
    return True
