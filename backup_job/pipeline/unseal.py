"""Opening sealed backups: the identity, and age decryption inside the checked read.

``Keyring`` holds the path of ``BACKUP_DECRYPT_IDENTITY_PATH`` and reads the identities from
it the first time a sealed backup needs them (``core.keys``), never earlier and never for a
plain backup. ``check`` runs before anything is created or loaded: a sealed backup without
an identity, or with an age identity whose public key is none of the backup's recipients,
fails at once with one line naming the backup and the recipients it was sealed to. (An SSH
identity cannot be matched that way; a wrong one fails at the first chunk, before COMMIT.)

``decrypt`` runs pyrage's streaming decryption in the calling thread: it pulls the stored
chunks (already counted into the sha256 by the caller) and pushes plaintext to ``sink``.
age authenticates every 64 KiB chunk, so a changed byte stops the stream at its chunk.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core import keys
from ..core.errors import DecryptionError
from ..core.manifest import Manifest
from ..core.settings import DECRYPT_IDENTITY_PATH
from .seal import CallbackWriter, ChunkReader


def sealed_to(manifest: Manifest) -> str:
    return ", ".join(manifest.recipients) or "(no recipients recorded)"


class Keyring:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._identities: list[Any] | None = None

    def identities(self) -> list[Any]:
        if self._identities is None:
            if self.path is None:
                raise DecryptionError(
                    f"a backup is encrypted with age; set {DECRYPT_IDENTITY_PATH.name} "
                    "to the file of a matching identity"
                )
            self._identities = keys.load_identities(self.path, DECRYPT_IDENTITY_PATH.name)
        return self._identities

    def check(self, manifest: Manifest, what: str) -> None:
        """Raise ``DecryptionError`` unless ``manifest``'s backup can be opened with this keyring."""
        if not manifest.encrypted:
            return
        if self.path is None:
            raise DecryptionError(
                f"{what} is encrypted with age, sealed to {sealed_to(manifest)}; "
                f"set {DECRYPT_IDENTITY_PATH.name} to the file of a matching identity"
            )
        identities = self.identities()
        publics = {str(identity.to_public()) for identity in identities if hasattr(identity, "to_public")}
        if len(publics) == len(identities) and not publics & set(manifest.recipients):
            raise DecryptionError(
                f"{what} is sealed to {sealed_to(manifest)}; the identity in "
                f"{DECRYPT_IDENTITY_PATH.name} is not one of them"
            )


def decrypt(
    chunks: Iterator[bytes | memoryview], sink: Callable[[bytes], None], keyring: Keyring, manifest: Manifest
) -> None:
    """Decrypt the stored ``chunks`` of ``manifest``'s object into ``sink``; the sink's own
    error is raised as it was, anything age refuses as ``DecryptionError``."""
    import pyrage

    plain = CallbackWriter(sink)
    try:
        pyrage.decrypt_io(ChunkReader(chunks), plain, keyring.identities())
    except BaseException as exc:
        if plain.error is not None:
            raise plain.error from None
        if "No matching keys" in str(exc):
            raise DecryptionError(
                f"{manifest.key} is sealed to {sealed_to(manifest)}; the identity in "
                f"{DECRYPT_IDENTITY_PATH.name} is not one of them"
            ) from None
        raise DecryptionError(
            f"{manifest.key} cannot be decrypted: {exc} (the ciphertext was changed, cut short or damaged)"
        ) from None


def database_properties(manifest: Manifest, keyring: Keyring) -> dict[str, Any] | None:
    """The backed-up database's properties: in the clear, or opened with the identity when the
    backup is sealed (they can hold secrets: settings, role settings, comments)."""
    if manifest.sealed_database_properties is None:
        return manifest.database_properties
    import pyrage

    try:
        data = pyrage.decrypt(base64.b64decode(manifest.sealed_database_properties), keyring.identities())
        properties = json.loads(data)
    except DecryptionError:
        raise
    except Exception as exc:
        raise DecryptionError(
            f"the database properties of {manifest.key} cannot be opened: {str(exc)[:200]}; the "
            f"identity in {DECRYPT_IDENTITY_PATH.name} must be one the backup was sealed to"
        ) from None
    if not isinstance(properties, dict):
        raise DecryptionError(f"the sealed database properties of {manifest.key} are not an object")
    return properties
