"""A stop request is bounded on every path, starts no write, and is always said once: a
SIGTERM while a manifest PUT and a completion stall at the store (the fault proxy holds them),
during Python's start-up, and after the run's summary."""

from __future__ import annotations

import json
import os
import re
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
from devenv.receiver import Receiver
from devenv.wait import wait_for

from ..kit.helpers import Bucket, job_env

MARGIN = 1.5  # seconds on top of the bound: the process's own exit, a loaded machine
WRITES = ("PUT", "POST")  # every S3 write: PutObject, UploadPart, CreateMultipartUpload, CompleteMultipartUpload


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


class Started:
    """``pgbackup run`` in the background, its stdout lines collected as they come."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backup_job", "run"], env=env, cwd=cwd, stdout=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(self.proc.stdout),  # type: ignore[arg-type]
            daemon=True,
        )
        self.reader.start()

    def terminate(self) -> tuple[int, float, int]:
        """SIGTERM it: (exit code, seconds from the signal to the exit, lines seen before the signal)."""
        before = len(self.lines)
        signalled = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=40)
        finally:
            self.proc.kill()
        took = time.monotonic() - signalled
        self.reader.join(timeout=10)
        return code, took, before

    def stopped_line(self) -> str:
        """The one line saying the run was stopped."""
        stopped = [line for line in self.lines if "stopped by SIGTERM" in line]
        assert len(stopped) == 1, "".join(self.lines)
        return stopped[0]


def assert_stopped_in_bound(
    run: Started, proxy: FaultProxy, code: int, took: float, before: int, writes_before: int
) -> None:
    """Exit 1 within the bound, no backup said finished after the signal, no write after it."""
    output = "".join(run.lines)
    assert code == 1, output
    assert took < BOUND + MARGIN, f"exited {took:.1f} s after SIGTERM, the bound is {BOUND:.0f} s"
    assert not any(" finished" in line for line in run.lines[before:]), output
    assert len([r for r in proxy.requests if r[0] in WRITES]) == writes_before, "no write started after the stop"


def _termination(path: Path) -> dict[str, object]:
    document = json.loads(path.read_text())
    assert isinstance(document, dict)
    return document


def test_sigterm_leaves_stalled_writes_behind_within_the_bound_and_writes_nothing_after(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str, tmp_path: Path
) -> None:
    """The globals' completion and a database's manifest PUT stall at the store, in parallel."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    completion = proxy.add(Fault("POST", r"/_globals/.*\?uploadId=", "stall", times=None, seconds=300, forward=False))
    manifest = proxy.add(
        Fault("PUT", rf"/{dbname}/.*\.manifest\.json", "stall", times=None, seconds=300, forward=False)
    )
    termination_log = tmp_path / "termination-log"
    env = {
        **bucket.proxied_env(pg18, bindir18, "stop", proxy, dbname),
        "BACKUP_GLOBALS": "true",
        "BACKUP_PARALLEL_DATABASES": "2",
        "BACKUP_TERMINATION_LOG": str(termination_log),
    }
    run = Started(env, tmp_path)
    try:
        wait_for(lambda: completion.hits and manifest.hits, timeout=60, what="the completion and the manifest PUT held")
        writes_before = len([r for r in proxy.requests if r[0] in WRITES])
    finally:
        code, took, before = run.terminate()

    assert_stopped_in_bound(run, proxy, code, took, before, writes_before)
    kept = bucket.keys("stop/")  # the database's dump, completed before its manifest stalled: a leftover, no backup
    assert [key.split("/")[1] for key in kept] == [dbname] and kept[0].endswith(".sql.gz"), kept
    line = run.stopped_line()
    timestamp = re.search(r"run (\d{8}T\d{6}Z) stopped by SIGTERM: 2 of 2 not stored", line)
    assert timestamp, line
    assert "'(globals)'" in line and f"'{dbname}' (its manifest was on its way" in line, line
    assert "stored before the stop: none" in line, line
    document = _termination(termination_log)
    assert document["ok"] is False and document["timestamp"] == timestamp.group(1)
    assert "stopped by SIGTERM" in str(document["summary"]) and document["failed"] == ["(globals)", dbname]


def _catches(pid: int, number: int) -> bool:
    """Whether process ``pid`` has a handler for signal ``number`` (``SigCgt`` in its status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (number - 1) & 1)


def test_sigterm_during_start_up_is_said_once(pg18: Cluster, bindir18: Path, tmp_path: Path) -> None:
    """SIGTERM while pgbackup's modules are still being imported (they take most of a second)."""
    termination_log = tmp_path / "termination-log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(job_env(pg18, f"file://{tmp_path}/backups", bindir18, BACKUP_TERMINATION_LOG=str(termination_log)))
    run = Started(env, tmp_path)
    # The interpreter is up once it has its own SIGINT handler; from there the moment is the point.
    wait_for(lambda: _catches(run.proc.pid, signal.SIGINT), timeout=30, interval=0.005, what="Python started")
    time.sleep(0.1)
    code, took, _ = run.terminate()

    assert code == 1, "".join(run.lines)
    assert re.search(r"run \d{8}T\d{6}Z stopped by SIGTERM", run.stopped_line())
    assert took < BOUND + MARGIN
    document = _termination(termination_log)
    assert document["ok"] is False and "stopped by SIGTERM" in str(document["summary"])


def test_sigterm_after_the_summary_is_said_once(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    termination_log = tmp_path / "termination-log"
    with Receiver("stall") as gateway:  # the metrics push after the summary waits: the SIGTERM lands there
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
        env.update(
            job_env(
                pg18,
                f"file://{tmp_path}/backups",
                bindir18,
                BACKUP_DATABASES=dbname,
                BACKUP_GLOBALS="false",
                BACKUP_TERMINATION_LOG=str(termination_log),
                BACKUP_METRICS_PUSHGATEWAY_URL=gateway.url,
                BACKUP_NOTIFY_TIMEOUT="6s",
            )
        )
        run = Started(env, tmp_path)
        try:
            wait_for(lambda: any("1 ok, 0 failed" in line for line in list(run.lines)), timeout=60, what="the summary")
        finally:
            code, took, _ = run.terminate()

    assert code == 1, "".join(run.lines)
    line = run.stopped_line()
    assert re.search(
        rf"run \d{{8}}T\d{{6}}Z stopped by SIGTERM: 0 of 1 not stored; stored before the stop: '{dbname}'", line
    ), line
    assert took < BOUND + MARGIN
    document = _termination(termination_log)
    assert document["ok"] is False and "stopped by SIGTERM" in str(document["summary"])


def test_sigterms_while_the_run_exits_are_said_once_never_a_traceback_or_death_by_signal(
    pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str
) -> None:
    """SIGTERM after SIGTERM from the summary on, through the interpreter's shutdown: one may
    land in a finalizer, or after Python restored the default action (exit -15, no line).
    Either it is said once (exit 1), or it came after pgbackup's last look and the run leaves
    with its own outcome (exit 0); never death by signal, never a traceback."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    termination_log = tmp_path / "termination-log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(
        job_env(
            pg18,
            f"file://{tmp_path}/backups",
            bindir18,
            BACKUP_DATABASES=dbname,
            BACKUP_GLOBALS="false",
            BACKUP_TERMINATION_LOG=str(termination_log),
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "backup_job", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True),  # type: ignore[arg-type]
        threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True),
    ]  # type: ignore[arg-type]
    for reader in readers:
        reader.start()
    try:
        wait_for(
            lambda: any("1 ok, 0 failed" in line for line in list(lines)),
            timeout=60,
            interval=0.002,
            what="the summary",
        )
        while proc.poll() is None:  # a barrage until it is gone: some land as it shuts down
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.002)
    finally:
        proc.kill()
        code = proc.wait(timeout=40)
    for reader in readers:
        reader.join(timeout=10)

    output = "".join(lines) + "".join(errors)
    assert "Traceback" not in output and "Exception ignored" not in output, output
    stopped = [line for line in lines if "stopped by SIGTERM" in line]
    document = _termination(termination_log)
    if code == 0:  # every signal came after the last look: the process was already leaving with its outcome
        assert not stopped and document["ok"] is True, output
    else:
        assert code == 1 and len(stopped) == 1, output
        assert document["ok"] is False and "stopped by SIGTERM" in str(document["summary"])
