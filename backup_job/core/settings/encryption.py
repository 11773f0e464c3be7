"""Client-side encryption (age): whom dumps are sealed to, and the identity that opens them."""

from __future__ import annotations

from .. import keys
from ..schema import Variable, format_optional, optional_path
from .group import Group


class EncryptionSettings(Group):
    """Public keys to encrypt to (the job never needs a private one), and where restore finds one."""

    encrypt_to = Variable(
        "BACKUP_ENCRYPT_RECIPIENTS",
        keys.parse_recipients,
        "Encrypt every stored dump and globals object to these age recipients (`age1...`) "
        "or SSH public keys (`ssh-ed25519`, `ssh-rsa`), separated by commas or newlines. "
        "Public keys: the job never needs a private one.",
        example="age1nw3km0dvdajfha6vqe5t4xv9ragwhv74p7a6k8pgcs62gly5td0sy3t46j",
        note="Seal every dump to these age public keys (age-keygen prints one); the job needs no private key.",
        shown_default="none (not encrypted)",
        file_form=True,
        format=", ".join,
    )
    decrypt_identity = Variable(
        "BACKUP_DECRYPT_IDENTITY_PATH",
        optional_path,
        "The age identity file (`AGE-SECRET-KEY-1...` lines) or unencrypted SSH private "
        "key that `restore` and `verify` decrypt with. Read only when decrypting, never "
        "put into the environment.",
        example="/run/secrets/age-identity.txt",
        note="restore and verify: the private key file (read by pgbackup only when it decrypts).",
        format=format_optional,
    )
