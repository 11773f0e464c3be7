"""Whoever can write the bucket gets nothing: forged objects, run for real against moto and SeaweedFS.

Each test writes what a bucket writer can write (a dump of its own, a manifest copied from a
real backup or made up, a timestamp in 2099, a manifest of the wrong shape, a decompression
bomb) and runs the real ``pgbackup`` against a real PostgreSQL 18. The promise: a forged dump
runs no command and changes no database, with or without signing keys; with keys, nothing
unsigned is picked, kept or deleted by retention; a forged object hides no real backup.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from isal import isal_zlib

from backup_job.pipeline.stream import BLOCK_BYTES
from devenv.postgres import Cluster

from ..kit.helpers import SIGNED, Bucket, fake_tool, make_sample, manifest, run_pgbackup, wait_for_next_second

PADDING = b"-- " + b"x" * 1021 + b"\n"  # a few MB of SQL comments, so a streaming loader starts early


def _unsigned(env: dict[str, str]) -> dict[str, str]:
    """The same settings without any signing key: the world before keys were configured."""
    return {k: v for k, v in env.items() if k not in SIGNED}


def _newest(bucket: Bucket, prefix: str, suffix: str = ".sql.gz") -> str:
    return max(k for k in bucket.keys(prefix) if k.endswith(suffix))


def _forge(bucket: Bucket, dump_key: str, sql: bytes, *, checksum: str = "right", **fields: Any) -> None:
    """Replace the backup under ``dump_key`` with ``sql`` and a manifest copied from the real one:
    with the checksum recomputed (``right``) or left as it was (``wrong``)."""
    body = gzip.compress(sql + PADDING * 3000)
    facts = manifest(bucket.get(dump_key.replace(".sql.gz", ".manifest.json")))
    facts.pop("signature", None)
    facts.update(block_bytes=0, block_sha256="")
    if checksum == "right":
        facts.update(sha256=hashlib.sha256(body).hexdigest(), compressed_bytes=len(body))
    else:
        facts.update(compressed_bytes=len(body))  # the size agrees, the sha256 is the real dump's
    facts.update(fields)
    bucket.put(dump_key, body)
    bucket.put(dump_key.replace(".sql.gz", ".manifest.json"), json.dumps(facts).encode())


SHELLS = {
    "bang": "\\! touch {mark}\n",
    "pipe": "\\o |touch {mark}\nSELECT 1;\n\\o\n",
    "copy program": "\\copy (SELECT 1) TO PROGRAM 'touch {mark}'\n",
}


@pytest.mark.parametrize("how", SHELLS)
@pytest.mark.parametrize("checksum", ["wrong", "right"])
def test_a_forged_dump_runs_no_command_in_restore_or_verify_without_keys(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
    tmp_path: Path,
    how: str,
    checksum: str,
) -> None:
    """Without keys the bucket writer is trusted like the superuser for SQL, but psql is
    restricted and nothing unverified reaches it: no meta-command of a dump ever runs."""
    make_sample(pg18, dbname, rows=10)
    env = _unsigned(any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname))
    assert run_pgbackup(env).returncode == 0
    mark = tmp_path / f"pwned-{uuid.uuid4().hex}"
    _forge(
        any_bucket, _newest(any_bucket, f"prod/{dbname}/"), SHELLS[how].format(mark=mark).encode(), checksum=checksum
    )

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    verified = run_pgbackup(env, "verify", "--database", dbname)

    assert not mark.exists(), "a meta-command of a forged dump ran"
    assert restored.returncode == 1 and verified.returncode == 1, restored.stdout + verified.stdout
    expected = "checksum mismatch" if checksum == "wrong" else "backslash commands are restricted"
    assert expected in restored.stdout and expected in verified.stdout, restored.stdout + verified.stdout
    assert pg18.sql("SELECT count(*) FROM pg_database WHERE datname = %s", params=(f"{dbname}_r",)) == [(0,)]


def test_a_forged_dump_cannot_leave_the_transaction_or_reach_another_database(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    make_sample(pg18, dbname, rows=10)
    pg18.sql(f"CREATE DATABASE {dbname}_other")
    env = _unsigned(any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname))
    assert run_pgbackup(env).returncode == 0
    _forge(
        any_bucket,
        _newest(any_bucket, f"prod/{dbname}/"),
        f"COMMIT;\n\\c {dbname}_other\nCREATE TABLE planted (x int);\n".encode(),
    )

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")

    assert restored.returncode == 1 and "backslash commands are restricted" in restored.stdout, restored.stdout
    assert pg18.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'planted'", f"{dbname}_other") == [(0,)]


def test_restore_clean_of_a_forged_dump_with_a_bad_checksum_drops_nothing(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    make_sample(pg18, dbname, rows=10)
    env = any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname)
    assert run_pgbackup(env).returncode == 0
    dump = _newest(any_bucket, f"prod/{dbname}/")
    real = any_bucket.get(dump)
    any_bucket.put(dump, real[:100] + bytes([real[100] ^ 1]) + real[101:])  # one bit, same size

    cleaned = run_pgbackup(env, "restore", "--database", dbname, "--clean")

    assert cleaned.returncode == 1 and "checksum mismatch: block 1" in cleaned.stdout, cleaned.stdout
    assert pg18.sql("SELECT count(*) FROM bulk", dbname) == [(10,)], "the old contents stay"


def test_with_keys_a_forged_backup_is_passed_over_for_the_real_one_and_never_loaded(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    make_sample(pg18, dbname, rows=10)
    env = any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname)
    assert run_pgbackup(env).returncode == 0
    real = _newest(any_bucket, f"prod/{dbname}/")
    wait_for_next_second()
    assert run_pgbackup(env).returncode == 0
    mark = tmp_path / "pwned"
    newest = _newest(any_bucket, f"prod/{dbname}/")
    _forge(any_bucket, newest, f"CREATE TABLE planted (x int);\n\\! touch {mark}\n".encode())

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    verified = run_pgbackup(env, "verify", "--database", dbname)
    listed = run_pgbackup(env, "list", "--database", dbname)

    assert restored.returncode == 0 and verified.returncode == 0, restored.stdout + verified.stdout
    stamp = real.rsplit("/", 1)[1].split(".")[0]
    assert f"from {stamp}" in restored.stdout and "UNTRUSTED: unsigned" not in restored.stdout
    assert "WARNING" in restored.stdout and "is not restored: it is complete, UNSIGNED" in restored.stdout
    assert "passes over" in verified.stdout
    assert pg18.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'planted'", f"{dbname}_r") == [(0,)]
    assert not mark.exists()
    assert "UNSIGNED" in listed.stdout and "signed (fc16885beacd577b)" in listed.stdout
    another_key = {**_unsigned(env), "BACKUP_SIGNING_PUBLIC_KEYS": "ed25519:" + "A" * 43 + "="}
    refused = run_pgbackup(another_key, "restore", "--database", dbname, "--target", f"{dbname}_s", "--create")
    assert refused.returncode == 1 and "no complete signed backup" in refused.stdout, refused.stdout


def test_a_forged_manifest_with_a_signature_that_does_not_verify_is_untrusted_and_never_deleted(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0
    wait_for_next_second()
    assert run_pgbackup(env).returncode == 0
    newest = _newest(any_bucket, f"prod/{dbname}/", ".manifest.json")
    facts = manifest(any_bucket.get(newest))
    facts["row_counts"] = {"public.t": 1}  # the signature no longer covers what the manifest says
    any_bucket.put(newest, json.dumps(facts).encode())

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")
    listed = run_pgbackup(env, "list", "--database", dbname)

    assert pruned.returncode == 0, pruned.stdout
    assert "UNTRUSTED: its signature by key fc16885beacd577b does not verify" in listed.stdout
    assert newest in any_bucket.keys(), "a backup whose signature fails is never deleted"
    assert "WARNING retention keeps" in pruned.stdout and "UNTRUSTED" in pruned.stdout
    assert len([k for k in any_bucket.keys(f"prod/{dbname}/") if k.endswith(".json")]) == 2, (
        "the older signed backup is the newest trusted one: retention keeps it"
    )


@pytest.mark.parametrize("signed", [False, True], ids=["without keys", "with keys"])
def test_backups_dated_in_2099_are_suspect_and_push_no_real_backup_out(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
    signed: bool,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    env = env if signed else _unsigned(env)
    for run in range(3):
        if run:
            wait_for_next_second()  # three runs, three distinct timestamps
        assert run_pgbackup(env).returncode == 0
    real = sorted(k for k in any_bucket.keys(f"prod/{dbname}/") if k.endswith(".sql.gz"))
    for stamp in ("20990101T000000Z", "20990102T000000Z"):  # consistent forgeries of the newest
        key = f"prod/{dbname}/{stamp}.sql.gz"
        any_bucket.put(key, any_bucket.get(real[-1]))
        facts = manifest(any_bucket.get(real[-1].replace(".sql.gz", ".manifest.json")))
        any_bucket.put(
            key.replace(".sql.gz", ".manifest.json"), json.dumps({**facts, "key": key, "run_timestamp": stamp}).encode()
        )

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=2,daily=2"}, "prune")
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")
    listed = run_pgbackup(env, "list", "--database", dbname)

    assert pruned.returncode == 0 and restored.returncode == 0, pruned.stdout + restored.stdout
    left = sorted(k for k in any_bucket.keys(f"prod/{dbname}/") if k.endswith(".sql.gz"))
    assert left == [*real[1:], f"prod/{dbname}/20990101T000000Z.sql.gz", f"prod/{dbname}/20990102T000000Z.sql.gz"]
    assert pruned.stdout.count("SUSPECT: dated 2099") == 2 and "WARNING" in pruned.stdout
    assert f"from {real[-1].rsplit('/', 1)[1].split('.')[0]}" in restored.stdout
    assert listed.stdout.count("SUSPECT") == 2


BAD_FIELDS = {  # field: its value as raw JSON text, of the wrong type or out of range
    "encryption": '"age"',
    "compression": '["gzip"]',
    "format_version": "1e400",
    "sha256": "5",
    "row_counts": "[]",
    "database_properties": '"owner"',
    "shrink_alarm": '{"fraction": "half"}',
    "duration_seconds": '"NaN"',
}


def test_malformed_manifests_mark_their_own_backups_damaged_and_stop_nothing(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    names = [f"{dbname}_{i}" for i in range(len(BAD_FIELDS))]
    for name in [dbname, *names]:
        make_sample(pg18, name, rows=5)
    env = _unsigned(any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=f"{dbname}*"))
    assert run_pgbackup(env).returncode == 0
    for name, (field, raw) in zip(names, BAD_FIELDS.items(), strict=False):
        key = _newest(any_bucket, f"prod/{name}/", ".manifest.json")
        text = json.dumps({**manifest(any_bucket.get(key)), field: "@BAD@"}).replace('"@BAD@"', raw)
        any_bucket.put(key, text.encode())

    listed = run_pgbackup(env, "list")
    verified = run_pgbackup(env, "verify")
    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert listed.returncode == 0 and pruned.returncode == 0, listed.stderr + pruned.stdout
    assert listed.stdout.count("DAMAGED: manifest invalid") == len(BAD_FIELDS), listed.stdout
    assert "unexpected" not in verified.stdout + pruned.stdout
    assert verified.returncode == 1 and f"verify of {dbname!r} (backup" in verified.stdout
    assert f"verify: 2 of {len(BAD_FIELDS) + 2} backups verified" in verified.stdout, verified.stdout  # + globals
    assert pruned.stdout.count("DAMAGED") == len(BAD_FIELDS)


def _max_rss(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run pgbackup; the most memory it held (KiB), and ``exit <code>`` and its stdout."""
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.returncode); print(r.stdout)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_", "LOG_"))}
    done = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "backup_job", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    rss, code, out = done.stdout.split("\n", 2)
    return int(rss), f"exit {code}\n{out}"


def _globals_bomb(mebibytes: int = 3072) -> bytes:
    """3 GiB of zeros once inflated, about 3 MiB stored, one gzip member, made in milliseconds:
    after a full flush, deflating another MiB of zeros gives the same bytes again, so the stream
    is that block repeated and closed with the CRC and size of the whole (deflating it all takes
    seconds)."""
    one = b"\0" * (1024 * 1024)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    start = packer.compress(one) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(one) + packer.flush(zlib.Z_FULL_FLUSH)
    assert start.endswith(block), "a full flush resets the deflater"
    crc_one = zlib.crc32(one)
    crc = functools.reduce(lambda c, _: isal_zlib.crc32_combine(c, crc_one, len(one)), range(mebibytes - 1), crc_one)
    last_block = packer.flush()[:-8]  # without the trailer of the two MiB this deflater saw
    return start + block * (mebibytes - 1) + last_block + struct.pack("<II", crc, mebibytes * len(one) % 2**32)


def test_a_globals_bomb_stops_at_the_limit_in_bounded_memory(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = _unsigned(any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname))
    assert run_pgbackup(env).returncode == 0
    key = _newest(any_bucket, "prod/_globals/")
    bomb = _globals_bomb()
    assert len(bomb) < 4 * 1024 * 1024
    facts = manifest(any_bucket.get(key.replace(".sql.gz", ".manifest.json")))
    facts.update(sha256=hashlib.sha256(bomb).hexdigest(), compressed_bytes=len(bomb), block_bytes=0, block_sha256="")
    any_bucket.put(key, bomb)
    any_bucket.put(key.replace(".sql.gz", ".manifest.json"), json.dumps(facts).encode())

    rss, out = _max_rss(env, "restore", "--globals")

    assert out.startswith("exit 1") and "more than 256 MiB once decompressed" in out, out
    assert rss < 600 * 1024, f"restore --globals held {rss // 1024} MiB"


def test_large_manifests_are_listed_in_bounded_memory(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = _unsigned(any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"))
    assert run_pgbackup(env).returncode == 0
    source = _newest(any_bucket, f"prod/{dbname}/")
    facts = manifest(any_bucket.get(source.replace(".sql.gz", ".manifest.json")))
    row_counts = json.dumps({f'"s{n:06d}"."table_with_a_long_enough_name_{n:06d}"': n for n in range(240_000)})

    def forge(day: int) -> None:
        key = f"prod/{dbname}/202610{day:02d}T000000Z.sql.gz"
        any_bucket.server.client().copy_object(
            Bucket=any_bucket.name, Key=key, CopySource={"Bucket": any_bucket.name, "Key": source}
        )
        text = (
            json.dumps({**facts, "row_counts": "@ROWS@", "key": key, "run_timestamp": key.rsplit("/", 1)[1][:16]})
            .replace('"@ROWS@"', row_counts)
            .encode()
        )
        assert 12 * 1024 * 1024 < len(text) < 16 * 1024 * 1024
        any_bucket.put(key.replace(".sql.gz", ".manifest.json"), text)

    with ThreadPoolExecutor(max_workers=4) as pool:  # 140 MiB to upload: a few at a time
        list(pool.map(forge, range(1, 11)))

    rss, out = _max_rss(env, "list", "--json")

    assert out.startswith("exit 0"), out[:2000]
    rows = json.loads(out.split("\n", 1)[1])
    assert [r["tables"] for r in rows if r["timestamp"].startswith("202610")] == [240_000] * 10
    assert rss < 400 * 1024, f"list held {rss // 1024} MiB for ten 14 MiB manifests"
    small = run_pgbackup({**env, "BACKUP_MANIFEST_LIMIT_MB": "8"}, "list", "--database", dbname)
    assert small.stdout.count("DAMAGED: manifest larger than 8 MiB (BACKUP_MANIFEST_LIMIT_MB)") == 10


def test_block_digests_cover_a_dump_of_several_blocks(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
) -> None:
    """A dump larger than one block is checked block by block: a change in a later block stops the
    restore there, and nothing is committed."""
    make_sample(pg18, dbname, rows=600_000)
    env = any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname, BACKUP_COMPRESSION_LEVEL="1")
    assert run_pgbackup(env).returncode == 0
    dump = _newest(any_bucket, f"prod/{dbname}/")
    data = any_bucket.get(dump)
    facts = manifest(any_bucket.get(dump.replace(".sql.gz", ".manifest.json")))
    blocks = -(-len(data) // BLOCK_BYTES)
    assert blocks >= 2 and facts["block_bytes"] == BLOCK_BYTES, "the sample must span blocks"
    at = BLOCK_BYTES + 1000  # in block 2
    any_bucket.put(dump, data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")

    assert restored.returncode == 1 and "checksum mismatch: block 2 of" in restored.stdout, restored.stdout
    assert pg18.sql("SELECT count(*) FROM pg_database WHERE datname = %s", params=(f"{dbname}_r",)) == [(0,)]


def test_a_forged_globals_object_runs_no_command(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    """The globals are loaded without ON_ERROR_STOP (pg_dumpall's CREATE ROLE of existing roles
    fails by design), so a refused meta-command must still fail the load."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = _unsigned(any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname))
    assert run_pgbackup(env).returncode == 0
    mark = tmp_path / "pwned"
    _forge(any_bucket, _newest(any_bucket, "prod/_globals/"), f"\\! touch {mark}\nCREATE ROLE {dbname}_x;\n".encode())

    restored = run_pgbackup(env, "restore", "--globals")

    assert restored.returncode == 1 and "backslash commands are restricted" in restored.stdout, restored.stdout
    assert not mark.exists()


def test_a_psql_that_cannot_be_restricted_is_refused_in_one_line(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    make_sample(pg18, dbname, rows=5)
    env = any_bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname)
    assert run_pgbackup(env).returncode == 0
    old = fake_tool(tmp_path / "bin", bindir18, "psql", 'exec "$REAL" "$@"')
    (old / "psql").write_text(
        "#!/bin/bash\n"
        'if [ "$1" = "--version" ]; then echo "psql (PostgreSQL) 15.13"; exit 0; fi\n'
        f'exec "{bindir18}/psql" "$@"\n'
    )

    restored = run_pgbackup(
        {**env, "BACKUP_PG_BINDIR": str(old)}, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create"
    )
    verified = run_pgbackup({**env, "BACKUP_PG_BINDIR": str(old)}, "verify")

    for result in (restored, verified):
        assert result.returncode == 1, result.stdout
        assert "psql 15.13" in result.stdout and "cannot refuse a dump's meta-commands" in result.stdout
    assert pg18.sql("SELECT count(*) FROM pg_database WHERE datname = %s", params=(f"{dbname}_r",)) == [(0,)]


def test_a_run_reports_suspect_backups_in_its_log_and_metrics(
    pg18: Cluster,
    bindir18: Path,
    any_bucket: Bucket,
    dbname: str,
    tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = any_bucket.job_env(
        pg18,
        bindir18,
        "prod",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_METRICS_TEXTFILE=str(tmp_path / "pgbackup.prom"),
    )
    assert run_pgbackup(env).returncode == 0
    real = _newest(any_bucket, f"prod/{dbname}/")
    any_bucket.put(f"prod/{dbname}/20990101T000000Z.sql.gz", any_bucket.get(real))
    wait_for_next_second()

    second = run_pgbackup(env)

    assert second.returncode == 0, second.stdout
    assert "1 backups in the destination are SUSPECT" in second.stdout and "20990101T000000Z" in second.stdout
    [line] = [ln for ln in (tmp_path / "pgbackup.prom").read_text().splitlines() if ln.startswith("pgbackup_suspect")]
    assert line.startswith('pgbackup_suspect_backups{destination="') and line.endswith("} 1.0"), line
