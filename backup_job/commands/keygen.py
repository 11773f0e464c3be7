"""``pgbackup keygen``: a signing key pair in one command.

The private key goes into a new file, created with mode 0600 and never over an existing one
(``O_EXCL``), for ``BACKUP_SIGNING_KEY_FILE`` (a Kubernetes or Docker secret); the public key
is printed, for ``BACKUP_SIGNING_PUBLIC_KEYS`` of every command that reads backups. The
private key is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import ConfigError
from ..core.settings import SIGNING_KEY_FILE, SIGNING_PUBLIC_KEYS
from ..core.signing import generate


def write(path: Path) -> str:
    """Write a new private key to ``path``; the line to print (the public key and its use)."""
    pem, public = generate()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists already; keygen never overwrites a key (pick a new file)") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return (
        f"{public}\n# {SIGNING_KEY_FILE.name}={path} for `pgbackup run`; {SIGNING_PUBLIC_KEYS.name}={public} "
        f"for list, verify, restore and prune (key id {public.id})"
    )
