"""A run stopped mid-upload (SIGTERM, as Kubernetes and compose send) leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import Bucket, fake_pg_dump


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def stalling_pg_dump(directory: Path, real_bindir: Path, after_bytes: int) -> Path:
    """A pg_dump that streams ``after_bytes`` of the real dump, then stalls for a long time."""
    return fake_pg_dump(directory, real_bindir, f'"$REAL" "$@" | {{ head -c {after_bytes}; sleep 600; }}')


def started_run(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], list[str], threading.Thread]:
    """``pgbackup run`` in the background; its stdout lines are collected as they come."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "backup_job", "run"], env=env, stdout=subprocess.PIPE, text=True, cwd=cwd
    )
    seen: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    return proc, seen, reader


def test_sigterm_mid_upload_aborts_and_reports(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        "CREATE TABLE t AS SELECT g, md5(g::text) || md5(random()::text) AS f FROM generate_series(1, 300000) g", dbname
    )
    bindir = stalling_pg_dump(tmp_path / "bin", bindir18, after_bytes=15_000_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(
        bucket.job_env(
            pg18,
            bindir,
            "t",
            BACKUP_DATABASES=dbname,
            BACKUP_PART_SIZE_MB="5",
            BACKUP_PROGRESS_INTERVAL="1",
            BACKUP_GLOBALS="false",
        )
    )
    proc, seen, reader = started_run(env, tmp_path)

    def progressed() -> bool:
        return any("in progress" in line for line in list(seen)) and bucket.open_uploads() != []

    def uploading() -> None:
        wait_for(progressed, timeout=60, what="a progress line and an open multipart upload")
        [wrapper] = [p for p in _processes() if p.cmdline[1:2] == [f"{bindir}/pg_dump"] and p.pid == p.session]
        real = [p for p in _in_session(wrapper.pid) if p.cmdline[:1] == [f"{bindir18}/pg_dump"]]
        assert real, "the real pg_dump runs in the wrapper's session while the upload is open"

    code, survivors = terminate_when(uploading, proc, bindir)
    assert_stopped_cleanly(code, survivors, reader, seen, bucket)


def terminate_when(ready: Callable[[], None], proc: subprocess.Popen[str], bindir: Path) -> tuple[int, list[list[str]]]:
    """SIGTERM the run once ``ready`` returns; its exit code and the pg_dump processes that
    outlived it (killed now, so a failed test never leaves one holding the shared server)."""
    try:
        ready()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
        survivors = _stop_leftovers(bindir)
    return code, survivors


def assert_stopped_cleanly(
    code: int, survivors: list[list[str]], reader: threading.Thread, seen: list[str], bucket: Bucket
) -> None:
    """Exit 1 saying SIGTERM, every pg_dump and its children gone, stdout closed, and
    nothing left in the bucket: no object, no open upload."""
    assert survivors == [], "pg_dump and everything it started must be stopped too"
    reader.join(timeout=10)
    assert not reader.is_alive(), "pgbackup's stdout closed when it exited"
    output = "".join(seen)
    assert code == 1, output
    assert "stopped by SIGTERM" in output
    assert bucket.keys() == [] and bucket.open_uploads() == []


class _Proc:
    def __init__(self, pid: int, cmdline: list[str], state: str, session: int) -> None:
        self.pid = pid
        self.cmdline = cmdline
        self.state = state
        self.session = session


def _processes() -> list[_Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
            found.append(
                _Proc(
                    int(entry.name),
                    [part.decode(errors="replace") for part in raw.split(b"\0") if part],
                    fields[0],
                    int(fields[3]),
                )
            )
    return found


def _in_session(leader: int) -> list[_Proc]:
    """The processes of the session ``leader`` started (pgbackup starts pg_dump as one)."""
    return [p for p in _processes() if p.session == leader]


def _leftovers(bindir: Path) -> list[_Proc]:
    """Live processes of any session a ``bindir`` pg_dump wrapper started (pg_dump, head, sleep),
    found through any of its processes: the wrapper, or a subshell of it that outlived it."""
    processes = _processes()
    sessions = {p.session for p in processes if p.cmdline[1:2] == [f"{bindir}/pg_dump"] and p.state != "Z"}
    return [p for p in processes if p.session in sessions and p.state != "Z"]


def _stop_leftovers(bindir: Path) -> list[list[str]]:
    """Wait up to 10 s for the wrapper's session to end; SIGKILL what is left (a failed run must
    never leave a pg_dump holding the shared server) and return their command lines."""
    try:
        wait_for(lambda: not _leftovers(bindir), timeout=10, what="pg_dump and everything it started to stop")
    except TimeoutError:
        pass
    left = _leftovers(bindir)
    for process in left:
        os.kill(process.pid, signal.SIGKILL)
    return [process.cmdline for process in left]
