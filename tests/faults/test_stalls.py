"""A stalled request never hangs a run: every network wait is bounded and configurable, the
per-database timeout covers the upload, SIGTERM ends a run in seconds whatever a request is
doing, and progress lines say what a stalled backup is waiting on. Stalls are injected by a
real HTTP proxy in front of the S3 server."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backup_job.core.stopping import BOUND
from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import Bucket, fake_tool, run_pgbackup, wait_for_next_second

PARTS = r"\?.*partNumber="


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def _env(bucket: Bucket, pg: Cluster, bindir: Path, proxy: FaultProxy, dbname: str, **extra: str) -> dict[str, str]:
    return bucket.proxied_env(pg, bindir, "st", proxy, dbname, BACKUP_PROGRESS_INTERVAL="1", **extra)


def test_the_database_timeout_covers_a_stalled_upload(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    stall = proxy.add(Fault("PUT", PARTS, "stall", times=None, seconds=300, forward=False))
    started = time.monotonic()

    result = run_pgbackup(_env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DATABASE_TIMEOUT="4s"), timeout=60)

    assert stall.hits and result.returncode == 1
    assert time.monotonic() - started < 4 + 20, "stopped at the timeout, not when the request gave up"
    assert "exceeded BACKUP_DATABASE_TIMEOUT (4 s) while waiting on storage" in result.stdout
    assert "stalled: no byte has moved" in result.stdout and "waiting on storage" in result.stdout
    assert bucket.keys("st/") == [] and bucket.open_uploads() == []


def test_sigterm_ends_a_run_in_seconds_whatever_a_request_is_doing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    proxy.add(Fault("PUT", PARTS, "stall", times=None, seconds=300, forward=False))
    proc = subprocess.Popen(
        [sys.executable, "-m", "backup_job", "run"],
        env=_env(bucket, pg18, bindir18, proxy, dbname),
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: any("stalled" in line for line in list(seen)), timeout=60, what="a stalled upload")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
    reader.join(timeout=10)
    assert code == 1 and took < BOUND + 1.5, f"exit {code} after {took:.1f} s, the bound is {BOUND:.0f} s"
    assert "stopped by SIGTERM" in "".join(seen)
    assert bucket.keys("st/") == []


def test_read_timeout_and_attempts_are_the_users(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    requests = {}
    for attempts in (1, 3):
        stall = proxy.add(Fault("PUT", PARTS, "stall", times=None, seconds=300, forward=False))
        started = time.monotonic()
        result = run_pgbackup(
            _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_S3_READ_TIMEOUT="3s", AWS_MAX_ATTEMPTS=str(attempts)),
            timeout=60,
        )
        assert result.returncode == 1 and time.monotonic() - started < 40
        [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
        assert "UploadPart" in failed and "timeout" in failed.lower(), failed
        requests[attempts] = len(stall.hits)
        proxy.faults.remove(stall)
        wait_for_next_second()
    assert requests == {1: 1, 3: 3}, f"AWS_MAX_ATTEMPTS counts every request, the first included: {requests}"
    assert bucket.keys("st/") == []


def test_a_stall_on_the_database_side_is_named_as_such(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 50000) g", dbname)
    slow = fake_tool(
        tmp_path / "bin", bindir18, "pg_dump", 'set -o pipefail\n"$REAL" "$@" | { head -c 100000; sleep 6; cat; }'
    )

    result = run_pgbackup(_env(bucket, pg18, slow, proxy, dbname), timeout=60)

    assert result.returncode == 0, result.stdout
    assert any(
        "stalled: no byte has moved" in line and "waiting on the database" in line
        for line in result.stdout.splitlines()
    ), result.stdout
