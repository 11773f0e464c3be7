"""How pgbackup lets libpq authenticate: the password never leaves in cleartext unless told.

libpq answers whatever authentication request a server makes. A server of someone else's
choosing (a PgRestore's ``target.server``, a changed DNS entry, anyone in the middle of a TLS
connection whose certificate is not verified) could ask for the password in cleartext and
receive it. So every connection pgbackup opens and every client program it starts gets the
same policy (``policy``), computed from one server's libpq variables:

- ``PGREQUIREAUTH`` (libpq's ``require_auth``) defaults to ``scram-sha-256,none``: SCRAM, where
  the server proves it knows the password's verifier and never learns the password, or no
  password at all (trust, peer, client certificates keep working). md5 and cleartext are
  refused before anything is sent; ``hint`` turns libpq's refusal into the setting to change.
- ``password`` (cleartext: the IAM tokens of RDS, Cloud SQL, Entra ID) is allowed only with
  ``PGSSLMODE=verify-full`` (the server proved its name) and
  ``BACKUP_ALLOW_CLEARTEXT_PASSWORD=true``; with that opt-in and no ``PGREQUIREAUTH`` the
  default becomes ``scram-sha-256,password,none``. A ``PGREQUIREAUTH`` that allows ``password``
  without both is a configuration error (``check``, before anything starts). Any other list
  the user writes (md5, gss, negations) is respected as written.
- ``PGCHANNELBINDING=require`` where a password goes over TLS: TLS required (``require``,
  ``verify-ca``, ``verify-full``), a password given (``PGPASSWORD``, a password file), no
  client certificate (certificate authentication has no SCRAM exchange to bind), and nothing
  but ``scram-sha-256`` and ``none`` allowed. The server then has to prove over this very TLS
  connection that it holds the SCRAM verifier. A user's ``PGCHANNELBINDING`` is respected.

The policy's own settings come from the process environment; the server's variables may be
the scratch server's (``BACKUP_VERIFY_PG*``), so one policy covers both servers.

libpq before 16, and the client programs of PostgreSQL before 16, ignore ``PGREQUIREAUTH``
(channel binding works from 13 on); ``unenforced`` says so in one warning line per run.
pgbackup's own connections (psycopg2's libpq, 17 in the wheel) always enforce it, and each run
connects with them first, so a server asking for cleartext is refused before any pg_dump runs.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path

from .authmethods import AuthMethods
from .errors import ConfigError
from .settings import (
    ALLOW_CLEARTEXT_PASSWORD,
    CHANNEL_BINDING,
    PGPASSWORD,
    PGSSLCERT,
    PGSSLMODE,
    REQUIRE_AUTH,
    SCRATCH_SERVER,
    SOURCE_SERVER,
    ServerVariables,
)

DEFAULT = AuthMethods(("scram-sha-256", "none"))
WITH_CLEARTEXT = AuthMethods(("scram-sha-256", "password", "none"))
TLS_REQUIRED = ("require", "verify-ca", "verify-full")
BINDABLE = {"scram-sha-256", "none"}
PGPASSFILE = "PGPASSFILE"
FIRST_ENFORCING = 16  # the libpq major that knows require_auth


def methods(environ: Mapping[str, str]) -> AuthMethods:
    """The methods allowed: the user's ``PGREQUIREAUTH``, else pgbackup's default."""
    given = REQUIRE_AUTH.read(environ)
    if given is not None:
        return given
    return WITH_CLEARTEXT if ALLOW_CLEARTEXT_PASSWORD.read(environ) else DEFAULT


def policy(
    server: Mapping[str, str], environ: Mapping[str, str], names: ServerVariables = SOURCE_SERVER
) -> dict[str, str]:
    """``PGREQUIREAUTH`` and (where it applies) ``PGCHANNELBINDING`` for the server whose libpq
    variables are ``server`` (set through ``names``: the backup or the scratch server's);
    ``ConfigError`` when cleartext is allowed where it may not be."""
    allowed = methods(environ)
    if allowed.allows("password"):
        _cleartext_allowed(server, environ, allowed, names)
    result = {REQUIRE_AUTH.name: str(allowed)}
    binding = CHANNEL_BINDING.read(environ) or ("require" if _binds(server, allowed) else "")
    if binding:
        result[CHANNEL_BINDING.name] = binding
    return result


def secured(
    server: Mapping[str, str], environ: Mapping[str, str], names: ServerVariables = SOURCE_SERVER
) -> dict[str, str]:
    """``server``'s libpq variables with the policy's added."""
    return {**server, **policy(server, environ, names)}


def check(environ: Mapping[str, str]) -> None:
    """Refuse, before anything starts, a policy no server may get: the backup server's, and the
    scratch server's when one is set."""
    policy({v.name: environ[v.name] for v in SOURCE_SERVER.variables() if environ.get(v.name)}, environ)
    if environ.get(SCRATCH_SERVER.host.name):
        policy(
            {
                libpq.name: environ[scratch.name]
                for libpq, scratch in zip(SOURCE_SERVER.variables(), SCRATCH_SERVER.variables(), strict=False)
                if environ.get(scratch.name)
            },
            environ,
            SCRATCH_SERVER,
        )


def _cleartext_allowed(
    server: Mapping[str, str], environ: Mapping[str, str], allowed: AuthMethods, names: ServerVariables
) -> None:
    sslmode = server.get(PGSSLMODE.name) or PGSSLMODE.default
    setting, ca = names.sslmode.name, names.sslrootcert.name
    given = f"{REQUIRE_AUTH.name}={allowed}" if REQUIRE_AUTH.read(environ) else f"{ALLOW_CLEARTEXT_PASSWORD.name}=true"
    if not ALLOW_CLEARTEXT_PASSWORD.read(environ):
        raise ConfigError(
            f"configuration error: {given} lets a server ask for the password in cleartext; set "
            f"{ALLOW_CLEARTEXT_PASSWORD.name}=true (with {setting}=verify-full) if the server "
            "needs it (IAM tokens), else take password out of the list"
        )
    if sslmode != "verify-full":
        raise ConfigError(
            f"configuration error: {given} needs {setting}=verify-full (it is {sslmode!r}): a "
            "cleartext password goes only to a server whose certificate names it; set "
            f"{setting}=verify-full with its CA in {ca}"
        )


def _binds(server: Mapping[str, str], allowed: AuthMethods) -> bool:
    """Whether a password certainly goes over TLS to a server that can bind it: require it."""
    tls = (server.get(PGSSLMODE.name) or "") in TLS_REQUIRED
    password = bool(server.get(PGPASSWORD.name) or server.get(PGPASSFILE)) or _in_home(".pgpass")
    certificate = bool(server.get(PGSSLCERT.name)) or _in_home(".postgresql/postgresql.crt")
    return tls and password and not certificate and allowed.only(BINDABLE)


def _in_home(name: str) -> bool:
    """Whether libpq finds its default file ``name`` in the home directory (``HOME``, else the
    passwd entry; an arbitrary uid has neither, and libpq then finds nothing either)."""
    home = os.environ.get("HOME")
    if not home:
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            return False
    try:
        return (Path(home) / name).is_file()
    except OSError:  # unreadable: libpq cannot use it either
        return False


def hint(message: str) -> str | None:
    """What to do about a connection libpq refused under this policy (its ``message``), or None."""
    if "authentication method requirement" in message:
        if "hashed password" in message:
            return (
                f"the server asked for md5, which {REQUIRE_AUTH.name} does not allow: store the role's password "
                "as SCRAM (SET password_encryption = 'scram-sha-256', set the password again, scram-sha-256 in "
                f"pg_hba.conf), or set {REQUIRE_AUTH.name}=scram-sha-256,md5"
            )
        if "cleartext password" in message:
            return (
                f"the server asked for the password in cleartext, sent only with "
                f"{ALLOW_CLEARTEXT_PASSWORD.name}=true and {PGSSLMODE.name}=verify-full (for IAM tokens); else "
                "use scram-sha-256 in the server's pg_hba.conf"
            )
        return (
            f"set {REQUIRE_AUTH.name} to the methods this server may use (see docs/security.md#passwords-on-the-wire)"
        )
    if "channel binding" in message:
        return (
            f"{CHANNEL_BINDING.name}=require (a password over TLS) needs SCRAM with channel binding; set "
            f"{CHANNEL_BINDING.name}=prefer for a server or pooler that cannot do it"
        )
    return None


def unenforced(programs: Mapping[str, int]) -> str | None:
    """One warning line about the programs (name -> the libpq or PostgreSQL major behind it) that
    ignore ``PGREQUIREAUTH``, or None when every one enforces it."""
    old = [f"{name} {major}" for name, major in programs.items() if major < FIRST_ENFORCING]
    if not old:
        return None
    return (
        f"{', '.join(old)} ignore {REQUIRE_AUTH.name} (libpq and the client programs before "
        f"{FIRST_ENFORCING} do): they would answer a server's request for the password in cleartext or md5; "
        f"use PostgreSQL {FIRST_ENFORCING}+ client programs (the image ships 18)"
    )
