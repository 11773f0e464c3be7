"""pg_dump as a child process: the source end of the pipeline.

``PgDump`` starts ``pg_dump --format=plain`` for one database and hands its stdout out in
chunks. Design points:

- The database is chosen through ``PGDATABASE`` in the child's environment, never argv, so
  a name containing ``=`` is not mistaken for a connection string; the password reaches
  pg_dump the same way (or through libpq's ``PGPASSFILE``). argv holds no secret.
- stderr is drained by a thread into a bounded tail, so a chatty pg_dump cannot block on a
  full pipe, and a failure is reported with pg_dump's own last error line.
- ``finish`` decides success: exit status 0 and at least one byte of output. A killed,
  timed-out or empty dump raises ``DumpError`` naming the cause.
- A watchdog kills pg_dump when ``BACKUP_DATABASE_TIMEOUT`` passes; ``--lock-wait-timeout``
  makes pg_dump itself give up instead of queueing behind DDL.

``pg_dumpall --globals-only`` (roles, memberships, tablespaces) runs through the same class
with its own argv (``globals_argv``): the pipeline does not care which program writes SQL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from . import signals
from .errors import DumpError, RunError

CHUNK_SIZE = 1024 * 1024
_STDERR_TAIL_LINES = 20


def find_tool(name: str, bindir: Path | None) -> str:
    """The path of a PostgreSQL client program, from ``BACKUP_PG_BINDIR`` or ``PATH``."""
    if bindir is not None:
        if not (bindir / name).is_file():
            hint = "set BACKUP_GLOBALS=false to skip the roles" if name == "pg_dumpall" else None
            raise RunError(f"BACKUP_PG_BINDIR={str(bindir)!r} holds no {name}", hint=hint)
        return str(bindir / name)
    found = shutil.which(name)
    if found is None:
        raise RunError(
            f"{name} was not found on PATH",
            hint="install the PostgreSQL client tools (the pgbackup image ships them) "
            "or set BACKUP_PG_BINDIR to the directory that holds them",
        )
    return found


def tool_version(path: str) -> str:
    """``18.1`` from ``pg_dump (PostgreSQL) 18.1 (Debian ...)``."""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RunError(f"cannot run {path} --version: {exc}") from exc
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", out)
    if not match:
        raise RunError(f"cannot read the version of {path} from {out.strip()!r}")
    return match.group(1) + (f".{match.group(2)}" if match.group(2) else "")


def major(version: str) -> int:
    return int(version.split(".")[0])


def pg_dump_argv(executable: str, lock_wait_timeout: int, extra: Sequence[str]) -> list[str]:
    argv = [executable, "--format=plain", "--no-password"]
    if lock_wait_timeout:
        argv.append(f"--lock-wait-timeout={lock_wait_timeout * 1000}")
    argv.extend(extra)
    return argv


def globals_argv(executable: str, maintenance_database: str, role_passwords: bool) -> list[str]:
    """``pg_dumpall --globals-only``; without role passwords for managed services that hide
    ``pg_authid``."""
    argv = [executable, "--globals-only", "--no-password", f"--database={maintenance_database}"]
    if not role_passwords:
        argv.append("--no-role-passwords")
    return argv


def _last_error(lines: Sequence[str]) -> str:
    """The program's most telling stderr line, trimmed to one line."""
    errors = [line for line in lines if "error:" in line or "FATAL" in line or "ERROR" in line]
    chosen = errors[0] if errors else (lines[-1] if lines else "")
    chosen = re.sub(r"^pg_dump(all)?: (error: )?", "", chosen.strip())
    return chosen[:500]


class PgDump:
    """One running ``pg_dump`` of one database (or, given ``argv``, ``pg_dumpall``)."""

    def __init__(
        self,
        executable: str,
        database: str,
        *,
        lock_wait_timeout: int,
        extra_options: Sequence[str],
        timeout: int = 0,
        argv: list[str] | None = None,
    ) -> None:
        self.database = database
        self.program = Path(argv[0]).name if argv else "pg_dump"
        self.timeout = timeout
        self.lock_wait_timeout = lock_wait_timeout
        self.timed_out = False
        env = dict(os.environ)
        env["PGDATABASE"] = database
        env.setdefault("PGAPPNAME", "pgbackup")
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._error_lines: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        try:
            self._proc = subprocess.Popen(
                argv or pg_dump_argv(executable, lock_wait_timeout, extra_options),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise DumpError(f"cannot start {executable}: {exc.strerror}") from exc
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._stdout: IO[bytes] = self._proc.stdout
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, args=(self._proc.stderr,), daemon=True
        )
        signals.start(self._stderr_thread)
        self._watchdog: threading.Timer | None = None
        if timeout:
            self._watchdog = threading.Timer(timeout, self._on_timeout)
            self._watchdog.daemon = True
            signals.start(self._watchdog)

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._stderr_tail.append(line)
            if "error:" in line or "FATAL" in line or "ERROR" in line:
                self._error_lines.append(line)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self.kill()

    def chunks(self) -> Iterator[bytes]:
        """pg_dump's stdout, up to ``CHUNK_SIZE`` bytes at a time, until it closes."""
        read = self._stdout.read1 if hasattr(self._stdout, "read1") else self._stdout.read
        while True:
            chunk = read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk

    def kill(self) -> None:
        """Stop pg_dump now (used on timeout and when the upload side fails)."""
        kill_group(self._proc)

    def close(self) -> int:
        """Wait for pg_dump to end and release its pipes; returns the exit status."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._stdout.close()
        code = self._proc.wait()
        self._stderr_thread.join(timeout=10)
        return code

    def finish(self, produced: int) -> None:
        """Raise ``DumpError`` unless pg_dump exited 0 having produced output."""
        code = self.close()
        if self.timed_out:
            raise DumpError(
                f"{self.program} exceeded BACKUP_DATABASE_TIMEOUT ({self.timeout} s) and was stopped",
                hint="raise BACKUP_DATABASE_TIMEOUT or exclude large tables' data "
                "with BACKUP_PG_DUMP_OPTIONS",
            )
        if code < 0:
            raise DumpError(f"{self.program} was killed by signal {-code} ({_signal_name(-code)})")
        if code != 0:
            detail = _last_error(list(self._error_lines) or list(self._stderr_tail))
            hint = None
            if "statement timeout" in detail and self.lock_wait_timeout:
                hint = (
                    f"a table lock was not granted within BACKUP_LOCK_WAIT_TIMEOUT "
                    f"({self.lock_wait_timeout} s): another session holds an exclusive lock "
                    f"(DDL, VACUUM FULL); retry later or raise the timeout"
                )
            raise DumpError(f"{self.program} failed (exit {code}): {detail or 'no message'}", hint=hint)
        if produced == 0:
            raise DumpError(f"{self.program} exited 0 but produced no output")

    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child started with ``start_new_session`` and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"
