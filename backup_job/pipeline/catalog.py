"""The catalog: what backups exist under the prefix, read from a listing and the manifests.

One listing of ``<prefix>/`` is grouped by ``(database, timestamp)`` through
``layout.parse_key``; keys that do not parse are not ours and never appear. Each group is a
``Backup`` in exactly one state, checked in this order:

- *unknown*: this version cannot vouch for it (a manifest of a newer format, a dump in a
  format it does not read, a manifest it cannot read). Listed, never deleted, so an older
  pgbackup can never destroy what a newer one wrote;
- *suspect*: its timestamp lies in the future: later than now, or than the time its manifest
  (or dump) was stored, by more than ``BACKUP_CLOCK_SKEW``. A forger's way to look newest, or a
  clock gone wrong: listed as such and as a WARNING, never picked as latest, never counted by
  retention, never deleted automatically. (A timestamp *earlier* than the store's time is
  normal: long dumps, delayed Jobs, migrated buckets.);
- *damaged*: the manifest and the objects disagree (size, key, a missing dump object, a
  manifest of the wrong shape or larger than ``BACKUP_MANIFEST_LIMIT_MB``). Restore and
  verify refuse it by name instead of falling back to an older backup, and retention never
  deletes it (it logs how to remove it by hand);
- *incomplete*: a dump without a manifest (a run died between the two writes, or its
  manifest write failed). It never was a backup: ``prune`` removes it once it is a day old;
- *complete*: the dump object (``.sql.gz`` or ``.sql.zst``, ``.age`` after either when it is
  sealed) and a readable manifest whose key, size and compression agree with it. A split
  backup (``layout.parse_member``) is complete when every object its manifest lists is there
  with the size it records; a member the manifest does not list changes nothing but is
  deleted with the backup (it is ours by its key, and nothing points at it).

With public keys configured (``Reading.trust``, ``core.signing``), a complete backup is also
*signed* (a trusted key's signature verifies) or not: *unsigned* (no signature: made before a
key was configured, or by a forger) or *untrusted* (a signature that does not verify or is by
an unknown key). Only signed backups are ``trusted``: picked as latest, verified, kept by
retention. The others are listed, warned about and, for unsigned ones, deleted only once they
are older than every signed backup retention keeps. Without keys every complete backup is
trusted, as before signatures existed.

Manifests are read only for the entries a command needs (``load_manifests``), so listing a
large bucket costs one paginated LIST plus one GET per backup shown. What is kept of each is
``Manifest.slim``: the row counts and block digests a restore or drill needs are read again,
checked again, by ``details`` for that one backup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core import logs
from ..core.errors import NotFoundError, RestoreError, StorageError
from ..core.layout import (
    DUMP_SUFFIXES,
    MANIFEST_SUFFIX,
    READABLE_SUFFIXES,
    dump_suffix,
    parse_key,
    parse_member,
    parse_timestamp,
    split_directory,
)
from ..core.manifest import Manifest, NotUnderstood, parse
from ..core.settings import CLOCK_SKEW, MANIFEST_LIMIT_MB, TrustSettings
from ..core.signing import SignatureInvalid, Trust
from ..storage.base import ObjectInfo, Storage

MANIFEST_LIMIT = 16 * 1024 * 1024  # the default of BACKUP_MANIFEST_LIMIT_MB
READABLE = READABLE_SUFFIXES  # gzip and zstd dumps, plain or sealed, mixed freely in one history
log = logs.get("catalog")


@dataclass(frozen=True)
class Reading:
    """How a command reads the catalog: the keys it trusts, the clock skew it allows and the
    largest manifest it reads."""

    trust: Trust = Trust()
    skew: timedelta = timedelta(minutes=15)
    manifest_limit: int = MANIFEST_LIMIT
    now: datetime | None = None  # None: the clock when the catalog is loaded

    @classmethod
    def of(cls, settings: TrustSettings, trust: Trust) -> Reading:
        return cls(trust=trust, skew=timedelta(seconds=settings.clock_skew), manifest_limit=settings.manifest_limit)


@dataclass
class Backup:
    """One database's (or the globals') backup of one run, as found in storage."""

    database: str
    timestamp: str
    dump: ObjectInfo | None = None
    manifest_object: ObjectInfo | None = None
    manifest: Manifest | None = None
    others: list[ObjectInfo] = field(default_factory=list)  # dumps in a format this version does not read
    problem: str = ""  # damaged: why the objects and the manifest disagree
    not_understood: str = ""  # unknown: why this version cannot vouch for it
    suspect_why: str = ""  # suspect: why its timestamp cannot be believed
    enforced: bool = False  # public keys are configured: only signed backups are trusted
    signed_by: str = ""  # the id of the trusted key whose signature verifies
    untrusted_why: str = ""  # with keys: "unsigned", or why the signature is not accepted
    tables: int = 0  # from the manifest's row counts, which the slim manifest no longer holds
    rows: int = 0
    proven: bool = False  # its objects were read whole and matched the manifest (``pipeline.proof``)
    members: list[ObjectInfo] = field(default_factory=list)  # a split backup's objects, as listed

    @property
    def time(self) -> datetime:
        return parse_timestamp(self.timestamp)

    @property
    def unknown(self) -> bool:
        return bool(self.not_understood or self.others)

    @property
    def suspect(self) -> bool:
        return not self.unknown and bool(self.suspect_why)

    @property
    def damaged(self) -> bool:
        return not self.unknown and not self.suspect and bool(self.problem)

    @property
    def incomplete(self) -> bool:
        """A run that died between its two writes: a dump object and no manifest."""
        return not self.unknown and not self.suspect and self.manifest_object is None

    @property
    def complete(self) -> bool:
        """The objects and the manifest agree (signed or not)."""
        return (
            (self.dump is not None or (self.manifest is not None and self.manifest.split))
            and self.manifest is not None
            and not self.problem
            and not self.unknown
            and not self.suspect
        )

    @property
    def trusted(self) -> bool:
        """Complete, and signed by a trusted key when keys are configured: what restore picks,
        verify drills and retention counts."""
        return self.complete and not (self.enforced and self.untrusted_why)

    @property
    def unsigned(self) -> bool:
        """Complete, keys configured, and no signature at all."""
        return self.complete and self.enforced and self.untrusted_why == "unsigned"

    @property
    def untrusted(self) -> bool:
        """Complete, keys configured, and a signature that is not accepted (forged, changed, or
        by a key not configured)."""
        return self.complete and self.enforced and bool(self.untrusted_why) and not self.unsigned

    @property
    def keys(self) -> list[str]:
        """Its objects, manifest first: deleting in this order never leaves a manifest that
        points at nothing."""
        return [o.key for o in (self.manifest_object, self.dump, *self.members) if o is not None]

    @property
    def size(self) -> int:
        """What its objects hold in the store, as listed."""
        return sum(o.size for o in (self.dump, *self.members) if o is not None)

    @property
    def newest_change(self) -> datetime:
        return max(o.modified for o in (self.manifest_object, self.dump, *self.others, *self.members) if o is not None)

    def state(self) -> str:
        if self.unknown:
            what = (
                self.not_understood
                or f"{', '.join(o.key.rsplit('/', 1)[-1] for o in self.others)} is in a format "
                "this pgbackup does not read"
            )
            return f"unknown: {what} (never deleted by this version)"
        if self.suspect:
            return f"SUSPECT: {self.suspect_why} (never picked, kept or deleted by retention)"
        if self.unsigned:
            return "complete, UNSIGNED (not picked, verified or kept while signing keys are configured)"
        if self.untrusted:
            return f"complete, UNTRUSTED: {self.untrusted_why} (never picked, verified, kept or deleted)"
        if self.complete:
            return f"complete, signed ({self.signed_by})" if self.signed_by else "complete"
        if self.problem:
            return f"DAMAGED: {self.problem}"
        if self.manifest_object is None:
            what = f"{len(self.members)} objects of a split backup" if self.members else "dump object"
            return f"incomplete: {what} without a manifest"
        return "manifest not read"


@dataclass
class Catalog:
    """Every backup under one prefix."""

    storage: Storage
    prefix: str
    backups: list[Backup] = field(default_factory=list)
    reading: Reading = field(default_factory=Reading)

    def keys(self) -> frozenset[str]:
        """Every key of our layout the listing found."""
        return frozenset(
            o.key for b in self.backups for o in (b.dump, b.manifest_object, *b.others, *b.members) if o is not None
        )

    def databases(self) -> list[str]:
        return sorted({b.database for b in self.backups})

    def of(self, database: str) -> list[Backup]:
        """One database's backups, newest first."""
        return sorted((b for b in self.backups if b.database == database), key=lambda b: b.timestamp, reverse=True)

    def complete(self, database: str) -> list[Backup]:
        """The trusted backups of ``database``, newest first."""
        chosen = self.of(database)
        self.load_manifests(chosen)
        return [b for b in chosen if b.trusted]

    def latest(self, database: str, at: datetime | None = None) -> Backup | None:
        """The newest trusted backup, or the newest at or before ``at`` (reads manifests
        only until it finds one)."""
        for backup in self.of(database):
            if at is not None and backup.time > at:
                continue
            self.load_manifests([backup])
            if backup.trusted:
                return backup
        return None

    def newest(self, database: str, at: datetime | None = None) -> Backup | None:
        """The newest backup (at or before ``at``) that is not a mere leftover of a run that
        died, nor suspect, nor (with keys) unsigned or untrusted: trusted, or damaged, or
        unknown. Restore and verify use this, so a damaged newest backup is reported, never
        silently passed over for an older one; what it passes over is in ``passed_over``."""
        for backup in self.of(database):
            if at is not None and backup.time > at:
                continue
            self.load_manifests([backup])
            if not (backup.incomplete or backup.suspect or backup.unsigned or backup.untrusted):
                return backup
        return None

    def suspects(self) -> list[Backup]:
        """Every backup dated in the future, newest first (no manifest is read to know)."""
        return sorted((b for b in self.backups if b.suspect), key=lambda b: b.timestamp, reverse=True)

    def passed_over(self, database: str, chosen: Backup | None, at: datetime | None = None) -> list[Backup]:
        """The incomplete, suspect, unsigned and untrusted backups newer than ``chosen`` (at or
        before ``at``): what ``newest`` did not pick, which its callers report. An incomplete one
        is named too: a dump without its manifest may be the newest data there is (a run that
        died, a manifest write that failed), and whoever restores an older one must know it."""
        newer = [
            b
            for b in self.of(database)
            if (chosen is None or b.timestamp > chosen.timestamp) and (at is None or b.time <= at)
        ]
        self.load_manifests(newer)
        return [b for b in newer if b.incomplete or b.suspect or b.unsigned or b.untrusted]

    def load_manifests(self, backups: Iterable[Backup]) -> None:
        for backup in backups:
            if (
                backup.manifest is None
                and backup.manifest_object is not None
                and not backup.problem
                and not backup.not_understood
            ):
                read_manifest(self.storage, backup, self.reading, prefix=self.prefix)

    def details(self, backup: Backup) -> Manifest:
        """``backup``'s whole manifest (row counts, block digests), read and checked again; it
        must still be the manifest the catalog judged, else ``RestoreError``."""
        assert backup.manifest is not None and backup.manifest_object is not None
        fresh = Backup(
            backup.database,
            backup.timestamp,
            dump=backup.dump,
            manifest_object=backup.manifest_object,
            enforced=backup.enforced,
            members=backup.members,
        )
        manifest = read_manifest(self.storage, fresh, self.reading, slim=False, prefix=self.prefix)
        if (
            manifest is None
            or fresh.problem
            or fresh.not_understood
            or fresh.untrusted_why != backup.untrusted_why
            or manifest.slim() != backup.manifest
        ):
            raise RestoreError(
                f"the manifest of the backup of {backup.timestamp} changed while it was being read "
                f"({fresh.state()}); run the command again"
            )
        return manifest


def read_manifest(
    storage: Storage, backup: Backup, reading: Reading, *, slim: bool = True, prefix: str = ""
) -> Manifest | None:
    """Fill in ``backup.manifest`` (slim) and its trust; or ``backup.problem`` (damaged) when the
    manifest and the objects disagree; or ``backup.not_understood`` (unknown) when this
    version cannot tell. Returns the manifest read (whole unless ``slim``), or None."""
    assert backup.manifest_object is not None
    key = backup.manifest_object.key
    try:
        values = parse(storage.read_all(key, reading.manifest_limit))
        manifest = Manifest.from_values(values)
    except NotFoundError:
        backup.not_understood = "its manifest disappeared while listing"
        return None
    except StorageError as exc:
        if "larger than" in str(exc):
            backup.problem = (
                f"manifest larger than {reading.manifest_limit // (1024 * 1024)} MiB ({MANIFEST_LIMIT_MB.name})"
            )
        else:
            backup.not_understood = f"its manifest cannot be read: {exc}"
        return None
    except NotUnderstood as exc:
        backup.not_understood = f"manifest: {exc}"
        return None
    except ValueError as exc:
        backup.problem = f"manifest invalid: {exc}"
        return None
    if manifest.compression not in DUMP_SUFFIXES:
        backup.not_understood = f"compressed with {manifest.compression!r}, which this pgbackup does not read"
        return None
    if manifest.encryption is not None and manifest.encryption.get("format") != "age":
        backup.not_understood = (
            f"encrypted with {manifest.encryption.get('format')!r}, which this pgbackup does not read"
        )
        return None
    _judge_signature(backup, values, reading.trust)
    backup.manifest = manifest.slim()
    backup.tables, backup.rows = manifest.tables, sum(manifest.row_counts.values())
    backup.problem = _disagreement(backup, manifest, prefix)
    return manifest if not slim else backup.manifest


def _judge_signature(backup: Backup, values: dict[str, Any], trust: Trust) -> None:
    backup.enforced = trust.enforced
    if not trust.enforced:
        return
    try:
        backup.signed_by = trust.check(values)
    except SignatureInvalid as exc:
        backup.untrusted_why = str(exc)


def _disagreement(backup: Backup, manifest: Manifest, prefix: str) -> str:
    """Why the manifest and the objects disagree, or "" when they agree."""
    if manifest.split:
        if manifest.database != backup.database or manifest.run_timestamp != backup.timestamp:
            return "manifest names another database or time than its key"
        return _split_disagreement(backup, manifest, prefix)
    if backup.members:
        return f"{len(backup.members)} objects of a split backup beside a manifest of one dump"
    if backup.dump is None:
        return "its dump object is missing"
    if manifest.key != backup.dump.key:
        return f"manifest names another object ({manifest.key[:200]})"
    if manifest.database != backup.database or manifest.run_timestamp != backup.timestamp:
        return "manifest names another database or time than its key"
    if not manifest.key.endswith(dump_suffix(manifest.compression, manifest.encrypted)):
        sealed = " sealed with age" if manifest.encrypted else ""
        return f"manifest says {manifest.compression}{sealed} but the object is named {manifest.key[:200]}"
    if manifest.compressed_bytes != backup.dump.size:
        return f"dump object has {backup.dump.size} bytes, the manifest says {manifest.compressed_bytes}"
    return ""


def _split_disagreement(backup: Backup, manifest: Manifest, prefix: str) -> str:
    if backup.dump is not None:
        return f"a dump object ({backup.dump.key[:200]}) beside a split backup's manifest"
    if manifest.key != split_directory(prefix, backup.database, backup.timestamp):
        return f"manifest names another directory ({manifest.key[:200]})"
    stored = {o.key: o.size for o in backup.members}
    suffix = dump_suffix(manifest.compression, manifest.encrypted)[len(".sql") :]
    missing = 0
    for obj in manifest.objects:
        if not obj["key"].endswith(suffix):
            sealed = " sealed with age" if manifest.encrypted else ""
            return f"manifest says {manifest.compression}{sealed} but an object is named {obj['key'][:200]}"
        size = stored.get(obj["key"])
        if size is None:
            missing += 1
        elif size != obj["compressed_bytes"]:
            return f"{obj['key'][:200]} has {size} bytes, the manifest says {obj['compressed_bytes']}"
    if missing:
        return f"{missing} of its {len(manifest.objects)} objects are missing"
    return ""


def _suspect(backup: Backup, now: datetime, skew: timedelta) -> str:
    """Why ``backup``'s timestamp cannot be believed, or "": later than now, or than the time
    its newest object was stored, by more than ``skew``."""
    stored = backup.manifest_object or backup.dump or (backup.members[0] if backup.members else None)
    if backup.time > now + skew:
        return f"dated {backup.timestamp}, later than now by more than {CLOCK_SKEW.name} ({_span(skew)})"
    if stored is not None and backup.time > stored.modified + skew:
        return (
            f"dated {backup.timestamp}, later than when the store received it "
            f"({stored.modified.strftime('%Y-%m-%dT%H:%M:%SZ')}) by more than {CLOCK_SKEW.name}"
        )
    return ""


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def load_catalog(storage: Storage, prefix: str, reading: Reading | None = None) -> Catalog:
    """List ``prefix`` once and group our objects into backups."""
    reading = reading or Reading()
    now = reading.now or datetime.now(UTC)
    groups: dict[tuple[str, str], Backup] = {}
    for item in storage.list_objects(prefix):
        member = parse_member(prefix, item.key)
        if member is not None:
            database, timestamp, _ = member
            key = (database, timestamp)
            groups.setdefault(key, Backup(database, timestamp, enforced=reading.trust.enforced)).members.append(item)
            continue
        parsed = parse_key(prefix, item.key)
        if parsed is None:
            continue
        database, timestamp, suffix = parsed
        backup = groups.setdefault((database, timestamp), Backup(database, timestamp, enforced=reading.trust.enforced))
        if suffix in READABLE and backup.dump is None:
            backup.dump = item
        elif suffix == MANIFEST_SUFFIX:
            backup.manifest_object = item
        else:
            backup.others.append(item)
    for backup in groups.values():
        backup.suspect_why = _suspect(backup, now, reading.skew)
    return Catalog(storage=storage, prefix=prefix, backups=list(groups.values()), reading=reading)
