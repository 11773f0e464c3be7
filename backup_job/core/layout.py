"""The object layout: how a database name and a run become keys, and back.

::

    <prefix>/<database>/<timestamp>.sql.gz         or .sql.zst (BACKUP_COMPRESSION=zstd);
                                                   + .age when sealed (BACKUP_ENCRYPT_RECIPIENTS)
    <prefix>/<database>/<timestamp>.manifest.json
    <prefix>/<database>/<timestamp>.split/<member> a split backup's objects (BACKUP_FORMAT=split), e.g.
                                                   pre-data.pgdump.gz, data-000001.copy.gz, sequences.json.gz
    <prefix>/_globals/<timestamp>.sql.gz          roles and tablespaces (pg_dumpall --globals-only)
    <prefix>/_globals/<timestamp>.manifest.json
    <prefix>/_probe/<random>.clock                 never an object: a run's short-lived multipart
                                                   upload that shows how the store dates uploads

``<timestamp>`` is the run's start in UTC (``YYYYMMDDTHHMMSSZ``), shared by every database of
one run, so one run's backups sort and group together. ``<database>`` is the database name
percent-encoded outside ``[A-Za-z0-9._-]`` over its UTF-8 bytes, so any legal name (spaces,
slashes, quotes, non-ASCII) maps to exactly one safe path segment and back. A leading ``_``
is encoded as ``%5F`` so that segments starting with ``_`` stay free for pgbackup's own
objects (``_globals/``). Names ``.`` and ``..`` are encoded as well: they are not valid
path segments on a local filesystem.

A split backup (``pipeline.split``) is one manifest and a directory of members, each its own
object. A member key has one more segment than every other key, so a pgbackup from before
split backups does not parse it: it never lists, restores or deletes a member (and it lists
the split manifest, whose format it does not know, as unknown). ``parse_member`` is how this
version recognises them.

Later commands (list, restore, prune) recognise our objects only through ``parse_key``: a
key that does not parse is not ours and is never touched. Dump suffixes are recognised by
their shape (``.sql.<compression>[.<encryption>]``), so a format a newer pgbackup writes is
recognised as ours, and shown as unknown, by an older one. In its answers the globals stand
under the name ``GLOBALS`` (the empty string, which no database can be called). The clock
probe's key (``probe_key``) does not parse, so only the clean-up of unfinished uploads, which
asks ``is_probe``, ever looks at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

GLOBALS = ""  # the "database" name of the globals objects; PostgreSQL forbids empty names
GLOBALS_SEGMENT = "_globals"
DUMP_SUFFIXES = {"gzip": ".sql.gz", "zstd": ".sql.zst"}  # the dump formats this version writes and reads
DUMP_SUFFIX = DUMP_SUFFIXES["gzip"]
ENCRYPTED_SUFFIX = ".age"  # after the compression's: <timestamp>.sql.gz.age, sealed with age
# Every dump name this version reads: each compression, plain or sealed.
READABLE_SUFFIXES = frozenset(s + e for s in DUMP_SUFFIXES.values() for e in ("", ENCRYPTED_SUFFIX))
MANIFEST_SUFFIX = ".manifest.json"
# Any ``.sql.<compression>[.<encryption>]`` is a dump of this layout. One this version does
# not read is still ours, so it is listed as unknown and never deleted (an older binary must
# not destroy a newer one's work).
_DUMP_SUFFIX = re.compile(r"\.sql(?:\.[a-z0-9]+){1,2}")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
PROBE_SEGMENT = "_probe"
PROBE_SUFFIX = ".clock"
_PROBE_NAME = re.compile(r"[0-9a-f]{32}" + re.escape(PROBE_SUFFIX))
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_SEGMENT = re.compile(r"(?:[A-Za-z0-9.\-]|%[0-9A-F]{2})(?:[A-Za-z0-9._\-]|%[0-9A-F]{2})*")


def encode_database(name: str) -> str:
    """The path segment for a database name."""
    raw = name.encode("utf-8")
    if raw in (b".", b".."):
        return "".join(f"%{byte:02X}" for byte in raw)
    out = []
    for index, byte in enumerate(raw):
        if byte in _SAFE and not (index == 0 and byte == ord("_")):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def decode_database(segment: str) -> str:
    """The database name for a path segment made by ``encode_database``.

    Raises ``ValueError`` for a segment that ``encode_database`` would not have produced,
    so that a hand-made key is never mistaken for ours.
    """
    if not _SEGMENT.fullmatch(segment):
        raise ValueError(f"not a pgbackup database segment: {segment!r}")
    raw = bytearray()
    index = 0
    while index < len(segment):
        if segment[index] == "%":
            raw.append(int(segment[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(segment[index]))
            index += 1
    name = raw.decode("utf-8")
    if encode_database(name) != segment:
        raise ValueError(f"not the canonical encoding of {name!r}: {segment!r}")
    return name


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError(f"not a pgbackup timestamp: {text!r}")
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackupKeys:
    """The two keys of one database's backup in one run."""

    database: str
    timestamp: str
    dump: str
    manifest: str


def join(prefix: str, *parts: str) -> str:
    """Join key parts; an empty prefix gives no leading slash."""
    return "/".join(p for p in (prefix, *parts) if p)


def segment_for(database: str) -> str:
    return GLOBALS_SEGMENT if database == GLOBALS else encode_database(database)


def display_name(database: str) -> str:
    """How a catalog name appears in logs and listings."""
    return "(globals)" if database == GLOBALS else database


def dump_suffix(compression: str, encrypted: bool) -> str:
    return DUMP_SUFFIXES[compression] + (ENCRYPTED_SUFFIX if encrypted else "")


def backup_keys(
    prefix: str, database: str, timestamp: str, compression: str = "gzip", encrypted: bool = False
) -> BackupKeys:
    """The keys of one backup; ``database`` ``GLOBALS`` gives the globals' keys."""
    base = join(prefix, segment_for(database), timestamp)
    return BackupKeys(
        database=database,
        timestamp=timestamp,
        dump=base + dump_suffix(compression, encrypted),
        manifest=base + MANIFEST_SUFFIX,
    )


def parse_key(prefix: str, key: str) -> tuple[str, str, str] | None:
    """``(database, timestamp, suffix)`` for a key of our layout under ``prefix``, else None."""
    head = prefix + "/" if prefix else ""
    if not key.startswith(head):
        return None
    rest = key[len(head) :].split("/")
    if len(rest) != 2:
        return None
    segment, leaf = rest
    stamp, suffix = leaf[:16], leaf[16:]
    if not _TIMESTAMP.fullmatch(stamp) or not (suffix == MANIFEST_SUFFIX or _DUMP_SUFFIX.fullmatch(suffix)):
        return None
    if segment == GLOBALS_SEGMENT:
        return GLOBALS, stamp, suffix
    try:
        database = decode_database(segment)
    except ValueError:
        return None
    return database, stamp, suffix


SPLIT_DIRECTORY = ".split"
# A member's name: its role, a number for data streams, what it holds and its compression,
# then ``.age`` when sealed. Nothing a database names goes into a member key.
_MEMBER = re.compile(
    r"(?:pre-data|post-data|large-objects|sequences|data-\d{6})\.(?:pgdump|copy|json)(?:\.[a-z0-9]+){1,2}"
)


def split_directory(prefix: str, database: str, timestamp: str) -> str:
    """Where the members of a split backup of ``database`` at ``timestamp`` live."""
    return join(prefix, segment_for(database), timestamp + SPLIT_DIRECTORY)


def member_key(prefix: str, database: str, timestamp: str, member: str) -> str:
    return split_directory(prefix, database, timestamp) + "/" + member


def parse_member(prefix: str, key: str) -> tuple[str, str, str] | None:
    """``(database, timestamp, member)`` for a split backup's member under ``prefix``, else None."""
    head = prefix + "/" if prefix else ""
    if not key.startswith(head):
        return None
    rest = key[len(head) :].split("/")
    if len(rest) != 3 or not rest[1].endswith(SPLIT_DIRECTORY) or not _MEMBER.fullmatch(rest[2]):
        return None
    stamp = rest[1][: -len(SPLIT_DIRECTORY)]
    if not _TIMESTAMP.fullmatch(stamp) or rest[0] == GLOBALS_SEGMENT:
        return None
    try:
        database = decode_database(rest[0])
    except ValueError:
        return None
    return database, stamp, rest[2]


def probe_key(prefix: str, token: str) -> str:
    """The key of a clock probe (``token``: 32 hex digits); never completed into an object."""
    return join(prefix, PROBE_SEGMENT, token + PROBE_SUFFIX)


def is_probe(prefix: str, key: str) -> bool:
    """Whether ``key`` is a clock probe's under ``prefix`` (one a killed run may have left)."""
    head = join(prefix, PROBE_SEGMENT) + "/"
    return key.startswith(head) and _PROBE_NAME.fullmatch(key[len(head) :]) is not None
