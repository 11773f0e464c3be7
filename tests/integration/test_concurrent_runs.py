"""Runs against one destination never harm each other: a run started by hand while another
is uploading leaves that upload alone, and of two runs writing the same key the second fails
that database and deletes nothing. Real PostgreSQL, a real S3 server, the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.s3 import S3Server
from devenv.wait import wait_for

from ..kit.helpers import Bucket, fake_tool, manifest, run_pgbackup, table_locked, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def test_a_manual_run_leaves_a_running_upload_alone(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        "CREATE TABLE t AS SELECT g, md5(g::text) || md5(g::text || 'x') AS f FROM generate_series(1, 400000) g", dbname
    )
    flag = tmp_path / "go-on"
    # The scheduled run's pg_dump pauses after 24 MB (a 5 MiB part is uploaded) until the manual run is done.
    paused = fake_tool(
        tmp_path / "bin",
        bindir18,
        "pg_dump",
        f'set -o pipefail\n"$REAL" "$@" | {{ head -c 24000000; for i in $(seq 12000); do '
        f'[ -f "{flag}" ] && break; sleep 0.05; done; cat; }}',
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(
        bucket.job_env(
            pg18,
            paused,
            "both",
            BACKUP_DATABASES=dbname,
            BACKUP_GLOBALS="false",
            BACKUP_PART_SIZE_MB="5",
            BACKUP_COMPRESSION_LEVEL="1",
        )
    )
    scheduled = subprocess.Popen(
        [sys.executable, "-m", "backup_job", "run"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:

        def uploading() -> bool:
            client = bucket.server.client()
            for upload in client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []):
                parts = client.list_parts(Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"])
                if parts.get("Parts"):
                    return True
            return False

        wait_for(uploading, timeout=60, what="the scheduled run uploading its first part")
        wait_for_next_second()
        manual = run_pgbackup({**env, "BACKUP_PG_BINDIR": str(bindir18)})
        assert manual.returncode == 0, manual.stdout
        assert len(bucket.open_uploads()) == 1, "the scheduled run's upload is still open"
        flag.touch()
        output, _ = scheduled.communicate(timeout=120)
    finally:
        flag.touch()
        scheduled.kill()
    assert scheduled.returncode == 0, output
    manifests = [k for k in bucket.keys(f"both/{dbname}/") if k.endswith(".manifest.json")]
    assert len(manifests) == 2, "both runs made a complete backup"
    assert bucket.open_uploads() == []


def blocked_run(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> subprocess.Popen[str]:
    """A run of ``dbname`` (whose table ``t`` the caller keeps locked) under ``lock/``, once its
    upload is open: pg_dump waits on the lock, so not one part is sent yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(
        bucket.job_env(
            pg18,
            bindir18,
            "lock",
            BACKUP_DATABASES=dbname,
            BACKUP_GLOBALS="false",
            BACKUP_LOCK_WAIT_TIMEOUT="0",
            AWS_MAX_ATTEMPTS="1",
        )
    )
    waiting = subprocess.Popen([sys.executable, "-m", "backup_job", "run"], env=env, stdout=subprocess.PIPE, text=True)
    wait_for(
        lambda: bucket.open_uploads() != [] or waiting.poll() is not None, timeout=30, what="the run's upload to open"
    )
    assert waiting.poll() is None, waiting.communicate()[0]
    return waiting


def test_a_manual_run_leaves_alone_an_upload_waiting_on_a_lock(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    """The scheduled run's pg_dump waits on a table lock: its upload is open, without parts. A
    run by hand with a short abandoned-upload age must not take it for a killed run's, not even
    on moto, whose server dates every upload 2010-11-10."""
    manual = f"{dbname}_by_hand"
    for name in (dbname, manual):
        pg18.sql(f"CREATE DATABASE {name}")
        pg18.sql("CREATE TABLE t AS SELECT 1 AS n", name)
    with table_locked(pg18, dbname, "t"):
        scheduled = blocked_run(pg18, bindir18, bucket, dbname)
        try:
            [waiting] = bucket.open_uploads()
            by_hand = run_pgbackup(
                bucket.job_env(
                    pg18,
                    bindir18,
                    "lock",
                    BACKUP_DATABASES=manual,
                    BACKUP_GLOBALS="false",
                    BACKUP_ABANDONED_UPLOAD_AGE="1m",
                )
            )
            assert by_hand.returncode == 0, by_hand.stdout
            assert bucket.open_uploads() == [waiting], by_hand.stdout
        except BaseException:
            scheduled.kill()
            raise
    output, _ = scheduled.communicate(timeout=60)
    assert scheduled.returncode == 0, output
    assert "aborted an unfinished upload" not in by_hand.stdout
    untrusted = [line for line in by_hand.stdout.splitlines() if "upload dates cannot be trusted" in line]
    assert len(untrusted) == (1 if isinstance(bucket.server, S3Server) else 0), by_hand.stdout  # moto's fixed date
    assert len([k for k in bucket.keys("lock/") if k.endswith(".manifest.json")]) == 2
    assert bucket.open_uploads() == [], "nor is the run's clock probe left behind"


def test_a_run_whose_upload_is_aborted_under_it_says_so(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    """Another process (a lifecycle rule, another run's clean-up) aborts the upload while pg_dump
    waits on a lock. The store then refuses the part (SeaweedFS: NoSuchUpload; moto: a bare 500)."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT 1 AS n", dbname)
    with table_locked(pg18, dbname, "t"):
        victim = blocked_run(pg18, bindir18, bucket, dbname)
        client = bucket.server.client()
        for upload in client.list_multipart_uploads(Bucket=bucket.name)["Uploads"]:
            client.abort_multipart_upload(Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"])
    output, _ = victim.communicate(timeout=60)

    assert victim.returncode == 1, output
    [failed] = [line for line in output.splitlines() if f"backup of '{dbname}' FAILED" in line]
    assert f"the unfinished upload of s3://{bucket.name}/lock/{dbname}/" in failed, failed
    assert "was aborted by another process while this run was writing it" in failed, failed
    assert "clean-up of unfinished uploads, or the bucket's lifecycle rule" in failed, failed
    assert bucket.keys("lock/") == []


def test_the_second_of_two_runs_on_one_key_fails_and_deletes_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """The other run completes the same key between our check and our completion (as two
    runs started in the same second do); the store's conditional write refuses ours."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    theirs = b"the other run's dump"

    class OtherRunFirst(Fault):
        def matches(self, method: str, path: str) -> bool:
            if super().matches(method, path):
                key = path.split(f"/{bucket.name}/", 1)[1].split("?", 1)[0]
                bucket.server.client().put_object(
                    Bucket=bucket.name, Key=key, Body=theirs, Metadata={"pgbackup-run-id": "the-other-run"}
                )
                return True
            return False

    race = proxy.add(OtherRunFirst("POST", rf"/race/{dbname}/.*\.sql\.gz\?uploadId=", "forward"))
    env = bucket.job_env(
        pg18, bindir18, "race", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false", BACKUP_S3_ADDRESSING_STYLE="path"
    )
    env["AWS_ENDPOINT_URL_S3"] = proxy.endpoint

    result = run_pgbackup(env)

    assert race.hits and result.returncode == 1
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert "was written by another run meanwhile" in failed, failed
    [key] = bucket.keys(f"race/{dbname}/")
    assert bucket.get(key) == theirs, "the other run's object is untouched, and no manifest of ours claims it"
    assert bucket.open_uploads() == [], "our own upload was aborted"


def test_manifests_carry_the_run_id_that_tags_the_dump(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    assert run_pgbackup(bucket.job_env(pg18, bindir18, "ids", BACKUP_DATABASES=dbname)).returncode == 0
    keys = bucket.keys("ids/")
    ids = {manifest(bucket.get(k))["run_id"] for k in keys if k.endswith(".manifest.json")}
    assert len(ids) == 1, "every object of one run carries the same id"
    for dump in (k for k in keys if k.endswith(".sql.gz")):
        head = bucket.server.client().head_object(Bucket=bucket.name, Key=dump)
        assert head["Metadata"]["pgbackup-run-id"] in ids


def test_two_runs_with_the_same_timestamp_leave_one_good_backup(
    pg18: Cluster, bindir18: Path, seaweed: object, dbname: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of one second, racing for real (two threads, one store). On SeaweedFS, whose
    conditional writes are atomic (moto's are not): one backup wins whole, the other run
    fails that database, and nothing is deleted or left open."""
    from datetime import datetime
    from threading import Thread

    from backup_job.commands.destination import open_destination
    from backup_job.commands.run import RunResult, run
    from backup_job.core.settings import load_settings
    from backup_job.pipeline.catalog import load_catalog
    from devenv.seaweed import SeaweedServer

    assert isinstance(seaweed, SeaweedServer)
    name = "race-" + dbname.replace("_", "-")
    seaweed.client().create_bucket(Bucket=name)
    race = Bucket(seaweed, name)
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 100000) g", dbname)
    for key, value in race.job_env(
        pg18,
        bindir18,
        "same",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_S3_ADDRESSING_STYLE="path",
        BACKUP_PART_SIZE_MB="5",
    ).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(dotenv_path=tmp_path / "none")
    moment = datetime.now(UTC)
    results: list[RunResult] = []
    runs = [Thread(target=lambda: results.append(run(settings, started=moment))) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)

    outcomes = sorted((r.results[0].ok, r.results[0].error) for r in results)
    assert [ok for ok, _ in outcomes] == [False, True], outcomes
    loser = outcomes[0][1]
    assert "written by another run meanwhile" in loser or "exists already" in loser, loser
    catalog = load_catalog(open_destination(settings), "same")
    [backup] = catalog.of(dbname)
    catalog.load_manifests([backup])
    assert backup.complete, backup.state()
    assert race.open_uploads() == []
