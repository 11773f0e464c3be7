"""A split backup: one database read over several connections on one snapshot, each table its own object.

``BACKUP_FORMAT=split`` replaces the one pg_dump stream of a database by::

    Leader               REPEATABLE READ READ ONLY, pg_export_snapshot()   (pg.snapshot)
      pre-data           pg_dump -Fc --section=pre-data --snapshot=S   -> pre-data.pgdump.gz
        its table of contents names the tables pg_dump selected (pg.toc); the leader reads
        what the readers need about them by OID (pg.relations), locks them (ACCESS SHARE) and
        fails if one was truncated or rewritten since the export (the snapshot would read it empty)
      data-NNNNNN        N readers, each SET TRANSACTION SNAPSHOT S, then per table (or per
                         range of pages of a large one, PostgreSQL 14+)
                         LOCK ... NOWAIT; COPY ... TO STDOUT       -> data-NNNNNN.copy.gz
                         and the small tables together, in bundles:
                         pg_dump -Fc --section=data --snapshot=S -t ... -> data-NNNNNN.pgdump.gz
      post-data          pg_dump -Fc --section=post-data --snapshot=S  -> post-data.pgdump.gz
      large-objects      pg_dump -Fc --section=data, every table's data excluded
      sequences          each sequence's value, as JSON             -> sequences.json.gz
    then the manifest, listing every object; without it none of them is a backup.

Every object takes the byte path of a plain backup (``pipeline.stream``: compressor, age,
parts, checksums, its own upload through ``BackupRun``), so everything a plain dump gets (the
conditional writes, the settlement of a write whose answer was lost, stop requests, the
per-database timeout) each object gets too. pg_dump writes the archives uncompressed
(``-Z0``): the pipeline compresses them like everything else.

Failure of any object fails the database: the other streams are stopped at once, the leader's
transaction ends, and no manifest is written, so what was stored is an incomplete leftover,
never a backup (``pipeline.catalog``), which ``prune`` removes after a day.

Connections: one leader, one pg_dump at a time, and ``jobs`` readers (``commands.run`` fits
``jobs`` into the server's free connections). Memory: each reader's stream holds what one
plain stream holds (``pipeline.stream``: the parts in flight plus one being filled), so a
database takes ``jobs`` times that, plus the pre-data archive held once to read its table of
contents (at most ``SCHEMA_LIMIT``).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from psycopg2 import sql

from ..core import dumpoptions, logs, stopping
from ..core.errors import DumpError, PgBackupError
from ..core.layout import dump_suffix, member_key, split_directory
from ..core.manifest import objects_digest
from ..pg import relations, toc
from ..pg.dump import PgDump
from ..pg.relations import Table
from ..pg.snapshot import CopyOut, CopyQuery, Leader, Session, server_encoding
from ..pg.target import Target
from .stream import StreamStats

SCHEMA_LIMIT = 512 * 1024 * 1024  # the pre-data archive is held in memory to read its table of contents
TID_RANGES_SINCE = 14  # PostgreSQL's TID range scans: a range of pages costs only those pages
# Small tables are stored together: below 1/128 of the range size (8 MiB by default) a table
# goes into a bundle of up to 1/16 of it (64 MiB) or BUNDLE_TABLES tables (pg_dump's command
# line stays short). One object per tiny table would cost several requests to the store each.
SMALL_SHARE, BUNDLE_SHARE = 128, 16
BUNDLE_TABLES = 1000


def _bundles(small: list[Table], limit: int) -> list[list[Table]]:
    bundles: list[list[Table]] = []
    pages = 0
    for table in sorted(small, key=lambda t: -t.pages):
        if not bundles or pages + table.pages > limit or len(bundles[-1]) >= BUNDLE_TABLES:
            bundles.append([])
            pages = 0
        bundles[-1].append(table)
        pages += table.pages
    return bundles


def exact_pattern(schema: str, name: str) -> str:
    """``schema.name`` as a pg_dump pattern matching exactly that table: each part double-quoted,
    where no pattern character acts."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, name))


log = logs.get("run")
P = TypeVar("P", bound=PgDump)

StreamObject = Callable[[str, Callable[[], Any], Callable[[bytes], None] | None], StreamStats]


@dataclass(frozen=True)
class SplitPlan:
    """How one run dumps databases in the split format."""

    pg_dump: str
    pg_restore: str
    psql: str
    server_major: int
    jobs: int
    lock_wait_timeout: int
    options: tuple[str, ...]  # BACKUP_PG_DUMP_OPTIONS, as the user wrote them
    timeout: int = 0
    range_pages: int = 131072  # a table of more than twice these pages is read in ranges of them


@dataclass
class DataObject:
    """One data stream to read: a table, a range of its pages, or (``bundle``) many small
    tables in one pg_dump archive."""

    name: str
    table: Table
    query: CopyQuery
    load_into: tuple[str, str]
    bundle: list[Table] | None = None
    script: bytes = b""  # what its psql runs (``CopyQuery.script``)


@dataclass
class SplitResult:
    """What a split dump stored: every object's entry for the manifest, and the totals."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    relations: dict[str, dict[str, Any]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    encoding: str = ""
    snapshot: str = ""
    jobs: int = 0

    def stats(self, seconds: float, engine: dict[str, Any] | None) -> StreamStats:
        return StreamStats(
            raw_bytes=sum(o["raw_bytes"] for o in self.objects),
            compressed_bytes=sum(o["compressed_bytes"] for o in self.objects),
            parts=sum(o["parts"] for o in self.objects),
            sha256=objects_digest(self.objects),
            blocks=None,
            seconds=seconds,
            engine=engine,
        )


@dataclass(frozen=True)
class Honoured:
    """The pg_dump options the readers honour themselves."""

    serializable: bool = False
    row_security: bool = False
    encoding: str = ""
    float_digits: int = 3
    no_unlogged_data: bool = False
    via_partition_root: bool = False
    exclude_data: tuple[str, ...] = ()  # pg_dump options (-t or --table-and-children) naming excluded data
    schema_options: tuple[str, ...] = ()  # what the schema pg_dumps are given

    @classmethod
    def read(cls, words: tuple[str, ...]) -> Honoured:
        values: dict[str, Any] = {}
        exclude: list[str] = []
        schema = list(words)
        for option in dumpoptions.parse(list(words)):
            meaning, value = option.meaning, option.value or ""
            if meaning == "serializable-deferrable":
                values["serializable"] = True
                if option.written in schema:
                    schema.remove(option.written)  # the schema dumps read the leader's snapshot instead
            elif meaning == "enable-row-security":
                values["row_security"] = True
            elif meaning == "encoding":
                values["encoding"] = value
            elif meaning == "extra-float-digits":
                values["float_digits"] = int(value)
            elif meaning == "no-unlogged-table-data":
                values["no_unlogged_data"] = True
            elif meaning == "load-via-partition-root":
                values["via_partition_root"] = True
            elif meaning == "exclude-table-data":
                exclude.append(f"--table={value}")
            elif meaning == "exclude-table-data-and-children":
                exclude.append(f"--table-and-children={value}")
        return cls(exclude_data=tuple(exclude), schema_options=tuple(schema), **values)


class SplitDump:
    """Stores one database as a split backup; ``run`` returns its objects or raises."""

    def __init__(
        self,
        plan: SplitPlan,
        target: Target,
        database: str,
        prefix: str,
        timestamp: str,
        compression: str,
        encrypted: bool,
        stream: StreamObject,
    ) -> None:
        self.plan = plan
        self.target = target
        self.database = database
        self.prefix = prefix
        self.timestamp = timestamp
        self.suffix = dump_suffix(compression, encrypted)[len(".sql") :]
        self.stream = stream  # BackupRun's: one object through the byte path, registered to be stopped
        self.honoured = Honoured.read(plan.options)
        self.result = SplitResult()
        self._failure: BaseException | None = None
        self._active: dict[int, PgDump] = {}  # each worker thread's running process
        self._lock = threading.Lock()
        self._next = 0

    @property
    def directory(self) -> str:
        return split_directory(self.prefix, self.database, self.timestamp)

    def run(self) -> SplitResult:
        encoding = self.honoured.encoding or server_encoding(self.target, self.database)
        session = Session(
            encoding=encoding,
            row_security=self.honoured.row_security,
            float_digits=self.honoured.float_digits,
            serializable=self.honoured.serializable,
        )
        self.result.encoding = encoding
        leader = Leader(self.target, self.database, session)
        self.result.snapshot = leader.snapshot
        log.info(
            "split backup of %r reads snapshot %s",
            self.database,
            leader.snapshot,
            extra=logs.fields(event="backup.snapshot", database=self.database, snapshot=leader.snapshot),
        )
        timer = self._deadline(leader)
        try:
            schema = self._schema("pre-data", ["--section=pre-data"], keep=True)
            entries = toc.listing(self.plan.pg_restore, schema)
            del schema
            tables = self._tables(leader, entries)
            leader.lock([(t.schema, t.name) for t in tables], self.plan.lock_wait_timeout)
            self._refuse_rewritten(leader, tables)
            data = self._plan_data(tables)
            jobs = max(1, min(self.plan.jobs, len(data)))
            self.result.jobs = jobs
            for item in data:
                if item.bundle is None:
                    item.script = item.query.script(leader.connection, session, leader.snapshot)
            workers = [
                threading.Thread(target=self._work, args=(data,), name=f"reader {i}")
                for i in range(jobs if data else 0)
            ]
            for worker in workers:
                worker.start()
            try:
                self.count_bundled(leader, data)
                self._schema("post-data", ["--section=post-data"])
                self._schema("large-objects", ["--section=data", "--exclude-table-data=*.*"])
                self._sequences(leader, entries)
            except BaseException as exc:
                self._fail(exc)
            for worker in workers:
                worker.join()
            if self._failure is not None:
                raise self._failure
        finally:
            if timer is not None:
                timer.cancel()
            leader.close()
        self.result.objects.sort(key=lambda o: o["name"])
        return self.result

    # --- the schema, and what it says ------------------------------------------------------------

    def _schema(self, name: str, section: list[str], keep: bool = False) -> bytes:
        """One pg_dump archive of the snapshot; its bytes when ``keep`` (the pre-data archive)."""
        stopping.refuse_writes(f"the {name} of {self.database!r}")
        kept: list[bytes] = []
        held = [0]

        def hold(chunk: bytes) -> None:
            held[0] += len(chunk)
            if held[0] > SCHEMA_LIMIT:
                raise DumpError(f"the schema of {self.database!r} is larger than {SCHEMA_LIMIT // 2**20} MiB")
            kept.append(chunk)

        # The pre-data dump runs before the leader locks the tables, and may wait for DDL under
        # way as a plain dump does. The later ones run while the leader holds every lock: a wait
        # then means DDL queued behind the leader, which waits for this dump in turn, so they
        # give up after a second rather than deadlock.
        wait = self.plan.lock_wait_timeout * 1000 if keep else 1000
        argv = self._archive_argv(wait, ["--use-set-session-authorization", *section, *self.honoured.schema_options])

        stats = self.stream(self._key(name, "pgdump"), lambda: self._pg_dump(argv), hold if keep else None)
        self._record(name, name, stats)
        return b"".join(kept)

    def _pg_dump(self, argv: list[str]) -> PgDump:
        return PgDump(
            self.plan.pg_dump,
            self.database,
            lock_wait_timeout=0,
            extra_options=(),
            timeout=self.plan.timeout,
            argv=argv,
        )

    def _archive_argv(self, wait_ms: int, options: list[str]) -> list[str]:
        """pg_dump writing an uncompressed custom-format archive of the snapshot to stdout."""
        return [
            self.plan.pg_dump,
            "--format=custom",
            "--compress=0",
            "--no-password",
            f"--snapshot={self._snapshot}",
            *([f"--lock-wait-timeout={wait_ms}"] if wait_ms else []),
            *options,
        ]

    def _tables(self, leader: Leader, entries: list[toc.Entry]) -> list[Table]:
        major = self.plan.server_major
        tables = relations.read_tables(leader, toc.tables(entries), major)
        for table in tables:
            self.result.relations[table.qualified] = table.describe()
        excluded = self._excluded_data()
        chosen = [
            t
            for t in tables
            if not t.partitioned and t.oid not in excluded and not (t.unlogged and self.honoured.no_unlogged_data)
        ]
        extensions = toc.of_kind(entries, "EXTENSION", toc.PG_EXTENSION)
        configuration = [t for t in relations.extension_tables(leader, extensions, major) if t.oid not in excluded]
        for table in configuration:  # made by CREATE EXTENSION, filled by the backup
            self.result.relations[table.qualified] = table.describe()
        return chosen + configuration

    def _refuse_rewritten(self, leader: Leader, tables: list[Table]) -> None:
        """Fail when a table was truncated or rewritten after the export (``Leader.rewritten``):
        read on the snapshot it would be stored empty, silently."""
        changed = leader.rewritten([t.oid for t in tables])
        if changed:
            names = ", ".join(t.qualified for t in tables if t.oid in changed)
            raise DumpError(
                f"{names} of {self.database!r} was truncated or rewritten (TRUNCATE, ALTER TABLE, CLUSTER, "
                "VACUUM FULL) after the backup's snapshot was taken, so the snapshot would read its rows as "
                "missing; run the backup again"
            )

    @property
    def _snapshot(self) -> str:
        return self.result.snapshot

    def _excluded_data(self) -> set[int]:
        """The tables ``--exclude-table-data`` names, resolved by pg_dump itself on the snapshot
        (its own pattern rules), as the OIDs of the tables a schema dump of just them creates."""
        if not self.honoured.exclude_data:
            return set()
        argv = [
            self.plan.pg_dump,
            "--format=custom",
            "--schema-only",
            "--section=pre-data",
            "--no-password",
            f"--snapshot={self._snapshot}",
            *self.honoured.exclude_data,
        ]
        dump = PgDump(self.plan.pg_dump, self.database, lock_wait_timeout=0, extra_options=(), argv=argv)
        data = b"".join(dump.chunks())
        try:
            dump.finish(len(data))
        except DumpError as exc:
            if "no matching tables" in str(exc):
                return set()
            raise
        return set(toc.tables(toc.listing(self.plan.pg_restore, data)))

    def _sequences(self, leader: Leader, entries: list[toc.Entry]) -> None:
        values = relations.sequence_values(leader, toc.of_kind(entries, "SEQUENCE", toc.PG_CLASS))
        payload = json.dumps({"sequences": values}, sort_keys=True).encode()

        def make() -> _Bytes:
            return _Bytes(payload)

        stats = self.stream(self._key("sequences", "json"), make, None)
        self._record("sequences", "sequences", stats)

    # --- the data ---------------------------------------------------------------------------------

    def _plan_data(self, tables: list[Table]) -> list[DataObject]:
        """One object per table, or per range of pages of a large one, and the small tables
        together in bundles; the largest first, so the last stream to finish is a short one."""
        planned: list[tuple[int, Table, CopyQuery]] = []
        ranges = self.plan.server_major >= TID_RANGES_SINCE
        small_pages = self.plan.range_pages // SMALL_SHARE
        small = [t for t in tables if t.pages < small_pages and not t.condition]
        bundles = _bundles(small, self.plan.range_pages // BUNDLE_SHARE)
        for table in (t for t in tables if not (t.pages < small_pages and not t.condition)):
            base = CopyQuery(table.schema, table.name, table.columns, condition=table.condition)
            size = self.plan.range_pages
            if not ranges or table.condition or table.pages < 2 * size:
                planned.append((table.pages, table, base))
                continue
            starts = list(range(0, table.pages, size))
            for index, first in enumerate(starts):
                last = starts[index + 1] if index + 1 < len(starts) else None  # the last range is open
                query = CopyQuery(table.schema, table.name, table.columns, pages=(first, last))
                planned.append((size if last is not None else table.pages - first, table, query))
        planned.sort(key=lambda p: -p[0])
        objects = []
        for number, (_pages, table, query) in enumerate(planned, start=1):
            into = table.root if (self.honoured.via_partition_root and table.root) else (table.schema, table.name)
            objects.append(DataObject(f"data-{number:06d}", table, query, into))
        for number, bundle in enumerate(bundles, start=len(objects) + 1):
            head = bundle[0]
            query = CopyQuery(head.schema, head.name, head.columns)
            objects.append(DataObject(f"data-{number:06d}", head, query, (head.schema, head.name), bundle))
        return objects

    def _work(self, data: list[DataObject]) -> None:
        try:
            while (item := self._take(data)) is not None:
                stopping.refuse_writes(f"the backup of {self.database!r}")
                if item.bundle is not None:
                    self._bundle(item, item.bundle)
                else:
                    self._copy(item)
        except BaseException as exc:
            self._fail(exc)

    def _bundle(self, item: DataObject, tables: list[Table]) -> None:
        """Small tables' rows in one pg_dump archive of the snapshot (one object instead of one
        per table: each object costs requests to the store, several per table for tiny ones)."""
        argv = self._archive_argv(  # the leader holds the locks: a wait is DDL queued behind it
            1000,
            [
                "--section=data",
                *(["--enable-row-security"] if self.honoured.row_security else []),
                *(["--load-via-partition-root"] if self.honoured.via_partition_root else []),
                *(["--encoding=" + self.honoured.encoding] if self.honoured.encoding else []),
                *[f"--table={exact_pattern(t.schema, t.name)}" for t in tables],
            ],
        )

        def make() -> PgDump:
            return self._started(self._pg_dump(argv))

        try:
            stats = self.stream(self._key(item.name, "pgdump"), make, None)
        finally:
            self._ended()
        entry = self._record(item.name, "table-data", stats)
        entry["tables"] = [t.qualified for t in tables]

    def _take(self, data: list[DataObject]) -> DataObject | None:
        with self._lock:
            if self._failure is not None or self._next >= len(data):
                return None
            self._next += 1
            return data[self._next - 1]

    def _copy(self, item: DataObject) -> None:
        label = f"table {item.table.qualified} of {self.database!r}"
        if item.query.pages is not None:
            first, last = item.query.pages
            label = f"pages {first}-{'' if last is None else last - 1} of {label}"
        copy: list[CopyOut] = []

        def make() -> CopyOut:
            out = CopyOut(self.plan.psql, self.database, item.script, label, self.plan.timeout)
            copy.append(out)
            return self._started(out)

        try:
            stats = self.stream(self._key(item.name, "copy"), make, None)
        finally:
            self._ended()
        rows = copy[0].rows
        entry = self._record(item.name, "data", stats)
        entry.update(
            table=item.table.qualified,
            relation=[item.table.schema, item.table.name],
            load_into=list(item.load_into),
            columns=list(item.table.columns),
            rows=rows,
        )
        with self._lock:
            self.result.row_counts[item.table.qualified] = self.result.row_counts.get(item.table.qualified, 0) + rows

    def _started(self, process: P) -> P:
        """A stream's process, known to ``_fail`` (killed at once when the database failed already)."""
        with self._lock:
            self._active[threading.get_ident()] = process
            failed = self._failure is not None
        if failed:
            process.kill()
        return process

    def _ended(self) -> None:
        with self._lock:
            self._active.pop(threading.get_ident(), None)

    def _fail(self, exc: BaseException) -> None:
        """The first failure of the database stops every other stream of it."""
        with self._lock:
            if self._failure is None:
                self._failure = exc
            active = list(self._active.values())
        for process in active:
            process.kill()

    # --- bookkeeping ------------------------------------------------------------------------------

    def count_bundled(self, leader: Leader, data: list[DataObject]) -> None:
        """The rows of the bundled tables, counted on the snapshot (pg_dump does not say)."""
        tables = [t for item in data if item.bundle for t in item.bundle]
        for start in range(0, len(tables), 500):
            chunk = tables[start : start + 500]
            query = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}::pg_catalog.int4, pg_catalog.count(*) FROM ONLY {}").format(
                    sql.Literal(index), sql.Identifier(t.schema, t.name)
                )
                for index, t in enumerate(chunk)
            )
            for index, count in leader.query(query.as_string(leader.connection)):
                table = chunk[int(str(index))]
                with self._lock:
                    self.result.row_counts[table.qualified] = int(str(count))

    def _key(self, name: str, kind: str) -> str:
        return member_key(self.prefix, self.database, self.timestamp, f"{name}.{kind}{self.suffix}")

    def _record(self, name: str, section: str, stats: StreamStats) -> dict[str, Any]:
        kind = {"data": "copy", "sequences": "json"}.get(section, "pgdump")
        entry: dict[str, Any] = {
            "name": name,
            "key": self._key(name, kind),
            "section": section,
            "raw_bytes": stats.raw_bytes,
            "compressed_bytes": stats.compressed_bytes,
            "parts": stats.parts,
            "sha256": stats.sha256,
            "block_bytes": stats.block_bytes if stats.blocks else 0,
            "block_sha256": base64.b64encode(b"".join(stats.blocks or [])).decode("ascii"),
        }
        with self._lock:
            self.result.objects.append(entry)
        return entry

    def _deadline(self, leader: Leader) -> threading.Timer | None:
        if not self.plan.timeout:
            return None

        def expire() -> None:
            self._fail(DumpError(f"the split backup of {self.database!r} exceeded its time limit"))
            leader.cancel()

        timer = threading.Timer(self.plan.timeout, expire)
        timer.daemon = True
        timer.start()
        return timer


class _Bytes:
    """A few bytes with ``PgDump``'s interface (the sequences' values)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def chunks(self) -> Any:
        yield self.data

    def finish(self, produced: int) -> None:
        if produced != len(self.data):
            raise PgBackupError("the sequences' values were not all written")

    def kill(self) -> None:
        pass

    def close(self) -> int:
        return 0
