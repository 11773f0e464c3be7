"""Database-level properties: what a plain pg_dump leaves out, captured and reapplied.

A plain dump without ``--create`` holds a database's contents but not the database itself:
its owner, encoding and locale, its ``ALTER DATABASE ... SET`` (and ``ALTER ROLE ... IN
DATABASE ... SET``) settings, its GRANTs, connection limit and comment. ``capture`` reads
them from ``pg_database`` at backup time into a plain dict that the manifest stores;
``create_database`` and ``apply_properties`` turn that dict back into statements for
``restore --create``. Statements are composed with ``psycopg2.sql`` so every name and value
is quoted by the driver.

The capture reads the whole ``pg_database`` row through ``to_jsonb``, so columns that differ
between server versions (``daticulocale`` up to 16, ``datlocale`` from 17, ``daticurules``
from 16) need no version switch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection as Connection

# Settings whose stored value is a quoted list (as pg_dump knows them): each element must be
# given as its own literal, or the whole list would become one element.
LIST_SETTINGS = frozenset({
    "search_path", "temp_tablespaces", "session_preload_libraries", "shared_preload_libraries",
    "local_preload_libraries", "unix_socket_directories", "dynamic_library_path",
})
_PRIVILEGES = {"CREATE", "TEMPORARY", "CONNECT"}

_QUERY = """
SELECT d.datname,
       pg_catalog.pg_get_userbyid(d.datdba),
       pg_catalog.pg_encoding_to_char(d.encoding),
       pg_catalog.to_jsonb(d),
       pg_catalog.shobj_description(d.oid, 'pg_database'),
       d.datacl IS NULL,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
                   'privilege', a.privilege_type, 'grantable', a.is_grantable)), '[]')
          FROM pg_catalog.aclexplode(d.datacl) a),
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole) END,
                   'config', s.setconfig)), '[]')
          FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = d.oid)
  FROM pg_catalog.pg_database d
 WHERE d.datname = ANY(%s)
"""


def capture(connection: Connection, databases: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The properties of each named database, by name."""
    with connection.cursor() as cursor:
        cursor.execute(_QUERY, (list(databases),))
        rows = cursor.fetchall()
    found: dict[str, dict[str, Any]] = {}
    for name, owner, encoding, row, comment, default_acl, acl, role_settings in rows:
        settings = []
        for entry in role_settings:
            for item in entry["config"] or []:
                key, _, value = str(item).partition("=")
                settings.append({"role": entry["role"], "name": key, "value": value})
        found[str(name)] = {
            "owner": owner,
            "encoding": encoding,
            "collate": row.get("datcollate"),
            "ctype": row.get("datctype"),
            "locale_provider": {"c": "libc", "i": "icu", "b": "builtin"}.get(row.get("datlocprovider", "c"), "libc"),
            "locale": row.get("datlocale") or row.get("daticulocale"),
            "icu_rules": row.get("daticurules"),
            "connection_limit": row.get("datconnlimit", -1),
            "comment": comment,
            "acl": None if default_acl else acl,
            "settings": settings,
        }
    return found


def create_database(
    connection: Connection, name: str, properties: dict[str, Any] | None, *, owner: bool
) -> None:
    """``CREATE DATABASE`` from template0 with the captured encoding and locale (and owner).

    Without properties (a manifest written before they were captured) the server's defaults
    apply.
    """
    version = int(connection.server_version)
    options: list[sql.Composable] = [sql.SQL("TEMPLATE = template0")]
    props = properties or {}
    if owner and props.get("owner"):
        options.append(sql.SQL("OWNER = {}").format(sql.Identifier(props["owner"])))
    if props.get("encoding"):
        options.append(sql.SQL("ENCODING = {}").format(sql.Literal(props["encoding"])))
    for option, key in (("LC_COLLATE", "collate"), ("LC_CTYPE", "ctype")):
        if props.get(key):
            options.append(sql.SQL(f"{option} = {{}}").format(sql.Literal(props[key])))
    provider = props.get("locale_provider", "libc")
    if version >= 150000 and props:
        options.append(sql.SQL("LOCALE_PROVIDER = {}").format(sql.Identifier(provider)))
        if provider == "icu" and props.get("locale"):
            options.append(sql.SQL("ICU_LOCALE = {}").format(sql.Literal(props["locale"])))
        if provider == "builtin" and props.get("locale"):
            options.append(sql.SQL("BUILTIN_LOCALE = {}").format(sql.Literal(props["locale"])))
        if provider == "icu" and props.get("icu_rules") and version >= 160000:
            options.append(sql.SQL("ICU_RULES = {}").format(sql.Literal(props["icu_rules"])))
    statement = sql.SQL("CREATE DATABASE {} WITH {}").format(sql.Identifier(name), sql.SQL(" ").join(options))
    with connection.cursor() as cursor:
        cursor.execute(statement)


def property_statements(name: str, properties: dict[str, Any]) -> list[sql.Composed]:
    """The statements that reapply settings, GRANTs, connection limit and comment."""
    database = sql.Identifier(name)
    statements: list[sql.Composed] = []
    limit = int(properties.get("connection_limit", -1))
    if limit != -1:
        statements.append(sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT = {}").format(database, sql.Literal(limit)))
    if properties.get("comment"):
        statements.append(sql.SQL("COMMENT ON DATABASE {} IS {}").format(database, sql.Literal(properties["comment"])))
    acl = properties.get("acl")
    if acl is not None:
        statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        if properties.get("owner"):
            statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, sql.Identifier(properties["owner"])))
        for item in acl:
            privilege = str(item["privilege"])
            if privilege not in _PRIVILEGES:
                continue
            grantee = sql.SQL("PUBLIC") if item["grantee"] is None else sql.Identifier(item["grantee"])
            grant = sql.SQL("GRANT {} ON DATABASE {} TO {}").format(sql.SQL(privilege), database, grantee)
            if item.get("grantable"):
                grant = grant + sql.SQL(" WITH GRANT OPTION")
            statements.append(grant)
    for setting in properties.get("settings", []):
        value = _setting_value(setting["name"], setting["value"])
        if setting["role"] is None:
            statements.append(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                database, sql.Identifier(setting["name"]), value))
        else:
            statements.append(sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                sql.Identifier(setting["role"]), database, sql.Identifier(setting["name"]), value))
    return statements


def apply_properties(connection: Connection, name: str, properties: dict[str, Any] | None) -> None:
    with connection.cursor() as cursor:
        for statement in property_statements(name, properties or {}):
            cursor.execute(statement)


def _setting_value(name: str, value: str) -> sql.Composable:
    if name.lower() not in LIST_SETTINGS:
        return sql.Literal(value)
    return sql.SQL(", ").join(sql.Literal(item) for item in split_list_setting(value))


def split_list_setting(value: str) -> list[str]:
    """``"$user", public`` -> ``['$user', 'public']``: the stored form of a list setting."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(value):
        char = value[index]
        if quoted:
            if char == '"' and value[index + 1 : index + 2] == '"':
                current.append('"')
                index += 1
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    items.append("".join(current).strip())
    return [item for item in items if item]
