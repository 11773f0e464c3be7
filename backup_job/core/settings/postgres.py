"""PostgreSQL: libpq's own variables, the authentication policy, and a scratch server's for verify.

``PostgresSettings`` declares the libpq variables of the server the backups come from; they
keep libpq's meaning (pgbackup itself parses only ``PGDATABASE``, the database discovery
connects to) and reach libpq, pg_dump and psql as explicit connection parameters
(``pg.target``). ``AuthPolicy`` holds pgbackup's policy on how a password may travel
(``core.pgauth``), read per server when a connection is prepared, never at start: a command
that connects to no server is not stopped by it. ``ScratchServer`` holds the counterpart of
each connection variable for verify's scratch server.

``ServerVariables`` pairs the two servers' variables field by field, for ``pg.target`` and the
operator, which renders a pod's connection from either.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .. import authmethods
from ..schema import Variable, boolean, choice, format_boolean, format_optional, text
from .group import Group


def _libpq(name: str, doc: str, example: str, secret: bool = False, default: str = "") -> Variable[str]:
    return Variable(
        name,
        text,
        doc,
        example=example,
        default=default,
        shown_default="" if default else "libpq's",
        secret=secret,
        file_form=secret,
        owner="libpq",
    )


def _scratch(name: str, libpq: Variable[str], example: str) -> Variable[str]:
    return Variable(
        name,
        text,
        f"`{libpq.name}` of the scratch server.",
        example=example,
        shown_default="the backup server's",
        secret=libpq.secret,
        file_form=libpq.secret,
    )


class PostgresSettings(Group):
    """The backup server's libpq variables."""

    host = _libpq("PGHOST", "The server: host name, address or socket directory.", example="db.internal")
    port = _libpq("PGPORT", "Its port.", example="6432", default="5432")
    user = _libpq("PGUSER", "The user pg_dump and discovery connect as.", example="backup")
    password = _libpq(
        "PGPASSWORD", "Its password (or use libpq's `PGPASSFILE`).", "/run/secrets/pgpassword", secret=True
    )
    database = Variable(
        "PGDATABASE",
        text,
        "The database discovery connects to.",
        default="postgres",
        example="template1",
        owner="libpq",
    )
    sslmode = _libpq("PGSSLMODE", "TLS mode.", example="verify-full", default="prefer")
    sslrootcert = _libpq(
        "PGSSLROOTCERT", "CA certificate file for `verify-ca` / `verify-full`.", example="/etc/pgbackup/tls/ca/ca.crt"
    )
    sslcert = _libpq("PGSSLCERT", "Client certificate file.", example="/etc/pgbackup/tls/client/tls.crt")
    sslkey = _libpq("PGSSLKEY", "Client key file.", example="/etc/pgbackup/tls/client/tls.key")
    appname = _libpq("PGAPPNAME", "The name the server shows for pgbackup's sessions.", example="pgbackup")

    @property
    def discovery_database(self) -> str:
        return self.database


class AuthPolicy(Group):
    """Which authentication requests pgbackup answers, for either server (``core.pgauth``)."""

    allow_cleartext_password = Variable(
        "BACKUP_ALLOW_CLEARTEXT_PASSWORD",
        boolean,
        "Let a server ask for the password in cleartext (`password` in "
        "pg_hba.conf: the IAM tokens of RDS, Cloud SQL, Entra ID); only with "
        f"`{PostgresSettings.sslmode.name}=verify-full`, so it goes only to the "
        "server whose certificate names it.",
        default="false",
        example="true",
        note="IAM tokens (cleartext) need PGSSLMODE=verify-full and this opt-in.",
        format=format_boolean,
    )
    require_auth = Variable(
        "PGREQUIREAUTH",
        authmethods.parse,
        "The authentication requests pgbackup and its client programs answer (libpq's "
        "`require_auth`, libpq 16+). A list that allows `password` (cleartext) is refused unless "
        f"`{PostgresSettings.sslmode.name}=verify-full` and "
        f"`{allow_cleartext_password.name}=true`. See [Passwords on the wire]"
        "(security.md#passwords-on-the-wire).",
        example=authmethods.EXAMPLE,
        note="Unset: scram-sha-256,none, no password in cleartext or md5 (docs/security.md#passwords-on-the-wire). "
        "This line is for a server that asks for md5.",
        shown_default=f"`scram-sha-256,none` (with `{allow_cleartext_password.name}`: `scram-sha-256,password,none`)",
        owner="libpq",
        format=authmethods.describe,
    )
    channel_binding = Variable(
        "PGCHANNELBINDING",
        choice("require", "prefer", "disable", ""),
        "Channel binding (libpq's `channel_binding`): `require` makes a server prove over TLS "
        "that it holds the password's SCRAM verifier. `prefer` for a server or pooler that "
        "cannot.",
        example="prefer",
        note="Unset: required over TLS with a password and no client certificate.",
        shown_default="`require` when TLS is required, a password is given, no client "
        "certificate is, and only `scram-sha-256` or `none` are allowed; else libpq's "
        "`prefer`",
        owner="libpq",
        format=format_optional,
    )


class ScratchServer(Group):
    """The scratch server of verify drills: each field the counterpart of a ``PostgresSettings`` one."""

    host = _scratch("BACKUP_VERIFY_PGHOST", PostgresSettings.host, example="scratch.internal")
    port = _scratch("BACKUP_VERIFY_PGPORT", PostgresSettings.port, example="5432")
    user = _scratch("BACKUP_VERIFY_PGUSER", PostgresSettings.user, example="drill")
    password = _scratch("BACKUP_VERIFY_PGPASSWORD", PostgresSettings.password, example="/run/secrets/scratch")
    database = _scratch("BACKUP_VERIFY_PGDATABASE", PostgresSettings.database, example="postgres")
    sslmode = _scratch("BACKUP_VERIFY_PGSSLMODE", PostgresSettings.sslmode, example="verify-full")
    sslrootcert = _scratch(
        "BACKUP_VERIFY_PGSSLROOTCERT", PostgresSettings.sslrootcert, example="/etc/pgbackup/verify-tls/ca/ca.crt"
    )
    sslcert = _scratch(
        "BACKUP_VERIFY_PGSSLCERT", PostgresSettings.sslcert, example="/etc/pgbackup/verify-tls/client/tls.crt"
    )
    sslkey = _scratch(
        "BACKUP_VERIFY_PGSSLKEY", PostgresSettings.sslkey, example="/etc/pgbackup/verify-tls/client/tls.key"
    )


@dataclass(frozen=True)
class ServerVariables:
    """The variables that describe one PostgreSQL server, field by field."""

    host: Variable[str]
    port: Variable[str]
    user: Variable[str]
    password: Variable[str]
    database: Variable[str]
    sslmode: Variable[str]
    sslrootcert: Variable[str]
    sslcert: Variable[str]
    sslkey: Variable[str]

    def variables(self) -> tuple[Variable[str], ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def of(cls, group: type[PostgresSettings] | type[ScratchServer]) -> ServerVariables:
        return cls(**{f.name: getattr(group, f.name) for f in fields(cls)})


SOURCE_SERVER = ServerVariables.of(PostgresSettings)
SCRATCH_SERVER = ServerVariables.of(ScratchServer)
