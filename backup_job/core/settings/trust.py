"""Signed manifests and what a reader trusts (``core.signing``), and the limits of what it reads."""

from __future__ import annotations

from .. import signing
from ..schema import Variable, boolean, duration, format_boolean, format_optional, integer, optional_path
from .group import Group

MIB = 1024 * 1024


class TrustSettings(Group):
    """Who signs, whose signatures are accepted, and how much of a bucket's word is believed."""

    signing_key = Variable(
        "BACKUP_SIGNING_KEY_FILE",
        optional_path,
        "The backup job's ed25519 private key (PEM, from `pgbackup keygen`): every manifest it "
        "writes is signed with it. Only `run` reads it; without it, backups are unsigned and "
        "whoever can write the bucket is trusted like the database superuser.",
        example="/run/secrets/pgbackup-signing.pem",
        note="Make a key pair with: pgbackup keygen --private-key pgbackup-signing.pem",
        format=format_optional,
    )
    public_keys = Variable(
        "BACKUP_SIGNING_PUBLIC_KEYS",
        signing.parse_public_keys,
        "Public keys (`ed25519:...`, commas or newlines) whose signatures `list`, `prune`, "
        "`verify` and `restore` accept; several at once for rotation. Set, unsigned backups "
        "are never picked as latest, never kept by retention and restored only with "
        "`--allow-unsigned`.",
        example="ed25519:" + "A" * 43 + "=",
        shown_default="none (no signatures checked)",
        file_form=True,
        format=signing.format_public_keys,
    )
    clock_skew = Variable(
        "BACKUP_CLOCK_SKEW",
        duration,
        "How far a backup's timestamp may lie ahead of now, and of when its manifest was stored, "
        "before it is *suspect* (listed, never latest, never kept or deleted by retention).",
        default="15m",
        example="5m",
    )
    verify_on_backup_server = Variable(
        "BACKUP_VERIFY_ON_BACKUP_SERVER",
        boolean,
        "Let `pgbackup verify` drill on the server the backups come from. Off, the "
        "drill needs a separate scratch server (see [Security model]"
        "(security.md#a-database-owners-code)), because "
        "restoring a database runs its owners' functions with the drill's rights, "
        "next to every other database of the server.",
        default="false",
        example="true",
        note="The restore drill needs a scratch server of its own (the BACKUP_VERIFY_PG* variables) unless "
        "this says every database owner is trusted.",
        format=format_boolean,
    )
    manifest_limit_mb = Variable(
        "BACKUP_MANIFEST_LIMIT_MB",
        integer(1, 1024),
        "The largest manifest read, in MiB (the default holds 100,000 tables and the "
        "block digests of a 1 TiB dump); a larger one marks its backup damaged.",
        default="16",
        example="64",
    )
    globals_limit_mb = Variable(
        "BACKUP_GLOBALS_LIMIT_MB",
        integer(1, 65536),
        "The most globals (roles and tablespaces) `restore --globals` holds once decompressed, in MiB.",
        default="256",
        example="1024",
    )

    @property
    def manifest_limit(self) -> int:
        """In bytes."""
        return self.manifest_limit_mb * MIB

    @property
    def globals_limit(self) -> int:
        """In bytes, decompressed."""
        return self.globals_limit_mb * MIB
