"""``pgbackup prune``: which backups to keep (a pure plan), then deleting the rest.

The policy (``core.retention``) is grandfather-father-son, written
``last=N,daily=N,weekly=N,monthly=N`` (any subset). For each database, and for the globals,
over its complete backups newest first:

- ``last=N`` keeps the N newest;
- ``daily=N`` keeps the newest backup of each of the N newest UTC days that have one;
  ``weekly`` does the same over ISO weeks, ``monthly`` over calendar months;
- a backup is kept if any rule keeps it, and the newest complete backup is always kept.

Buckets count days that *have* backups, so a pause in backups never makes retention delete
more. What is not kept is deleted, manifest first, then the dump (so an interruption leaves
an incomplete dump, never a manifest pointing at nothing). Incomplete leftovers (see
``catalog``) are deleted once both their key timestamp and their objects are older than
``LEFTOVER_AGE``, which no running backup can be.

Damaged backups (their manifest and objects disagree) are never deleted, by the policy or as
leftovers, and never count as the newest complete backup: each prune logs them as a WARNING
with the command that removes them by hand. Unknown ones (a newer pgbackup's, or ones this
version cannot read) are left alone too.

What counts is only what the catalog trusts (``pipeline.catalog``). Suspect backups (dated in
the future) and untrusted ones (a signature that does not verify) are never counted, never
deleted, and logged as a WARNING with the command that removes them by hand: a forger's
backup dated 2099 cannot push real ones out, and nothing unproven is deleted. With signing
keys configured, unsigned backups (made before a key was, or by whoever can write the
bucket) are never counted either; they are deleted only once they are older than every
signed backup retention keeps, so the history signed backups replace goes, and nothing a
forger plants can make a signed backup go. Only keys that parse as our layout under the
prefix reach this module, so foreign objects are never touched. ``prune`` is called by ``pgbackup prune`` and after a run with no
failures; a run with failures never deletes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..core import logs
from ..core.errors import StorageError
from ..core.layout import display_name
from ..core.retention import RetentionPolicy
from ..pipeline.catalog import Backup, Catalog

LEFTOVER_AGE = timedelta(days=1)
log = logs.get("retention")


def _newest_per_bucket(backups: list[Backup], count: int, bucket: Callable[[datetime], Hashable]) -> set[str]:
    kept: set[str] = set()
    seen: set[Hashable] = set()
    for backup in backups:  # newest first: the first one met in a bucket is its newest
        key = bucket(backup.time)
        if key in seen:
            continue
        if len(seen) == count:
            break
        seen.add(key)
        kept.add(backup.timestamp)
    return kept


def plan(backups: list[Backup], policy: RetentionPolicy) -> dict[str, list[str]]:
    """For complete backups newest first: the timestamps to keep, each with its reasons."""
    reasons: dict[str, list[str]] = {}

    def keep(stamps: set[str], reason: str) -> None:
        for stamp in stamps:
            reasons.setdefault(stamp, []).append(reason)

    if backups:
        keep({backups[0].timestamp}, "newest")
    if policy.last:
        keep({b.timestamp for b in backups[: policy.last]}, "last")
    if policy.daily:
        keep(_newest_per_bucket(backups, policy.daily, lambda t: t.date()), "daily")
    if policy.weekly:
        keep(_newest_per_bucket(backups, policy.weekly, lambda t: t.isocalendar()[:2]), "weekly")
    if policy.monthly:
        keep(_newest_per_bucket(backups, policy.monthly, lambda t: (t.year, t.month)), "monthly")
    return reasons


@dataclass
class PruneResult:
    """What a prune did (or, in a dry run, would do)."""

    kept: int = 0
    deleted: list[str] = field(default_factory=list)  # object keys
    damaged: list[str] = field(default_factory=list)  # timestamps of damaged backups left alone
    suspect: list[str] = field(default_factory=list)  # timestamps of suspect or untrusted backups left alone
    errors: list[str] = field(default_factory=list)


def _delete(catalog: Catalog, backup: Backup, why: str, dry_run: bool, result: PruneResult) -> None:
    name = display_name(backup.database)
    verb = "would delete" if dry_run else "deleted"
    for key in backup.keys:
        if not dry_run:
            try:
                catalog.storage.delete(key)
            except StorageError as exc:
                result.errors.append(str(exc))
                log.error("retention could not delete %s: %s", catalog.storage.describe(key), exc,
                          extra=logs.fields(event="retention.failed", key=key, error=str(exc)))
                return  # keep the dump when its manifest could not be removed
        result.deleted.append(key)
        log.info("retention %s %s (%s of %s from %s)", verb, catalog.storage.describe(key), why, name,
                 backup.timestamp, extra=logs.fields(event="retention.deleted", key=key,
                                                     database=backup.database, dry_run=dry_run))


def prune(catalog: Catalog, policy: RetentionPolicy, now: datetime, *, dry_run: bool = False) -> PruneResult:
    """Apply ``policy`` to every database (and the globals) in ``catalog``."""
    result = PruneResult()
    for database in catalog.databases():
        every = catalog.of(database)
        catalog.load_manifests(every)
        trusted = [b for b in every if b.trusted]
        keep = plan(trusted, policy)
        for backup in trusted:
            if backup.timestamp in keep:
                result.kept += 1
            else:
                _delete(catalog, backup, "outside the retention policy", dry_run, result)
        oldest_kept = min(keep) if keep else None
        for backup in every:
            if backup.trusted:
                continue
            if backup.unsigned:
                if oldest_kept is not None and backup.timestamp < oldest_kept:
                    _delete(catalog, backup, f"unsigned, older than every signed backup kept ({oldest_kept})",
                            dry_run, result)
                else:
                    log.info("retention keeps %s of %r: unsigned, and not older than every signed backup kept",
                             backup.timestamp, display_name(database),
                             extra=logs.fields(event="retention.unsigned", database=database,
                                               timestamp=backup.timestamp))
            elif backup.suspect or backup.untrusted or backup.damaged:
                suspect = backup.suspect or backup.untrusted  # (reported as suspect when also damaged)
                (result.suspect if suspect else result.damaged).append(backup.timestamp)
                log.warning("retention keeps %s of %r, which is %s; look at it, then remove it by hand: %s",
                            backup.timestamp, display_name(database), backup.state(),
                            catalog.storage.removal_command(backup.keys + [o.key for o in backup.others]),
                            extra=logs.fields(event="retention.suspect" if suspect else "retention.damaged",
                                              database=database, timestamp=backup.timestamp, state=backup.state()))
            elif backup.unknown:
                log.info("retention keeps %s of %r: %s", backup.timestamp, display_name(database), backup.state(),
                         extra=logs.fields(event="retention.unknown", database=database, timestamp=backup.timestamp))
            elif now - backup.time > LEFTOVER_AGE and now - backup.newest_change > LEFTOVER_AGE:
                _delete(catalog, backup, f"leftover, {backup.state()}", dry_run, result)
    log.info(
        "retention %s: %d backups kept, %d objects %s%s",
        policy.describe(), result.kept, len(result.deleted), "to delete (dry run)" if dry_run else "deleted",
        f", {len(result.errors)} deletions failed" if result.errors else "",
        extra=logs.fields(event="retention.finished", kept=result.kept, deleted=len(result.deleted),
                          failed=len(result.errors), dry_run=dry_run),
    )
    return result
