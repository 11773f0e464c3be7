"""Database-level properties: what a plain pg_dump leaves out, captured and reapplied.

A plain dump without ``--create`` holds a database's contents but not the database itself:
its owner, encoding and locale, its ``ALTER DATABASE ... SET`` (and ``ALTER ROLE ... IN
DATABASE ... SET``) settings, its GRANTs, connection limit and comment. ``capture`` reads
them from ``pg_database`` at backup time into a plain dict that the manifest stores;
``create_database`` and ``apply_properties`` turn that dict back into statements for
``restore --create``. Statements are composed with ``psycopg2.sql`` so every name and value
is quoted by the driver.

That dict comes back from a manifest, which whoever can write the bucket can forge, so it is
checked before anything is created (``checked``): every field has the type and shape
``capture`` gives it (names are strings, privileges one of CONNECT, CREATE and TEMPORARY,
setting names GUC names, values strings, the connection limit a whole number), or the
restore is refused with a line naming the field. Some settings are refused however genuine
the backup may look, because the manifest cannot prove it is (``refuse_unsafe_settings``):
those that make sessions load a library (``*_preload_libraries``, ``dynamic_library_path``,
``jit_provider``: code of the manifest author's choosing), and ``search_path`` for a role
that is a superuser on the target (that superuser's sessions would then call whatever the
schemas named there hold, the hijack the fixed search_path of pgbackup's own sessions
prevents). ``search_path`` for the whole database is reapplied, as its owner may set it
anyway, and so is an ordinary role's (common for applications; what it exposes runs with
that role's rights, not a superuser's). A refused restore stops before anything is created,
with a hint: create the database, restore into it without ``--create`` and set by hand what
you trust.

The capture runs on the discovery database, where (on a cluster upgraded from PostgreSQL 14
or older) every role may create in ``public``: its query names only pg_catalog's functions
and operators, so a planted ``jsonb_agg(jsonb)`` or ``= (oid, integer)``, which would match
better than pg_catalog's own, is never called.

The capture reads the whole ``pg_database`` row through ``to_jsonb``, so columns that differ
between server versions (``daticulocale`` up to 16, ``datlocale`` from 17, ``daticurules``
from 16) need no version switch.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from ..core.errors import RestoreError

# Settings whose stored value is a quoted list (as pg_dump knows them): each element must be
# given as its own literal, or the whole list would become one element.
LIST_SETTINGS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "shared_preload_libraries",
        "local_preload_libraries",
        "unix_socket_directories",
        "dynamic_library_path",
    }
)
_PRIVILEGES = frozenset({"CREATE", "TEMPORARY", "CONNECT"})
# Settings that make a session load a library: never reapplied from a manifest.
LIBRARY_SETTINGS = frozenset(
    {
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
        "dynamic_library_path",
        "jit_provider",
    }
)
_GUC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_PROVIDERS = frozenset({"libc", "icu", "builtin"})
_TEXT_FIELDS = ("owner", "encoding", "collate", "ctype", "locale", "icu_rules", "comment")
_REFUSED_HINT = (
    "to restore this backup anyway, create the database yourself, restore into it without "
    "--create, and set by hand what you trust"
)
_SUPERUSERS = "SELECT rolname FROM pg_catalog.pg_roles WHERE rolsuper"

_QUERY = """
SELECT d.datname,
       pg_catalog.pg_get_userbyid(d.datdba),
       pg_catalog.pg_encoding_to_char(d.encoding),
       pg_catalog.to_jsonb(d),
       pg_catalog.shobj_description(d.oid, 'pg_database'),
       d.datacl IS NULL,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'grantee', CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN NULL
                                   ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
                   'privilege', a.privilege_type, 'grantable', a.is_grantable)), '[]')
          FROM pg_catalog.aclexplode(d.datacl) a),
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'role', CASE WHEN s.setrole OPERATOR(pg_catalog.=) 0 THEN NULL
                                ELSE pg_catalog.pg_get_userbyid(s.setrole) END,
                   'config', s.setconfig)), '[]')
          FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase OPERATOR(pg_catalog.=) d.oid)
  FROM pg_catalog.pg_database d
 WHERE d.datname OPERATOR(pg_catalog.=) ANY(%s)
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
    connection: Connection, name: str, properties: dict[str, Any] | None, *, owner: bool, reapply: bool | None = None
) -> None:
    """``CREATE DATABASE`` from template0 with the captured encoding and locale (and owner).

    Without properties (a manifest written before they were captured) the server's defaults
    apply. Every property is checked first (``checked``); with ``reapply`` (default: ``owner``;
    a restore that recreates the database as it was and will reapply its settings) the settings
    are also checked against ``refuse_unsafe_settings`` now, before anything is created. A drill
    creates its scratch database with the owner (the dump's objects are created as their owners)
    but reapplies no setting.
    """
    props = checked(properties)
    if owner if reapply is None else reapply:
        refuse_unsafe_settings(props, superusers(connection))
    version = int(connection.server_version)
    options: list[sql.Composable] = [sql.SQL("TEMPLATE = template0")]
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
    """The statements that reapply settings, GRANTs, connection limit and comment.

    ``properties`` must have passed ``checked`` and ``refuse_unsafe_settings``."""
    database = sql.Identifier(name)
    statements: list[sql.Composed] = []
    limit = properties.get("connection_limit", -1)
    if limit != -1:
        statements.append(sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT = {}").format(database, sql.Literal(limit)))
    if properties.get("comment"):
        statements.append(sql.SQL("COMMENT ON DATABASE {} IS {}").format(database, sql.Literal(properties["comment"])))
    acl = properties.get("acl")
    if acl is not None:
        statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        if properties.get("owner"):
            statements.append(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, sql.Identifier(properties["owner"]))
            )
        for item in acl:
            privilege = item["privilege"]
            grantee = sql.SQL("PUBLIC") if item["grantee"] is None else sql.Identifier(item["grantee"])
            grant = sql.SQL("GRANT {} ON DATABASE {} TO {}").format(sql.SQL(privilege), database, grantee)
            if item.get("grantable"):
                grant = grant + sql.SQL(" WITH GRANT OPTION")
            statements.append(grant)
    for setting in properties.get("settings", []):
        value = _setting_value(setting["name"], setting["value"])
        if setting["role"] is None:
            statements.append(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(database, sql.Identifier(setting["name"]), value)
            )
        else:
            statements.append(
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                    sql.Identifier(setting["role"]), database, sql.Identifier(setting["name"]), value
                )
            )
    return statements


def apply_properties(connection: Connection, name: str, properties: dict[str, Any] | None) -> None:
    """Reapply the checked ``properties`` to database ``name``; raises ``RestoreError`` first
    for a malformed property or a setting that is never reapplied."""
    props = checked(properties)
    refuse_unsafe_settings(props, superusers(connection))
    with connection.cursor() as cursor:
        for statement in property_statements(name, props):
            cursor.execute(statement)


def superusers(connection: Connection) -> frozenset[str]:
    """The roles that are superusers on the server ``connection`` reaches."""
    with connection.cursor() as cursor:
        cursor.execute(_SUPERUSERS)
        return frozenset(str(row[0]) for row in cursor.fetchall())


def checked(properties: Any) -> dict[str, Any]:
    """``properties`` from a manifest, once every field has the type and shape ``capture``
    gives it; otherwise ``RestoreError`` naming the field."""
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise _malformed("database_properties", "is not an object")
    for key in _TEXT_FIELDS:
        if properties.get(key) is not None and not isinstance(properties[key], str):
            raise _malformed(f"database_properties.{key}", f"is {properties[key]!r}, not a string")
    if properties.get("locale_provider", "libc") not in _PROVIDERS:
        raise _malformed(
            "database_properties.locale_provider",
            f"is {properties['locale_provider']!r}, not one of {', '.join(sorted(_PROVIDERS))}",
        )
    if not _is_int(properties.get("connection_limit", -1)):
        raise _malformed(
            "database_properties.connection_limit", f"is {properties['connection_limit']!r}, not a whole number"
        )
    if properties.get("acl") is not None:
        _check_acl(_list(properties["acl"], "database_properties.acl"))
    _check_settings(_list(properties.get("settings", []), "database_properties.settings"))
    return properties


def refuse_unsafe_settings(properties: dict[str, Any], superusers: Collection[str]) -> None:
    """Refuse (``RestoreError``) the checked settings that are never reapplied: those that
    load libraries, and ``search_path`` for a role that is one of ``superusers``."""
    for index, setting in enumerate(properties.get("settings", [])):
        field, name, role = f"database_properties.settings[{index}]", setting["name"].lower(), setting["role"]
        if name in LIBRARY_SETTINGS:
            raise RestoreError(
                f"the backup's {field} sets {name}, which makes sessions load a library; pgbackup "
                f"never reapplies that from a manifest, which whoever can write the bucket can forge",
                hint=_REFUSED_HINT,
            )
        if name == "search_path" and role in superusers:
            raise RestoreError(
                f"the backup's {field} sets search_path for role {role!r}, a superuser on this "
                f"server, which would make its sessions run functions from the schemas named there; "
                f"pgbackup never reapplies that",
                hint=_REFUSED_HINT,
            )


def _check_acl(acl: list[Any]) -> None:
    for index, item in enumerate(acl):
        field = f"database_properties.acl[{index}]"
        entry = _object(item, field)
        _role_name(entry.get("grantee"), f"{field}.grantee")
        if entry.get("privilege") not in _PRIVILEGES:
            raise _malformed(
                f"{field}.privilege", f"is {entry.get('privilege')!r}, not one of {', '.join(sorted(_PRIVILEGES))}"
            )
        if not isinstance(entry.get("grantable", False), bool):
            raise _malformed(f"{field}.grantable", f"is {entry['grantable']!r}, not true or false")


def _check_settings(settings: list[Any]) -> None:
    for index, item in enumerate(settings):
        field = f"database_properties.settings[{index}]"
        entry = _object(item, field)
        _role_name(entry.get("role"), f"{field}.role")
        name = entry.get("name")
        if not isinstance(name, str) or not _GUC_NAME.fullmatch(name):
            raise _malformed(f"{field}.name", f"is {name!r}, not the name of a setting")
        if not isinstance(entry.get("value"), str):
            raise _malformed(f"{field}.value", f"is {entry.get('value')!r}, not a string")


def _role_name(value: Any, field: str) -> None:
    """A role name, or None for PUBLIC (a grantee) or the whole database (a setting)."""
    if value is not None and (not isinstance(value, str) or not value):
        raise _malformed(field, f"is {value!r}, not a role name")


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _malformed(field, f"is {value!r}, not a list")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(field, f"is {value!r}, not an object")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _malformed(field: str, problem: str) -> RestoreError:
    return RestoreError(f"the backup's {field} {problem}; its manifest was changed or not written by pgbackup")


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
