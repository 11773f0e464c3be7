"""Sealed backups on real PostgreSQL and both S3 servers of the suite (moto, SeaweedFS): no
plaintext stored, restore and verify with the identity, a clear failure without it or with
another one, a changed ciphertext byte that commits nothing, and a history that mixes plain
and sealed backups."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyrage
import pytest

from devenv.postgres import Cluster

from ..kit.helpers import Bucket, run_pgbackup, wait_for_next_second

SECRET_ROW = "needle-7c1e0b5a-in-the-haystack"


def identity_file(directory: Path, name: str) -> tuple[Path, str]:
    identity = pyrage.x25519.Identity.generate()
    path = directory / f"{name}.txt"
    path.write_text(f"# created for a test\n# public key: {identity.to_public()}\n{identity}\n")
    path.chmod(0o600)
    return path, str(identity.to_public())


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Every test here runs against moto and SeaweedFS (multipart uploads of ciphertext, checked
    with Content-MD5 by SeaweedFS)."""
    return any_bucket


@pytest.fixture
def sealed(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path) -> dict[str, object]:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        f"CREATE TABLE secrets AS SELECT g AS id, '{SECRET_ROW}-' || g AS body FROM generate_series(1, 3000) g", dbname
    )
    key, public = identity_file(tmp_path, "key")
    other, other_public = identity_file(tmp_path, "other")
    env = bucket.job_env(pg18, bindir18, "sealed", BACKUP_DATABASES=dbname, BACKUP_ENCRYPT_RECIPIENTS=public)
    result = run_pgbackup(env)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"env": env, "key": key, "public": public, "other": other, "other_public": other_public}


def test_a_sealed_run_stores_no_plaintext_and_records_its_recipients(
    sealed: dict[str, object], bucket: Bucket, dbname: str
) -> None:
    keys = bucket.keys("sealed/")
    dump = next(k for k in keys if k.startswith(f"sealed/{dbname}/") and not k.endswith(".json"))
    globals_dump = next(k for k in keys if k.startswith("sealed/_globals/") and not k.endswith(".json"))
    assert dump.endswith(".sql.gz.age") and globals_dump.endswith(".sql.gz.age")
    for key in (dump, globals_dump):
        stored = bucket.get(key)
        assert stored.startswith(b"age-encryption.org/v1\n")
        assert SECRET_ROW.encode() not in stored and b"CREATE ROLE" not in stored
        with pytest.raises(gzip.BadGzipFile):
            gzip.decompress(stored)
    manifest = json.loads(bucket.get(dump.removesuffix(".sql.gz.age") + ".manifest.json"))
    assert manifest["encryption"] == {"format": "age", "recipients": [sealed["public"]]}
    assert manifest["format_version"] == 2 and manifest["compression"] == "gzip"
    assert manifest["compressed_bytes"] == len(bucket.get(dump)) and manifest["row_counts"] == {"public.secrets": 3000}
    assert SECRET_ROW not in json.dumps(manifest)


def test_restore_and_verify_open_it_with_the_identity_only(
    sealed: dict[str, object], pg18: Cluster, dbname: str
) -> None:
    env = dict(sealed["env"])  # type: ignore[call-overload]
    target = f"{dbname}_restored"
    missing = run_pgbackup(env, "restore", "--database", dbname, "--target", target, "--create")
    assert missing.returncode == 1
    line = missing.stdout.strip().splitlines()[-1]
    assert f"of '{dbname}' is encrypted with age, sealed to {sealed['public']}" in line
    assert "BACKUP_DECRYPT_IDENTITY_PATH" in line
    assert pg18.sql(f"SELECT 1 FROM pg_database WHERE datname = '{target}'") == []  # nothing created

    wrong = run_pgbackup(
        {**env, "BACKUP_DECRYPT_IDENTITY_PATH": str(sealed["other"])},
        "restore",
        "--database",
        dbname,
        "--target",
        target,
        "--create",
    )
    assert wrong.returncode == 1
    assert (
        f"is sealed to {sealed['public']}; the identity in BACKUP_DECRYPT_IDENTITY_PATH is not one of them"
        in wrong.stdout
    )
    assert pg18.sql(f"SELECT 1 FROM pg_database WHERE datname = '{target}'") == []

    opened = {**env, "BACKUP_DECRYPT_IDENTITY_PATH": str(sealed["key"])}
    restored = run_pgbackup(opened, "restore", "--database", dbname, "--target", target, "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert pg18.sql("SELECT count(*), min(body) FROM secrets", target) == [(3000, f"{SECRET_ROW}-1")]
    drill = run_pgbackup(opened, "verify")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "verify: 2 of 2 backups verified" in drill.stdout  # the database and the globals
    roles = run_pgbackup(opened, "restore", "--globals")
    assert roles.returncode == 0, roles.stdout + roles.stderr
    assert run_pgbackup(env, "restore", "--globals").returncode == 1  # sealed too: no identity, no roles
    without = run_pgbackup(env, "verify")
    assert without.returncode == 1 and "is encrypted with age" in without.stdout
    assert str(sealed["key"]) not in restored.stdout + drill.stdout  # the path is fine; its content never shows
    assert "AGE-SECRET-KEY" not in restored.stdout + drill.stdout + without.stdout


def test_a_changed_ciphertext_byte_commits_nothing(
    sealed: dict[str, object], pg18: Cluster, bucket: Bucket, dbname: str
) -> None:
    dump = next(k for k in bucket.keys(f"sealed/{dbname}/") if k.endswith(".age"))
    stored = bytearray(bucket.get(dump))
    stored[len(stored) // 2] ^= 0x01
    bucket.put(dump, bytes(stored))
    opened = {**sealed["env"], "BACKUP_DECRYPT_IDENTITY_PATH": str(sealed["key"])}  # type: ignore[dict-item]
    target = f"{dbname}_tampered"
    pg18.sql(f"CREATE DATABASE {target}")
    result = run_pgbackup(opened, "restore", "--database", dbname, "--target", target)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stdout
    assert pg18.sql("SELECT count(*) FROM pg_class WHERE relname = 'secrets'", target) == [(0,)]


def test_a_history_of_plain_sealed_and_rotated_backups_restores_verifies_and_prunes(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g", dbname)
    key, public = identity_file(tmp_path, "key")
    env = bucket.job_env(pg18, bindir18, "mixed", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0  # plain
    wait_for_next_second()
    pg18.sql("INSERT INTO t SELECT g FROM generate_series(101, 150) g", dbname)
    assert run_pgbackup({**env, "BACKUP_ENCRYPT_RECIPIENTS": public}).returncode == 0  # sealed
    opened = {**env, "BACKUP_DECRYPT_IDENTITY_PATH": str(key)}
    listing = json.loads(run_pgbackup(opened, "list", "--json").stdout)
    assert [b["encrypted"] for b in listing] == [True, False]  # newest first
    assert listing[0]["recipients"] == [public] and listing[1]["recipients"] == []
    table = run_pgbackup(opened, "list").stdout.splitlines()
    assert "ENCRYPTED" in table[0] and "age" in table[1] and "age" not in table[2]

    oldest = listing[1]["timestamp"]
    restored = run_pgbackup(
        opened, "restore", "--database", dbname, "--target", f"{dbname}_old", "--create", "--at", oldest
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_old") == [(100,)]
    newest = run_pgbackup(opened, "restore", "--database", dbname, "--target", f"{dbname}_new", "--create")
    assert newest.returncode == 0 and pg18.sql("SELECT count(*) FROM t", f"{dbname}_new") == [(150,)]
    assert run_pgbackup(opened, "verify").returncode == 0

    # Rotation: a third backup sealed to a new key only; one identity file holding both keys opens all.
    wait_for_next_second()
    rotated_key, rotated_public = identity_file(tmp_path, "rotated")
    third = run_pgbackup({**env, "BACKUP_ENCRYPT_RECIPIENTS": rotated_public})
    assert third.returncode == 0 and "SHRANK" not in third.stdout  # plain -> sealed -> resealed: no false alarm
    both = tmp_path / "both.txt"
    both.write_text(key.read_text() + rotated_key.read_text())
    assert run_pgbackup({**env, "BACKUP_DECRYPT_IDENTITY_PATH": str(both)}, "verify").returncode == 0
    old_only = run_pgbackup(opened, "verify")  # the old key cannot open the newest backup
    assert old_only.returncode == 1 and f"sealed to {rotated_public}" in old_only.stdout

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")  # no identity needed to prune
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    left = list(bucket.keys(f"mixed/{dbname}/"))
    assert len(left) == 2 and any(k.endswith(".sql.gz.age") for k in left)
    newest = json.loads(run_pgbackup(env, "list", "--json").stdout)
    assert [b["recipients"] for b in newest] == [[rotated_public]]


def test_the_age_cli_opens_what_pgbackup_sealed_the_readme_way(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    """Keys from Debian's age-keygen, the object opened with Debian's age, gunzip and psql,
    exactly as docs/encryption.md's by-hand restore pipes them."""
    import shutil
    import subprocess

    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    assert age and keygen, "Debian's age is missing: scripts/lib/install-bench-tools.sh installs it"
    key = tmp_path / "pgbackup-key.txt"
    made = subprocess.run([keygen, "-o", str(key)], capture_output=True, text=True, check=True)
    public = made.stderr.split("Public key: ")[1].strip()
    ssh_key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
    ssh_public = (tmp_path / "id_ed25519.pub").read_text().strip()
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# the team\n{public}\n\n# break glass\n{ssh_public}\n")

    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(f"CREATE TABLE t AS SELECT g, '{SECRET_ROW}' AS body FROM generate_series(1, 500) g", dbname)
    env = bucket.job_env(
        pg18,
        bindir18,
        "cli",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_ENCRYPT_RECIPIENTS_FILE=str(recipients),
    )
    assert run_pgbackup(env).returncode == 0
    dump = next(k for k in bucket.keys(f"cli/{dbname}/") if k.endswith(".sql.gz.age"))
    manifest = json.loads(bucket.get(dump.removesuffix(".sql.gz.age") + ".manifest.json"))
    assert manifest["encryption"]["recipients"] == [public, " ".join(ssh_public.split()[:2])]

    target = f"{dbname}_by_hand"
    pg18.sql(f"CREATE DATABASE {target}")
    pipeline = f"{age} -d -i {key} | gunzip | {bindir18}/psql -X -1 -v ON_ERROR_STOP=1 -q -d {target}"
    by_hand = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline],
        input=bucket.get(dump),
        env={**pg18.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )
    assert by_hand.returncode == 0, by_hand.stderr
    assert pg18.sql("SELECT count(*), min(body) FROM t", target) == [(500, SECRET_ROW)]
    assert pg18.sql("SELECT count(*) FROM t", target) == pg18.sql("SELECT count(*) FROM t", dbname)

    with_ssh = {**env, "BACKUP_DECRYPT_IDENTITY_PATH": str(ssh_key)}  # the other recipient's key opens it too
    restored = run_pgbackup(with_ssh, "restore", "--database", dbname, "--target", f"{dbname}_ssh", "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_ssh") == [(500,)]


def test_a_sealed_backup_keeps_its_database_settings_sealed_and_restore_reapplies_them(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    """Database settings, role settings and comments often hold secrets (JWT secrets, API keys):
    a sealed backup's manifest holds them sealed like the dump, and restore --create opens them."""
    secret = "jwt-secret-3b8c1d77"
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(f"ALTER DATABASE {dbname} SET app.jwt_secret = '{secret}'")
    pg18.sql(f"COMMENT ON DATABASE {dbname} IS 'api key {secret}'")
    key, public = identity_file(tmp_path, "key")
    env = bucket.job_env(
        pg18,
        bindir18,
        "sealed",
        BACKUP_DATABASES=dbname,
        BACKUP_ENCRYPT_RECIPIENTS=public,
        BACKUP_DECRYPT_IDENTITY_PATH=str(key),
    )
    assert run_pgbackup(env).returncode == 0
    manifest_key = next(k for k in bucket.keys(f"sealed/{dbname}/") if k.endswith(".json"))

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    without = run_pgbackup(
        {k: v for k, v in env.items() if k != "BACKUP_DECRYPT_IDENTITY_PATH"},
        "restore",
        "--database",
        dbname,
        "--target",
        f"{dbname}_s",
        "--create",
    )

    stored = bucket.get(manifest_key)
    assert secret.encode() not in stored
    facts = json.loads(stored)
    assert facts["database_properties"] is None and facts["sealed_database_properties"]
    assert restored.returncode == 0, restored.stdout
    assert pg18.sql(
        f"SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{dbname}_r'"
    ) == [(f"api key {secret}",)]
    assert without.returncode == 1 and "BACKUP_DECRYPT_IDENTITY_PATH" in without.stdout
