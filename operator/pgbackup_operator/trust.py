"""What a PgBackup's spec says about whom its backups trust, as status conditions. Pure functions.

Two conditions, computed from the spec alone on every reconcile (rendering does not depend on
them: a PgBackup is Ready either way):

- ``Signed``: True with ``spec.signing`` (the backup pods sign every manifest; readers accept
  only ``spec.signing.publicKeys``), else False, reason ``NoSigningKey``: then whoever can
  write the bucket can put a backup there that restore and verify load as if it were ours,
  and such a backup is trusted like the database superuser. A choice some make on purpose, so
  it is a condition only, with no Event.
- ``VerifyIsolated`` (only with ``spec.verify``): True with ``spec.verify.server`` (a scratch
  server; the job tells it apart from the backup server by ``system_identifier``); False,
  reason ``OnBackupServer``, when ``spec.verify.onBackupServer`` lets drills run on the backup
  server; False, reason ``NoScratchServer``, with neither: then every drill fails (``pgbackup
  verify`` refuses the backup server, where restoring runs each database owner's code with the
  drill's rights next to every other database). That one says what to do and comes with a
  Warning Event, once per change (``warnings``), not once per reconcile.

Both read the typed spec (``spec.PgBackupSpec``) the reconcile handler read once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .api import Body
from .spec import PgBackupSpec
from .status import set_condition

SIGNED = "Signed"
VERIFY_ISOLATED = "VerifyIsolated"
NO_SCRATCH_SERVER = "NoScratchServer"


@dataclass(frozen=True)
class Finding:
    """One condition the spec implies; ``warn``: worth a Warning Event when it appears."""

    type: str
    status: bool
    reason: str
    message: str
    warn: bool = False


def signing_finding(spec: PgBackupSpec) -> Finding:
    signing = spec.signing
    if signing is None:
        return Finding(
            SIGNED,
            False,
            "NoSigningKey",
            "backups are unsigned, so whoever can write the bucket is trusted like the database "
            "superuser: a backup stored there is restored and verified as this PgBackup's own. Set "
            "spec.signing (a key pair from `pgbackup keygen`)",
        )
    ref = signing.private_key_secret_ref
    count = len(signing.public_keys)
    return Finding(
        SIGNED,
        True,
        "SigningKeyConfigured",
        f"backups are signed with the key in Secret {ref.name if ref else None} "
        f"(key {ref.key_or('signing-key') if ref else 'signing-key'}); "
        f"list, verify, prune and restore accept only {count} public key{'s' if count != 1 else ''}",
    )


def isolation_finding(spec: PgBackupSpec) -> Finding | None:
    verify = spec.verify
    if verify is None:
        return None
    server = verify.server
    if server:
        refused = (
            "which may share the backup server's system_identifier (spec.verify.onBackupServer: a clone "
            "made from a physical backup)"
            if verify.on_backup_server
            else "which the job refuses if it is the backup server (the same system_identifier)"
        )
        return Finding(
            VERIFY_ISOLATED,
            True,
            "ScratchServer",
            f"drills restore into the scratch server {server.host}:{server.port or 5432}, {refused}",
        )
    if verify.on_backup_server:
        return Finding(
            VERIFY_ISOLATED,
            False,
            "OnBackupServer",
            "drills restore on the backup server (spec.verify.onBackupServer): restoring a database runs "
            "its owners' functions with the drill's rights next to every other database there, which "
            "is safe only while every owner of every database is trusted",
        )
    return Finding(
        VERIFY_ISOLATED,
        False,
        NO_SCRATCH_SERVER,
        "every drill fails: pgbackup verify refuses to restore on the server the backups come from, "
        "where restoring runs each database owner's functions with the drill's rights next to every "
        "other database. Set spec.verify.server to a separate PostgreSQL (its role a superuser "
        "there; restore the roles there once with `pgbackup restore --globals`), or "
        "spec.verify.onBackupServer: true if every owner of every database is trusted",
        warn=True,
    )


def findings(spec: PgBackupSpec) -> list[Finding]:
    isolation = isolation_finding(spec)
    return [signing_finding(spec), *([isolation] if isolation else [])]


def conditions(spec: PgBackupSpec, current: list[Body], generation: int | None = None) -> list[Body]:
    """``current`` with the trust conditions set from ``spec`` (``VerifyIsolated`` dropped
    without ``spec.verify``); the other conditions as they are."""
    result = [dict(c) for c in current if c.get("type") != VERIFY_ISOLATED or spec.verify is not None]
    for finding in findings(spec):
        result = set_condition(result, finding.type, finding.status, finding.reason, finding.message, generation)
    return result


def warnings(spec: PgBackupSpec, current: list[Body]) -> list[Finding]:
    """The findings to announce as Warning Events: those that warn and that ``current`` (the
    conditions before this reconcile) does not show yet, so each is told once per change."""
    before = {c.get("type"): c.get("reason") for c in current}
    return [f for f in findings(spec) if f.warn and before.get(f.type) != f.reason]
