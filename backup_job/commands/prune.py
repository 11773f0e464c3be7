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

Before the plan deletes any backup of a database, the newest backup it keeps is proven
(``pipeline.proof``): every object read back and checked against its manifest, block digests
and whole sha256, as restore would. A backup whose stored bytes fail the proof (a bit flipped
at rest keeps the size the catalog judges by) is marked damaged and the plan is made again
without it, until the newest backup left proves; when none proves, or the newest cannot be
read at all (unsure: keep), nothing of that database is deleted. So retention never leaves a
database without a backup proven to match its manifest, and the cost is one read of that
newest backup per database whenever something of it goes. A prune that met such a backup
fails (exit 1) and names it.

A dump listed without its manifest is an incomplete leftover only if its manifest is really
not there: it is looked up directly before the dump is deleted, since a listing can leave a
key out or carry it with a bit flipped. Found (or unsure), the dump is kept and the prune fails.

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
prefix reach this module, so foreign objects are never touched. ``prune`` is called by
``pgbackup prune`` and after a run with no failures; a run with failures never deletes
anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..core import logs
from ..core.errors import NotFoundError, StorageError
from ..core.layout import backup_keys, display_name
from ..core.retention import RetentionPolicy
from ..pipeline.catalog import Backup, Catalog
from ..pipeline.proof import prove

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
    proven: list[str] = field(default_factory=list)  # "<database> <timestamp>" read whole and matching
    unproven: list[str] = field(default_factory=list)  # "<database> <timestamp>" whose bytes failed the proof
    unsure: list[str] = field(default_factory=list)  # leftovers kept: their manifest is there, or may be
    proof_bytes: int = 0  # read from the store to prove backups

    def trouble(self) -> str:
        """Why this prune must fail (exit 1), or "": failed deletions, a backup whose bytes
        failed the proof, a listing that left a manifest out."""
        if self.errors:
            return f"{len(self.errors)} deletions failed: {self.errors[0]}"
        if self.unproven:
            return (
                f"{len(self.unproven)} backups could not be proven (their stored bytes differ from their "
                f"manifests, or could not be read), kept with what is older: {', '.join(self.unproven)}"
            )
        if self.unsure:
            return f"{len(self.unsure)} dumps listed without a manifest were kept: {self.unsure[0]}"
        return ""


def _delete(catalog: Catalog, backup: Backup, why: str, dry_run: bool, result: PruneResult) -> None:
    name = display_name(backup.database)
    verb = "would delete" if dry_run else "deleted"
    for key in backup.keys:
        if not dry_run:
            try:
                catalog.storage.delete(key)
            except StorageError as exc:
                result.errors.append(str(exc))
                log.error(
                    "retention could not delete %s: %s",
                    catalog.storage.describe(key),
                    exc,
                    extra=logs.fields(event="retention.failed", key=key, error=str(exc)),
                )
                return  # keep the dump when its manifest could not be removed
        result.deleted.append(key)
        log.info(
            "retention %s %s (%s of %s from %s)",
            verb,
            catalog.storage.describe(key),
            why,
            name,
            backup.timestamp,
            extra=logs.fields(event="retention.deleted", key=key, database=backup.database, dry_run=dry_run),
        )


def prune(catalog: Catalog, policy: RetentionPolicy, now: datetime, *, dry_run: bool = False) -> PruneResult:
    """Apply ``policy`` to every database (and the globals) in ``catalog``."""
    result = PruneResult()
    for database in catalog.databases():
        every = catalog.of(database)
        catalog.load_manifests(every)
        trusted, keep, may_delete = _proven_plan(catalog, every, policy, result)
        for backup in trusted:
            if backup.timestamp in keep:
                result.kept += 1
            else:
                _delete(catalog, backup, "outside the retention policy", dry_run, result)
        oldest_kept = min(keep) if keep and may_delete else None
        for backup in every:
            if not backup.trusted:
                _judge_other(catalog, backup, oldest_kept, now, dry_run, result)
    log.info(
        "retention %s: %d backups kept, %d objects %s%s%s%s",
        policy.describe(),
        result.kept,
        len(result.deleted),
        "to delete (dry run)" if dry_run else "deleted",
        f", {len(result.proven)} proven ({logs.human_bytes(result.proof_bytes)} read)" if result.proven else "",
        f", {len(result.errors)} deletions failed" if result.errors else "",
        f", {len(result.unproven)} backups failed their proof" if result.unproven else "",
        extra=logs.fields(
            event="retention.finished",
            kept=result.kept,
            deleted=len(result.deleted),
            failed=len(result.errors),
            dry_run=dry_run,
            proven=len(result.proven),
            unproven=len(result.unproven),
            proof_bytes=result.proof_bytes,
        ),
    )
    return result


def _proven_plan(
    catalog: Catalog, every: list[Backup], policy: RetentionPolicy, result: PruneResult
) -> tuple[list[Backup], dict[str, list[str]], bool]:
    """The trusted backups, the plan over them, and whether it may delete: the newest of them
    is proven whenever the plan deletes anything. A newest one whose bytes differ from its
    manifest is marked damaged (never counted, never deleted) and the plan is made again
    without it, until one proves or none is left; one that cannot be read holds every
    deletion of the database (unsure: keep)."""
    while True:
        trusted = [b for b in every if b.trusted]
        keep = plan(trusted, policy)
        if not _deletes(every, trusted, keep) or trusted[0].proven:
            return trusted, keep, True
        outcome = _prove(catalog, trusted[0], result)
        if outcome == "proven":
            return trusted, keep, True
        if outcome == "unreadable":
            return trusted, {b.timestamp: ["unproven"] for b in trusted}, False


def _deletes(every: list[Backup], trusted: list[Backup], keep: dict[str, list[str]]) -> bool:
    """Whether the plan deletes a backup (trusted, or unsigned and older than every kept one)."""
    oldest_kept = min(keep) if keep else None
    return any(b.timestamp not in keep for b in trusted) or (
        oldest_kept is not None and any(b.unsigned and b.timestamp < oldest_kept for b in every)
    )


def _prove(catalog: Catalog, backup: Backup, result: PruneResult) -> str:
    """Read ``backup`` whole and check it: "proven"; "damaged" (marked so, and said loudly);
    or "unreadable" (said loudly, nothing marked)."""
    name = display_name(backup.database)
    clock = time.monotonic()
    proof = prove(catalog, backup)
    result.proof_bytes += proof.read_bytes
    fields = {"database": backup.database, "timestamp": backup.timestamp, "read_bytes": proof.read_bytes}
    if proof.ok:
        backup.proven = True
        result.proven.append(f"{name} {backup.timestamp}")
        log.info(
            "retention proved %s of %r restorable before deleting anything of it: %s read and checked in %.1f s",
            backup.timestamp,
            name,
            logs.human_bytes(proof.read_bytes),
            time.monotonic() - clock,
            extra=logs.fields(event="retention.proven", **fields),
        )
        return "proven"
    result.unproven.append(f"{name} {backup.timestamp}")
    if proof.damaged:
        backup.problem = f"its stored bytes do not match its manifest ({proof.problem})"
        log.error(
            "retention could not prove %s of %r, the newest backup it would keep: %s; it is kept, and nothing "
            "older is deleted until a backup proves; look at it with `pgbackup verify --database %s`",
            backup.timestamp,
            name,
            proof.problem,
            name,
            extra=logs.fields(event="retention.unproven", error=proof.problem, **fields),
        )
        return "damaged"
    log.error(
        "retention could not read %s of %r, the newest backup it would keep, to prove it: %s; nothing of %r "
        "is deleted this time",
        backup.timestamp,
        name,
        proof.problem,
        name,
        extra=logs.fields(event="retention.unproven", error=proof.problem, **fields),
    )
    return "unreadable"


def _judge_other(
    catalog: Catalog, backup: Backup, oldest_kept: str | None, now: datetime, dry_run: bool, result: PruneResult
) -> None:
    """What happens to a backup retention does not count: unsigned, suspect, untrusted,
    damaged, unknown or an incomplete leftover."""
    database = backup.database
    if backup.unsigned:
        if oldest_kept is not None and backup.timestamp < oldest_kept:
            _delete(catalog, backup, f"unsigned, older than every signed backup kept ({oldest_kept})", dry_run, result)
        else:
            log.info(
                "retention keeps %s of %r: unsigned, and not older than every signed backup kept",
                backup.timestamp,
                display_name(database),
                extra=logs.fields(event="retention.unsigned", database=database, timestamp=backup.timestamp),
            )
    elif backup.suspect or backup.untrusted or backup.damaged:
        suspect = backup.suspect or backup.untrusted  # (reported as suspect when also damaged)
        (result.suspect if suspect else result.damaged).append(backup.timestamp)
        log.warning(
            "retention keeps %s of %r, which is %s; look at it, then remove it by hand: %s",
            backup.timestamp,
            display_name(database),
            backup.state(),
            catalog.storage.removal_command(backup.keys + [o.key for o in backup.others]),
            extra=logs.fields(
                event="retention.suspect" if suspect else "retention.damaged",
                database=database,
                timestamp=backup.timestamp,
                state=backup.state(),
            ),
        )
    elif backup.unknown:
        log.info(
            "retention keeps %s of %r: %s",
            backup.timestamp,
            display_name(database),
            backup.state(),
            extra=logs.fields(event="retention.unknown", database=database, timestamp=backup.timestamp),
        )
    elif now - backup.time > LEFTOVER_AGE and now - backup.newest_change > LEFTOVER_AGE:
        if _manifest_absent(catalog, backup, result):
            _delete(catalog, backup, f"leftover, {backup.state()}", dry_run, result)


def _manifest_absent(catalog: Catalog, backup: Backup, result: PruneResult) -> bool:
    """Whether the manifest a leftover's listing lacks is really not there: looked up directly,
    since a listing can leave a key out (or carry it with a bit flipped). Found, or unsure: the
    dump is kept and the run says so."""
    key = backup_keys(catalog.prefix, backup.database, backup.timestamp).manifest
    try:
        catalog.storage.version(key)
    except NotFoundError:
        return True
    except StorageError as exc:
        why = f"looking up its manifest failed ({exc})"
    else:
        why = "its manifest exists, though the listing did not show it"
    result.unsure.append(f"{display_name(backup.database)} {backup.timestamp}: {why}")
    log.error(
        "retention keeps %s of %r, listed as a dump without a manifest: %s; look at it with "
        "`pgbackup list --database %s`, and run prune again",
        backup.timestamp,
        display_name(backup.database),
        why,
        display_name(backup.database),
        extra=logs.fields(
            event="retention.listing", database=backup.database, timestamp=backup.timestamp, key=key, error=why
        ),
    )
    return False
