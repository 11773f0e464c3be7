"""The termination message: the job's one-line outcome, read back by the operator.

Kubernetes copies a container's ``terminationMessagePath`` file into the Pod's status
(``state.terminated.message``) and cuts it at 4096 bytes. ``pgbackup run``, ``verify`` and
``prune`` write their outcome there (``settings.TERMINATION_LOG``, which the operator points
at ``KUBERNETES_PATH``), and the operator shows it as ``status.lastRun.message`` or
``status.lastVerify.message``. Both ends use this module, so the format is declared once:
today one line of text, redacted, cut to ``LIMIT`` bytes on a character boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import logs

KUBERNETES_PATH = "/dev/termination-log"
LIMIT = 4000  # bytes, under Kubernetes' 4096 with room for the newline
log = logs.get("termination")


@dataclass(frozen=True)
class TerminationMessage:
    """What a finished job tells the operator."""

    summary: str  # one line: the outcome, naming each failed database and why

    def encode(self) -> bytes:
        """The file's content: the redacted summary on one line, at most ``LIMIT`` bytes."""
        line = logs.redact(self.summary).replace("\n", " ")
        data = line.encode("utf-8")[:LIMIT]
        return data.decode("utf-8", "ignore").encode("utf-8") + b"\n"

    @classmethod
    def decode(cls, text: str) -> "TerminationMessage":
        """Read what the Pod status shows (Kubernetes may have cut it)."""
        return cls(summary=text.strip())


def write(path: Path | None, message: TerminationMessage) -> None:
    """Write the message for Kubernetes; a failure to write is logged, never raised."""
    if path is None:
        return
    try:
        path.write_bytes(message.encode())
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc.strerror)
