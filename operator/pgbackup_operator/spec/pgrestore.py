"""PgRestore's spec, typed: what to restore, from which PgBackup, and where to.

``tables`` and ``into`` become words of the restore's command line, and whoever may create a
PgRestore writes them: each must be a table as ``schema.name``, both parts a plain lower-case
identifier or a double-quoted one without control characters (``TABLE``, the CRD's own
pattern and length, checked here again for specs that did not pass the API server). Such a
value never starts with ``-`` and holds no newline; the command is an argument list, never a
shell line, so a quote or ``;`` inside a quoted identifier is only a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .parts import NameRef, SecretKey, Server
from .read import matching, parse_object

IDENTIFIER = r'([a-z_][a-z0-9_$]*|"([^"\x00-\x1f\x7f-\x9f]|"")+")'
TABLE = re.compile(rf"^{IDENTIFIER}\.{IDENTIFIER}$")  # the CRD's pattern for spec.tables[] and spec.into
TABLE_LENGTH = 130  # the CRD's maxLength of each
MAX_TABLES = 100  # the CRD's maxItems of spec.tables
MAX_JOBS = 64  # the CRD's maximum of spec.jobs, and restore --jobs's
A_TABLE = matching(TABLE, TABLE_LENGTH, "a table as schema.name (each part lower-case, or double-quoted)")


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
    tables: tuple[str, ...] = field(default=(), metadata=A_TABLE)
    jobs: int | None = None
    into: str | None = field(default=None, metadata=A_TABLE)


def parse_pgrestore(body: Mapping[str, Any]) -> PgRestoreSpec:
    """A PgRestore body's ``spec``, read once (``RenderError`` naming the field if malformed)."""
    return parse_object(PgRestoreSpec, body.get("spec"), "spec")
