"""The child-process base of the PostgreSQL client programs pgbackup runs.

pg_dump, pg_dumpall and psql all run the same way:

- in a session of their own (``start_new_session``), so a stop request to pgbackup's process
  group reaches pgbackup alone, and ``kill`` takes the program and anything it started;
- with stderr drained by a thread (started with stop signals blocked, see
  ``core.signals``) into a bounded tail and a bounded list of error lines, so a chatty
  program never blocks on a full pipe and a failure is reported by the program's own words;
- with only the environment they need (``environment``): their connection variables, and
  from pgbackup's own environment only ``HOME`` (``~/.pgpass``, ``~/.postgresql/``),
  ``PATH``, the locale and the time zone. Nothing of the storage side (no ``AWS_*``) and none
  of pgbackup's settings reach them, and argv holds no secret.

Subclasses say which lines count as errors (``ERROR_LINE``) and add their own end of the
pipe: ``PgDump`` reads stdout, ``Psql`` writes stdin.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import IO

from ..core import signals
from ..core.errors import PgBackupError

TAIL_LINES = 20
ERROR_LINES = 50
PASSED_THROUGH = frozenset({"HOME", "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR"})


def environment(connection: Mapping[str, str]) -> dict[str, str]:
    """A child's whole environment: the pass-through variables of ours, then ``connection``."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH or k.startswith("LC_")}
    env.update(connection)
    return env


def libpq_environment() -> dict[str, str]:
    """libpq's own variables from our environment (``PG*``; pgbackup's ``PGBACKUP_*`` excluded)."""
    return {k: v for k, v in os.environ.items() if k.startswith("PG") and not k.startswith("PGBACKUP_")}


class ChildProcess:
    """One running client program with its stderr drained."""

    ERROR_LINE = re.compile(r"\b(ERROR|FATAL|PANIC):")
    failure: type[PgBackupError] = PgBackupError  # raised when the program cannot start

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, stdin: int | None, stdout: int | None) -> None:
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.errors: deque[str] = deque(maxlen=ERROR_LINES)
        self.error_count = 0
        try:
            self.process = subprocess.Popen(
                list(argv), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=dict(env), start_new_session=True
            )
        except OSError as exc:
            raise self.failure(f"cannot start {argv[0]}: {exc.strerror}") from exc
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True)
        signals.start(self._reader)

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.tail.append(line)
            if self.ERROR_LINE.search(line):
                self.error_count += 1
                self.errors.append(line)

    def kill(self) -> None:
        """Stop the program and everything it started, now."""
        kill_group(self.process)

    def wait(self) -> int:
        """Wait for the program to end and its stderr to be read; its exit status."""
        code = self.process.wait()
        self._reader.join(timeout=10)
        return code

    def said(self) -> str:
        """What the program said of its failure: its first error line, else its last line."""
        return next(iter(self.errors), "") or (self.tail[-1] if self.tail else "no message")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child started with ``start_new_session`` and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"
