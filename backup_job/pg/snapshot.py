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

``CopyOut`` is one table (or one range of its pages) read with ``COPY ... TO STDOUT`` by a
``psql`` of its own that adopts the snapshot, its output handed out in the chunks
``pipeline.stream`` expects of a ``PgDump``: the rows reach the byte path in 1 MiB reads, never
one Python call per row (which cost a third more CPU than a plain dump on a table of small
rows). Each stream is one session; small tables are bundled (``pipeline.split``), so the
sessions are few. Names reach SQL only quoted by psycopg2 (``sql.Identifier``, ``sql.Literal``):
a table called ``x"; DROP ...`` is a name, never SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from ..core import logs
from ..core.errors import DumpError, one_line
from ..core.settings import LOCK_WAIT_TIMEOUT
from .dump import PgDump
from .target import Target

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

    def script(self, connection: Connection, session: Session, snapshot: str) -> bytes:
        """What ``psql`` runs for it: pg_dump's session settings, the snapshot, the lock, the COPY.
        Every name is quoted by the driver; psql interpolates nothing inside quotes."""
        # The script is UTF-8 (names as Python holds them); the rows come out in the backup's
        # encoding all the same, by COPY's own ENCODING option.
        lines: list[sql.Composable] = [
            sql.SQL("SET {} = {};").format(
                sql.Identifier(name), sql.Literal("UTF8" if name == "client_encoding" else value)
            )
            for name, value in session.settings()
        ]
        lines += [
            sql.SQL(session.begin() + ";"),
            sql.SQL("SET TRANSACTION SNAPSHOT {};").format(sql.Literal(snapshot)),
            sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT;").format(sql.Identifier(self.schema, self.name)),
            self.statement() + sql.SQL(" (ENCODING {});").format(sql.Literal(session.encoding)),
            sql.SQL("COMMIT;"),
        ]
        return "".join(line.as_string(connection) + "\n" for line in lines).encode("utf-8")


class CopyOut(PgDump):
    """``COPY ... TO STDOUT`` of one ``CopyQuery`` by ``psql`` on the leader's snapshot, read like
    a ``PgDump``'s output (``chunks``, ``finish``, ``kill``, ``close``): the rows never pass
    through Python one by one. ``rows`` counts the lines (one per row: COPY's text format
    escapes newlines inside values)."""

    def __init__(self, psql: str, database: str, script: bytes, label: str, timeout: int = 0) -> None:
        self.label = label
        self.rows = 0
        argv = [psql, "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--file=-"]
        super().__init__(
            psql, database, lock_wait_timeout=0, extra_options=(), timeout=timeout, argv=argv, script=script
        )

    def chunks(self) -> Iterator[bytes]:
        for chunk in super().chunks():
            self.rows += chunk.count(b"\n")
            yield chunk

    def finish(self, produced: int) -> None:
        """Raise ``DumpError`` unless psql ended the COPY and the transaction without an error (an
        empty table produces nothing, and that is fine)."""
        code = self.close()
        if self.timed_out:
            raise DumpError(f"reading {self.label} exceeded its time limit and was stopped")
        if code < 0:
            raise DumpError(f"reading {self.label} was stopped (signal {-code})")
        if code != 0:
            raise DumpError(self._why())

    def _why(self) -> str:
        said = " ".join(" ".join(self.errors).split()) or " ".join(" ".join(list(self.tail)[-3:]).split())
        if "could not obtain lock" in said:
            return (
                f"{self.label} could not be locked for reading: a session asked for an exclusive lock on it "
                "(DDL) after the backup locked it, and waiting would deadlock; retry when the DDL is done"
            )
        if "terminating connection" in said or "server closed the connection" in said:
            return (
                f"reading {self.label} failed: the server ended the session reading it (pg_terminate_backend, "
                "a restart or a crash); run the backup again"
            )
        detail = re.sub(r"^psql:[^ ]*: ", "", said)
        return f"reading {self.label} failed: {detail[:300] or 'psql gave no reason'}"


def server_encoding(target: Target, database: str) -> str:
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.current_setting('server_encoding')")
        row = cursor.fetchone()
        assert row is not None
        return str(row[0])
