"""Settling a write whose answer was lost: what every backend says, and the one-piece check.

A write can be applied by the store while its answer is lost; the retry then meets our own
object. Each backend reads what is there (``base``'s docstring) and ends in one of three
verdicts, worded once here: it is ours (return), it is another writer's
(``written_by_another_run``), or these credentials cannot read it to tell
(``unconfirmed``). ``confirm_bytes`` is that reading for a small object written in one piece.
"""

from __future__ import annotations

from ..core.errors import AccessDeniedError, BackupExistsError, StorageError, UnconfirmedError
from .base import Storage


def written_by_another_run(where: str) -> BackupExistsError:
    """The conflict when the object in the way carries another run's bytes or metadata."""
    return BackupExistsError(f"{where} was written by another run meanwhile; pgbackup never overwrites a backup")


def unconfirmed(where: str, what: str) -> UnconfirmedError:
    """A write the store probably applied that these credentials cannot read back."""
    return UnconfirmedError(
        f"{where} was probably {what}, but these credentials cannot read it back to confirm",
        hint="check with `pgbackup list` using read access",
    )


def confirm_bytes(storage: Storage, key: str, data: bytes, failure: StorageError) -> None:
    """Return if the object under ``key`` is exactly ``data`` (our own write); else raise
    ``failure`` when there is none or it cannot be read, the conflict when it holds other
    bytes, ``UnconfirmedError`` when these credentials may not read it."""
    try:
        existing = storage.read_all(key, len(data))
    except AccessDeniedError as exc:
        raise unconfirmed(storage.describe(key), "written (the store answered that it exists)") from exc
    except StorageError:
        raise failure from None
    if existing != data:
        raise written_by_another_run(storage.describe(key)) from failure
