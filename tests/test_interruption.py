"""A run stopped mid-upload (SIGTERM, as Kubernetes and compose send) leaves nothing behind."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from devenv.postgres import Cluster
from devenv.wait import wait_for

from .helpers import Bucket, fake_pg_dump


def stalling_pg_dump(directory: Path, real_bindir: Path, after_bytes: int) -> Path:
    """A pg_dump that streams ``after_bytes`` of the real dump, then stalls for a long time."""
    return fake_pg_dump(directory, real_bindir, f'"$REAL" "$@" | {{ head -c {after_bytes}; sleep 600; }}')


def test_sigterm_mid_upload_aborts_and_reports(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) || md5(random()::text) AS f FROM generate_series(1, 300000) g", dbname)
    bindir = stalling_pg_dump(tmp_path / "bin", bindir18, after_bytes=15_000_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    env.update(bucket.job_env(pg18, bindir, "t", BACKUP_DATABASES=dbname, BACKUP_PART_SIZE_MB="5",
                              BACKUP_PROGRESS_INTERVAL="1", BACKUP_GLOBALS="false"))
    proc = subprocess.Popen([sys.executable, "-m", "backup_job", "run"], env=env,
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def progressed() -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any("in progress" in line for line in seen) and bucket.open_uploads() != []

    try:
        wait_for(progressed, timeout=60, what="a progress line and an open multipart upload")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    wait_for(lambda: lines.empty() or seen.append(lines.get()), timeout=5)  # type: ignore[func-returns-value]
    output = "".join(seen)
    assert code == 1, output
    assert "stopped by SIGTERM" in output
    assert bucket.keys() == [] and bucket.open_uploads() == []
    assert not any(f"{bindir}/pg_dump" in " ".join(p.cmdline) for p in _processes()), "pg_dump must be stopped too"


class _Proc:
    def __init__(self, cmdline: list[str]) -> None:
        self.cmdline = cmdline


def _processes() -> list[_Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            found.append(_Proc([part.decode(errors="replace") for part in raw.split(b"\0") if part]))
    return found
