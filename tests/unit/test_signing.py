"""Signed manifests: keys, what readers accept, rotation, and backups from before keys.

The unit tests hold ``core.signing`` to its promises (a changed manifest, an unknown key or a
malformed signature never verifies); the rest run the real ``pgbackup`` against PostgreSQL 18
and a local directory: ``keygen``, a key that cannot be used, two keys during a rotation,
unsigned backups once keys are configured.

The offline tests; those that run pgbackup or real services are in tests/integration/test_signing.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backup_job.core.schema import Invalid
from backup_job.core.signing import SignatureInvalid, SigningKey, Trust, generate, parse_public_keys


def _key(tmp_path: Path, name: str = "key.pem") -> tuple[Path, str]:
    pem, public = generate()
    path = tmp_path / name
    path.write_bytes(pem)
    return path, str(public)


def test_a_signature_covers_every_field_and_names_its_key(tmp_path: Path) -> None:
    path, public = _key(tmp_path)
    signer = SigningKey.load(path, "KEY")
    values = {"tool": "pgbackup", "sha256": "a" * 64, "row_counts": {"public.t": 3}, "duration_seconds": 1.25}
    signed = {**values, "signature": signer.sign(values)}
    trust = Trust(parse_public_keys(public))

    assert trust.check(json.loads(json.dumps(signed))) == signer.public.id
    for field, value in (
        ("sha256", "b" * 64),
        ("row_counts", {"public.t": 4}),
        ("duration_seconds", 1.5),
        ("extra", True),
    ):
        with pytest.raises(SignatureInvalid, match="does not verify"):
            trust.check({**signed, field: value})
    with pytest.raises(SignatureInvalid, match="unsigned"):
        trust.check(values)
    with pytest.raises(SignatureInvalid, match="not one of the trusted public keys"):
        Trust(parse_public_keys(_key(tmp_path, "other.pem")[1])).check(signed)
    for broken in (
        {"algorithm": "ed25519"},
        {**signed["signature"], "value": "!!"},
        {**signed["signature"], "algorithm": "hmac-sha256"},
        "ed25519",
    ):
        with pytest.raises(SignatureInvalid):
            trust.check({**signed, "signature": broken})


def test_public_keys_parse_strictly_and_count_once(tmp_path: Path) -> None:
    public = _key(tmp_path)[1]
    assert len(parse_public_keys(f"# rotation\n{public},\n{public}\n")) == 1
    for bad in ("ssh-ed25519 AAAA", "ed25519:not-base64!", "ed25519:AAAA", "age1qqqq"):
        with pytest.raises(Invalid):
            parse_public_keys(bad)
