"""The small error hierarchy of pgbackup.

Every failure a user can meet is one of these classes, and each carries a message written
for that user: what went wrong, and where it helps, what to do about it (``hint``). The CLI
maps the classes to exit codes and prints ``str(error)`` as one line; tracebacks appear only
at the debug log level. Code that catches a lower-level exception always re-raises with
``raise ... from exc`` so the cause survives for debugging.

- ``ConfigError``: the settings are wrong. Exit code 2, nothing was attempted.
- ``RunError``: the run as a whole cannot proceed (server unreachable, version skew, no
  databases). Exit code 1.
- ``DatabaseError`` and its subclasses: one database failed; the run goes on with the others
  and exits 1 at the end. ``UnconfirmedError`` is the storage failure after an ambiguous
  write that could not be read back (write-only credentials): the backup is probably there.
  Restores and verify drills fail with ``RestoreError`` (a checksum mismatch is the
  ``ChecksumError`` subclass, so callers can tell corruption from a bad target;
  ``DecryptionError`` is a backup that cannot be opened with the identity given).

``ClusterError`` is ``kubectl pgbackup``'s: a request to the Kubernetes API failed, and
``ForbiddenError`` the one RBAC refused, naming the verb and resource to ask for. Exit code 1.

``Interrupted`` (SIGTERM, SIGINT) stands apart: like ``KeyboardInterrupt`` it derives from
``BaseException``, so no ``except Exception`` on its way up (ours, or a library's retry loop
such as botocore's) can swallow a stop request. Exit code 1.
"""

from __future__ import annotations


class PgBackupError(Exception):
    """Base class of every error pgbackup reports to its user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class ConfigError(PgBackupError):
    """A setting is missing or invalid; names the variable and the fix."""


class RunError(PgBackupError):
    """The run cannot start or continue at all."""


class ClusterError(PgBackupError):
    """A Kubernetes API request of ``kubectl pgbackup`` failed; the message says which and why."""


class ForbiddenError(ClusterError):
    """RBAC refused a request of ``kubectl pgbackup``; the message names the verb and resource."""


class Interrupted(BaseException):
    """The process was asked to stop (SIGTERM or SIGINT)."""


class DatabaseError(PgBackupError):
    """One database could not be backed up; the others still are."""


class DumpError(DatabaseError):
    """pg_dump failed, was killed, timed out or produced nothing."""


class StorageError(DatabaseError):
    """The destination refused or failed an operation."""


class BackupExistsError(StorageError):
    """A backup with the same key exists already; pgbackup never overwrites one."""


class AccessDeniedError(StorageError):
    """The credentials may not do this (write-only credentials reading, for example)."""


class UnconfirmedError(StorageError):
    """A write may well have happened, but it cannot be confirmed by reading it back."""


class NotFoundError(StorageError):
    """An object (or a backup, or a database) that was asked for does not exist."""


class ChangedError(StorageError):
    """An object was replaced between two reads that had to see the same bytes."""


class RestoreError(DatabaseError):
    """A restore or a verify drill of one database failed; nothing was committed."""


class DecryptionError(RestoreError):
    """An encrypted backup cannot be opened: no identity, an identity it was not sealed to, an
    unreadable identity file, or a ciphertext that fails age's authentication."""


class ChecksumError(RestoreError):
    """The object read back does not match the sha256 and size in its manifest."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (server errors span several), else its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__
