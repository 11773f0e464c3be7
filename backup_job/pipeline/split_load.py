"""The way back for a split backup: schema, rows over N connections, then indexes and constraints in parallel.

``load_split`` restores a split backup (``pipeline.split``) into a database that holds none of
its tables yet (a new one for a whole backup)::

    pre-data      checked whole, to a private temporary file -> pg_restore (one transaction)
    large-objects checked whole, to a temporary file         -> pg_restore
    data-NNNNNN   N connections; each object, largest first:
                  Storage.read -> CheckedRead (every block against the manifest before use)
                  -> age -> gunzip/unzstd -> COPY ... FROM STDIN, as the table's owner
                  the rows COPY reports must equal the rows the backup read;
                  a bundle of small tables streams to pg_restore --data-only instead
                  once a table's last object is in, its indexes and constraints (not its
                  foreign keys) join the same N workers, ahead of the rows still to load
    sequences     checked, then setval() for each, names passed as values
    post-data     checked whole, to a temporary file -> pg_restore --jobs N: foreign keys,
                  triggers, the rest and whatever was not built early, its scheduler
                  respecting dependencies

Building a table's indexes while other tables still load is what ``pg_restore --jobs`` does
(its scheduler makes them wait for their table's data, not for all data): without it the last
phase would build every index while the cores that loaded rows sit idle. An early build is one
``pg_restore --use-list`` of that index or constraint and the comments on it; only entries
that depend on nothing else of the post-data section are built early, and none when rows are
loaded through a partition root (they may land in any partition until the last load). Small
tables, bundled, keep their indexes for the last phase: an early build costs a program start.

The schema archives go through a local file because ``pg_restore`` needs to seek in one to
run in parallel; they hold no rows, and the file lives in a private temporary directory
removed at the end. Nothing reaches ``pg_restore`` or COPY before the bytes it is made of were
checked against the manifest (``load.read_verified``), so a bucket writer's change stops the
restore at the block it changed.

Each COPY commits on its own: all or nothing is the caller's, by restoring into a database it
created and drops on failure (``commands.restore``), or, for chosen tables, by dropping the
tables it created. With ``tables`` given, only those tables' entries of the two archives are
restored (``pg.toc.select`` by the OIDs the manifest recorded), with their owned sequences,
and their foreign keys to tables not restored are left out and named.

Rows load as each table's owner: a superuser restoring runs ``SET SESSION AUTHORIZATION`` to
the owner around each COPY, as a plain dump's SQL does, so a constraint's or default's code
runs with its owner's rights; the schema is restored with ``--use-set-session-authorization``
for the same reason. Names from the manifest reach SQL only through ``sql.Identifier``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from ..core import logs, signals
from ..core.errors import ChecksumError, RestoreError, one_line
from ..core.manifest import Manifest
from ..pg import toc
from ..pg.process import ChildProcess
from ..pg.target import Target
from ..storage.base import Storage
from .load import ReadStats, read_verified
from .unseal import Keyring

SCHEMA_LIMIT = 1024 * 1024 * 1024  # a schema archive larger than this once decompressed is refused
log = logs.get("restore")


@dataclass
class Selection:
    """What of a split backup is restored: everything, or chosen tables and what hangs on them."""

    tables: list[str] = field(default_factory=list)  # the manifest's names ("schema.name"); empty: all
    skipped_keys: list[str] = field(default_factory=list)  # foreign keys left out (to tables not restored)

    @property
    def partial(self) -> bool:
        return bool(self.tables)


class PgRestore(ChildProcess):
    """``pg_restore`` of one archive file into one database."""

    ERROR_LINE = re.compile(r"error:|FATAL|ERROR")
    failure = RestoreError


def _restore_archive(
    pg_restore: str,
    target: Target,
    database: str,
    archive: Path,
    what: str,
    *,
    jobs: int = 1,
    listing: str | None = None,
    single_transaction: bool = False,
    started: Callable[[PgRestore], None] | None = None,
    list_name: str = "",
) -> None:
    argv = [
        pg_restore,
        "--exit-on-error",
        "--no-password",
        "--use-set-session-authorization",
        f"--dbname={make_dsn(dbname=database)}",
    ]
    if jobs > 1:
        argv.append(f"--jobs={jobs}")
    if single_transaction:
        argv.append("--single-transaction")
    if listing is not None:
        list_file = archive.with_name(f"{list_name or archive.stem}.list")
        list_file.write_text(listing)
        argv.append(f"--use-list={list_file}")
    argv.append(str(archive))
    process = PgRestore(argv, target.child_env(database), stdin=None, stdout=None)
    if started is not None:
        started(process)
    code = process.wait()
    if code != 0:
        raise RestoreError(f"restoring the {what} failed (pg_restore exit {code}): {process.said().strip()[:400]}")


class SplitLoad:
    """Restores one split backup into ``database`` (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        manifest: Manifest,
        target: Target,
        database: str,
        pg_restore: str,
        *,
        jobs: int,
        keyring: Keyring,
        selection: Selection,
    ) -> None:
        self.storage = storage
        self.manifest = manifest
        self.target = target
        self.database = database
        self.pg_restore = pg_restore
        self.jobs = max(1, jobs)
        self.keyring = keyring
        self.selection = selection
        self.stats = ReadStats()
        self._failure: BaseException | None = None
        self._connections: list[Any] = []
        self._children: set[PgRestore] = set()
        self._lock = threading.Condition()
        self._next = 0
        self._post: Path | None = None
        self._early: dict[str, list[list[toc.Entry]]] = {}  # table -> its early builds
        self._loading: dict[str, int] = {}  # table -> its data objects not loaded yet
        self._ready: deque[list[toc.Entry]] = deque()  # early builds whose table is loaded
        self._busy = 0  # loads under way, each of which may make builds ready
        self.built: set[int] = set()  # dump ids of the post-data entries built early

    def run(self) -> ReadStats:
        with tempfile.TemporaryDirectory(prefix="pgbackup-restore-") as directory:
            work = Path(directory)
            os.chmod(work, 0o700)
            pre, post = self._archive("pre-data", work), self._archive("post-data", work)
            self._post = post
            pre_list = None
            post_entries = toc.listing(self.pg_restore, post.read_bytes())
            if self.selection.partial:
                pre_list, post_entries = self._lists(pre, post_entries)
            self._early = self._early_builds(post_entries)
            _restore_archive(
                self.pg_restore,
                self.target,
                self.database,
                pre,
                "schema",
                listing=pre_list,
                single_transaction=True,
            )
            if not self.selection.partial:
                lobs = self._archive("large-objects", work)
                _restore_archive(self.pg_restore, self.target, self.database, lobs, "large objects")
            loaded = self._data()
            log.info(
                "rows of %r loaded: %d objects over %d connections; %d indexes and constraints built as their "
                "tables were loaded",
                self.database,
                loaded,
                self.jobs,
                sum(1 for e in post_entries if e.dump_id in self.built and e.kind in ("INDEX", "CONSTRAINT")),
                extra=logs.fields(event="restore.rows", database=self.database),
            )
            self._sequences()
            rest = [e for e in post_entries if e.dump_id not in self.built]
            _restore_archive(
                self.pg_restore,
                self.target,
                self.database,
                post,
                "indexes and constraints",
                jobs=self.jobs,
                listing=toc.list_file(rest) if self.selection.partial or self.built else None,
            )
        return self.stats

    # --- the schema -----------------------------------------------------------------------------

    def _archive(self, name: str, work: Path) -> Path:
        """The archive ``name``, checked whole against the manifest, in a private file."""
        obj = next(o for o in self.manifest.objects if o["name"] == name)
        path = work / f"{name}.pgdump"
        written = [0]
        with open(path, "wb") as out:

            def sink(data: bytes) -> None:
                written[0] += len(data)
                if written[0] > SCHEMA_LIMIT:
                    raise RestoreError(f"the {name} archive is larger than {SCHEMA_LIMIT // 2**20} MiB")
                out.write(data)

            self._add(read_verified(self.storage, self.manifest.piece(obj), sink, ReadStats(), self.keyring))
        return path

    def _lists(self, pre: Path, post_entries: list[toc.Entry]) -> tuple[str, list[toc.Entry]]:
        """The entries of the two archives that belong to the chosen tables."""
        relations = self.manifest.relations
        chosen = {relations[t]["oid"] for t in self.selection.tables}
        pre_objects: set[tuple[int, int]] = set()
        post_objects: set[tuple[int, int]] = set()
        for name in self.selection.tables:
            facts = relations[name]
            pre_objects.update((c, o) for c, o in facts["pre"])
            post_objects.update((c, o) for c, o in facts["post"])
            by_oid = {f["oid"]: n for n, f in relations.items()}
            for constraint, referenced in facts["foreign_keys"]:
                if referenced in chosen:
                    post_objects.add((2606, constraint))
                else:
                    self.selection.skipped_keys.append(f"{name} -> {by_oid.get(referenced, f'OID {referenced}')}")
        pre_entries = toc.listing(self.pg_restore, pre.read_bytes())
        return toc.list_file(toc.select(pre_entries, pre_objects)), toc.select(post_entries, post_objects)

    def _early_builds(self, entries: list[toc.Entry]) -> dict[str, list[list[toc.Entry]]]:
        """Per table loaded by COPY, its indexes and constraints (foreign keys aside) that can be
        built as soon as its rows are in, each with the comments on it (module docstring)."""
        relations = self.manifest.relations
        data = [o for o in self.manifest.objects if o["section"] == "data" and self._chosen(o)]
        for obj in data:
            facts = relations.get(obj["table"])
            if facts is None or tuple(obj["load_into"]) != (facts["schema"], facts["name"]):
                return {}  # rows routed through a partition root: build nothing before the last load
        section = {e.dump_id for e in entries}
        by_object = {(e.catalog, e.oid): e for e in entries if e.kind in ("INDEX", "CONSTRAINT")}
        hanging: dict[int, list[toc.Entry]] = {}
        for entry in entries:
            if entry.catalog == 0 and entry.kind in ("COMMENT", "SECURITY LABEL") and len(entry.depends) == 1:
                hanging.setdefault(entry.depends[0], []).append(entry)
        builds: dict[str, list[list[toc.Entry]]] = {}
        for table in dict.fromkeys(o["table"] for o in data):
            for catalog, oid in relations[table]["post"]:
                built = by_object.get((catalog, oid))
                if built is None or any(d in section for d in built.depends):
                    continue  # not in this restore, or waits for another post-data entry
                builds.setdefault(table, []).append([built, *hanging.get(built.dump_id, [])])
        for obj in data:
            self._loading[obj["table"]] = self._loading.get(obj["table"], 0) + 1
        return builds

    # --- the rows -------------------------------------------------------------------------------

    def _data(self) -> int:
        """Loads the rows (and builds what can be built early); the number of objects loaded."""
        data = [o for o in self.manifest.objects if o["section"] in ("data", "table-data") and self._chosen(o)]
        known = {(f["schema"], f["name"]) for f in self.manifest.relations.values()}
        for obj in data:  # rows go only into tables of this backup, whatever a manifest says
            if obj["section"] == "data" and tuple(obj["load_into"]) not in known:
                raise RestoreError(
                    f"{obj['name']} of the backup loads into {'.'.join(obj['load_into'])[:200]}, "
                    "which is not a table of the backup; the manifest was changed"
                )
        data.sort(key=lambda o: -o["raw_bytes"])
        workers = [
            threading.Thread(target=self._work, args=(data,), name=f"loader {i}")
            for i in range(min(self.jobs, len(data)))
        ]
        for worker in workers:
            signals.start(worker)
        for worker in workers:
            worker.join()
        if self._failure is not None:
            raise self._failure
        return len(data)

    def _chosen(self, obj: dict[str, Any]) -> bool:
        if not self.selection.partial:
            return True
        if obj["section"] == "table-data":
            return bool(set(obj["tables"]) & set(self.selection.tables))
        return obj["table"] in self.selection.tables

    def _work(self, data: list[dict[str, Any]]) -> None:
        try:
            with closing(self.target.connect(self.database)) as connection:
                with self._lock:
                    self._connections.append(connection)
                superuser = is_superuser_connection(connection)
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_catalog.set_config('client_encoding', %s, false)", (self.manifest.encoding,)
                    )
                    cursor.execute("SELECT pg_catalog.set_config('DateStyle', 'ISO', false)")
                while (task := self._take(data)) is not None:
                    if isinstance(task, list):
                        self._build(task)
                    elif task["section"] == "table-data":
                        self._load_bundle(task)
                    else:
                        self._load(connection, task, superuser)
                    self._done(task)
        except BaseException as exc:
            self._fail(exc)

    def _take(self, data: list[dict[str, Any]]) -> dict[str, Any] | list[toc.Entry] | None:
        """The next task: a ready build first, then the next object; None when nothing is left
        that could still make a build ready."""
        with self._lock:
            while self._failure is None:
                if self._ready:
                    self._busy += 1
                    return self._ready.popleft()
                if self._next < len(data):
                    self._next += 1
                    self._busy += 1
                    return data[self._next - 1]
                if not self._busy:
                    break
                self._lock.wait()
            self._lock.notify_all()
            return None

    def _done(self, task: dict[str, Any] | list[toc.Entry]) -> None:
        with self._lock:
            self._busy -= 1
            if isinstance(task, dict) and task["section"] == "data" and task["table"] in self._loading:
                self._loading[task["table"]] -= 1
                if not self._loading[task["table"]]:
                    self._ready.extend(self._early.get(task["table"], []))
            self._lock.notify_all()

    def _build(self, entries: list[toc.Entry]) -> None:
        """One index or constraint of a loaded table, with the comments on it."""
        assert self._post is not None
        _restore_archive(
            self.pg_restore,
            self.target,
            self.database,
            self._post,
            "indexes and constraints",
            listing=toc.list_file(entries),
            started=self._started,
            list_name=f"early-{entries[0].dump_id}",
        )
        with self._lock:
            self.built.update(e.dump_id for e in entries)

    def _started(self, process: PgRestore) -> None:
        with self._lock:
            self._children.add(process)
            failed = self._failure is not None
        if failed:
            process.kill()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc
            connections = list(self._connections)
            children = list(self._children)
            self._lock.notify_all()
        for connection in connections:
            try:
                connection.cancel()
            except psycopg2.Error:
                pass
        for child in children:
            child.kill()

    def _load(self, connection: Any, obj: dict[str, Any], superuser: bool) -> None:
        schema, name = obj["load_into"]
        table = sql.Identifier(schema, name)
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in obj["columns"])
        feed = _Feed()
        stats = ReadStats()
        producer = threading.Thread(target=feed.produce, args=(self, obj, stats), name=f"read {obj['name']}")
        signals.start(producer)
        try:
            with connection.cursor() as cursor:
                if superuser:
                    cursor.execute(
                        "SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c"
                        " WHERE c.oid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass",
                        (sql.Identifier(schema, name).as_string(connection),),
                    )
                    row = cursor.fetchone()
                    owner = str(row[0]) if row else ""
                    cursor.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(owner)))
                failed = True
                try:
                    cursor.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns), feed, size=1 << 20)
                    loaded = cursor.rowcount
                    failed = False
                finally:
                    if superuser:
                        with contextlib.suppress(*((psycopg2.Error,) if failed else ())):
                            cursor.execute("RESET SESSION AUTHORIZATION")
        except BaseException as exc:
            feed.stop()
            producer.join()
            if feed.error is not None:
                raise feed.error from None  # the stored bytes, not the SQL they caused
            if isinstance(exc, psycopg2.Error):
                raise RestoreError(
                    f"loading table {obj['table']} ({obj['name']}) failed: {one_line(exc)[:300]}"
                ) from exc
            raise
        producer.join()
        if feed.error is not None:
            raise feed.error
        if loaded != obj["rows"]:
            raise RestoreError(
                f"table {obj['table']} ({obj['name']}) loaded {loaded} rows, the backup read {obj['rows']}"
            )
        self._add(stats)

    def _add(self, stats: ReadStats) -> None:
        with self._lock:
            self.stats.compressed_bytes += stats.compressed_bytes
            self.stats.raw_bytes += stats.raw_bytes

    def _load_bundle(self, obj: dict[str, Any]) -> None:
        """Small tables' rows from their pg_dump archive, streamed to ``pg_restore --data-only``
        in one transaction; for chosen tables, the archive is read first (it is small) to list
        just their entries."""
        argv = [
            self.pg_restore,
            "--data-only",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            "--use-set-session-authorization",
            f"--dbname={make_dsn(dbname=self.database)}",
        ]
        listing: str | None = None
        held = bytearray()
        if self.selection.partial:

            def hold(data: bytes) -> None:
                if len(held) + len(data) > SCHEMA_LIMIT:
                    raise RestoreError(f"{obj['name']} of the backup is larger than a bundle of small tables may be")
                held.extend(data)

            self._add(read_verified(self.storage, self.manifest.piece(obj), hold, ReadStats(), self.keyring))
            oids = {self.manifest.relations[t]["oid"] for t in self.selection.tables if t in obj["tables"]}
            chosen = [e for e in toc.listing(self.pg_restore, bytes(held)) if e.kind == "TABLE DATA" and e.oid in oids]
            listing = toc.list_file(chosen)
        with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as list_file:
            list_file.write(listing or "")
        if listing is not None:
            argv.append(f"--use-list={list_file.name}")
        process = PgRestore(argv, self.target.child_env(self.database), stdin=subprocess.PIPE, stdout=None)
        assert process.process.stdin is not None
        sink = process.process.stdin

        def feed(data: bytes) -> None:
            sink.write(data)

        cut = False
        try:
            if listing is not None:
                feed(bytes(held))
            else:
                self._add(read_verified(self.storage, self.manifest.piece(obj), feed, ReadStats(), self.keyring))
            sink.close()
        except (BrokenPipeError, RestoreError) as exc:
            if not isinstance(exc, BrokenPipeError) and not isinstance(exc.__cause__, BrokenPipeError):
                process.kill()
                process.wait()
                raise
            cut = True  # pg_restore stopped reading: its own error says why (below)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            code = process.wait()
            Path(list_file.name).unlink(missing_ok=True)
        if code != 0:
            detail = process.said()
            raise RestoreError(f"loading the small tables of {obj['name']} failed (pg_restore exit {code}): {detail}")
        if cut:
            raise RestoreError(f"pg_restore stopped reading {obj['name']} of the backup before its end")

    # --- the sequences --------------------------------------------------------------------------

    def _sequences(self) -> None:
        obj = next(o for o in self.manifest.objects if o["name"] == "sequences")
        held = bytearray()

        def sink(data: bytes) -> None:
            if len(held) + len(data) > SCHEMA_LIMIT:
                raise RestoreError("the sequences' values are larger than a schema archive may be")
            held.extend(data)

        self._add(read_verified(self.storage, self.manifest.piece(obj), sink, ReadStats(), self.keyring))
        try:
            values = json.loads(bytes(held))["sequences"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RestoreError(f"the sequences' values of the backup cannot be read: {exc}") from exc
        wanted = self._wanted_sequences()
        with closing(self.target.connect(self.database)) as connection, connection.cursor() as cursor:
            owned = self._owned_sequences(cursor) if self.selection.partial else None
            for value in values:
                if not isinstance(value, dict) or (wanted is not None and value.get("oid") not in wanted):
                    continue
                if owned is not None and (value.get("schema"), value.get("name")) not in owned:
                    continue  # in a database in use, only the sequences of the tables just restored
                try:
                    name = sql.Identifier(str(value["schema"]), str(value["name"])).as_string(connection)
                    cursor.execute(
                        "SELECT pg_catalog.setval(%s::pg_catalog.regclass, %s::pg_catalog.int8, %s::pg_catalog.bool)",
                        (name, int(value["last_value"]), bool(value["is_called"])),
                    )
                except (KeyError, ValueError, TypeError, psycopg2.Error) as exc:
                    raise RestoreError(f"setting a sequence's value failed: {one_line(exc)[:300]}") from exc

    def _owned_sequences(self, cursor: Any) -> set[tuple[str, str]]:
        """The sequences the restored tables own in the target: all a partial restore may set."""
        owned: set[tuple[str, str]] = set()
        for table in self.selection.tables:
            facts = self.manifest.relations[table]
            cursor.execute(
                "SELECT n.nspname, s.relname FROM pg_catalog.pg_depend d"
                " JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid"
                " AND s.relkind OPERATOR(pg_catalog.=) 'S'"
                " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) s.relnamespace"
                " WHERE d.classid OPERATOR(pg_catalog.=) 1259 AND d.refclassid OPERATOR(pg_catalog.=) 1259"
                " AND d.deptype IN ('a', 'i')"
                " AND d.refobjid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s)",
                (sql.Identifier(facts["schema"], facts["name"]).as_string(cursor),),
            )
            owned.update((str(schema), str(name)) for schema, name in cursor.fetchall())
        return owned

    def _wanted_sequences(self) -> set[int] | None:
        if not self.selection.partial:
            return None
        return {
            oid
            for table in self.selection.tables
            for catalog, oid in self.manifest.relations[table]["pre"]
            if catalog == toc.PG_CLASS and oid != self.manifest.relations[table]["oid"]
        }


def is_superuser_connection(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user")
        row = cursor.fetchone()
    return bool(row and row[0])


class _Feed:
    """The checked, decompressed rows of one object, as the file COPY reads: ``produce`` runs
    ``read_verified`` on a thread of its own, ``read`` hands its chunks to COPY. COPY sees the
    end of the data only after the whole object matched its manifest."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(8)
        self._buffer = b""
        self._ended = False
        self._stopped = threading.Event()
        self.error: BaseException | None = None

    def produce(self, load: SplitLoad, obj: dict[str, Any], stats: ReadStats) -> None:
        try:
            read_verified(load.storage, load.manifest.piece(obj), self._put, stats, load.keyring)
        except BaseException as exc:
            self.error = (
                exc
                if isinstance(exc, (ChecksumError, RestoreError))
                else RestoreError(f"reading {obj['name']} of the backup failed: {exc}")
            )
            self._put_end()
            return
        self._put_end()

    def _put(self, data: bytes) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(bytes(data), timeout=0.2)
                return
            except queue.Full:
                continue
        raise RestoreError("the load was stopped")

    def _put_end(self) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(None, timeout=0.2)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stopped.set()

    def read(self, size: int = -1) -> bytes:
        while not self._buffer and not self._ended:
            item = self._queue.get()
            if item is None:
                self._ended = True
                if self.error is not None:
                    raise self.error  # COPY fails: the object did not match its manifest
                break
            self._buffer = item
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def restore_pg_restore(psql_path: str) -> str:
    """The pg_restore beside the psql a restore uses."""
    path = Path(psql_path).with_name("pg_restore")
    if not path.is_file():
        raise RestoreError(f"pg_restore is not beside {psql_path}; a split backup is restored with it")
    return str(path)
