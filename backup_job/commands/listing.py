"""``pgbackup list``: the catalog as a table for people or a JSON document for scripts.

Newest first per database, databases in name order, the globals last. Every backup shows
its time, compressed size (of all its objects, for a split backup, whose state says how
many), the start of its sha256 and whether it is sealed with age (ENCRYPTED); incomplete ones say what is missing,
DAMAGED ones why their objects and manifest disagree, unknown ones why this version cannot
vouch for them, SUSPECT ones (dated in the future) why, and a backup that set off the shrink
alarm says so. With signing keys configured, complete backups say whether they are signed (and
by which key), UNSIGNED or UNTRUSTED. ``--json`` prints the same rows with the full checksum and
sizes in bytes.

Database names come from the bucket's keys and the state from its objects, so whoever can write
the bucket chooses them: every cell of the table is escaped (``core.printable``: ``\\n``,
``\\x1b``, ``\\u202e``), so a name can neither forge a line of the listing nor drive the
terminal. The JSON keeps every name exact; JSON escapes control characters itself.
"""

from __future__ import annotations

import json
from typing import Any

from ..core import logs
from ..core.layout import ENCRYPTED_SUFFIX, GLOBALS, display_name
from ..core.printable import escape
from ..pipeline.catalog import Backup, Catalog


def _flags(backup: Backup) -> str:
    if not backup.trusted:
        return backup.state()
    assert backup.manifest is not None
    notes = [backup.state()]  # complete, and by which key it is signed
    if backup.manifest.split:
        notes.append(f"split: {len(backup.manifest.objects)} objects")
    if backup.manifest.shrink_alarm:
        alarm = backup.manifest.shrink_alarm
        notes.append(f"SHRUNK below {round(alarm['fraction'] * 100)}% of {alarm['previous_timestamp']}")
    if backup.manifest.role_passwords is False:
        notes.append("without role passwords")
    return ", ".join(notes)


def status(backup: Backup) -> str:
    """``complete``, ``unsigned``, ``untrusted``, ``suspect``, ``incomplete``, ``damaged`` or
    ``unknown`` (see ``pipeline.catalog``)."""
    if backup.trusted:
        return "complete"
    if backup.unsigned:
        return "unsigned"
    if backup.untrusted:
        return "untrusted"
    if backup.unknown:
        return "unknown"
    if backup.suspect:
        return "suspect"
    return "damaged" if backup.damaged else "incomplete"


def row(backup: Backup) -> dict[str, Any]:
    manifest = backup.manifest
    return {
        "database": None if backup.database == GLOBALS else backup.database,
        "kind": "globals" if backup.database == GLOBALS else "database",
        "timestamp": backup.timestamp,
        "time": backup.time.isoformat().replace("+00:00", "Z"),
        "complete": backup.trusted,
        "status": status(backup),
        "signed_by": backup.signed_by or None,
        "state": backup.state(),
        "key": backup.dump.key if backup.dump else (manifest.key if manifest else None),
        "compression": manifest.compression if manifest else None,
        "encrypted": manifest.encrypted
        if manifest
        else (backup.dump.key.endswith(ENCRYPTED_SUFFIX) if backup.dump else None),
        "recipients": manifest.recipients if manifest else None,
        "compressed_bytes": manifest.compressed_bytes
        if manifest
        else (backup.size if backup.dump or backup.members else None),
        "format": manifest.format if manifest else ("split" if backup.members else None),
        "objects": len(manifest.objects) if manifest and manifest.split else (len(backup.members) or None),
        "raw_bytes": manifest.raw_bytes if manifest else None,
        "sha256": manifest.sha256 if manifest else None,
        "tables": backup.tables if manifest else None,
        "rows": backup.rows if manifest else None,
        "shrink_alarm": manifest.shrink_alarm if manifest else None,
        "role_passwords": manifest.role_passwords if manifest else None,
    }


def selected(catalog: Catalog, database: str | None) -> list[Backup]:
    names = [database] if database is not None else [n for n in catalog.databases() if n != GLOBALS] + [GLOBALS]
    chosen = [backup for name in names for backup in catalog.of(name)]
    catalog.load_manifests(chosen)
    return chosen


def render(catalog: Catalog, database: str | None, *, as_json: bool) -> str:
    backups = selected(catalog, database)
    if as_json:
        return json.dumps([row(b) for b in backups], indent=2) + "\n"
    if not backups:
        what = f"of {database!r} " if database is not None else ""
        return f"no backups {what}under {catalog.storage.describe(catalog.prefix)}\n"
    table: list[tuple[str, ...]] = [("DATABASE", "TIMESTAMP", "SIZE", "SHA256", "ENCRYPTED", "STATE")]
    for backup in backups:
        data = row(backup)
        size = data["compressed_bytes"]
        table.append(
            tuple(
                escape(cell)
                for cell in (
                    display_name(backup.database),
                    backup.timestamp,
                    logs.human_bytes(size) if size is not None else "-",
                    (data["sha256"] or "-")[:12],
                    "age" if data["encrypted"] else "-",
                    _flags(backup),
                )
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines = ["  ".join([*(cell.ljust(width) for cell, width in zip(r[:5], widths, strict=False)), r[5]]) for r in table]
    return "\n".join(lines) + "\n"
