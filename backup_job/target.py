"""The server a restore or a verify drill writes into, and how to reach it.

By default that is the server the backups come from, reached through libpq's own ``PG*``
variables. A verify drill can use a separate scratch server: when ``BACKUP_VERIFY_PGHOST``
is set, the ``BACKUP_VERIFY_PG*`` variables describe it, and none of the main ``PG*``
connection variables are used for it, so the main server's password never travels to the
other server.

``Target`` carries the libpq variables for the chosen server. Both ways of talking to it use
exactly those: psql gets them as its environment; psycopg2 connections are opened with them
swapped into the process environment for the moment of the connect (libpq reads defaults
from the environment, and a keyword left unset would otherwise fall back to the main
server's variable).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
from psycopg2.extensions import connection as Connection

from .errors import RunError

# libpq variables a target is described by (PGDATABASE is the maintenance database).
LIBPQ_VARIABLES = (
    "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGDATABASE",
    "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSERVICE",
    "PGSERVICEFILE", "PGCONNECT_TIMEOUT", "PGOPTIONS", "PGTARGETSESSIONATTRS", "PGREQUIRESSL",
    "PGSSLNEGOTIATION", "PGGSSENCMODE", "PGKRBSRVNAME", "PGCHANNELBINDING",
)
VERIFY_PREFIX = "BACKUP_VERIFY_"
VERIFY_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE",
                    "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY")
_environ_lock = threading.Lock()


@dataclass(frozen=True)
class Target:
    """A PostgreSQL server to restore into."""

    env: Mapping[str, str]  # its libpq variables, PGDATABASE = the maintenance database
    label: str  # for messages: "the backup server" or "the scratch server at host:port"

    @property
    def maintenance_database(self) -> str:
        return self.env.get("PGDATABASE", "") or "postgres"

    def child_env(self, database: str) -> dict[str, str]:
        """The environment for psql connected to ``database`` on this server."""
        env = {k: v for k, v in os.environ.items() if k not in LIBPQ_VARIABLES}
        env.update(self.env)
        env["PGDATABASE"] = database
        env.setdefault("PGAPPNAME", "pgbackup")
        return env

    @contextmanager
    def _environment(self) -> Iterator[None]:
        with _environ_lock:
            saved = {name: os.environ.pop(name) for name in LIBPQ_VARIABLES if name in os.environ}
            os.environ.update({k: v for k, v in self.env.items() if k in LIBPQ_VARIABLES})
            try:
                yield
            finally:
                for name in LIBPQ_VARIABLES:
                    os.environ.pop(name, None)
                os.environ.update(saved)

    def connect(self, database: str | None = None) -> Connection:
        """An autocommit connection to ``database`` (default: the maintenance database)."""
        name = database or self.maintenance_database
        try:
            with self._environment():
                connection = psycopg2.connect(dbname=name, connect_timeout=15, application_name="pgbackup")
        except psycopg2.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise RunError(f"cannot connect to database {name!r} on {self.label}: {reason}") from exc
        connection.autocommit = True
        return connection


def backup_server() -> Target:
    """The server the backups come from, as the process environment describes it."""
    env = {k: v for k, v in os.environ.items() if k in LIBPQ_VARIABLES}
    host = env.get("PGHOST", "") or "the local socket"
    return Target(env=env, label=f"the server at {host}:{env.get('PGPORT', '') or '5432'}")


def verify_server(environ: Mapping[str, str]) -> Target:
    """The scratch server for verify drills: ``BACKUP_VERIFY_PG*`` if set, else the backup server."""
    if not environ.get(VERIFY_PREFIX + "PGHOST"):
        return backup_server()
    env = {name: environ[VERIFY_PREFIX + name] for name in VERIFY_VARIABLES if environ.get(VERIFY_PREFIX + name)}
    return Target(env=env, label=f"the scratch server at {env['PGHOST']}:{env.get('PGPORT', '5432')}")
