"""What the split backup tests share: a run watched while it works, an answer held back by the
fault proxy until the test lets it go, and the reading sessions seen from PostgreSQL's side.

A split backup of a small database is over in a fraction of a second, too fast to act on
from outside. Holding the answer to one object's CreateMultipartUpload stops that object's
stream where the test wants it (the COPY behind it fills its queue and waits, still
``active`` on the server), for exactly as long as the test needs, with no sleep and no
table large enough to be slow on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.wait import wait_for

from .helpers import _SCRUB_PREFIXES, ROOT

SNAPSHOT_LINE = re.compile(r"split backup of '([^']+)' reads snapshot (\S+)")


class Watched:
    """``pgbackup run`` in the background, its stdout lines collected as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
        clean.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backup_job", *(args or ("run",))],
            env=clean,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT / "tests",
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def snapshot(self, timeout: float = 60) -> str:
        """The snapshot the run's leader exported, from its INFO line."""
        found: list[str] = []

        def logged() -> bool:
            found.extend(m.group(2) for line in list(self.lines) if (m := SNAPSHOT_LINE.search(line)))
            return bool(found) or self.proc.poll() is not None

        wait_for(logged, timeout=timeout, what="the split backup's snapshot line")
        assert found, "".join(self.lines)
        return found[0]

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


@contextmanager
def held_answer(proxy: FaultProxy, method: str, path: str, limit: float = 90) -> Iterator[threading.Event]:
    """The first request matching ``path`` reaches the store, and its answer waits until the
    event is set (at most ``limit`` seconds); set on the way out, whatever happened."""
    release = threading.Event()

    def hold(body: bytes) -> bytes:
        release.wait(limit)
        return body

    fault = proxy.add(Fault(method, path, "rewrite", rewrite=hold))
    try:
        yield release
    finally:
        release.set()
    assert fault.hits, f"no {method} request matched {path}"


def object_start(name: str) -> str:
    """The proxy path of the CreateMultipartUpload of the split member ``name`` (e.g. ``data-000001``)."""
    return rf"\.split/{re.escape(name)}\.[a-z.]+\?uploads"


def copying(cluster: Cluster, database: str, table: str) -> list[int]:
    """The backends of ``database`` running the COPY of ``table`` right now."""
    rows = cluster.sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'pgbackup'"
        " AND state = 'active' AND query LIKE 'COPY%%' AND query LIKE %s",
        "postgres",
        params=(database, f"%{table}%"),
    )
    return [int(row[0]) for row in rows]
