"""Signed manifests: keys, what readers accept, rotation, and backups from before keys.

The unit tests hold ``core.signing`` to its promises (a changed manifest, an unknown key or a
malformed signature never verifies); the rest run the real ``pgbackup`` against PostgreSQL 18
and a local directory: ``keygen``, a key that cannot be used, two keys during a rotation,
unsigned backups once keys are configured.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_signing.py."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from backup_job.core.signing import SigningKey
from devenv.postgres import Cluster

from ..kit.helpers import SIGNED, job_env, run_pgbackup, wait_for_next_second
from ..unit.test_signing import _key


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "signing.pem"
    made = run_pgbackup({}, "keygen", "--private-key", str(target))
    again = run_pgbackup({}, "keygen", "--private-key", str(target))

    assert made.returncode == 0, made.stderr
    public = made.stdout.splitlines()[0]
    assert public.startswith("ed25519:") and "PRIVATE" not in made.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert str(SigningKey.load(target, "KEY").public) == public
    assert again.returncode == 2 and "never overwrites" in again.stderr and target.read_bytes().startswith(b"-----")


@pytest.mark.parametrize("content", ["missing", "garbage", "age identity", "rsa"])
def test_a_key_file_that_cannot_be_used_stops_the_run_in_one_line_without_its_contents(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
    content: str,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    key = tmp_path / "key.pem"
    secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    if content == "garbage":
        key.write_text("not a key at all\n")
    elif content == "age identity":
        key.write_text(f"# created: 2026\n{secret}\n")
    elif content == "rsa":
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(key)],
            check=True,
            capture_output=True,
        )
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_SIGNING_KEY_FILE=str(key))

    result = run_pgbackup(env)

    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert "BACKUP_SIGNING_KEY_FILE" in line and "pgbackup keygen" in line
    assert secret not in result.stdout + result.stderr and "PRIVATE" not in line
    assert not (tmp_path / "b").exists(), "nothing was written"


def test_a_rotation_trusts_both_keys_until_the_old_one_is_dropped(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    old_key, old_public = _key(tmp_path, "old.pem")
    new_key, new_public = _key(tmp_path, "new.pem")
    base = {
        k: v
        for k, v in job_env(
            pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"
        ).items()
        if k not in SIGNED
    }
    assert run_pgbackup({**base, "BACKUP_SIGNING_KEY_FILE": str(old_key)}).returncode == 0
    wait_for_next_second()
    assert run_pgbackup({**base, "BACKUP_SIGNING_KEY_FILE": str(new_key)}).returncode == 0

    both = run_pgbackup({**base, "BACKUP_SIGNING_PUBLIC_KEYS": f"{old_public}\n{new_public}"}, "list")
    only_new = run_pgbackup({**base, "BACKUP_SIGNING_PUBLIC_KEYS": new_public}, "list")
    restored = run_pgbackup(
        {**base, "BACKUP_SIGNING_PUBLIC_KEYS": new_public},
        "restore",
        "--database",
        dbname,
        "--target",
        f"{dbname}_r",
        "--create",
    )

    assert both.stdout.count("complete, signed") == 2, both.stdout
    assert only_new.stdout.count("complete, signed") == 1 and "UNTRUSTED: signed by key" in only_new.stdout
    assert restored.returncode == 0, restored.stdout


def test_unsigned_backups_once_keys_are_configured(pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path) -> None:
    """Made before a key: listed as unsigned, never picked (only with --allow-unsigned), never
    kept, and deleted once older than every signed backup retention keeps."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT 1 AS x", dbname)
    signed_env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    unsigned_env = {k: v for k, v in signed_env.items() if k not in SIGNED}
    assert run_pgbackup(unsigned_env).returncode == 0

    listed = run_pgbackup(signed_env, "list", "--database", dbname)
    refused = run_pgbackup(signed_env, "restore", "--database", dbname, "--target", f"{dbname}_a", "--create")
    allowed = run_pgbackup(
        signed_env, "restore", "--database", dbname, "--target", f"{dbname}_b", "--create", "--allow-unsigned"
    )
    drill = run_pgbackup(signed_env, "verify", "--database", dbname)
    kept = run_pgbackup({**signed_env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert "complete, UNSIGNED" in listed.stdout, listed.stdout
    assert refused.returncode == 1 and "no complete signed backup" in refused.stdout
    assert "--allow-unsigned" in refused.stdout
    assert allowed.returncode == 0 and pg18.sql("SELECT x FROM t", f"{dbname}_b") == [(1,)]
    assert drill.returncode == 1 and "no signed backup to verify" in drill.stdout
    assert kept.returncode == 0 and len(list((tmp_path / "b" / dbname).glob("*.sql.gz"))) == 1, (
        "no signed backup is kept yet, so the unsigned one stays"
    )

    wait_for_next_second()
    assert run_pgbackup(signed_env).returncode == 0
    pruned = run_pgbackup({**signed_env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert pruned.returncode == 0, pruned.stdout
    assert "unsigned, older than every signed backup kept" in pruned.stdout
    [left] = (tmp_path / "b" / dbname).glob("*.manifest.json")
    assert "signature" in json.loads(left.read_text())


def test_restore_clean_of_an_unsigned_backup_needs_the_flag(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT 1 AS x", dbname)
    env = {
        k: v
        for k, v in job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname).items()
        if k not in SIGNED
    }
    assert run_pgbackup(env).returncode == 0
    pg18.sql("INSERT INTO t VALUES (2)", dbname)

    refused = run_pgbackup(env, "restore", "--database", dbname, "--clean")
    allowed = run_pgbackup(env, "restore", "--database", dbname, "--clean", "--allow-unsigned")

    assert refused.returncode == 1 and "is not signed: its SQL could commit that drop early" in refused.stdout
    assert allowed.returncode == 0, allowed.stdout
    assert pg18.sql("SELECT x FROM t", dbname) == [(1,)]
