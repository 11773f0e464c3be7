"""The table of contents of a pg_dump custom-format archive, as ``pg_restore -l -v`` prints it.

A split backup keeps its schema as two custom-format archives (before and after the data), so
that ``pg_restore`` can rebuild indexes and constraints in parallel with their dependencies
respected, and so that a restore of chosen tables can hand ``pg_restore -L`` a filtered list.
This module reads that list. Each entry is one line::

    221; 1259 16386 TABLE public a postgres
    ;	depends on: 6

``<dump id>; <catalog oid> <object oid> <type> <schema> <name> <owner>``. Names are printed
unquoted, so a name with spaces makes the rest of the line ambiguous: entries are therefore
recognised by their catalog and object OIDs (``pg_class`` is 1259) and by the dump ids they
depend on, never by parsing names. The OIDs are the backed-up database's, recorded in the
manifest at dump time for every table (``pg.catalog``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.errors import PgBackupError

PG_CLASS = 1259
PG_EXTENSION = 3079
# Entry types of more than one word, longest first, so "SEQUENCE OWNED BY" is not "SEQUENCE".
_MULTIWORD = sorted(
    (
        "BLOB METADATA",
        "DEFAULT ACL",
        "EVENT TRIGGER",
        "FK CONSTRAINT",
        "FOREIGN DATA WRAPPER",
        "FOREIGN SERVER",
        "FOREIGN TABLE",
        "INDEX ATTACH",
        "LARGE OBJECT",
        "MATERIALIZED VIEW DATA",
        "MATERIALIZED VIEW",
        "OPERATOR CLASS",
        "OPERATOR FAMILY",
        "PROCEDURAL LANGUAGE",
        "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA",
        "ROW SECURITY",
        "SECURITY LABEL",
        "SEQUENCE OWNED BY",
        "SEQUENCE SET",
        "SHELL TYPE",
        "STATISTICS DATA",
        "TABLE ATTACH",
        "TABLE DATA",
        "TEXT SEARCH CONFIGURATION",
        "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER",
        "TEXT SEARCH TEMPLATE",
        "USER MAPPING",
    ),
    key=len,
    reverse=True,
)
_ENTRY = re.compile(r"(\d+); (\d+) (\d+) (.*)")
_DEPENDS = re.compile(r";\s*depends on:((?: \d+)*)\s*")


@dataclass
class Entry:
    """One archive entry: its dump id, what it is, and the entries it depends on."""

    dump_id: int
    catalog: int
    oid: int
    kind: str
    line: str
    depends: list[int] = field(default_factory=list)


def parse(listing: str) -> list[Entry]:
    """The entries of a ``pg_restore -l -v`` listing, in order."""
    entries: list[Entry] = []
    for line in listing.splitlines():
        match = _ENTRY.fullmatch(line)
        if match:
            rest = match.group(4)
            kind = next((k for k in _MULTIWORD if rest.startswith(k + " ")), rest.split(" ", 1)[0])
            entries.append(Entry(int(match.group(1)), int(match.group(2)), int(match.group(3)), kind, line))
            continue
        depends = _DEPENDS.fullmatch(line)
        if depends and entries:
            entries[-1].depends.extend(int(d) for d in depends.group(1).split())
    return entries


def listing(pg_restore: str, archive: bytes) -> list[Entry]:
    """The entries of ``archive`` (custom format, in memory), read by ``pg_restore -l -v``."""
    done = subprocess.run(
        [pg_restore, "--list", "--verbose"], input=archive, capture_output=True, check=False, env={"LC_ALL": "C"}
    )
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PgBackupError(f"pg_restore cannot list the schema archive: {why[0] if why else 'no message'}")
    return parse(done.stdout.decode("utf-8", "replace"))


def tables(entries: Iterable[Entry]) -> list[int]:
    """The pg_class OIDs of the tables the archive creates."""
    return [e.oid for e in entries if e.kind == "TABLE" and e.catalog == PG_CLASS]


def of_kind(entries: Iterable[Entry], kind: str, catalog: int) -> list[int]:
    return [e.oid for e in entries if e.kind == kind and e.catalog == catalog]


def select(entries: list[Entry], objects: set[tuple[int, int]], rows: set[int] | None = None) -> list[Entry]:
    """The entries for ``objects`` (``(catalog, oid)`` pairs; ``(0, table oid)`` is a table's
    ROW SECURITY switch), with the comments, ACLs, security labels and ``OWNED BY`` entries that
    hang on them (entries without an OID of their own, depending on a chosen one)."""
    chosen: list[Entry] = []
    ids: set[int] = set()
    for entry in entries:
        own = (entry.catalog, entry.oid) in objects and (entry.catalog != 0 or entry.kind == "ROW SECURITY")
        hangs = entry.catalog == 0 and entry.oid == 0 and bool(entry.depends) and set(entry.depends) <= ids
        if own or (hangs and entry.kind in ("COMMENT", "ACL", "SECURITY LABEL", "SEQUENCE OWNED BY")):
            chosen.append(entry)
            ids.add(entry.dump_id)
    return chosen


def list_file(entries: Iterable[Entry]) -> str:
    """What ``pg_restore -L`` reads: one entry per line, by dump id."""
    return "".join(entry.line + "\n" for entry in entries)
