"""Which databases to back up, and which server version they live on.

One short connection to the discovery database (``PGDATABASE``, default ``postgres``) reads
the server version and every database that can be dumped::

    SELECT datname, datistemplate, datallowconn FROM pg_catalog.pg_database

Templates and databases that do not allow connections cannot be dumped; they are kept in
``Server.skipped`` with the reason, so the run can say which databases it leaves out.

Connection details come from libpq's own environment (``PGHOST``, ``PGPORT``, ``PGUSER``,
``PGPASSWORD``, ``PGPASSFILE``, ``PGSSLMODE``...) and the authentication policy
(``core.pgauth``), exactly as pg_dump will see them. The
session's search_path is fixed to ``pg_catalog, pg_temp`` at connect time and both queries
name pg_catalog's objects, so nothing a database's owner planted (functions or operators
shadowing pg_catalog's, a stored ``search_path``) runs with pgbackup's rights
(``target.session_options``).

``select_databases`` then applies the include and exclude lists (comma-separated shell-style
globs). A name given without glob characters that does not
exist is reported as missing, so a typo fails loudly instead of silently backing up less.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

import psycopg2

from ..core import pgauth
from ..core.errors import RunError, one_line
from ..core.settings import PGPASSWORD
from . import tlsfiles
from .target import PGOPTIONS, connect_keywords, session_options

_GLOB_CHARS = set("*?[")
VERSION_QUERY = (
    "SELECT pg_catalog.current_setting('server_version'), pg_catalog.current_setting('server_version_num')::int"
)
QUERY = "SELECT datname, datistemplate, datallowconn FROM pg_catalog.pg_database ORDER BY datname"
TEMPLATE = "a template database"
NO_CONNECTIONS = "it does not allow connections (datallowconn = false)"


@dataclass(frozen=True)
class Server:
    """What discovery learned about the server."""

    version: str  # e.g. "18.1"
    version_num: int  # e.g. 180001
    databases: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # database -> why it cannot be dumped

    @property
    def major(self) -> int:
        return self.version_num // 10000


@dataclass(frozen=True)
class Selection:
    """The databases to back up and the explicitly named ones that do not exist."""

    databases: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())


def describe_target(database: str) -> str:
    host = os.environ.get("PGHOST", "") or "the local socket"
    port = os.environ.get("PGPORT", "") or "5432"
    user = os.environ.get("PGUSER", "") or "the current user"
    return f"PostgreSQL at {host}:{port} (database {database!r}, user {user!r})"


def discover(database: str) -> Server:
    """Connect once and read the server version and the dumpable databases."""
    problem = tlsfiles.unreadable(os.environ)
    if problem:
        raise RunError(f"cannot connect to {describe_target(database)}: {problem}", hint=tlsfiles.HINT)
    try:
        connection = psycopg2.connect(
            dbname=database,
            connect_timeout=15,
            application_name="pgbackup",
            options=session_options(os.environ.get(PGOPTIONS)),
            **connect_keywords(os.environ),
        )
    except psycopg2.Error as exc:
        reason = one_line(exc)
        raise RunError(
            f"cannot connect to {describe_target(database)}: {reason}",
            hint=pgauth.hint(reason) or f"check PGHOST, PGPORT, PGUSER and PGPASSWORD (or {PGPASSWORD.file_name})",
        ) from exc
    try:
        with connection.cursor() as cursor:
            cursor.execute(VERSION_QUERY)
            row = cursor.fetchone()
            assert row is not None
            version, version_num = str(row[0]).split()[0], int(row[1])
            cursor.execute(QUERY)
            rows = [(str(r[0]), bool(r[1]), bool(r[2])) for r in cursor.fetchall()]
    except psycopg2.Error as exc:
        raise RunError(f"listing databases on {describe_target(database)} failed: {exc}".strip()) from exc
    finally:
        connection.close()
    names = tuple(name for name, template, allowed in rows if allowed and not template)
    skipped = {
        name: TEMPLATE if template else NO_CONNECTIONS for name, template, allowed in rows if template or not allowed
    }
    return Server(version=version, version_num=version_num, databases=names, skipped=skipped)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def select_databases(available: tuple[str, ...], include: tuple[str, ...], exclude: tuple[str, ...]) -> Selection:
    chosen = [name for name in available if (not include or _matches(name, include))]
    chosen = [name for name in chosen if not _matches(name, exclude)]
    missing = tuple(
        pattern
        for pattern in include
        if not (_GLOB_CHARS & set(pattern)) and pattern not in available and not _matches(pattern, exclude)
    )
    return Selection(databases=tuple(chosen), missing=missing)
