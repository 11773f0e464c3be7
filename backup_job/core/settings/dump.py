"""What is dumped and how: the databases, pg_dump's options and limits, the globals.

``BACKUP_PG_DUMP_OPTIONS`` is read as pg_dump 18 reads it (``core.dumpoptions``), and the
options the pipeline depends on are refused by meaning however they are spelled
(``REFUSED_PG_DUMP_OPTIONS``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .. import dumpoptions
from ..schema import (
    Invalid,
    Variable,
    boolean,
    choice,
    duration,
    format_boolean,
    format_optional,
    format_patterns,
    integer,
    patterns,
)
from .compression import Compression
from .group import Group


def _pg_dump_options(value: str) -> tuple[str, ...]:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise Invalid(f"cannot be split into options ({exc})", "'--exclude-table-data=audit.*'") from exc
    try:
        options = dumpoptions.parse(words)
    except dumpoptions.OptionError as exc:
        raise Invalid(f"is not usable: {exc}", "'--no-owner'") from exc
    for option in options:
        if option.meaning in REFUSED_PG_DUMP_OPTIONS:
            written = f" (written {option.written!r})" if option.written.split("=")[0] != option.shown else ""
            raise Invalid(
                f"must not contain {option.shown}{written}: {REFUSED_PG_DUMP_OPTIONS[option.meaning]}; remove it",
                "'--no-owner'",
            )
    return tuple(words)


def _bindir(value: str) -> Path | None:
    if value and not (Path(value) / "pg_dump").is_file():
        raise Invalid("holds no pg_dump", "/usr/lib/postgresql/18/bin")
    return Path(value) if value else None


class DumpSettings(Group):
    """Which databases are dumped, with which pg_dump and options, how many at once."""

    include = Variable(
        "BACKUP_DATABASES",
        patterns,
        "Comma-separated names or shell-style globs to back up. A plain name that does not exist fails (that name).",
        example="app,analytics_*",
        shown_default="all",
        format=format_patterns,
    )
    exclude = Variable(
        "BACKUP_EXCLUDE_DATABASES",
        patterns,
        "Names or globs to skip; applied after the include list.",
        example="*_test,scratch",
        format=format_patterns,
    )
    parallel_databases = Variable(
        "BACKUP_PARALLEL_DATABASES",
        integer(1, 32),
        "Databases dumped and uploaded at once (1-32); each still fails alone. Memory "
        "grows with it: see [Memory, part sizes and S3 limits]"
        "(performance.md#memory-part-sizes-and-s3-limits).",
        default="4",
        example="1, 8",
    )
    pg_dump_options = Variable(
        "BACKUP_PG_DUMP_OPTIONS",
        _pg_dump_options,
        "Extra pg_dump options (shell quoting), read as pg_dump 18 reads them. Options that "
        "change the output file, format, compression, database or server (`-f -F -j -Z -d "
        "-W -h -p -U`), that restore does itself (`-C`, `-c`), and `--restrict-key`, are "
        "refused however they are written (`--form=c`, `-vFc`); so are options pg_dump "
        "would reject and words that are not options.",
        example="--exclude-table-data='audit.*' --no-owner",
        format=shlex.join,
    )
    lock_wait_timeout = Variable(
        "BACKUP_LOCK_WAIT_TIMEOUT",
        duration,
        "pg_dump's `--lock-wait-timeout`: give up instead of queueing behind DDL. `0` waits forever.",
        default="300",
        example="90s, 5m",
    )
    database_timeout = Variable(
        "BACKUP_DATABASE_TIMEOUT",
        duration,
        "Per-database limit, pg_dump and upload together; a backup still running then is stopped and fails. `0`: none.",
        default="0",
        example="2h",
    )
    pg_bindir = Variable(
        "BACKUP_PG_BINDIR",
        _bindir,
        "Where `pg_dump` is, if not on `PATH`.",
        example="/usr/lib/postgresql/18/bin",
        shown_default="`PATH`",
        format=format_optional,
    )
    progress_interval = Variable(
        "BACKUP_PROGRESS_INTERVAL",
        duration,
        "How often a running dump logs its progress; `0` turns it off.",
        default="30",
        example="10s",
    )
    format = Variable(
        "BACKUP_FORMAT",
        choice("plain", "split"),
        "`plain`: each database is one pg_dump stream of SQL, restored by psql in one transaction. "
        "`split`: each database is dumped over several connections on one exported snapshot, each "
        "table its own object; restored in parallel (`restore --jobs`), one table at a time if need "
        "be (`restore --table`). See [Big databases](big-databases.md).",
        default="plain",
        example="split",
        note="plain: one SQL stream per database; split: each table its own object, dumped and restored in parallel.",
    )
    dump_jobs = Variable(
        "BACKUP_DUMP_JOBS",
        integer(0, 64),
        "With a split format (above): the connections that read one database's tables at once "
        "(0-64; `0`: the CPUs this process may use). Never more than the database has tables, and "
        "lowered to fit the server's free connections: see [Connections](big-databases.md#connections-and-cpus).",
        default="0",
        example="4",
        note="With split: connections per database (0: automatic).",
    )
    split_table_mb = Variable(
        "BACKUP_SPLIT_TABLE_MB",
        integer(1, 1048576),
        "With a split format, the grain of its streams: a table larger than twice this is read in ranges "
        "of pages of this size, each its own stream and object (PostgreSQL 14+; older servers read each "
        "table as one stream); tables smaller than 1/128 of it are stored together, in bundles of up to "
        "1/16 of it.",
        default="1024",
        example="256",
        note="With split: tables larger than twice this are read in ranges of this size (PostgreSQL 14+), "
        "tables smaller than 1/128 of it are stored together.",
    )
    globals = Variable(
        "BACKUP_GLOBALS",
        boolean,
        "Also store the roles and tablespaces (`pg_dumpall --globals-only`) with each run.",
        default="true",
        example="false",
        note="Also store roles and tablespaces (pg_dumpall --globals-only) with every run.",
        format=format_boolean,
    )

    def settle(self) -> None:
        """A split backup honours the pg_dump options its own readers can and refuses the rest."""
        if self.dump_jobs and self.format != "split":
            raise DumpSettings.dump_jobs.problem(
                str(self.dump_jobs), Invalid(f"applies only with {DumpSettings.format.name}=split; remove it", "0")
            )
        if self.format != "split":
            return
        for option in dumpoptions.parse(list(self.pg_dump_options)):
            if option.meaning in SPLIT_REFUSED:
                raise DumpSettings.pg_dump_options.problem(
                    shlex.join(self.pg_dump_options),
                    Invalid(
                        f"must not contain {option.shown} with {DumpSettings.format.name}=split: "
                        f"{SPLIT_REFUSED[option.meaning]}",
                        "'--no-owner'",
                    ),
                )


_PLAIN = f"{DumpSettings.format.name}=plain"
_SPLIT_DATA = f"a split backup reads table data with COPY itself; use {_PLAIN} for that"
# pg_dump options a split backup cannot honour: its readers do the data part themselves, and
# it chooses the sections and the snapshot. Every other option is passed to the pg_dump of the
# schema, and those that concern data (``--exclude-table-data``, ``--no-unlogged-table-data``,
# ``--load-via-partition-root``, ``--enable-row-security``, ``--encoding``,
# ``--extra-float-digits``, ``--serializable-deferrable``) are honoured by the readers too.
SPLIT_REFUSED = {
    "data-only": "a split backup always stores the schema with the data",
    "no-schema": "a split backup always stores the schema with the data",
    "schema-only": f"a split backup exists to store data in parallel; use {_PLAIN} for the schema alone",
    "no-data": f"a split backup exists to store data in parallel; use {_PLAIN} for the schema alone",
    "statistics-only": "a split backup exists to store data in parallel",
    "statistics": "planner statistics are not stored in split backups (ANALYZE after a restore)",
    "section": "a split backup chooses the sections itself",
    "snapshot": "a split backup exports its own snapshot",
    "inserts": _SPLIT_DATA,
    "column-inserts": _SPLIT_DATA,
    "rows-per-insert": _SPLIT_DATA,
    "on-conflict-do-nothing": _SPLIT_DATA,
    "disable-triggers": "restore of a split backup loads rows before any trigger exists",
    "include-foreign-data": "a split backup does not read foreign tables' data",
    "filter": "a split backup cannot see which table data a filter file excludes; use --exclude-table-data",
    "sequence-data": "a split backup stores every sequence's value itself",
}


# pg_dump options that would change where the output goes, its format, which database is
# dumped, or which server and user: the pipeline depends on plain SQL on stdout of the database
# it chose, and another host or port would receive PGPASSWORD (whoever writes a PgBackup's
# pgDumpOptions could collect it). Matched by meaning, however the option is spelled (a
# prefix, bundled, an alias).
_PASSWORD_PROMPT = "a password prompt would hang the job; use PGPASSWORD or PGPASSWORD_FILE"
_SERVER = "the server and user come from PGHOST, PGPORT and PGUSER (another server would receive PGPASSWORD)"
REFUSED_PG_DUMP_OPTIONS = {  # by meaning (core.dumpoptions): every spelling of these is refused
    "file": "the dump is streamed from stdout",
    "format": f"pgbackup stores plain SQL, or with {DumpSettings.format.name}=split its own parallel format",
    "jobs": f"to dump one database over several connections use {DumpSettings.format.name}=split with "
    f"{DumpSettings.dump_jobs.name}",
    "compress": f"pgbackup compresses the stream itself ({Compression.format.name}, {Compression.level.name})",
    "create": "restore --create recreates the database from the properties pgbackup captures",
    "clean": "restore --clean drops the old contents inside the restore's transaction",
    "dbname": f"databases are chosen with {DumpSettings.include.name}",
    "password": _PASSWORD_PROMPT,
    "host": _SERVER,
    "port": _SERVER,
    "username": _SERVER,
    "restrict-key": "pgbackup chooses a dump's \\restrict key itself, and strips it when it restores",
    "version": "it prints the version instead of dumping",
    "help": "it prints help instead of dumping",
}
