"""Whole databases on a target server: is one there, is it empty, count its rows, drop it.

``CLEAN_SQL`` empties a database from inside a transaction (``restore --clean``): every
schema, extension and other object a plain dump may create is dropped, and the ``public``
schema is recreated with its owner, privileges and comment, since dumps assume it exists.
``CONTENTS_SQL`` counts what a database holds beyond the system schemas, so a restore can
refuse a non-empty target.
"""

from __future__ import annotations

from contextlib import closing

from psycopg2 import sql

from .target import Target

# Everything a plain dump may create, dropped inside the restore's transaction. The public
# schema is recreated with its owner, privileges and comment, since dumps assume it exists.
CLEAN_SQL = r"""
DO $pgbackup_clean$
DECLARE
    r record;
    public_owner oid;
    public_acl aclitem[];
    public_comment text;
BEGIN
    FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
        EXECUTE format('DROP EVENT TRIGGER %I', r.evtname);
    END LOOP;
    FOR r IN SELECT pubname FROM pg_catalog.pg_publication LOOP
        EXECUTE format('DROP PUBLICATION %I', r.pubname);
    END LOOP;
    FOR r IN SELECT extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' LOOP
        EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
    END LOOP;
    FOR r IN SELECT nspname FROM pg_catalog.pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
               AND nspname !~ '^pg_' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
    END LOOP;
    FOR r IN SELECT srvname FROM pg_catalog.pg_foreign_server LOOP
        EXECUTE format('DROP SERVER IF EXISTS %I CASCADE', r.srvname);
    END LOOP;
    FOR r IN SELECT fdwname FROM pg_catalog.pg_foreign_data_wrapper LOOP
        EXECUTE format('DROP FOREIGN DATA WRAPPER IF EXISTS %I CASCADE', r.fdwname);
    END LOOP;
    PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
    SELECT n.nspowner, n.nspacl, pg_catalog.obj_description(n.oid, 'pg_namespace')
      INTO public_owner, public_acl, public_comment
      FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public';
    IF FOUND THEN
        DROP SCHEMA public CASCADE;
        EXECUTE format('CREATE SCHEMA public AUTHORIZATION %I', pg_catalog.pg_get_userbyid(public_owner));
        FOR r IN SELECT * FROM pg_catalog.aclexplode(public_acl) WHERE grantee <> public_owner LOOP
            EXECUTE format('GRANT %s ON SCHEMA public TO %s%s', r.privilege_type,
                CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END,
                CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        IF public_comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON SCHEMA public IS %L', public_comment);
        END IF;
    END IF;
END
$pgbackup_clean$;
"""

# Objects a database gets only from someone: anything outside the system schemas.
CONTENTS_SQL = r"""
SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
     + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
     + (SELECT count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND t.typtype IN ('d', 'e', 'r', 'b'))
     + (SELECT count(*) FROM pg_catalog.pg_namespace
         WHERE nspname NOT IN ('information_schema', 'public') AND nspname !~ '^pg_')
     + (SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql')
     + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)
"""


def database_exists(target: Target, name: str) -> bool:
    with closing(target.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,))
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


def count_rows(target: Target, database: str, tables: list[str]) -> dict[str, int]:
    """``count(*)`` of each table as pg_dump named it (partitioned tables include partitions)."""
    counts: dict[str, int] = {}
    connection = target.connect(database)
    try:
        with connection.cursor() as cursor:
            for table in tables:
                # The server quotes the name it resolved, so nothing from the manifest is spliced in.
                cursor.execute("SELECT relkind, oid::regclass::text FROM pg_catalog.pg_class"
                               " WHERE oid = pg_catalog.to_regclass(%s)", (table,))
                row = cursor.fetchone()
                if row is None:
                    counts[table] = -1
                    continue
                only = sql.SQL("") if row[0] == "p" else sql.SQL("ONLY ")
                cursor.execute(sql.SQL("SELECT count(*) FROM {}{}").format(only, sql.SQL(row[1])))
                result = cursor.fetchone()
                counts[table] = int(result[0]) if result else -1
    finally:
        connection.close()
    return counts
