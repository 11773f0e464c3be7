"""One exported snapshot, and the sessions that read a database through it.

A split backup (``pipeline.split``) reads one database over several connections at once and
must still see one moment of it, as a single ``pg_dump`` does. The ``Leader`` opens a
``REPEATABLE READ READ ONLY`` transaction (``SERIALIZABLE READ ONLY DEFERRABLE`` with pg_dump's
``--serializable-deferrable``), exports its snapshot with ``pg_export_snapshot()`` and holds the
transaction open until the last stream of the database ended: while it is open, every other
session can adopt the same snapshot (``SET TRANSACTION SNAPSHOT``), and so do the pg_dump
processes that write the schema (``--snapshot``).

Locks follow pg_dump's parallel mode. The leader takes ``ACCESS SHARE`` on every table whose
data is dumped (waiting at most ``BACKUP_LOCK_WAIT_TIMEOUT``): from then on DDL on those tables
waits for the backup to end. Each reading session locks its table again with ``NOWAIT`` before
reading it: a lock refused then means a session asked for an exclusive lock (``ALTER TABLE``,
``DROP``) after the leader's, and waiting would deadlock (that DDL waits for the leader, the
leader for this session), so the backup fails at once and says which table. Between the export
and the leader's lock DDL can commit (before the schema dump locks the tables, and between its
end and the leader's lock), as in pg_dump before its locks: a reader then names columns its
snapshot's catalog knows and the server no longer has, and fails clearly; a column added then
is simply not in the backup, as in the snapshot. A table truncated or rewritten then is worse:
its rows are the newer transaction's, which the snapshot cannot see, so it would read as empty.
``rewritten`` finds such tables once they are locked, and the backup fails naming them.

Every session is set up as pg_dump sets up its own (``SESSION_SETTINGS``): ISO dates, enough
float digits to round-trip, no statement or lock timeout, no synchronized scans, row security
off unless ``--enable-row-security`` (a table whose policies would hide rows then fails loudly
rather than being dumped short), and the client encoding the backup records.

``CopyOut`` is one table (or one range of its pages) read with ``COPY ... TO STDOUT`` on such a
session, handed out in the chunks ``pipeline.stream`` expects of a ``PgDump``. The COPY runs on
a thread of its own and meets the byte path through a short queue, so memory stays at a few
chunks per stream; ``kill`` cancels the query from any thread. Names reach SQL only quoted by
psycopg2 (``sql.Identifier``): a table called ``x"; DROP ...`` is a name, never SQL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from ..core import logs, signals
from ..core.errors import DumpError, one_line
from ..core.settings import LOCK_WAIT_TIMEOUT
from .target import Target

CHUNK = 1024 * 1024  # rows are gathered into chunks of this size before they go on
QUEUE_CHUNKS = 4
log = logs.get("run")


@dataclass(frozen=True)
class Session:
    """How every session of one split backup reads: pg_dump's own session settings."""

    encoding: str
    row_security: bool = False
    float_digits: int = 3
    serializable: bool = False

    def settings(self) -> list[tuple[str, str]]:
        return [
            ("client_encoding", self.encoding),
            ("DateStyle", "ISO"),
            ("IntervalStyle", "postgres"),
            ("extra_float_digits", str(self.float_digits)),
            ("statement_timeout", "0"),
            ("lock_timeout", "0"),
            ("idle_in_transaction_session_timeout", "0"),
            ("synchronize_seqscans", "off"),
            ("row_security", "on" if self.row_security else "off"),
        ]

    def begin(self) -> str:
        if self.serializable:
            return "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"
        return "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def _apply(connection: Connection, session: Session) -> None:
    with connection.cursor() as cursor:
        for name, value in session.settings():
            cursor.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))


def _open(target: Target, database: str, session: Session) -> Connection:
    connection = target.connect(database)
    connection.autocommit = True  # transactions are begun explicitly, with their isolation
    try:
        _apply(connection, session)
    except BaseException:
        connection.close()
        raise
    return connection


class Leader:
    """The session whose transaction holds the snapshot every stream of a database reads."""

    def __init__(self, target: Target, database: str, session: Session) -> None:
        self.database = database
        self.session = session
        self.connection = _open(target, database, session)
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(session.begin())
                cursor.execute("SELECT pg_catalog.pg_export_snapshot()")
                row = cursor.fetchone()
                assert row is not None
                self.snapshot = str(row[0])
        except BaseException:
            self.connection.close()
            raise

    def lock(self, tables: Sequence[tuple[str, str]], wait_seconds: int) -> None:
        """``ACCESS SHARE`` on every table read, waiting at most ``wait_seconds`` (0: forever)."""
        if not tables:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (f"{wait_seconds * 1000}",))
            try:
                for start in range(0, len(tables), 1000):
                    names = sql.SQL(", ").join(sql.Identifier(s, n) for s, n in tables[start : start + 1000])
                    cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))
            except psycopg2.errors.LockNotAvailable as exc:
                raise DumpError(
                    f"the tables of {self.database!r} could not be locked within {LOCK_WAIT_TIMEOUT.name} "
                    f"({wait_seconds} s): another session holds an exclusive lock ({one_line(exc)[:200]})",
                    hint="retry later, or raise the timeout",
                ) from exc
            cursor.execute("SELECT pg_catalog.set_config('lock_timeout', '0', true)")

    def rewritten(self, oids: Sequence[int]) -> set[int]:
        """The tables among ``oids`` whose storage is no longer the snapshot's: a TRUNCATE, or an
        ALTER TABLE, CLUSTER or VACUUM FULL that rewrote them, committed after the export. Their
        rows now carry the newer transaction's id, invisible to the snapshot, so reading them
        would find the table empty. The snapshot's ``pg_class`` row is read through the
        transaction; ``pg_relation_filenode`` reads the current catalog. Asked once the tables
        are locked, so the answer holds until the backup ends."""
        if not oids:
            return set()
        rows = self.query(
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.oid[])"
            " AND c.relfilenode OPERATOR(pg_catalog.<>) 0"
            " AND pg_catalog.pg_relation_filenode(c.oid) IS DISTINCT FROM c.relfilenode",
            (list(oids),),
        )
        return {int(str(row[0])) for row in rows}

    def query(self, text: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(text, args)
            return list(cursor.fetchall())

    def cancel(self) -> None:
        try:
            self.connection.cancel()
        except psycopg2.Error:
            pass

    def close(self) -> None:
        """End the transaction (nothing was written) and the session."""
        try:
            self.connection.close()
        except psycopg2.Error:
            pass


class Reader:
    """One session on the leader's snapshot, reading one table after another."""

    def __init__(self, target: Target, database: str, session: Session, snapshot: str) -> None:
        self.connection = _open(target, database, session)
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(session.begin())
                cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        except BaseException:
            self.connection.close()
            raise
        self.backend = self.connection.get_backend_pid()

    def close(self) -> None:
        try:
            self.connection.close()
        except psycopg2.Error:
            pass


@dataclass(frozen=True)
class CopyQuery:
    """What one data object reads: a table's columns, all of it or a range of its pages."""

    schema: str
    name: str
    columns: tuple[str, ...]
    pages: tuple[int, int | None] | None = None  # [first, last) heap pages (TID range); None: all
    condition: str = ""  # an extension configuration table's own filter (pg_extension.extcondition)

    def statement(self) -> sql.Composable:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        table = sql.Identifier(self.schema, self.name)
        where: list[sql.Composable] = []
        if self.pages is not None:
            first, last = self.pages
            where.append(sql.SQL("ctid OPERATOR(pg_catalog.>=) {}::pg_catalog.tid").format(sql.Literal(f"({first},0)")))
            if last is not None:
                where.append(
                    sql.SQL("ctid OPERATOR(pg_catalog.<) {}::pg_catalog.tid").format(sql.Literal(f"({last},0)"))
                )
        if not where and not self.condition:
            return sql.SQL("COPY {} ({}) TO STDOUT").format(table, columns)  # never its children
        clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
        extra = sql.SQL(" " + self.condition) if self.condition else sql.SQL("")
        return sql.SQL("COPY (SELECT {} FROM ONLY {}{}{}) TO STDOUT").format(columns, table, clause, extra)


class CopyOut:
    """``COPY ... TO STDOUT`` of one ``CopyQuery`` on a ``Reader``, with ``PgDump``'s interface:
    ``chunks``, ``finish``, ``kill``, ``close``. ``rows`` counts the lines (one per row: COPY's
    text format escapes newlines inside values)."""

    def __init__(self, reader: Reader, query: CopyQuery, label: str) -> None:
        self.reader = reader
        self.query = query
        self.label = label
        self.rows = 0
        self.error: BaseException | None = None
        self.killed = False
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._copy, name=f"copy {label}", daemon=True)
        signals.start(self._thread)

    def _copy(self) -> None:
        pending: list[bytes] = []
        size = 0

        def hand_on() -> None:
            nonlocal pending, size
            chunk = b"".join(pending)
            pending, size = [], 0
            self.rows += chunk.count(b"\n")
            self._put(chunk)

        class Sink:
            @staticmethod
            def write(row: bytes) -> None:
                nonlocal size
                pending.append(row)
                size += len(row)
                if size >= CHUNK:
                    hand_on()

        try:
            with self.reader.connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT").format(
                        sql.Identifier(self.query.schema, self.query.name)
                    )
                )
                cursor.copy_expert(self.query.statement(), Sink, size=CHUNK)
            if pending:
                hand_on()
        except BaseException as exc:  # handed to the byte path's thread, which raises it
            self.error = exc
        finally:
            self._done.set()
            self._put(None)

    def _put(self, item: bytes | None) -> None:
        while not self.killed:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def chunks(self) -> Iterator[bytes]:
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._done.is_set() and self._queue.empty():
                    return  # ended without its last word (killed): ``finish`` says why
                continue
            if item is None:
                return
            yield item

    def kill(self) -> None:
        self.killed = True
        try:
            self.reader.connection.cancel()
        except psycopg2.Error:
            pass

    def close(self) -> int:
        if not self._done.is_set():
            self.kill()
        self._thread.join(timeout=30)
        return 0

    def finish(self, produced: int) -> None:
        """Raise ``DumpError`` unless the COPY ended on its own, without an error."""
        self._thread.join()
        if self.error is not None:
            raise DumpError(self._why(self.error)) from self.error
        if self.killed:
            raise DumpError(f"reading {self.label} was stopped")

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, psycopg2.errors.LockNotAvailable):
            return (
                f"{self.label} could not be locked for reading: a session asked for an exclusive lock on it "
                "(DDL) after the backup locked it, and waiting would deadlock; retry when the DDL is done"
            )
        if isinstance(exc, psycopg2.Error) and not exc.pgcode and self._session_ended():
            # libpq often has no words for a session the server ended mid-COPY ("error with
            # status PGRES_COPY_OUT and no message from the libpq"): say what happened instead
            return (
                f"reading {self.label} failed: the server ended the session reading it (pg_terminate_backend, "
                "a restart or a crash); run the backup again"
            )
        if isinstance(exc, psycopg2.Error):
            return f"reading {self.label} failed: {one_line(exc)[:300]}"
        return f"reading {self.label} failed: {type(exc).__name__}: {exc}"

    def _session_ended(self) -> bool:
        connection = self.reader.connection
        try:
            return bool(connection.closed) or connection.info.status != 0  # libpq's CONNECTION_OK
        except psycopg2.Error:
            return True


def server_encoding(target: Target, database: str) -> str:
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.current_setting('server_encoding')")
        row = cursor.fetchone()
        assert row is not None
        return str(row[0])
