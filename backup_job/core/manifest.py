"""The manifest: the proof that a backup object is complete, stored beside it.

``<prefix>/<database>/<timestamp>.manifest.json`` is written only after the dump object's
upload completed, so its presence is what makes an object a backup. Restore and verify
check the object against ``sha256`` and ``compressed_bytes``; list and prune read the rest.
Fields are only ever added; ``format_version`` changes when a meaning changes.

What later commands rely on, beyond the object's identity:

- ``row_counts``: rows per table as counted in the COPY blocks while the dump streamed by
  (``copycount``), which ``verify`` compares with the restored tables;
- ``database_properties``: owner, encoding, locale, ``ALTER DATABASE ... SET`` and GRANTs of
  the database, which a plain dump leaves out and ``restore --create`` reapplies;
- ``shrink_alarm``: set when this backup is much smaller than the previous one;
- ``compression`` (``gzip`` or ``zstd``), ``compression_level`` (as the user asked for it)
  and ``compression_engine`` (the library, its own level and the threads it ran with):
  ``format`` stays ``plain``, the dump's own format;
- ``kind`` ``globals`` with ``role_passwords``: a ``pg_dumpall --globals-only`` object, and
  whether it could include the role passwords;
- ``run_id`` and ``attempt``: the run that wrote it (random, or ``BACKUP_RUN_ID``, shared by a
  run's shards and retried pods) and the process within it (always random);
- ``encryption`` (``{"format": "age", "recipients": [...]}``, public keys only) for an object
  sealed with age. ``compressed_bytes`` and ``sha256`` always describe the object as stored
  (the ciphertext), which is what list, verify, retention and the shrink alarm compare. A
  sealed backup's manifest has ``format_version`` 2, so a pgbackup from before encryption
  lists it as unknown (never deletes it, never mistakes it for gzip).

- ``block_bytes`` and ``block_sha256``: the sha256 of every ``block_bytes`` block of the stored
  object, concatenated and base64-encoded, so restore and verify check each block before any
  of its bytes go on (``pipeline.load``); a manifest without them (written before they existed)
  is read in two passes instead;
- ``sealed_database_properties``: for a sealed backup, ``database_properties`` sealed with age
  to the same recipients (settings, role settings and comments can hold secrets); the plain
  field is then empty;
- ``owners``: the roles that own objects in the database, whose code (constraints, defaults,
  index expressions) any restore of it runs; restore asks before a superuser loads code of
  roles that are not superusers (``commands.restore``);
- ``server_system_identifier``: the backed-up cluster's ``system_identifier``, so a restore
  drill can tell that a scratch server is not that server;
- ``signature``: ed25519 over the rest of the manifest (``core.signing``), when the job holds
  a signing key.

A split backup (``format`` ``split``, ``format_version`` 3, so an older pgbackup lists it as
unknown and never deletes or misreads it) is one manifest and many objects (``pipeline.split``):

- ``objects``: every object of the backup, each with its key, ``section`` (``pre-data`` and
  ``post-data``: custom-format schema archives; ``data``: one table's rows, or one range of
  its pages, as COPY text; ``table-data``: the rows of many small tables, as one pg_dump
  archive, with the ``tables`` it holds; ``large-objects``: an archive of them; ``sequences``:
  their values, as JSON), sizes, sha256 and block digests, and for data its table, columns, the table it
  loads into and its row count. The backup is complete only when every one is stored with
  its size; ``key`` is the members' directory, ``compressed_bytes``, ``raw_bytes`` and
  ``parts`` are the sums, ``sha256`` the digest of the list of the objects' digests;
- ``relations``: per table, the OIDs of what a restore of that table alone takes from the
  schema archives (``pg.relations``), and its foreign keys;
- ``encoding``: the client encoding the rows were read in.

Everything read back is hostile until checked: ``parse`` refuses duplicate keys and any field
of the wrong type or shape with a ``ValueError`` naming the field, so one bad manifest marks
one backup damaged and stops nothing else. ``slim`` drops what only restore and verify need
(row counts, block digests), which a listing of many large manifests must not hold.

``RunFacts`` holds what every manifest of one run shares and builds each manifest from what
the stream measured (``StreamFacts``); ``shrink_alarm`` decides the alarm field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
from dataclasses import MISSING, asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from .. import __version__
from .layout import GLOBALS

FORMAT_VERSION = 1  # what plain backups are written as
SEALED_FORMAT_VERSION = 2  # sealed backups: a pgbackup before encryption sees them as unknown, never as gzip
SPLIT_FORMAT_VERSION = 3  # split backups: a pgbackup before them sees them as unknown, never as one dump
UNDERSTOOD_VERSION = SPLIT_FORMAT_VERSION
SECTIONS = ("pre-data", "data", "table-data", "post-data", "large-objects", "sequences")


class NotUnderstood(ValueError):
    """A manifest this version cannot vouch for, though it may be fine: written by a newer
    pgbackup, or not by pgbackup at all. Such a backup is *unknown*, never deleted."""


@dataclass(frozen=True)
class Manifest:
    """Everything known about one completed backup object."""

    database: str
    key: str
    run_timestamp: str
    raw_bytes: int
    compressed_bytes: int
    sha256: str
    parts: int
    pg_dump_version: str
    server_version: str
    started_at: str
    finished_at: str
    duration_seconds: float
    compression_level: int
    pg_dump_options: list[str] = field(default_factory=list)
    kind: str = "database"  # or "globals"
    row_counts: dict[str, int] = field(default_factory=dict)
    database_properties: dict[str, Any] | None = None
    role_passwords: bool | None = None
    shrink_alarm: dict[str, Any] | None = None
    run_id: str = ""  # the run that wrote it (settles a write whose answer was lost)
    attempt: str = ""  # the process (one attempt of the run) that wrote it; see RunFacts
    format: str = "plain"
    compression: str = "gzip"  # or "zstd"; compression_level is the level asked for, in its scale
    compression_engine: dict[str, Any] | None = None  # what ran: library, its own level, threads
    encryption: dict[str, Any] | None = None  # {"format": "age", "recipients": [public keys]}, or None
    format_version: int = FORMAT_VERSION
    tool: str = "pgbackup"
    tool_version: str = __version__
    block_bytes: int = 0  # 0: no block digests (a manifest from before they existed)
    block_sha256: str = ""  # base64 of the concatenated sha256 of every block of the stored object
    sealed_database_properties: str | None = None  # base64 of the age-sealed JSON, for a sealed backup
    owners: list[str] | None = None  # the roles owning objects in the database: whose code a restore
    # runs (constraints, defaults, index expressions); None: not recorded
    server_system_identifier: str = ""  # the backed-up cluster's (verify refuses to drill on it); "" unknown
    signature: dict[str, str] | None = None  # core.signing, over everything else
    objects: list[dict[str, Any]] = field(default_factory=list)  # a split backup's objects
    relations: dict[str, dict[str, Any]] = field(default_factory=dict)  # a split backup's tables
    encoding: str = ""  # a split backup's client encoding

    @property
    def split(self) -> bool:
        return self.format == "split"

    def piece(self, obj: dict[str, Any]) -> Manifest:
        """One object of a split backup seen as a manifest of its own, which the readers that
        check stored bytes (``pipeline.load``, ``pipeline.proof``) take as they are."""
        return replace(
            self,
            key=obj["key"],
            raw_bytes=obj["raw_bytes"],
            compressed_bytes=obj["compressed_bytes"],
            sha256=obj["sha256"],
            parts=obj["parts"],
            block_bytes=obj["block_bytes"],
            block_sha256=obj["block_sha256"],
            objects=[],
            relations={},
            format="plain",
        )

    def pieces(self, section: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.objects if section is None or o["section"] == section]

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def recipients(self) -> list[str]:
        return list((self.encryption or {}).get("recipients") or [])

    @property
    def blocks(self) -> list[bytes]:
        """The sha256 of each block of the stored object, in order (empty: not recorded)."""
        raw = base64.b64decode(self.block_sha256)
        return [raw[i : i + 32] for i in range(0, len(raw), 32)]

    @property
    def tables(self) -> int:
        return len(self.row_counts)

    def values(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return (json.dumps(self.values(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; ``ValueError`` for anything that is not one of ours."""
        return cls.from_values(parse(data))

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Manifest:
        """A manifest from checked JSON values (``parse``); fields it does not know are left out."""
        if values.get("tool") != "pgbackup":
            raise NotUnderstood("not a pgbackup manifest")
        version = values.get("format_version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 1000:
            raise ValueError("field format_version: not a small whole number")
        if version > UNDERSTOOD_VERSION:
            raise NotUnderstood(
                f"manifest format {version} is newer than this pgbackup understands ({UNDERSTOOD_VERSION}); "
                "upgrade pgbackup"
            )
        missing = [
            name
            for name, spec in cls.__dataclass_fields__.items()
            if name not in values and spec.default is MISSING and spec.default_factory is MISSING
        ]
        if missing:
            raise ValueError(f"manifest lacks {', '.join(missing)}")
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for name, value in known.items():
            _FIELDS[name](name, value)
        manifest = cls(**known)
        _check_blocks(manifest)
        _check_split(manifest)
        return manifest

    def slim(self) -> Manifest:
        """This manifest without what only restore and verify read (row counts, block digests),
        which a listing of many large manifests must not hold."""
        return replace(
            self,
            row_counts={},
            block_sha256="",
            relations={},
            objects=[
                {k: obj[k] for k in ("name", "key", "section", "compressed_bytes") if k in obj} for obj in self.objects
            ],
        )


MAX_JSON_DEPTH = 8


def parse(data: bytes) -> dict[str, Any]:
    """Checked JSON of a manifest: an object, no duplicate keys, no NaN, no deep nesting."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in items:
            if key in found:
                raise ValueError(f"key {key[:40]!r} appears twice")
            found[key] = value
        return found

    def constant(name: str) -> float:
        raise ValueError(f"{name} is not a number a manifest holds")

    try:
        values = json.loads(data, object_pairs_hook=pairs, parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {str(exc)[:200]}") from None
    except ValueError as exc:
        raise ValueError(f"not a manifest: {str(exc)[:200]}") from None
    if not isinstance(values, dict):
        raise ValueError("not a JSON object")
    if _depth(values) > MAX_JSON_DEPTH:
        raise ValueError("nested deeper than a manifest is")
    return values


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# --- the shape of every field, checked before a value is used --------------------------------
MAX_INT = 2**63 - 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A table as pg_dump writes it in a COPY header (pg.copycount): schema.table, each part plain or
# double-quoted with "" escapes.
TABLE_NAME = re.compile(r'(?:"(?:[^"]|"")*"|[^" .(]+)(?:\.(?:"(?:[^"]|"")*"|[^" .(]+))?')
MAX_TABLE_NAME = 1024
MAX_BLOCK_BYTES = 1024 * 1024 * 1024


def _fail(name: str, why: str) -> None:
    raise ValueError(f"field {name}: {why}")


def _text(limit: int = 4096) -> Any:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str):
            _fail(name, "not a string")
        if len(value) > limit:
            _fail(name, f"longer than {limit} characters")

    return check


def _count(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INT:
        _fail(name, "not a whole number from 0 to 2^63-1")


def _seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        _fail(name, "not a number of seconds")


def _sha256(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        _fail(name, "not a sha256 in hex")


def _optional_bool(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        _fail(name, "not true, false or null")


def _words(name: str, value: Any) -> None:
    if (
        not isinstance(value, list)
        or len(value) > 1000
        or not all(isinstance(w, str) and len(w) <= 4096 for w in value)
    ):
        _fail(name, "not a list of strings")


def _owners(name: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, list)
        or len(value) > 100_000
        or not all(isinstance(r, str) and 0 < len(r) <= 256 for r in value)
    ):
        _fail(name, "not a list of role names")


def _row_counts(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        _fail(name, "not an object")
    for table, rows in value.items():
        if len(table) > MAX_TABLE_NAME or not TABLE_NAME.fullmatch(table):
            _fail(name, f"{table[:60]!r} is not a table name as pg_dump writes one")
        if not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows <= MAX_INT:
            _fail(name, f"{table[:60]!r} has no row count")


def _json_object(name: str, value: Any) -> None:
    """An object or null whose members are plain JSON (its users check their own keys)."""
    if value is not None and not isinstance(value, dict):
        _fail(name, "not an object or null")


def _shrink(name: str, value: Any) -> None:
    _json_object(name, value)
    if value is None:
        return
    if not isinstance(value.get("previous_timestamp"), str) or len(value["previous_timestamp"]) > 32:
        _fail(name, "previous_timestamp is not a timestamp")
    for number in ("previous_compressed_bytes", "previous_raw_bytes"):
        if number in value:
            _count(f"{name}.{number}", value[number])
    fraction = value.get("fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        _fail(name, "fraction is not from 0 to 1")


def _encryption(name: str, value: Any) -> None:
    _json_object(name, value)
    if value is None:
        return
    if not isinstance(value.get("format"), str):
        _fail(name, "format is not a string")
    recipients = value.get("recipients", [])
    if (
        not isinstance(recipients, list)
        or len(recipients) > 1000
        or not all(isinstance(r, str) and len(r) <= 16384 for r in recipients)
    ):
        _fail(name, "recipients is not a list of keys")


def _signature(name: str, value: Any) -> None:
    _json_object(name, value)  # its contents are core.signing's to judge


def _choice(*allowed: str) -> Any:
    def check(name: str, value: Any) -> None:
        if value not in allowed:
            _fail(name, f"not one of {', '.join(allowed)}")

    return check


def _version_field(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(name, "not a whole number")


def _base64(name: str, value: Any) -> None:
    if value is None and name == "sealed_database_properties":
        return
    if not isinstance(value, str):
        _fail(name, "not a string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _fail(name, "not base64")


_MEMBER_NAME = re.compile(r"(?:pre-data|post-data|large-objects|sequences|data-\d{6})")
_OBJECT_COUNTS = ("raw_bytes", "compressed_bytes", "parts", "block_bytes")
MAX_OBJECTS = 1_000_000


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and 0 < len(v) <= 256 for v in value)


def _objects(name: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) > MAX_OBJECTS:
        _fail(name, "not a list of objects")
    for index, obj in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(obj, dict):
            _fail(where, "not an object")
        if not isinstance(obj.get("name"), str) or not _MEMBER_NAME.fullmatch(obj["name"]):
            _fail(where, "name is not a member name")
        _text(4096)(f"{where}.key", obj.get("key"))
        if obj.get("section") not in SECTIONS:
            _fail(where, f"section is not one of {', '.join(SECTIONS)}")
        for count in _OBJECT_COUNTS:
            _count(f"{where}.{count}", obj.get(count))
        _sha256(f"{where}.sha256", obj.get("sha256"))
        _base64(f"{where}.block_sha256", obj.get("block_sha256"))
        if obj["section"] == "table-data":
            tables = obj.get("tables")
            if (
                not isinstance(tables, list)
                or not 0 < len(tables) <= 100_000
                or not all(isinstance(t, str) and len(t) <= MAX_TABLE_NAME and TABLE_NAME.fullmatch(t) for t in tables)
            ):
                _fail(where, "tables is not a list of table names as pg_dump writes them")
        if obj["section"] != "data":
            continue
        if not isinstance(obj.get("table"), str) or not TABLE_NAME.fullmatch(obj["table"]):
            _fail(where, "table is not a table name as pg_dump writes one")
        for pair in ("relation", "load_into"):
            if not _pair(obj.get(pair)):
                _fail(where, f"{pair} is not [schema, name]")
        columns = obj.get("columns")
        if (
            not isinstance(columns, list)
            or not 0 < len(columns) <= 1600
            or not all(isinstance(c, str) and 0 < len(c) <= 256 for c in columns)
        ):
            _fail(where, "columns is not a list of column names")
        _count(f"{where}.rows", obj.get("rows"))


def _oid_pairs(name: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) > 100_000:
        _fail(name, "not a list of [catalog, oid] pairs")
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in pair)
        ):
            _fail(name, "not a list of [catalog, oid] pairs")


def _relations(name: str, value: Any) -> None:
    if not isinstance(value, dict) or len(value) > MAX_OBJECTS:
        _fail(name, "not an object")
    for table, facts in value.items():
        where = f"{name}[{table[:60]!r}]"
        if len(table) > MAX_TABLE_NAME or not TABLE_NAME.fullmatch(table):
            _fail(name, f"{table[:60]!r} is not a table name as pg_dump writes one")
        if not isinstance(facts, dict):
            _fail(where, "not an object")
        oid = facts.get("oid")
        if not isinstance(oid, int) or isinstance(oid, bool) or not 0 < oid < 2**32:
            _fail(where, "oid is not an OID")
        for text in ("schema", "name", "owner"):
            if not isinstance(facts.get(text), str) or not 0 < len(facts[text]) <= 256:
                _fail(where, f"{text} is not a name")
        for pairs in ("pre", "post", "foreign_keys"):
            _oid_pairs(f"{where}.{pairs}", facts.get(pairs))


_FIELDS: dict[str, Any] = {
    "database": _text(1024),
    "key": _text(4096),
    "run_timestamp": _text(32),
    "raw_bytes": _count,
    "compressed_bytes": _count,
    "sha256": _sha256,
    "parts": _count,
    "pg_dump_version": _text(64),
    "server_version": _text(64),
    "started_at": _text(64),
    "finished_at": _text(64),
    "duration_seconds": _seconds,
    "compression_level": _count,
    "pg_dump_options": _words,
    "kind": _choice("database", "globals"),
    "row_counts": _row_counts,
    "database_properties": _json_object,
    "role_passwords": _optional_bool,
    "shrink_alarm": _shrink,
    "run_id": _text(128),
    "attempt": _text(128),
    "format": _text(32),
    "compression": _text(32),
    "compression_engine": _json_object,
    "encryption": _encryption,
    "format_version": _version_field,
    "tool": _text(32),
    "tool_version": _text(64),
    "block_bytes": _count,
    "block_sha256": _base64,
    "sealed_database_properties": _base64,
    "owners": _owners,
    "server_system_identifier": _text(32),
    "signature": _signature,
    "objects": _objects,
    "relations": _relations,
    "encoding": _text(64),
}


def _check_blocks(manifest: Manifest) -> None:
    """The block digests, when recorded, cover the whole object: one per block, none more."""
    if manifest.block_bytes == 0:
        if manifest.block_sha256:
            _fail("block_sha256", "given without block_bytes")
        return
    if not 4096 <= manifest.block_bytes <= MAX_BLOCK_BYTES:
        _fail("block_bytes", f"not from 4096 to {MAX_BLOCK_BYTES}")
    if not manifest.block_sha256:
        return  # slimmed by a catalog, or a read that needs no blocks
    expected = max(1, -(-manifest.compressed_bytes // manifest.block_bytes))
    if len(base64.b64decode(manifest.block_sha256)) != 32 * expected:
        _fail("block_sha256", f"does not hold one sha256 per block ({expected} blocks)")


def _check_split(manifest: Manifest) -> None:
    """A split manifest lists its objects, one pre-data and one post-data among them, under its
    own directory, with sums that agree; any other manifest lists none."""
    if not manifest.split:
        if manifest.objects or manifest.relations:
            _fail("objects", "given in a manifest that is not split")
        return
    if manifest.format_version < SPLIT_FORMAT_VERSION:
        _fail("format_version", f"below {SPLIT_FORMAT_VERSION} for a split backup")
    if not manifest.objects:
        return  # slimmed by a catalog
    names = [o["name"] for o in manifest.objects]
    if len(set(names)) != len(names):
        _fail("objects", "names an object twice")
    for section in ("pre-data", "post-data"):
        if names.count(section) != 1:
            _fail("objects", f"does not hold exactly one {section} archive")
    if "block_sha256" not in manifest.objects[0]:
        return  # slimmed
    for obj in manifest.objects:
        if not obj["key"].startswith(manifest.key + "/" + obj["name"] + "."):
            _fail("objects", f"{obj['name']} is not stored under the backup's directory")
        _check_blocks(manifest.piece(obj))
    if manifest.compressed_bytes != sum(o["compressed_bytes"] for o in manifest.objects):
        _fail("compressed_bytes", "is not the sum of the objects' sizes")


def objects_digest(objects: list[dict[str, Any]]) -> str:
    """The sha256 a split manifest records for the whole: over each object's name, size and sha256."""
    lines = "".join(f"{o['name']} {o['compressed_bytes']} {o['sha256']}\n" for o in objects)
    return hashlib.sha256(lines.encode()).hexdigest()


def isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StreamFacts(Protocol):
    """What a finished stream measured (``pipeline.stream.StreamStats``)."""

    raw_bytes: int
    compressed_bytes: int
    parts: int
    sha256: str
    seconds: float
    block_bytes: int
    blocks: list[bytes] | None


def shrink_alarm(
    fraction: float, previous: Manifest | None, size: int, raw_bytes: int = 0, compression: str = "gzip"
) -> dict[str, Any] | None:
    """The alarm for a backup of ``size`` compressed bytes, or None: off (0), nothing before, or
    not shrunk. Across a change of compression (gzip to zstd) compressed sizes say nothing about
    lost data, so the dump's raw bytes are compared instead, and the alarm says so."""
    if not fraction or previous is None:
        return None
    if previous.compression == compression:
        if size >= fraction * previous.compressed_bytes:
            return None
        return {
            "previous_timestamp": previous.run_timestamp,
            "previous_compressed_bytes": previous.compressed_bytes,
            "fraction": fraction,
        }
    if raw_bytes >= fraction * previous.raw_bytes:
        return None
    return {
        "previous_timestamp": previous.run_timestamp,
        "previous_compressed_bytes": previous.compressed_bytes,
        "previous_raw_bytes": previous.raw_bytes,
        "compared": "raw_bytes",
        "fraction": fraction,
    }


@dataclass(frozen=True)
class RunFacts:
    """What every manifest of one run shares."""

    run_timestamp: str
    pg_dump_version: str
    server_version: str
    compression: str
    compression_level: int
    pg_dump_options: tuple[str, ...]
    recipients: tuple[str, ...] = ()  # age recipients the objects are sealed to; empty: not sealed
    server_system_identifier: str = ""  # pg_control_system()'s, when the role may read it
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    # Drawn anew by every process, also when ``run_id`` is given (BACKUP_RUN_ID): two attempts
    # of one run (a retried pod) share the run id, never the attempt, so neither can take the
    # other's object for its own write whose answer was lost (``pipeline.backup``).
    attempt: str = field(default_factory=lambda: secrets.token_hex(8))

    def manifest(
        self,
        database: str,
        key: str,
        stream: StreamFacts,
        *,
        started_at: datetime,
        finished_at: datetime,
        row_counts: dict[str, int],
        properties: dict[str, Any] | None,
        role_passwords: bool | None,
        shrink: dict[str, Any] | None,
        engine: dict[str, Any] | None = None,
        sealed_properties: str | None = None,
        owners: list[str] | None = None,
    ) -> Manifest:
        """The manifest of one finished object of this run. For a sealed backup the caller passes
        the properties sealed (``sealed_properties``) and none in the clear."""
        globals_object = database == GLOBALS
        blocks = stream.blocks or []
        return Manifest(
            database=database,
            key=key,
            run_timestamp=self.run_timestamp,
            raw_bytes=stream.raw_bytes,
            compressed_bytes=stream.compressed_bytes,
            sha256=stream.sha256,
            parts=stream.parts,
            pg_dump_version=self.pg_dump_version,
            server_version=self.server_version,
            started_at=isoformat(started_at),
            finished_at=isoformat(finished_at),
            duration_seconds=round(stream.seconds, 3),
            compression_level=self.compression_level,
            pg_dump_options=[] if globals_object else list(self.pg_dump_options),
            kind="globals" if globals_object else "database",
            row_counts=dict(sorted(row_counts.items())),
            database_properties=properties,
            role_passwords=role_passwords,
            shrink_alarm=shrink,
            run_id=self.run_id,
            attempt=self.attempt,
            compression=self.compression,
            compression_engine=engine,
            encryption={"format": "age", "recipients": list(self.recipients)} if self.recipients else None,
            format_version=SEALED_FORMAT_VERSION if self.recipients else FORMAT_VERSION,
            block_bytes=stream.block_bytes if blocks else 0,
            block_sha256=base64.b64encode(b"".join(blocks)).decode("ascii"),
            sealed_database_properties=sealed_properties,
            owners=None if globals_object else owners,
            server_system_identifier=self.server_system_identifier,
        )
