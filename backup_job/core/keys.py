"""age keys: the recipients a backup is sealed to, and the identity that opens it.

Recipients are public and checked when the settings load: X25519 recipients (``age1...``)
and SSH public keys (``ssh-ed25519 ...``, ``ssh-rsa ...``), separated by commas or newlines,
with ``#`` comment lines and blank lines allowed (the age recipients-file format, so
``BACKUP_ENCRYPT_RECIPIENTS_FILE`` can point at one). The backup job never needs a private
key.

An identity is read from ``BACKUP_DECRYPT_IDENTITY_PATH`` only when something is decrypted,
and only here: age secret keys (``AGE-SECRET-KEY-1...`` lines, ``#`` comments allowed, as
``age-keygen`` writes them) or one unencrypted SSH private key. Its text never goes into the
environment, a child process or a message. pyrage (the Rust age implementation) does the
cryptography; it is imported only when keys are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import DecryptionError
from .schema import Invalid

SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
_SPLIT = re.compile(r"[,\n]")


def split_recipients(text: str) -> tuple[str, ...]:
    """The entries of a recipients value: commas or newlines between them, ``#`` lines skipped."""
    entries = []
    for line in text.splitlines() or [text]:
        if line.strip().startswith("#"):
            continue
        entries += [entry.strip() for entry in _SPLIT.split(line) if entry.strip()]
    return tuple(entries)


def recipient(entry: str) -> Any:
    """The pyrage recipient for one entry; raises ``Invalid`` saying what is wrong with it."""
    import pyrage

    shown = entry if len(entry) <= 24 else entry[:20] + "..."
    try:
        if entry.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(entry)
        if entry.split(" ", 1)[0] in SSH_TYPES:
            return pyrage.ssh.Recipient.from_str(" ".join(entry.split()[:2]))
    except pyrage.RecipientError as exc:
        raise Invalid(f"holds {shown!r}, which is not a valid key ({exc})", "age1...") from exc
    raise Invalid(
        f"holds {shown!r}, which is neither an age recipient (age1...) nor an SSH public key ({', '.join(SSH_TYPES)})",
        "age1...",
    )


def parse_recipients(text: str) -> tuple[str, ...]:
    """The checked, normalised recipients of a setting's value (empty: no encryption)."""
    entries = split_recipients(text)
    for entry in entries:
        recipient(entry)
    return tuple(" ".join(e.split()[:2]) if not e.startswith("age1") else e for e in entries)


def recipients(entries: tuple[str, ...]) -> list[Any]:
    return [recipient(entry) for entry in entries]


def load_identities(path: Path, setting: str) -> list[Any]:
    """The identities in the file at ``path``; ``DecryptionError`` naming ``setting`` when the file
    cannot be read or holds none (a restore that cannot decrypt fails like any other: exit 1)."""
    import pyrage

    try:
        text = path.read_text()
    except OSError as exc:
        raise DecryptionError(
            f"{setting}={str(path)!r}: cannot read it ({exc.strerror})",
            hint="point it at the age identity file (age-keygen -o key.txt) or an SSH private key",
        ) from exc
    if "PRIVATE KEY-----" in text:
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except pyrage.IdentityError as exc:
            raise DecryptionError(
                f"{setting}={str(path)!r} holds an SSH private key pyrage cannot use ({exc})",
                hint="use an unencrypted ed25519 or RSA key, or an age identity",
            ) from None
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise DecryptionError(
                f"{setting}={str(path)!r} has a line that is not an age identity (AGE-SECRET-KEY-1...)",
                hint="use the file age-keygen wrote, or an SSH private key",
            ) from None
    if not found:
        raise DecryptionError(
            f"{setting}={str(path)!r} holds no identity", hint="use the file age-keygen wrote, or an SSH private key"
        )
    return found
