"""What a command works on and whom it trusts: ``settings.DESTINATION`` opened by its kind's
storage module (``settings.BACKENDS``: imported here, when first needed, with its SDK), the
backup job's signing key, and the catalog read with the public keys configured.

The keys are read once per command here, so every command judges signatures the same way:
the public keys of ``BACKUP_SIGNING_PUBLIC_KEYS``, and the public half of
``BACKUP_SIGNING_KEY_FILE`` when the process holds it (a run then trusts its own signatures
without the public key being configured twice).
"""

from __future__ import annotations

import importlib

from ..core.errors import ConfigError
from ..core.settings import BACKENDS, SIGNING_KEY_FILE, Settings
from ..core.signing import SigningKey, Trust
from ..pipeline.catalog import Catalog, Reading, load_catalog
from ..storage import Storage


def open_destination(settings: Settings) -> Storage:
    """The destination's storage; ``ConfigError`` naming the extra to install when its SDK is missing."""
    backend = BACKENDS[settings.destination.scheme]
    try:
        module = importlib.import_module(backend.module)
    except ImportError as exc:
        extra = f"pgbackup[{backend.extra}]" if backend.extra else "pgbackup"
        raise ConfigError(
            f"configuration error: {backend.scheme}:// destinations need {exc.name or 'a module'}, "
            f"which is not installed; install {extra}"
        ) from None
    storage: Storage = module.open_storage(settings.destination, settings.storage, settings.upload)
    return storage


def open_signer(settings: Settings) -> SigningKey | None:
    """The backup job's private key, or None when none is configured; ``ConfigError`` when its
    file cannot be used (never showing its contents)."""
    if settings.trust.signing_key is None:
        return None
    try:
        return SigningKey.load(settings.trust.signing_key, SIGNING_KEY_FILE.name)
    except ValueError as exc:
        raise ConfigError(f"configuration error: {exc}") from None


def trust(settings: Settings, signer: SigningKey | None = None) -> Trust:
    keys = dict.fromkeys(settings.trust.public_keys)
    if signer is not None:
        keys.setdefault(signer.public)
    return Trust(tuple(keys))


def reading(settings: Settings, signer: SigningKey | None = None) -> Reading:
    return Reading.of(settings.trust, trust(settings, signer))


def open_catalog(settings: Settings, storage: Storage, signer: SigningKey | None = None) -> Catalog:
    """The backups under the destination's prefix, judged with the configured keys."""
    return load_catalog(storage, settings.destination.prefix, reading(settings, signer))
