"""Acceptance tests of ``pgbackup run`` against real PostgreSQL 18 and a real S3 server."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest

from backup_job.commands.destination import open_destination
from backup_job.commands.run import backup_database, prepare, writer
from backup_job.core.layout import encode_database
from backup_job.core.settings import load_settings
from devenv.postgres import Cluster
from devenv.s3 import SECRET_KEY

from ..kit.helpers import (
    VARYING,
    Bucket,
    comparable_dump,
    comparable_globals,
    fake_pg_dump,
    make_sample,
    manifest,
    restore,
    run_pgbackup,
)

TIMESTAMP = r"\d{8}T\d{6}Z"


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """The S3 contract, end to end, against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def test_round_trip_restores_every_database_exactly(fresh_pg18: Cluster, bindir18: Path, bucket: Bucket) -> None:
    pg = fresh_pg18
    make_sample(pg, "shop", rows=400_000)  # ~26 MB raw, several 5 MiB parts compressed
    make_sample(pg, "analytics", rows=10)

    result = run_pgbackup(bucket.job_env(pg, bindir18, "nightly", BACKUP_PART_SIZE_MB="5"))

    assert result.returncode == 0, result.stdout + result.stderr
    keys = bucket.keys()
    dumps = [k for k in keys if k.endswith(".sql.gz")]
    assert {k.split("/")[1] for k in dumps} == {"analytics", "postgres", "shop", "_globals"}
    stamps = {re.search(TIMESTAMP, k).group(0) for k in keys}  # type: ignore[union-attr]
    assert len(stamps) == 1, "every database of one run shares the run's timestamp"
    assert all(re.fullmatch(rf"nightly/_?[a-z]+/{TIMESTAMP}\.(sql\.gz|manifest\.json)", k) for k in keys)
    assert len(keys) == 2 * len(dumps)
    for database in ("shop", "analytics", "postgres", "_globals"):
        dump_key = next(k for k in dumps if k.split("/")[1] == database)
        data = bucket.get(dump_key)
        facts = manifest(bucket.get(dump_key.replace(".sql.gz", ".manifest.json")))
        assert facts["sha256"] == hashlib.sha256(data).hexdigest()
        assert facts["compressed_bytes"] == len(data)
        assert facts["raw_bytes"] == len(gzip.decompress(data))
        assert facts["key"] == dump_key
        assert facts["pg_dump_version"].startswith("18") and facts["server_version"].startswith("18")
        if database == "_globals":
            assert facts["kind"] == "globals" and facts["database"] == ""
            stored = [line for line in gzip.decompress(data).decode().splitlines() if not line.startswith(VARYING)]
            assert stored == comparable_globals(pg, bindir18)
            continue
        assert facts["database"] == database
        restore(pg, bindir18, data, f"{database}_restored")
        assert comparable_dump(pg, bindir18, f"{database}_restored") == comparable_dump(pg, bindir18, database)
    shop = manifest(bucket.get(next(k for k in keys if "/shop/" in k and k.endswith(".json"))))
    assert shop["parts"] >= 3, "the big database must have gone through several multipart parts"
    assert "backup of 'shop' finished" in result.stdout
    assert re.search(r"run \d{8}T\d{6}Z finished: 4 ok, 0 failed", result.stdout), "3 databases and the globals"


def test_odd_names_map_to_safe_keys_and_templates_are_skipped(
    fresh_pg18: Cluster, bindir18: Path, bucket: Bucket
) -> None:
    pg = fresh_pg18
    odd = ["with space", "slash/and\\back", "quote'\"double", "ünï日本", "_underscore", "..", "%41"]
    for name in odd:
        escaped = name.replace('"', '""')
        pg.sql(f'CREATE DATABASE "{escaped}"')
        pg.sql("CREATE TABLE marker (name text); ", name)
        pg.sql("INSERT INTO marker VALUES (%s)", name, (name,))
    pg.sql("CREATE DATABASE closed")
    pg.sql("ALTER DATABASE closed WITH ALLOW_CONNECTIONS false")
    pg.sql("CREATE DATABASE tmpl WITH IS_TEMPLATE true")

    result = run_pgbackup(bucket.job_env(pg, bindir18, "", BACKUP_GLOBALS="false"))

    assert result.returncode == 0, result.stdout + result.stderr
    segments = {k.split("/")[0] for k in bucket.keys()}
    assert segments == {
        "with%20space",
        "slash%2Fand%5Cback",
        "quote%27%22double",
        "%C3%BCn%C3%AF%E6%97%A5%E6%9C%AC",
        "%5Funderscore",
        "%2E%2E",
        "%2541",
        "postgres",
    }, "an empty prefix gives keys without a leading slash"
    for name in odd:
        key = next(k for k in bucket.keys() if k.startswith(encode_database(name) + "/") and k.endswith(".gz"))
        assert "COPY public.marker (name) FROM stdin;" in gzip.decompress(bucket.get(key)).decode()
        facts = manifest(bucket.get(key.replace(".sql.gz", ".manifest.json")))
        assert facts["database"] == name


def test_include_and_exclude_globs(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> None:
    for suffix in ("app_one", "app_two", "app_test", "other"):
        pg18.sql(f"CREATE DATABASE {dbname}_{suffix}")

    result = run_pgbackup(
        bucket.job_env(
            pg18,
            bindir18,
            "",
            BACKUP_DATABASES=f"{dbname}_app_*, {dbname}_other",
            BACKUP_EXCLUDE_DATABASES=f"*_test,{dbname}_other",
            BACKUP_GLOBALS="false",
        )
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert {k.split("/")[0] for k in bucket.keys()} == {f"{dbname}_app_one", f"{dbname}_app_two"}


def test_explicit_name_that_does_not_exist_fails_alone(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")

    result = run_pgbackup(
        bucket.job_env(pg18, bindir18, "", BACKUP_DATABASES=f"{dbname},{dbname}_typo", BACKUP_GLOBALS="false")
    )

    assert result.returncode == 1
    assert f"backup of '{dbname}_typo' FAILED: no such database" in result.stdout
    assert {k.split("/")[0] for k in bucket.keys()} == {dbname}


def test_database_the_role_cannot_connect_to_fails_alone(fresh_pg18: Cluster, bindir18: Path, bucket: Bucket) -> None:
    pg = fresh_pg18
    for name in ("open_a", "locked", "open_b"):
        make_sample(pg, name, rows=50_000)
    pg.sql("CREATE ROLE backup LOGIN PASSWORD 'backup-role-secret' IN ROLE pg_read_all_data")
    pg.sql("REVOKE CONNECT ON DATABASE locked FROM PUBLIC")
    env = bucket.job_env(
        pg,
        bindir18,
        "p",
        PGUSER="backup",
        PGPASSWORD="backup-role-secret",
        BACKUP_PART_SIZE_MB="5",
        BACKUP_GLOBALS="false",
    )

    result = run_pgbackup(env)

    assert result.returncode == 1, result.stdout + result.stderr
    failure = [line for line in result.stdout.splitlines() if "FAILED" in line and "'locked'" in line]
    assert len(failure) == 1 and "permission denied for database" in failure[0], result.stdout
    assert re.search(r"3 ok, 1 failed \(locked\)", result.stdout)
    assert {k.split("/")[1] for k in bucket.keys()} == {"open_a", "open_b", "postgres"}
    assert bucket.open_uploads() == []


def killing_pg_dump(directory: Path, real_bindir: Path, after_bytes: int) -> Path:
    """A pg_dump that streams ``after_bytes`` of the real dump, then is SIGKILLed."""
    return fake_pg_dump(directory, real_bindir, f'"$REAL" "$@" | head -c {after_bytes}\nkill -KILL $$')


def test_pg_dump_killed_mid_stream_leaves_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    make_sample(pg18, dbname, rows=600_000)
    bindir = killing_pg_dump(tmp_path / "bin", bindir18, after_bytes=30_000_000)

    result = run_pgbackup(
        bucket.job_env(pg18, bindir, "k", BACKUP_DATABASES=dbname, BACKUP_PART_SIZE_MB="5", BACKUP_GLOBALS="false")
    )

    assert result.returncode == 1
    assert f"backup of '{dbname}' FAILED: pg_dump was killed by signal 9 (SIGKILL)" in result.stdout, result.stdout
    assert bucket.keys() == [] and bucket.open_uploads() == []


def test_existing_backup_is_never_overwritten(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = bucket.job_env(pg18, bindir18, "x", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0
    [dump_key] = [k for k in bucket.keys() if k.endswith(".gz")]
    original = bucket.get(dump_key)

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(dotenv_path=tmp_path / "no.env")
    stamp = dump_key.split("/")[-1].removesuffix(".sql.gz")
    tools = prepare(settings)
    outcome = backup_database(writer(settings, open_destination(settings), tools, stamp), tools, dbname)

    assert not outcome.ok and "exists already" in outcome.error
    assert bucket.get(dump_key) == original and bucket.open_uploads() == []


def test_secrets_never_appear_in_output(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    password_file = tmp_path / "pgpassword"
    password_file.write_text(pg18.password + "\n")
    env = bucket.job_env(pg18, bindir18, "", BACKUP_DATABASES=f"{dbname},missing_db", LOG_LEVEL="debug")
    del env["PGPASSWORD"]
    env["PGPASSWORD_FILE"] = str(password_file)

    good = run_pgbackup(env)
    wrong_password = tmp_path / "wrong"
    wrong_password.write_text("wrong-password-value\n")
    bad = run_pgbackup({**env, "PGPASSWORD_FILE": str(wrong_password)})

    assert good.returncode == 1 and bad.returncode == 1  # missing_db fails; the wrong password fails all
    assert f"backup of '{dbname}' finished" in good.stdout
    assert "password authentication failed" in bad.stdout
    for output in (good.stdout + good.stderr, bad.stdout + bad.stderr):
        assert pg18.password not in output
        assert "wrong-password-value" not in output
        assert SECRET_KEY not in output


def test_empty_dump_is_a_failure_not_a_backup(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    fake = fake_pg_dump(tmp_path / "bin", bindir18, "exit 0")

    result = run_pgbackup(bucket.job_env(pg18, fake, "e", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"))

    assert result.returncode == 1
    assert f"backup of '{dbname}' FAILED: pg_dump exited 0 but produced no output" in result.stdout
    assert bucket.keys() == [] and bucket.open_uploads() == []


def test_missing_bucket_fails_each_database_with_the_store_s_reason(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = bucket.job_env(pg18, bindir18, "", BACKUP_DATABASES=dbname)
    env["BACKUP_DESTINATION"] = "s3://no-such-bucket-here/x"

    result = run_pgbackup(env)

    assert result.returncode == 1
    assert (
        f"backup of '{dbname}' FAILED: S3 CreateMultipartUpload of s3://no-such-bucket-here/x/{dbname}/"
        in result.stdout
    )
    assert "NoSuchBucket" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_s3_options_reach_the_store(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = bucket.job_env(
        pg18,
        bindir18,
        "opts",
        BACKUP_DATABASES=dbname,
        BACKUP_S3_SSE="AES256",
        BACKUP_S3_STORAGE_CLASS="STANDARD_IA",
        BACKUP_S3_ADDRESSING_STYLE="path",
        AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
    )

    result = run_pgbackup(env)

    assert result.returncode == 0, result.stdout
    client = bucket.server.client()
    [dump_key] = [k for k in bucket.keys() if k.endswith(".sql.gz") and "/_globals/" not in k]
    dump_head = client.head_object(Bucket=bucket.name, Key=dump_key)
    manifest_head = client.head_object(Bucket=bucket.name, Key=dump_key.replace(".sql.gz", ".manifest.json"))
    assert dump_head["ServerSideEncryption"] == "AES256" and dump_head["StorageClass"] == "STANDARD_IA"
    assert dump_head["ContentType"] == "application/gzip"
    assert manifest_head["ServerSideEncryption"] == "AES256" and "StorageClass" not in manifest_head
