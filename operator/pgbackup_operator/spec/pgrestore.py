"""PgRestore's spec, typed: what to restore, from which PgBackup, and where to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .parts import NameRef, SecretKey, Server
from .read import parse_object


@dataclass(frozen=True, slots=True)
class Target:
    """Where the backup is loaded: another database name, another server, create or clean."""

    database: str | None = None
    create: bool = False
    clean: bool = False
    server: Server | None = None


@dataclass(frozen=True, slots=True)
class PgRestoreSpec:
    """A PgRestore's ``spec``; it never changes once created (the CRD's CEL rule)."""

    backup_ref: NameRef
    database: str
    at: str | None = None
    globals: bool = False
    target: Target = field(default_factory=Target)
    credentials_secret_ref: NameRef | None = None
    service_account_name: str | None = None
    decryption_secret_ref: SecretKey | None = None
    allow_unsigned: bool = False
    as_superuser: bool = False
    active_deadline_seconds: int | None = None


def parse_pgrestore(body: Mapping[str, Any]) -> PgRestoreSpec:
    """A PgRestore body's ``spec``, read once (``RenderError`` naming the field if malformed)."""
    return parse_object(PgRestoreSpec, body.get("spec"), "spec")
