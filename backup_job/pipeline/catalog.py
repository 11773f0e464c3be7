"""The catalog: what backups exist under the prefix, read from a listing and the manifests.

One listing of ``<prefix>/`` is grouped by ``(database, timestamp)`` through
``layout.parse_key``; keys that do not parse are not ours and never appear. Each group is a
``Backup``:

- *complete*: the dump object and a readable manifest whose key, size and kind agree with it.
  Only complete backups are restored, verified, or count for retention;
- *incomplete*: a dump without a manifest (a run died between the two writes, or a manifest
  write failed and its cleanup too), a manifest without its dump (a deletion was cut short),
  or a manifest that cannot be read. ``list`` shows them; ``prune`` removes them once they
  are older than a day.

Manifests are read only for the entries a command needs (``load_manifests``), so listing a
large bucket costs one paginated LIST plus one GET per backup shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..core import logs
from ..core.errors import NotFoundError, StorageError
from ..core.layout import DUMP_SUFFIX, MANIFEST_SUFFIX, parse_key, parse_timestamp
from ..core.manifest import Manifest
from ..storage.base import ObjectInfo, Storage

MANIFEST_LIMIT = 16 * 1024 * 1024
log = logs.get("catalog")


@dataclass
class Backup:
    """One database's (or the globals') backup of one run, as found in storage."""

    database: str
    timestamp: str
    dump: ObjectInfo | None = None
    manifest_object: ObjectInfo | None = None
    manifest: Manifest | None = None
    problem: str = ""  # why a backup that has both objects is still not complete

    @property
    def time(self) -> datetime:
        return parse_timestamp(self.timestamp)

    @property
    def complete(self) -> bool:
        return self.dump is not None and self.manifest is not None and not self.problem

    @property
    def keys(self) -> list[str]:
        """Its objects, manifest first: deleting in this order never leaves a manifest that
        points at nothing."""
        return [o.key for o in (self.manifest_object, self.dump) if o is not None]

    @property
    def newest_change(self) -> datetime:
        return max(o.modified for o in (self.manifest_object, self.dump) if o is not None)

    def state(self) -> str:
        if self.complete:
            return "complete"
        if self.dump is None:
            return "incomplete: manifest without its dump object"
        if self.manifest_object is None:
            return "incomplete: dump object without a manifest"
        return f"incomplete: {self.problem or 'manifest not read'}"


@dataclass
class Catalog:
    """Every backup under one prefix."""

    storage: Storage
    prefix: str
    backups: list[Backup] = field(default_factory=list)

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

    def load_manifests(self, backups: Iterable[Backup]) -> None:
        for backup in backups:
            if backup.manifest is None and backup.manifest_object is not None and not backup.problem:
                read_manifest(self.storage, backup)


def read_manifest(storage: Storage, backup: Backup) -> None:
    """Fill in ``backup.manifest``, or ``backup.problem`` when it cannot be trusted."""
    assert backup.manifest_object is not None
    key = backup.manifest_object.key
    try:
        manifest = Manifest.from_json(storage.read_all(key, MANIFEST_LIMIT))
    except NotFoundError:
        backup.problem = "manifest disappeared while listing"
        return
    except StorageError as exc:
        backup.problem = f"manifest unreadable: {exc}"
        return
    except ValueError as exc:
        backup.problem = f"manifest invalid: {exc}"
        return
    if backup.dump is not None:
        if manifest.key != backup.dump.key:
            backup.problem = f"manifest names another object ({manifest.key})"
        elif manifest.compressed_bytes != backup.dump.size:
            backup.problem = (f"dump object has {backup.dump.size} bytes, "
                              f"the manifest says {manifest.compressed_bytes}")
    backup.manifest = manifest


def load_catalog(storage: Storage, prefix: str) -> Catalog:
    """List ``prefix`` once and group our objects into backups."""
    groups: dict[tuple[str, str], Backup] = {}
    for item in storage.list_objects(prefix):
        parsed = parse_key(prefix, item.key)
        if parsed is None:
            continue
        database, timestamp, suffix = parsed
        backup = groups.setdefault((database, timestamp), Backup(database, timestamp))
        if suffix == DUMP_SUFFIX:
            backup.dump = item
        elif suffix == MANIFEST_SUFFIX:
            backup.manifest_object = item
    return Catalog(storage=storage, prefix=prefix, backups=list(groups.values()))
