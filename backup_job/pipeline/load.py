"""The byte path back: storage -> each block checked -> (age) -> gunzip or unzstd -> psql, in one transaction.

Read this module to follow a restored byte::

    Storage.read(key)        1 MiB chunks of the stored object
      -> CheckedRead         gathered into blocks of the manifest's ``block_bytes``; each
                             block's sha256 must equal the manifest's before any byte of it
                             goes on (a manifest without block digests: one hashing pass over
                             the whole object first, then a second read pinned to the same
                             version of it)
      -> sha256, size        over the stored bytes, compared with the manifest at the end too
      (-> decrypt            age, for a sealed backup, with the identity (``unseal``))
      -> Decompressor        gzip or zstd, as the manifest says (``decompress``); bounded
                             output per step, so a very compressible chunk cannot balloon memory
      -> Psql.write_dump     psql's stdin (``pg.psql``), restricted: no meta-command of the
                             dump runs; ON_ERROR_STOP inside BEGIN
    then, only when the whole object was read and matched its manifest:
      Psql.commit()          COMMIT, and psql must exit 0

So nothing a bucket writer changed reaches the decompressor, age, psql or the server: a
changed byte stops the restore at its block, before the block is used, and psql is never sent
COMMIT. Whether the manifest itself is ours is the catalog's judgement (signatures,
``core.signing``); this module makes the object agree with it. Why blocks and not a whole
first pass: one read of the object (the second pass doubles the bytes fetched and needs a
version to pin to), no local copy, and memory of one block (16 MiB by default).

``load_backup`` runs that path for one backup; ``read_verified`` is the checked read alone
(verify also uses it for the globals, which are checked but loaded nowhere, and restore for
the globals, which are loaded only once read whole).

On a checksum mismatch, a broken compressed stream, a psql error or an interruption, psql is never
sent COMMIT: it is stopped and the server rolls the transaction back, so the target holds
exactly what it held before. When psql fails first, the rest of the object is still read
(not loaded) so that a corrupted object is reported as corruption, not as the SQL error it
happened to cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..core import logs
from ..core.errors import ChecksumError, DecryptionError, RestoreError
from ..core.layout import display_name
from ..core.manifest import Manifest
from ..pg.databases import CLEAN_SQL
from ..pg.psql import Psql
from ..pg.target import Target
from ..storage.base import READ_CHUNK, Storage
from .catalog import Backup, Catalog
from .decompress import open_decompressor
from .progress import ProgressReporter
from .unseal import Keyring, decrypt

log = logs.get("restore")


@dataclass
class ReadStats:
    """What a verified read measured."""

    compressed_bytes: int = 0
    raw_bytes: int = 0


def _changed(manifest: Manifest, what: str) -> ChecksumError:
    return ChecksumError(
        f"checksum mismatch: {what} of {manifest.key} does not match its manifest; the object "
        "was changed or damaged after the backup, and nothing of it was used"
    )


class CheckedRead:
    """The stored object's bytes, each block proven against the manifest before it is handed on.
    ``error`` keeps the mismatch, also when a consumer (age) turned it into its own error."""

    def __init__(self, storage: Storage, manifest: Manifest) -> None:
        self.storage = storage
        self.manifest = manifest
        self.error: ChecksumError | None = None

    def chunks(self) -> Iterator[bytes | memoryview]:
        try:
            if self.manifest.block_bytes and self.manifest.block_sha256:
                yield from self._blocks()
            else:
                yield from self._two_passes()
        except ChecksumError as exc:
            self.error = exc
            raise

    def _blocks(self) -> Iterator[memoryview]:
        manifest = self.manifest
        expected = manifest.blocks
        size = manifest.block_bytes
        block = bytearray()
        index = 0
        for chunk in self.storage.read(manifest.key):
            view = memoryview(chunk)
            while view:
                take = min(size - len(block), len(view))
                block += view[:take]
                view = view[take:]
                if len(block) == size:
                    yield from self._checked(block, index, expected)
                    block = bytearray()  # a new one: the consumer may still hold views of the last
                    index += 1
        if block or index == 0:
            yield from self._checked(block, index, expected)
            index += 1
        if index != len(expected):
            raise _changed(manifest, f"the length ({index} blocks, the manifest has {len(expected)})")

    def _checked(self, block: bytearray, index: int, expected: list[bytes]) -> Iterator[memoryview]:
        if index >= len(expected) or hashlib.sha256(block).digest() != expected[index]:
            raise _changed(self.manifest, f"block {index + 1}" if index < len(expected) else "the length")
        view = memoryview(block)  # handed on in READ_CHUNK slices, without a copy
        for start in range(0, len(view), READ_CHUNK):
            yield view[start : start + READ_CHUNK]

    def _two_passes(self) -> Iterator[bytes]:
        """A manifest from before block digests: hash the whole object, then read that same
        version again (an object replaced in between fails the second read)."""
        manifest = self.manifest
        version = self.storage.version(manifest.key)
        hasher, size = hashlib.sha256(), 0
        for chunk in self.storage.read(manifest.key, version=version):
            hasher.update(chunk)
            size += len(chunk)
            if size > manifest.compressed_bytes:
                break
        if size != manifest.compressed_bytes or hasher.hexdigest() != manifest.sha256:
            raise _changed(manifest, "the object")
        yield from self.storage.read(manifest.key, version=version)


def read_verified(
    storage: Storage,
    manifest: Manifest,
    sink: Callable[[bytes], None],
    stats: ReadStats | None = None,
    keyring: Keyring | None = None,
) -> ReadStats:
    """Feed the decompressed (and, when sealed, decrypted) object to ``sink``, each block checked
    against ``manifest`` before it is used.

    Raises ``ChecksumError`` when the stored bytes differ from the manifest (even when the
    sink, the decryption or the decompressor failed first), else the first error of those.
    """
    stats = stats or ReadStats()
    hasher = hashlib.sha256()
    inflater = open_decompressor(manifest.compression)
    reader = CheckedRead(storage, manifest)
    failure: Exception | None = None

    def stored() -> Iterator[bytes | memoryview]:
        for chunk in reader.chunks():
            hasher.update(chunk)
            stats.compressed_bytes += len(chunk)
            yield chunk

    def inflate(data: bytes | memoryview) -> None:
        nonlocal failure
        if failure is not None:
            return  # keep reading: corruption is reported before its side effects
        try:
            for out in inflater.feed(data):
                stats.raw_bytes += len(out)
                sink(out)
        except RestoreError as exc:
            failure = exc

    source = stored()
    if manifest.encrypted:
        try:
            decrypt(source, inflate, keyring or Keyring(None), manifest)
        except DecryptionError as exc:
            failure = failure or exc
        for _ in source:
            pass  # the rest still counts for the checksum (a block that failed ended the read)
    else:
        for chunk in source:
            inflate(chunk)
    if reader.error is not None:  # age reports a failed read as its own error
        raise reader.error
    digest = hasher.hexdigest()
    if stats.compressed_bytes != manifest.compressed_bytes or digest != manifest.sha256:
        raise ChecksumError(
            f"checksum mismatch for {manifest.key}: read {stats.compressed_bytes} bytes with sha256 "
            f"{digest[:16]}..., the manifest says {manifest.compressed_bytes} bytes with sha256 "
            f"{manifest.sha256[:16]}...; the object was changed or damaged after the backup"
        )
    if failure is not None:
        raise failure
    inflater.end(manifest.key)
    return stats


def load_backup(
    catalog: Catalog,
    backup: Backup,
    psql_path: str,
    target: Target,
    database: str,
    *,
    clean: bool,
    keyring: Keyring | None = None,
    jobs: int = 1,
    tables: list[str] | None = None,
) -> ReadStats:
    """Stream one backup into ``database`` inside one transaction; COMMIT only when verified.

    With ``clean``, the transaction first drops the target's old contents (``CLEAN_SQL``). A
    split backup goes through ``split_load`` instead, over ``jobs`` connections, only the
    ``tables`` named when any are."""
    manifest = catalog.details(backup)
    name = display_name(backup.database)
    if manifest.split:
        from .split_load import Selection, SplitLoad, restore_pg_restore

        assert not clean, "a split backup is restored into a database without its tables"
        load = SplitLoad(
            catalog.storage,
            manifest,
            target,
            database,
            restore_pg_restore(psql_path),
            jobs=jobs,
            keyring=keyring or Keyring(None),
            selection=Selection(tables=list(tables or [])),
        )
        stats = load.run()
        if load.selection.skipped_keys:
            log.warning(
                "foreign keys not restored, their tables were not: %s",
                "; ".join(load.selection.skipped_keys[:20]),
                extra=logs.fields(event="restore.foreign_keys_skipped", keys=load.selection.skipped_keys),
            )
        return stats
    read = ReadStats()

    def progress(_seconds: float) -> None:
        log.info(
            "restore of %r in progress: %s of %s read",
            name,
            logs.human_bytes(read.compressed_bytes),
            logs.human_bytes(manifest.compressed_bytes),
            extra=logs.fields(event="restore.progress", compressed_bytes=read.compressed_bytes),
        )

    psql = Psql(psql_path, target.child_env(database), transaction=True)
    try:
        if clean:
            psql.write(CLEAN_SQL.encode())
        with ProgressReporter(progress, 30):
            read_verified(catalog.storage, manifest, psql.write_dump, read, keyring)
        psql.finish_dump()
        psql.commit()
    except BaseException:
        psql.abort()
        raise
    return read
