"""Signed manifests: the backup job's ed25519 key, and the public keys every reader trusts.

A manifest proves what a backup object holds (its size, sha256 and the sha256 of every block),
so whoever can write the bucket could forge both a dump and a manifest that agrees with it.
Signing closes that: the backup job holds a private ed25519 key (``BACKUP_SIGNING_KEY_FILE``)
and signs every manifest it writes; ``list``, ``prune``, ``verify`` and ``restore`` hold only
public keys (``BACKUP_SIGNING_PUBLIC_KEYS``, several at once for rotation) and accept a
manifest as ours only when one of them verifies its signature. Public keys cannot sign, so the
read and prune identities, like any bucket writer, cannot forge a backup; an HMAC key would
let them. (age encryption is no authentication: anyone holding the public recipient can
encrypt.)

What is signed is the manifest's canonical JSON without its ``signature`` field: keys
sorted, no whitespace, ASCII only, no NaN. The signature names its key by ``key_id``, the first
16 hex digits of the sha256 of the raw public key, so a reader with several keys knows which
to use and says which one it lacks.

Key formats:

- the private key: a PEM file (``-----BEGIN PRIVATE KEY-----``, PKCS#8), as ``pgbackup
  keygen`` or ``openssl genpkey -algorithm ed25519`` writes it; read when a run starts,
  never put into the environment, a child process or a message;
- a public key: ``ed25519:`` and the base64 of its 32 raw bytes (``pgbackup keygen`` prints
  it), one per line or comma-separated, ``#`` lines allowed.

The cryptography package (OpenSSL) does the cryptography; it is imported only when keys are
configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schema import Invalid

ALGORITHM = "ed25519"
PUBLIC_PREFIX = "ed25519:"
_SPLIT = re.compile(r"[,\s]+")


class SignatureInvalid(ValueError):
    """A manifest's signature is missing, malformed, by an unknown key, or does not verify."""


def canonical(values: dict[str, Any]) -> bytes:
    """The bytes a signature covers: ``values`` without ``signature``, in one fixed form."""
    payload = {k: v for k, v in values.items() if k != "signature"}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )


def key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """One trusted public key, as ``ed25519:<base64>``."""

    raw: bytes

    @property
    def id(self) -> str:
        return key_id(self.raw)

    def __str__(self) -> str:
        return PUBLIC_PREFIX + base64.b64encode(self.raw).decode("ascii")

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True


def parse_public_key(text: str) -> PublicKey:
    """One ``ed25519:<base64>`` entry; ``Invalid`` saying what is wrong with it."""
    entry = text.strip()
    shown = entry if len(entry) <= 24 else entry[:20] + "..."
    if not entry.startswith(PUBLIC_PREFIX):
        raise Invalid(
            f"holds {shown!r}, which is not an ed25519 public key (ed25519:<base64>, as `pgbackup keygen` prints it)",
            "ed25519:" + "A" * 43 + "=",
        )
    try:
        raw = base64.b64decode(entry[len(PUBLIC_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid(f"holds {shown!r}, whose key is not base64", "ed25519:" + "A" * 43 + "=") from exc
    if len(raw) != 32:
        raise Invalid(
            f"holds {shown!r}, which is not 32 bytes long (an ed25519 public key is)", "ed25519:" + "A" * 43 + "="
        )
    return PublicKey(raw)


def parse_public_keys(value: str) -> tuple[PublicKey, ...]:
    """The value of ``BACKUP_SIGNING_PUBLIC_KEYS``: entries separated by commas, spaces or
    newlines; ``#`` lines skipped; a key given twice counts once."""
    keys: dict[bytes, PublicKey] = {}
    for line in value.splitlines():
        if line.strip().startswith("#"):
            continue
        for entry in _SPLIT.split(line):
            if entry:
                key = parse_public_key(entry)
                keys.setdefault(key.raw, key)
    return tuple(keys.values())


def format_public_keys(keys: tuple[PublicKey, ...]) -> str:
    return ",".join(str(key) for key in keys)


class SigningKey:
    """The backup job's private key, read from its file when a run starts."""

    def __init__(self, private: Any) -> None:
        self._private = private  # never shown: no __repr__ reveals it

    @classmethod
    def load(cls, path: Path, variable: str) -> SigningKey:
        """Read the PEM file; ``ValueError`` naming ``variable`` and the fix, never the key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(
                f"{variable}={str(path)!r} cannot be read ({exc.strerror}); point it at the "
                "PEM file `pgbackup keygen` wrote"
            ) from None
        try:
            private = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            kind = "is encrypted with a passphrase" if "encrypted" in str(exc).lower() else "is not a PEM private key"
            raise ValueError(
                f"{variable}={str(path)!r} {kind}; make one with `pgbackup keygen --private-key FILE`"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(
                f"{variable}={str(path)!r} holds a {type(private).__name__.removeprefix('_')}, "
                "not an ed25519 key; make one with `pgbackup keygen --private-key FILE`"
            )
        return cls(private)

    @property
    def public(self) -> PublicKey:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return PublicKey(self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, values: dict[str, Any]) -> dict[str, str]:
        """The ``signature`` field for a manifest's ``values``."""
        signature = self._private.sign(canonical(values))
        return {"algorithm": ALGORITHM, "key_id": self.public.id, "value": base64.b64encode(signature).decode("ascii")}

    def __repr__(self) -> str:
        return "SigningKey(***)"


def generate() -> tuple[bytes, PublicKey]:
    """A new private key as PEM, and its public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return pem, SigningKey(private).public


@dataclass(frozen=True)
class Trust:
    """The public keys a reader accepts. Empty: no keys configured, every backup is taken
    as it is (and the promise against bucket writers does not hold)."""

    keys: tuple[PublicKey, ...] = field(default=())

    @property
    def enforced(self) -> bool:
        return bool(self.keys)

    def check(self, values: dict[str, Any]) -> str:
        """The id of the key that signed ``values``; ``SignatureInvalid`` saying why not."""
        signature = values.get("signature")
        if signature is None:
            raise SignatureInvalid("unsigned")
        if (
            not isinstance(signature, dict)
            or set(signature) != {"algorithm", "key_id", "value"}
            or not all(isinstance(v, str) for v in signature.values())
        ):
            raise SignatureInvalid("its signature field is malformed")
        if signature["algorithm"] != ALGORITHM:
            raise SignatureInvalid(f"signed with {signature['algorithm'][:20]!r}, not ed25519")
        key = next((k for k in self.keys if k.id == signature["key_id"]), None)
        if key is None:
            raise SignatureInvalid(
                f"signed by key {signature['key_id'][:16]!r}, which is not one of the trusted public keys"
            )
        try:
            raw = base64.b64decode(signature["value"], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("its signature is not base64") from None
        try:
            data = canonical(values)
        except ValueError:
            raise SignatureInvalid("it holds a value no signed manifest can hold") from None
        if len(raw) != 64 or not key.verify(raw, data):
            raise SignatureInvalid(
                f"its signature by key {key.id} does not verify: the manifest was changed "
                "after it was signed, or forged"
            )
        return key.id
