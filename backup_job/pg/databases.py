"""Whole databases on a target server: is one there, is it empty, count its rows, drop it.

``CLEAN_SQL`` empties a database from inside a transaction (``restore --clean``): every
schema, extension and other object a plain dump may create is dropped, and the ``public``
schema is recreated with its owner, privileges and comment, since dumps assume it exists.
``CONTENTS_SQL`` counts what a database holds beyond the system schemas, so a restore can
refuse a non-empty target.

The target database is its owner's, who may have planted functions, aggregates and
operators shadowing pg_catalog's. Besides the fixed search_path of every session
(``target.session_options``), every function and operator in this SQL is schema-qualified
(``pg_catalog.format``, ``OPERATOR(pg_catalog.=)``), and so is every type named (the
variables of ``CLEAN_SQL``'s PL/pgSQL too: a domain's CHECK can call a function), so nothing
resolves to the owner's objects whatever the search_path.

``count_rows`` takes its table names from a manifest, which whoever can write the bucket can
forge. A name is accepted only in the shape pg_dump writes it (``schema.table``, each part a
plain lower-case identifier or a double-quoted one) and is passed to the server as
identifiers, never as SQL text.
"""

from __future__ import annotations

import re
from contextlib import closing

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from ..core.errors import RestoreError
from .target import Target

# One part of a name as pg_dump writes it: plain (lower case, digits, underscore) or quoted.
_NAME_PART = r'(?:[a-z_][a-z0-9_]*|"(?:[^"]|"")+")'
_TABLE_NAME = re.compile(rf"({_NAME_PART})\.({_NAME_PART})")

# Everything a plain dump may create, dropped inside the restore's transaction. The public
# schema is recreated with its owner, privileges and comment, since dumps assume it exists.
CLEAN_SQL = r"""
DO $pgbackup_clean$
DECLARE
    r record;
    public_owner pg_catalog.oid;
    public_acl pg_catalog.aclitem[];
    public_comment pg_catalog.text;
BEGIN
    FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
        EXECUTE pg_catalog.format('DROP EVENT TRIGGER %I', r.evtname);
    END LOOP;
    FOR r IN SELECT pubname FROM pg_catalog.pg_publication LOOP
        EXECUTE pg_catalog.format('DROP PUBLICATION %I', r.pubname);
    END LOOP;
    FOR r IN SELECT extname FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.<>) 'plpgsql' LOOP
        EXECUTE pg_catalog.format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
    END LOOP;
    FOR r IN SELECT nspname FROM pg_catalog.pg_namespace
             WHERE nspname OPERATOR(pg_catalog.<>)
                   ALL (ARRAY['pg_catalog', 'information_schema', 'public']::pg_catalog.name[])
               AND nspname OPERATOR(pg_catalog.!~) '^pg_' LOOP
        EXECUTE pg_catalog.format('DROP SCHEMA %I CASCADE', r.nspname);
    END LOOP;
    FOR r IN SELECT srvname FROM pg_catalog.pg_foreign_server LOOP
        EXECUTE pg_catalog.format('DROP SERVER IF EXISTS %I CASCADE', r.srvname);
    END LOOP;
    FOR r IN SELECT fdwname FROM pg_catalog.pg_foreign_data_wrapper LOOP
        EXECUTE pg_catalog.format('DROP FOREIGN DATA WRAPPER IF EXISTS %I CASCADE', r.fdwname);
    END LOOP;
    PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
    SELECT n.nspowner, n.nspacl, pg_catalog.obj_description(n.oid, 'pg_namespace')
      INTO public_owner, public_acl, public_comment
      FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'public';
    IF FOUND THEN
        DROP SCHEMA public CASCADE;
        EXECUTE pg_catalog.format('CREATE SCHEMA public AUTHORIZATION %I', pg_catalog.pg_get_userbyid(public_owner));
        FOR r IN SELECT * FROM pg_catalog.aclexplode(public_acl) WHERE grantee OPERATOR(pg_catalog.<>) public_owner LOOP
            EXECUTE pg_catalog.format('GRANT %s ON SCHEMA public TO %s%s', r.privilege_type,
                CASE WHEN r.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END,
                CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        IF public_comment IS NOT NULL THEN
            EXECUTE pg_catalog.format('COMMENT ON SCHEMA public IS %L', public_comment);
        END IF;
    END IF;
END
$pgbackup_clean$;
"""

# Objects a database gets only from someone: anything outside the system schemas.
_OURS = "n.nspname OPERATOR(pg_catalog.<>) 'information_schema' AND n.nspname OPERATOR(pg_catalog.!~) '^pg_'"
CONTENTS_SQL = rf"""
SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE {_OURS})
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace WHERE {_OURS})
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace WHERE {_OURS}
           AND t.typtype OPERATOR(pg_catalog.=) ANY (ARRAY['d', 'e', 'r', 'b']::pg_catalog."char"[]))
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_namespace n
         WHERE n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['information_schema', 'public']::pg_catalog.name[])
           AND n.nspname OPERATOR(pg_catalog.!~) '^pg_')
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_extension
         WHERE extname OPERATOR(pg_catalog.<>) 'plpgsql')
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_largeobject_metadata)
"""
EXISTS_SQL = "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) %s"
_RELKIND_SQL = (
    "SELECT c.relkind FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
    " WHERE n.nspname OPERATOR(pg_catalog.=) %s AND c.relname OPERATOR(pg_catalog.=) %s"
)


def database_exists(target: Target, name: str) -> bool:
    with closing(target.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(EXISTS_SQL, (name,))
        return cursor.fetchone() is not None


def count_objects(target: Target, name: str) -> int:
    connection = target.connect(name)
    try:
        with connection.cursor() as cursor:
            cursor.execute(CONTENTS_SQL)
            row = cursor.fetchone()
            return int(row[0]) if row else 0
    finally:
        connection.close()


def drop_database(target: Target, name: str) -> None:
    """Drop ``name``, disconnecting sessions still in it; raises only when it cannot."""
    connection = target.connect()
    try:
        force = sql.SQL(" WITH (FORCE)") if int(connection.server_version) >= 130000 else sql.SQL("")
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))
    finally:
        connection.close()


def table_name_parts(table: str) -> tuple[str, str]:
    """``'"My Schema".t'`` -> ``('My Schema', 't')``: a manifest's table name as pg_dump wrote it.

    Anything else is refused: the manifest was changed, or not written by pgbackup."""
    match = _TABLE_NAME.fullmatch(table)
    if match is None:
        raise RestoreError(
            f"the manifest's row counts name {table!r}, which is not a table name as pg_dump "
            f"writes it (schema.table); the manifest was changed or not written by pgbackup"
        )
    schema, name = match.groups()
    return _unquote(schema), _unquote(name)


def _unquote(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part


def count_rows(target: Target, database: str, tables: list[str]) -> dict[str, int]:
    """``count(*)`` of each table as pg_dump named it (partitioned tables include partitions);
    -1 for a table that is not there. Raises ``RestoreError`` for a name pg_dump cannot have
    written."""
    named = {table: table_name_parts(table) for table in tables}  # every name checked before any query
    counts: dict[str, int] = {}
    connection = target.connect(database)
    try:
        with connection.cursor() as cursor:
            for table, (schema, name) in named.items():
                counts[table] = _count_table(cursor, schema, name)
    finally:
        connection.close()
    return counts


def _count_table(cursor: Cursor, schema: str, name: str) -> int:
    cursor.execute(_RELKIND_SQL, (schema, name))
    row = cursor.fetchone()
    if row is None:
        return -1
    only = sql.SQL("") if row[0] == "p" else sql.SQL("ONLY ")
    cursor.execute(sql.SQL("SELECT pg_catalog.count(*) FROM {}{}").format(only, sql.Identifier(schema, name)))
    result = cursor.fetchone()
    return int(result[0]) if result else -1
