"""Proof that a stored backup is restorable: every byte of its objects read back and checked.

The catalog judges a backup *complete* from a listing and its manifest: sizes, keys, a
signature. A bit flipped at rest keeps the size, so "complete" does not mean "restorable".
Retention must never delete the last backup that is, so before it deletes anything of a
database, ``commands.prune`` asks this module to prove the newest backup it keeps:

- the whole manifest is read again and must still be the one the catalog judged
  (``Catalog.details``: the block digests live only there);
- the dump object (each object of a split backup) is read once, through ``load.CheckedRead``
  (the path restore uses): each block's sha256 against the manifest, then the size and the sha256 of the whole object.

Nothing is decompressed, decrypted or sent anywhere: the proof is about the stored bytes, so
it needs no identity and no PostgreSQL, and a sealed backup is proven as its ciphertext. A
manifest from before block digests is hashed in one pass (``CheckedRead``'s second pass exists
only to hand on bytes pinned to the version hashed, which a proof never does).

The cost is one read of the backup: its compressed size in bytes fetched from the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..core.errors import ChecksumError, PgBackupError
from ..core.manifest import Manifest
from .catalog import Backup, Catalog
from .load import CheckedRead


@dataclass(frozen=True)
class Proof:
    """The outcome of proving one backup: ``problem`` is empty when its bytes match."""

    backup: Backup
    read_bytes: int
    problem: str = ""
    damaged: bool = False  # the bytes read differ from the manifest (else: could not be read or judged)

    @property
    def ok(self) -> bool:
        return not self.problem


def prove(catalog: Catalog, backup: Backup) -> Proof:
    """Read every object of ``backup`` and check it against its manifest; never raises for
    what the store answers. ``damaged`` only when bytes were read and differ; a read that
    fails (or a manifest that changed meanwhile) is unproven without being damaged."""
    try:
        manifest = catalog.details(backup)
    except PgBackupError as exc:
        return Proof(backup, 0, str(exc))
    if manifest.split:
        return _prove_split(catalog, backup, manifest)
    return prove_object(catalog, backup, manifest)


def _prove_split(catalog: Catalog, backup: Backup, manifest: Manifest) -> Proof:
    """Every object of a split backup, each proven as a plain backup's one object is."""
    read = 0
    for obj in manifest.objects:
        proof = prove_object(catalog, backup, manifest.piece(obj))
        read += proof.read_bytes
        if not proof.ok:
            return Proof(backup, read, f"{obj['name']}: {proof.problem}", damaged=proof.damaged)
    return Proof(backup, read)


def prove_object(catalog: Catalog, backup: Backup, manifest: Manifest) -> Proof:
    """One stored object against its (piece of the) manifest."""
    read = 0
    try:
        hasher = hashlib.sha256()
        for chunk in _stored(catalog, manifest):
            hasher.update(chunk)
            read += len(chunk)
        if read != manifest.compressed_bytes or hasher.hexdigest() != manifest.sha256:
            return Proof(
                backup,
                read,
                f"checksum mismatch: read {read} bytes with sha256 {hasher.hexdigest()[:16]}..., "
                f"the manifest says {manifest.compressed_bytes} bytes with sha256 {manifest.sha256[:16]}...",
                damaged=True,
            )
    except ChecksumError as exc:
        return Proof(backup, read, str(exc), damaged=True)
    except PgBackupError as exc:
        return Proof(backup, read, str(exc))
    return Proof(backup, read)


def _stored(catalog: Catalog, manifest: Manifest) -> Iterator[bytes | memoryview]:
    if manifest.block_bytes and manifest.block_sha256:
        yield from CheckedRead(catalog.storage, manifest).chunks()
        return
    read = 0
    for chunk in catalog.storage.read(manifest.key):
        read += len(chunk)
        yield chunk
        if read > manifest.compressed_bytes:
            return  # longer than the manifest says: the rest need not be read
