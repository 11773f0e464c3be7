"""The catalog: what backups exist under the prefix, read from a listing and the manifests.

One listing of ``<prefix>/`` is grouped by ``(database, timestamp)`` through
``layout.parse_key``; keys that do not parse are not ours and never appear. Each group is a
``Backup``:

- *complete*: the dump object (``.sql.gz`` or ``.sql.zst``, ``.age`` after either when it is
  sealed) and a readable manifest whose
  key, size and compression agree with it.
  Only complete backups are restored, verified, or count for retention;
- *incomplete*: a dump without a manifest (a run died between the two writes, or its
  manifest write failed). It never was a backup: ``prune`` removes it once it is a day old;
- *damaged*: the manifest and the objects disagree (size, key, a missing dump object, an
  invalid manifest). Restore and verify refuse it by name instead of falling back to an
  older backup, and retention never deletes it (it logs how to remove it by hand);
- *unknown*: this version cannot vouch for it (a manifest of a newer format, a dump in a
  format it does not read, a manifest it cannot read). Listed, never deleted, so an older
  pgbackup can never destroy what a newer one wrote.

Manifests are read only for the entries a command needs (``load_manifests``), so listing a
large bucket costs one paginated LIST plus one GET per backup shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..core import logs
from ..core.errors import NotFoundError, StorageError
from ..core.layout import DUMP_SUFFIXES, MANIFEST_SUFFIX, READABLE_SUFFIXES, dump_suffix, parse_key, parse_timestamp
from ..core.manifest import Manifest, NotUnderstood
from ..storage.base import ObjectInfo, Storage

MANIFEST_LIMIT = 16 * 1024 * 1024
READABLE = READABLE_SUFFIXES  # gzip and zstd dumps, plain or sealed, mixed freely in one history
log = logs.get("catalog")


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

    @property
    def time(self) -> datetime:
        return parse_timestamp(self.timestamp)

    @property
    def unknown(self) -> bool:
        return bool(self.not_understood or self.others)

    @property
    def damaged(self) -> bool:
        return not self.unknown and bool(self.problem)

    @property
    def incomplete(self) -> bool:
        """A run that died between its two writes: a dump object and no manifest."""
        return not self.unknown and self.manifest_object is None

    @property
    def complete(self) -> bool:
        return (self.dump is not None and self.manifest is not None and not self.problem
                and not self.unknown)

    @property
    def keys(self) -> list[str]:
        """Its objects, manifest first: deleting in this order never leaves a manifest that
        points at nothing."""
        return [o.key for o in (self.manifest_object, self.dump) if o is not None]

    @property
    def newest_change(self) -> datetime:
        return max(o.modified for o in (self.manifest_object, self.dump, *self.others) if o is not None)

    def state(self) -> str:
        if self.unknown:
            what = self.not_understood or f"{', '.join(o.key.rsplit('/', 1)[-1] for o in self.others)} is in a format " \
                                          "this pgbackup does not read"
            return f"unknown: {what} (never deleted by this version)"
        if self.complete:
            return "complete"
        if self.problem:
            return f"DAMAGED: {self.problem}"
        if self.manifest_object is None:
            return "incomplete: dump object without a manifest"
        return "manifest not read"


@dataclass
class Catalog:
    """Every backup under one prefix."""

    storage: Storage
    prefix: str
    backups: list[Backup] = field(default_factory=list)

    def keys(self) -> frozenset[str]:
        """Every key of our layout the listing found."""
        return frozenset(o.key for b in self.backups for o in (b.dump, b.manifest_object, *b.others) if o is not None)

    def databases(self) -> list[str]:
        return sorted({b.database for b in self.backups})

    def of(self, database: str) -> list[Backup]:
        """One database's backups, newest first."""
        return sorted((b for b in self.backups if b.database == database), key=lambda b: b.timestamp, reverse=True)

    def complete(self, database: str) -> list[Backup]:
        chosen = self.of(database)
        self.load_manifests(chosen)
        return [b for b in chosen if b.complete]

    def latest(self, database: str, at: datetime | None = None) -> Backup | None:
        """The newest complete backup, or the newest at or before ``at`` (reads manifests
        only until it finds one)."""
        for backup in self.of(database):
            if at is not None and backup.time > at:
                continue
            self.load_manifests([backup])
            if backup.complete:
                return backup
        return None

    def newest(self, database: str, at: datetime | None = None) -> Backup | None:
        """The newest backup (at or before ``at``) that is not a mere leftover of a run that
        died: complete, or damaged, or unknown. Restore and verify use this, so a damaged
        newest backup is reported, never silently passed over for an older one."""
        for backup in self.of(database):
            if at is not None and backup.time > at:
                continue
            self.load_manifests([backup])
            if not backup.incomplete:
                return backup
        return None

    def load_manifests(self, backups: Iterable[Backup]) -> None:
        for backup in backups:
            if backup.manifest is None and backup.manifest_object is not None and not backup.problem:
                read_manifest(self.storage, backup)


def read_manifest(storage: Storage, backup: Backup) -> None:
    """Fill in ``backup.manifest``; or ``backup.problem`` (damaged) when the manifest and the
    objects disagree; or ``backup.not_understood`` (unknown) when this version cannot tell."""
    assert backup.manifest_object is not None
    key = backup.manifest_object.key
    try:
        manifest = Manifest.from_json(storage.read_all(key, MANIFEST_LIMIT))
    except NotFoundError:
        backup.not_understood = "its manifest disappeared while listing"
        return
    except StorageError as exc:
        backup.not_understood = f"its manifest cannot be read: {exc}"
        return
    except NotUnderstood as exc:
        backup.not_understood = f"manifest: {exc}"
        return
    except ValueError as exc:
        backup.problem = f"manifest invalid: {exc}"
        return
    if manifest.compression not in DUMP_SUFFIXES:
        backup.not_understood = f"compressed with {manifest.compression!r}, which this pgbackup does not read"
        return
    if manifest.encryption is not None and manifest.encryption.get("format") != "age":
        backup.not_understood = f"encrypted with {manifest.encryption.get('format')!r}, which this pgbackup does not read"
        return
    backup.manifest = manifest
    if backup.dump is None:
        backup.problem = "its dump object is missing"
    elif manifest.key != backup.dump.key:
        backup.problem = f"manifest names another object ({manifest.key})"
    elif not manifest.key.endswith(dump_suffix(manifest.compression, manifest.encrypted)):
        sealed = " sealed with age" if manifest.encrypted else ""
        backup.problem = f"manifest says {manifest.compression}{sealed} but the object is named {manifest.key}"
    elif manifest.compressed_bytes != backup.dump.size:
        backup.problem = (f"dump object has {backup.dump.size} bytes, "
                          f"the manifest says {manifest.compressed_bytes}")


def load_catalog(storage: Storage, prefix: str) -> Catalog:
    """List ``prefix`` once and group our objects into backups."""
    groups: dict[tuple[str, str], Backup] = {}
    for item in storage.list_objects(prefix):
        parsed = parse_key(prefix, item.key)
        if parsed is None:
            continue
        database, timestamp, suffix = parsed
        backup = groups.setdefault((database, timestamp), Backup(database, timestamp))
        if suffix in READABLE and backup.dump is None:
            backup.dump = item
        elif suffix == MANIFEST_SUFFIX:
            backup.manifest_object = item
        else:
            backup.others.append(item)
    return Catalog(storage=storage, prefix=prefix, backups=list(groups.values()))
