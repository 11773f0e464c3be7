"""``restore --table T --into S.N``: one table of a split backup restored beside the live one, under another name.

pg_dump's archives name every object with its schema and name, so the table cannot be
restored under another name directly. It takes a detour through a scratch database on the
target server, made and dropped by this restore (it needs CREATEDB, as ``verify`` does)::

    1. CREATE DATABASE pgbackup_into_<time>_<random> (template0, the backup's encoding)
    2. restore --table T into it (pipeline.split_load): definition, owned sequences, rows,
       indexes and constraints, all checked against the manifest
    3. there, rename it to N and move it to schema S; rename its indexes, owned sequences and
       extended statistics too (their names share the schema's namespace with the live table's):
       the table's old name at the start of theirs becomes N, otherwise N_ is put before them
    4. pg_dump -Fc --table S.N of the scratch database -> pg_restore into the target, in one
       transaction (--single-transaction), so the target gets all of it or nothing
    5. DROP DATABASE of the scratch database, whatever happened

The target table must not exist, and its schema must; foreign keys of the table are not
restored (their tables are not in the scratch database) and are named, as with ``--table``.
The rows are written twice (to the scratch database, then to the target): the cost of a
renamed restore, paid by one table only.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from psycopg2 import sql
from psycopg2.extensions import make_dsn

from ..core import logs, signals
from ..core.errors import RestoreError, one_line
from ..pg.databases import drop_database, table_name_parts
from ..pg.target import Target
from ..pipeline.split import exact_pattern

SCRATCH_PREFIX = "pgbackup_into_"
NAME_LIMIT = 63  # PostgreSQL's identifiers, in bytes
log = logs.get("restore")


def parse_into(value: str) -> tuple[str, str]:
    """``--into``'s ``schema.name``, unquoted parts folded to lower case as SQL folds them."""
    try:
        schema, name = table_name_parts(value)
    except RestoreError:
        raise RestoreError(
            f"--into {value!r} is not schema.name", hint='write it as SQL does: public.orders_restored or "My".t'
        ) from None
    if '"' not in value:
        schema, name = schema.lower(), name.lower()
    return schema, name


def scratch_name() -> str:
    return f"{SCRATCH_PREFIX}{datetime.now(UTC):%Y%m%dt%H%M%Sz}_{secrets.token_hex(4)}"


def check_destination(target: Target, database: str, schema: str, name: str) -> None:
    """The schema must exist in the target and the table must not."""
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) %s", (schema,))
        if cursor.fetchone() is None:
            raise RestoreError(f"schema {schema!r} does not exist in {database!r}; create it first, or name another")
        cursor.execute("SELECT pg_catalog.to_regclass(%s)", (sql.Identifier(schema, name).as_string(connection),))
        row = cursor.fetchone()
        if row and row[0] is not None:
            raise RestoreError(
                f"table {schema}.{name} exists already in {database!r}; pgbackup never restores over a table",
                hint="name another with --into",
            )


def _renamed(old_table: str, new_table: str, name: str) -> str:
    renamed = new_table + name[len(old_table) :] if name.startswith(old_table) else f"{new_table}_{name}"
    raw = renamed.encode()[:NAME_LIMIT]
    return raw.decode("utf-8", "ignore")


def rename_in_scratch(target: Target, scratch: str, table: str, schema: str, name: str) -> None:
    """Step 3: the table, and what shares its schema's namespace, under the new names."""
    old_schema, old_name = table_name_parts(table)
    with closing(target.connect(scratch)) as connection, connection.cursor() as cursor:
        current = sql.Identifier(old_schema, old_name)
        cursor.execute(
            "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c WHERE c.oid IN ("
            " SELECT indexrelid FROM pg_catalog.pg_index"
            "  WHERE indrelid OPERATOR(pg_catalog.=) %(t)s::pg_catalog.regclass"
            " UNION SELECT d.objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s"
            "  ON s.oid OPERATOR(pg_catalog.=) d.objid AND s.relkind OPERATOR(pg_catalog.=) 'S'"
            "  WHERE d.refobjid OPERATOR(pg_catalog.=) %(t)s::pg_catalog.regclass"
            "  AND d.classid OPERATOR(pg_catalog.=) 1259 AND d.deptype IN ('a', 'i'))",
            {"t": current.as_string(connection)},
        )
        for relname, kind in cursor.fetchall():
            verb = "INDEX" if kind in ("i", "I") else "SEQUENCE"
            cursor.execute(
                sql.SQL("ALTER {} {} RENAME TO {}").format(
                    sql.SQL(verb),
                    sql.Identifier(old_schema, relname),
                    sql.Identifier(_renamed(old_name, name, relname)),
                )
            )
        cursor.execute(
            "SELECT stxname FROM pg_catalog.pg_statistic_ext"
            " WHERE stxrelid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass",
            (current.as_string(connection),),
        )
        for (stxname,) in cursor.fetchall():
            cursor.execute(
                sql.SQL("ALTER STATISTICS {} RENAME TO {}").format(
                    sql.Identifier(old_schema, stxname), sql.Identifier(_renamed(old_name, name, stxname))
                )
            )
        cursor.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(current, sql.Identifier(name)))
        if schema != old_schema:
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cursor.execute(
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(old_schema, name), sql.Identifier(schema))
            )


def create_schema(target: Target, scratch: str, table: str) -> None:
    """The table's schema in the scratch database, so its definition can be restored there."""
    schema, _ = table_name_parts(table)
    with closing(target.connect(scratch)) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def copy_table(
    pg_dump: str, pg_restore: str, target: Target, scratch: str, database: str, schema: str, name: str
) -> None:
    """Step 4: the renamed table from the scratch database into the target, in one transaction."""
    with tempfile.TemporaryDirectory(prefix="pgbackup-into-") as directory:
        archive = Path(directory) / "table.pgdump"
        with open(archive, "wb") as out:
            dumped = subprocess.run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-password",
                    f"--table={exact_pattern(schema, name)}",
                    "--use-set-session-authorization",
                    f"--dbname={make_dsn(dbname=scratch)}",
                ],
                stdout=out,
                stderr=subprocess.PIPE,
                env=target.child_env(scratch),
                check=False,
            )
        if dumped.returncode != 0:
            raise RestoreError(
                f"copying the restored table out of the scratch database failed: {_first(dumped.stderr)}"
            )
        restored = subprocess.run(
            [
                pg_restore,
                "--exit-on-error",
                "--single-transaction",
                "--no-password",
                "--use-set-session-authorization",
                f"--dbname={make_dsn(dbname=database)}",
                str(archive),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=target.child_env(database),
            check=False,
        )
        if restored.returncode != 0:
            raise RestoreError(f"restoring the table into {database!r} failed: {_first(restored.stderr)}")


def _first(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[0][:400]


def drop_scratch(target: Target, scratch: str) -> None:
    with signals.held():
        try:
            drop_database(target, scratch)
        except Exception as exc:  # the restore's own outcome matters more; say what is left
            log.error("could not drop scratch database %r: %s", scratch, one_line(exc))
