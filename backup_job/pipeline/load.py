"""The byte path back: storage -> sha256 check -> (age) -> gunzip or unzstd -> psql, in one transaction.

Read this module to follow a restored byte::

    Storage.read(key)        1 MiB chunks of the stored object
      -> sha256, size        over the stored bytes, compared with the manifest at the end
      (-> decrypt            age, for a sealed backup, with the identity (``unseal``))
      -> Decompressor        gzip or zstd, as the manifest says (``decompress``); bounded
                             output per step, so a very compressible chunk cannot balloon memory
      -> Psql.write          psql's stdin (``pg.psql``); ON_ERROR_STOP inside BEGIN
    then, only when the whole object was read and matched its manifest:
      Psql.commit()          COMMIT, and psql must exit 0

``load_backup`` runs that path for one backup; ``read_verified`` is the checked read alone
(verify also uses it for the globals, which are checked but loaded nowhere).

On a checksum mismatch, a broken compressed stream, a psql error or an interruption, psql is never
sent COMMIT: it is stopped and the server rolls the transaction back, so the target holds
exactly what it held before. When psql fails first, the rest of the object is still read
(not loaded) so that a corrupted object is reported as corruption, not as the SQL error it
happened to cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..core import logs
from ..core.errors import ChecksumError, DecryptionError, RestoreError
from ..core.layout import display_name
from ..core.manifest import Manifest
from ..pg.databases import CLEAN_SQL
from ..pg.psql import Psql
from ..pg.target import Target
from ..storage.base import Storage
from .catalog import Backup
from .decompress import open_decompressor
from .progress import ProgressReporter
from .unseal import Keyring, decrypt

log = logs.get("restore")


@dataclass
class ReadStats:
    """What a verified read measured."""

    compressed_bytes: int = 0
    raw_bytes: int = 0


def read_verified(
    chunks: Iterable[bytes], manifest: Manifest, sink: Callable[[bytes], None], stats: ReadStats | None = None,
    keyring: Keyring | None = None,
) -> ReadStats:
    """Feed the decompressed (and, when sealed, decrypted) object to ``sink`` and check it
    against ``manifest``.

    Raises ``ChecksumError`` when the stored bytes differ from the manifest (even when the
    sink, the decryption or the decompressor failed first), else the first error of those.
    """
    stats = stats or ReadStats()
    hasher = hashlib.sha256()
    inflater = open_decompressor(manifest.compression)
    failure: Exception | None = None

    def stored() -> Iterator[bytes]:
        for chunk in chunks:
            hasher.update(chunk)
            stats.compressed_bytes += len(chunk)
            yield chunk

    def inflate(data: bytes) -> None:
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
            pass  # the rest still counts for the checksum
    else:
        for chunk in source:
            inflate(chunk)
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
    storage: Storage, backup: Backup, psql_path: str, target: Target, database: str, *, clean: bool,
    keyring: Keyring | None = None,
) -> ReadStats:
    """Stream one backup into ``database`` inside one transaction; COMMIT only when verified.

    With ``clean``, the transaction first drops the target's old contents (``CLEAN_SQL``)."""
    assert backup.manifest is not None
    manifest = backup.manifest
    name = display_name(backup.database)
    read = ReadStats()

    def progress(_seconds: float) -> None:
        log.info("restore of %r in progress: %s of %s read", name, logs.human_bytes(read.compressed_bytes),
                 logs.human_bytes(manifest.compressed_bytes),
                 extra=logs.fields(event="restore.progress", compressed_bytes=read.compressed_bytes))

    psql = Psql(psql_path, target.child_env(database), transaction=True)
    try:
        if clean:
            psql.write(CLEAN_SQL.encode())
        with ProgressReporter(progress, 30):
            read_verified(storage.read(manifest.key), manifest, psql.write, read, keyring)
        psql.commit()
    except BaseException:
        psql.abort()
        raise
    return read
