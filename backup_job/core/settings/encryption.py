"""Client-side encryption (age): whom dumps are sealed to, and the identity that opens them."""

from __future__ import annotations

from pathlib import Path

from .. import keys
from ..schema import Variable
from .group import Group


def _optional(value: object) -> str:
    return "" if value is None else str(value)


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


class EncryptionSettings(Group):
    """Public keys to encrypt to (the job never needs a private one), and where restore finds one."""

    encrypt_to = Variable("BACKUP_ENCRYPT_RECIPIENTS", keys.parse_recipients,
                          "Encrypt every stored dump and globals object to these age recipients (`age1...`) "
                          "or SSH public keys (`ssh-ed25519`, `ssh-rsa`), separated by commas or newlines. "
                          "Public keys: the job never needs a private one.",
                          example="age1nw3km0dvdajfha6vqe5t4xv9ragwhv74p7a6k8pgcs62gly5td0sy3t46j",
                          shown_default="none (not encrypted)", file_form=True, format=", ".join)
    decrypt_identity = Variable("BACKUP_DECRYPT_IDENTITY_PATH", _optional_path,
                                "The age identity file (`AGE-SECRET-KEY-1...` lines) or unencrypted SSH private "
                                "key that `restore` and `verify` decrypt with. Read only when decrypting, never "
                                "put into the environment.", example="/run/secrets/age-identity.txt",
                                format=_optional)
