"""pg_dump as a child process: the source end of the pipeline.

``PgDump`` starts ``pg_dump --format=plain`` for one database and hands its stdout out in
chunks. Design points:

- The database is chosen through ``PGDATABASE`` in the child's environment, never argv, so
  a name containing ``=`` is not mistaken for a connection string; the password reaches
  pg_dump the same way (or through libpq's ``PGPASSFILE``). argv holds no secret. The
  authentication policy (``core.pgauth``) goes with it: no password in cleartext or md5.
- like every client program (``process``), it runs in its own session with stderr drained,
  so a failure is reported with pg_dump's own first error line.
- ``finish`` decides success: exit status 0 and at least one byte of output. A killed,
  timed-out or empty dump raises ``DumpError`` naming the cause.
- A watchdog kills pg_dump when the per-database timeout passes; ``--lock-wait-timeout``
  makes pg_dump itself give up instead of queueing behind DDL.

``pg_dumpall --globals-only`` (roles, memberships, tablespaces) runs through the same class
with its own argv (``globals_argv``): the pipeline does not care which program writes SQL.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from ..core import pgauth, signals
from ..core.errors import DumpError
from ..core.settings import DATABASE_TIMEOUT, LOCK_WAIT_TIMEOUT, PG_DUMP_OPTIONS, PGAPPNAME, PGDATABASE
from .process import ChildProcess, environment, libpq_environment, signal_name

CHUNK_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024  # /proc/sys/fs/pipe-max-size is 1 MiB by default for unprivileged processes
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux


def pg_dump_argv(executable: str, lock_wait_timeout: int, extra: Sequence[str]) -> list[str]:
    """pg_dump's command line. ``--use-set-session-authorization``: the dump sets each object's
    owner as the session user before creating it and loading its data, so a restore runs an
    owner's functions (CHECK constraints, defaults, index expressions) with that owner's rights,
    never with the restoring superuser's."""
    argv = [executable, "--format=plain", "--no-password", "--use-set-session-authorization"]
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


def _last_error(errors: Sequence[str], lines: Sequence[str]) -> str:
    """The program's most telling stderr line, trimmed to one line, with the server's own
    reason when pg_dump only reports that its connection failed (``PQgetCopyData() failed``
    when the backend was terminated or the database dropped)."""
    chosen = errors[0] if errors else (lines[-1] if lines else "")
    chosen = re.sub(r"^pg_dump(all)?: (error: )?", "", chosen.strip())
    start = next((i for i, line in enumerate(lines) if "Error message from server:" in line), None)
    server = ""
    if start is not None:  # the detail, and the indented lines that continue it
        parts = [lines[start].split("Error message from server:", 1)[1]]
        parts += [line for line in lines[start + 1 :] if line[:1].isspace()][:3]
        server = " ".join(" ".join(parts).split())
    if server and server not in chosen:
        chosen = f"{chosen} (the server said: {server})"
    return chosen[:500]


def widen_pipe(fd: int) -> None:
    """Give pg_dump a 1 MiB pipe instead of Linux's 64 KiB, where the system allows it: pg_dump
    keeps writing while the reader is busy for a moment, and each read returns more (fewer
    passes through the loop per byte). Only a tuning: refused or unsupported changes nothing."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


class PgDump(ChildProcess):
    """One running ``pg_dump`` of one database (or, given ``argv``, ``pg_dumpall``)."""

    ERROR_LINE = re.compile(r"error:|FATAL|ERROR")
    failure = DumpError

    def __init__(
        self,
        executable: str,
        database: str,
        *,
        lock_wait_timeout: int,
        extra_options: Sequence[str],
        timeout: int = 0,
        argv: list[str] | None = None,
        script: bytes | None = None,
    ) -> None:
        self.database = database
        self.program = Path(argv[0]).name if argv else "pg_dump"
        self.timeout = timeout
        self.lock_wait_timeout = lock_wait_timeout
        self.timed_out = False
        env = environment(pgauth.secured(libpq_environment(), os.environ))
        env[PGDATABASE.name] = database
        env.setdefault(PGAPPNAME.name, "pgbackup")
        super().__init__(
            argv or pg_dump_argv(executable, lock_wait_timeout, extra_options),
            env,
            stdin=subprocess.DEVNULL if script is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if script is not None:  # the SQL a psql runs (``snapshot.CopyOut``): small, read before any output
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(script)
                self.process.stdin.close()
            except BrokenPipeError:
                pass  # it ended already: ``finish`` reports why
        assert self.process.stdout is not None
        self._stdout: IO[bytes] = self.process.stdout
        widen_pipe(self._stdout.fileno())
        self._watchdog: threading.Timer | None = None
        if timeout:
            self._watchdog = threading.Timer(timeout, self._on_timeout)
            self._watchdog.daemon = True
            signals.start(self._watchdog)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self.kill()

    def chunks(self) -> Iterator[bytes]:
        """pg_dump's stdout in chunks of ``CHUNK_SIZE`` bytes (the last one shorter), until it
        closes.

        A pipe read returns whatever pg_dump has written so far, often a few KiB when the
        reader keeps up. Every chunk costs the byte path a pass through Python (sidecar,
        compressor, parts), so the reads are gathered into one buffer until it is full: one
        copy per byte instead of dozens of passes per MiB."""
        fd = self._stdout.fileno()  # read unbuffered: nothing else reads this pipe
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        ended = False
        while not ended:
            filled = 0
            while filled < CHUNK_SIZE:
                count = os.readv(fd, [view[filled:]])
                if not count:
                    ended = True
                    break
                filled += count
            if filled:
                yield bytes(view[:filled])

    def close(self) -> int:
        """Wait for pg_dump to end and release its pipes; returns the exit status."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._stdout.close()
        return self.wait()

    def finish(self, produced: int) -> None:
        """Raise ``DumpError`` unless pg_dump exited 0 having produced output."""
        code = self.close()
        if self.timed_out:
            raise DumpError(
                f"{self.program} exceeded {DATABASE_TIMEOUT.name} ({self.timeout} s) and was stopped",
                hint=f"raise {DATABASE_TIMEOUT.name} or exclude large tables' data with {PG_DUMP_OPTIONS.name}",
            )
        if code < 0:
            raise DumpError(f"{self.program} was killed by signal {-code} ({signal_name(-code)})")
        if code != 0:
            detail = _last_error(list(self.errors), list(self.tail))
            hint = None
            if "statement timeout" in detail and self.lock_wait_timeout:
                hint = (
                    f"a table lock was not granted within {LOCK_WAIT_TIMEOUT.name} "
                    f"({self.lock_wait_timeout} s): another session holds an exclusive lock "
                    f"(DDL, VACUUM FULL); retry later or raise the timeout"
                )
            raise DumpError(f"{self.program} failed (exit {code}): {detail or 'no message'}", hint=hint)
        if produced == 0:
            raise DumpError(f"{self.program} exited 0 but produced no output")
