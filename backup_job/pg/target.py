"""The server a restore or a verify drill writes into, and how to reach it.

By default that is the server the backups come from, reached through libpq's own ``PG*``
variables. A verify drill can use a separate scratch server: when its host is set, the
scratch server's variables (``settings.SCRATCH_SERVER``, each the counterpart of one libpq
variable) describe it, and none of the main ``PG*`` connection variables are used for it, so
the main server's password never travels to the other server.

``Target`` carries the libpq variables for the chosen server. Both ways of talking to it use
exactly those, as arguments: psql gets them as its whole environment (``env=``), psycopg2
connections get them as connection keywords (``parameters``). The process environment is
never changed for a connect. libpq still fills a keyword left out from the process's own
``PG*`` variables (the backup server's), so a keyword of a variable the process has and the
target lacks is given libpq's unset meaning explicitly (``UNSET``): the scratch server never
falls back to the backup server's host, user, password or password file. A service
(``PGSERVICE``) only the process names blanks every keyword of ``UNSET``, so it fills none
either. The variables include the authentication policy (``core.pgauth``: no password in
cleartext or md5, channel binding over TLS), computed for that server.

Every session pgbackup opens starts with ``search_path = pg_catalog, pg_temp``, as pg_dump's
own do: a database's owner (or anyone, where ``public`` is writable) can plant functions and
operators that shadow pg_catalog's, and ``ALTER DATABASE/ROLE ... SET search_path`` would
put them first, running their code with pgbackup's rights. The setting travels in the
startup packet (libpq's ``options``, for psql ``PGOPTIONS``), which takes precedence over
those stored settings; a user's own ``PGOPTIONS`` is kept, with ours after it so that ours
wins. The SQL itself names only pg_catalog's functions and operators (``databases``,
``dbprops``, ``discovery``), so either defence alone would hold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import make_dsn

from ..core import pgauth
from ..core.errors import RunError, one_line
from ..core.settings import PGAPPNAME, PGDATABASE, PGHOST, PGPORT, SCRATCH_SERVER, SOURCE_SERVER
from . import tlsfiles
from .process import environment
from .tools import major

# libpq variables a target is described by (PGDATABASE is the maintenance database).
LIBPQ_VARIABLES = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGCONNECT_TIMEOUT",
    "PGOPTIONS",
    "PGTARGETSESSIONATTRS",
    "PGREQUIRESSL",
    "PGSSLNEGOTIATION",
    "PGGSSENCMODE",
    "PGKRBSRVNAME",
    "PGCHANNELBINDING",
    "PGREQUIREAUTH",
)
# Each variable's connection keyword; PGSERVICEFILE has none before libpq 18 and stays the
# process's (it only matters with a service, which names the server itself).
KEYWORDS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGPASSFILE": "passfile",
    "PGDATABASE": "dbname",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGSSLCERT": "sslcert",
    "PGSSLKEY": "sslkey",
    "PGSSLCRL": "sslcrl",
    "PGSERVICE": "service",
    "PGCONNECT_TIMEOUT": "connect_timeout",
    "PGOPTIONS": "options",
    "PGTARGETSESSIONATTRS": "target_session_attrs",
    "PGREQUIRESSL": "requiressl",
    "PGSSLNEGOTIATION": "sslnegotiation",
    "PGGSSENCMODE": "gssencmode",
    "PGKRBSRVNAME": "krbsrvname",
    "PGCHANNELBINDING": "channel_binding",
    "PGREQUIREAUTH": "require_auth",
}
# What libpq does with each keyword when nothing sets it, written as a value: an empty host,
# port, user, password or file means libpq's default; the rest name their defaults.
UNSET = {
    "PGHOST": "",
    "PGHOSTADDR": "",
    "PGPORT": "",
    "PGUSER": "",
    "PGPASSWORD": "",
    "PGPASSFILE": "",
    "PGSSLMODE": "prefer",
    "PGSSLROOTCERT": "",
    "PGSSLCERT": "",
    "PGSSLKEY": "",
    "PGSSLCRL": "",
    "PGTARGETSESSIONATTRS": "any",
    "PGGSSENCMODE": "prefer",
}
NEWER = {"PGREQUIREAUTH": 16, "PGSSLNEGOTIATION": 17}  # keywords an older libpq rejects (as variables: ignores)
PGOPTIONS = "PGOPTIONS"
SAFE_SEARCH_PATH = "-c search_path=pg_catalog,pg_temp"


def session_options(user_options: str | None) -> str:
    """The session options for libpq: the user's ``PGOPTIONS``, then the fixed search_path."""
    user = (user_options or "").strip()
    return f"{user} {SAFE_SEARCH_PATH}" if user else SAFE_SEARCH_PATH


@dataclass(frozen=True)
class Target:
    """A PostgreSQL server to restore into."""

    env: Mapping[str, str]  # its libpq variables, PGDATABASE = the maintenance database
    label: str  # for messages: "the backup server" or "the scratch server at host:port"

    @property
    def maintenance_database(self) -> str:
        return PGDATABASE.read(self.env)

    def child_env(self, database: str) -> dict[str, str]:
        """The environment for psql connected to ``database`` on this server."""
        env = environment(self.env)
        env[PGDATABASE.name] = database
        env.setdefault(PGAPPNAME.name, "pgbackup")
        env[PGOPTIONS] = session_options(self.env.get(PGOPTIONS))
        return env

    def parameters(self, database: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The connection keywords for ``database`` on this server: its own variables, and the
        unset meaning of each variable ``environ`` (default: the process's) has and it lacks."""
        environ = os.environ if environ is None else environ
        if "PGSERVICE" in environ and "PGSERVICE" not in self.env:
            unset = set(UNSET)
        else:  # PGREQUIRESSL (deprecated) means an sslmode where none is given
            unset = {name for name in UNSET if name in environ or (name == "PGSSLMODE" and "PGREQUIRESSL" in environ)}
        keywords = {KEYWORDS[name]: UNSET[name] for name in unset if name not in self.env}
        keywords.update(
            {
                KEYWORDS[name]: value
                for name, value in self.env.items()
                if name in KEYWORDS and libpq_major() >= NEWER.get(name, 0)
            }
        )
        keywords.update(
            dbname=database,
            connect_timeout="15",
            application_name="pgbackup",
            options=session_options(self.env.get(PGOPTIONS)),
        )
        return keywords

    def connect(self, database: str | None = None) -> Connection:
        """An autocommit connection to ``database`` (default: the maintenance database)."""
        name = database or self.maintenance_database
        problem = tlsfiles.unreadable(self.env)
        if problem:
            raise RunError(f"cannot connect to database {name!r} on {self.label}: {problem}", hint=tlsfiles.HINT)
        try:
            connection = psycopg2.connect(make_dsn(**self.parameters(name)))  # in memory only: never argv
        except psycopg2.Error as exc:
            raise RunError(
                f"cannot connect to database {name!r} on {self.label}: {one_line(exc)}", hint=pgauth.hint(str(exc))
            ) from exc
        connection.autocommit = True
        return connection


def libpq_major() -> int:
    """The major version of the libpq psycopg2 was built with (require_auth needs 16)."""
    return int(psycopg2.__libpq_version__) // 10000


def unenforced(program: str, version: str) -> str | None:
    """The warning for a run whose ``program`` (of PostgreSQL ``version``) or psycopg2's libpq
    ignores ``PGREQUIREAUTH``; None when both enforce it."""
    return pgauth.unenforced({f"{program}": major(version), "psycopg2's libpq": libpq_major()})


def connect_keywords(server: Mapping[str, str]) -> dict[str, Any]:
    """The authentication policy (``core.pgauth``) for ``server`` as psycopg2 keywords; a libpq
    before 16 would reject ``require_auth`` as unknown, and gets it left out."""
    names = {"PGREQUIREAUTH": "require_auth", "PGCHANNELBINDING": "channel_binding"}
    return {
        names[k]: v
        for k, v in pgauth.policy(server, os.environ).items()
        if libpq_major() >= pgauth.FIRST_ENFORCING or names[k] != "require_auth"
    }


def backup_server() -> Target:
    """The server the backups come from, as the process environment describes it."""
    env = pgauth.secured({k: v for k, v in os.environ.items() if k in LIBPQ_VARIABLES}, os.environ)
    host = env.get(PGHOST.name, "") or "the local socket"
    return Target(env=env, label=f"the server at {host}:{env.get(PGPORT.name, '') or '5432'}")


def verify_server(environ: Mapping[str, str]) -> Target:
    """The scratch server for verify drills when its host is set, else the backup server."""
    if not SCRATCH_SERVER.host.read(environ):
        return backup_server()
    pairs = zip(SOURCE_SERVER.variables(), SCRATCH_SERVER.variables(), strict=False)
    env = pgauth.secured(
        {libpq.name: scratch.read(environ) for libpq, scratch in pairs if scratch.read(environ)},
        environ,
        SCRATCH_SERVER,
    )
    return Target(env=env, label=f"the scratch server at {env[PGHOST.name]}:{env.get(PGPORT.name, '5432')}")
