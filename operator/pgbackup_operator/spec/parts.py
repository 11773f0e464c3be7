"""The parts both kinds share: Secret references and a PostgreSQL server block.

A server block appears three times (``spec.postgres`` and ``spec.verify.server`` of a
PgBackup, ``spec.target.server`` of a PgRestore) with the same fields, so it is one class.
Defaults the job applies itself (port, database, sslmode) stay None here: ``env`` renders
them from the job's own settings schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NameRef:
    """An object named by ``name`` alone: a Secret whose keys are fixed, or a PgBackup."""

    name: str


@dataclass(frozen=True, slots=True)
class SecretKey:
    """One key of a Secret; ``key`` None means the field's own default key."""

    name: str
    key: str | None = None

    def key_or(self, default: str) -> str:
        return default if self.key is None else self.key


@dataclass(frozen=True, slots=True)
class Tls:
    """A server's CA and client certificate Secrets."""

    ca_secret_ref: SecretKey | None = None
    client_cert_secret_ref: NameRef | None = None


@dataclass(frozen=True, slots=True)
class Server:
    """How to reach and log in to one PostgreSQL server."""

    host: str
    password_secret_ref: SecretKey
    port: int | None = None
    database: str | None = None
    ssl_mode: str | None = None
    user: str | None = None
    user_secret_ref: SecretKey | None = None
    tls: Tls = field(default_factory=Tls)
    require_auth: str | None = None
    allow_cleartext_password: bool = False
