"""psql as a child process: the sink end of a restore.

``Psql`` reads SQL from its stdin into one database. For a restore it runs with
``ON_ERROR_STOP`` inside ``BEGIN``: the first failing statement stops it, and nothing is
committed until the caller says ``commit`` (after the whole object matched its manifest).
``abort`` stops it without COMMIT, so the server rolls the transaction back. For the globals
it runs without a transaction and without ``ON_ERROR_STOP``, and the caller judges the
error lines it collected.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from typing import IO

from ..core.errors import RestoreError
from .process import ChildProcess


def error_line(line: str) -> str:
    """``psql:<stdin>:12: ERROR: ...`` as ``line 12: ERROR: ...``."""
    return re.sub(r"^psql:<stdin>:(\d+): ", r"line \1: ", line)


class Psql(ChildProcess):
    """One psql process reading SQL from its stdin into one database."""

    failure = RestoreError

    def __init__(self, executable: str, env: Mapping[str, str], *, transaction: bool, stop_on_error: bool = True) -> None:
        argv = [executable, "--no-psqlrc", "--quiet", "--no-password", "--set", "VERBOSITY=terse"]
        if stop_on_error:
            argv += ["--set", "ON_ERROR_STOP=1"]
        super().__init__(argv, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.process.stdin is not None
        self._stdin: IO[bytes] = self.process.stdin
        self.failed = False
        if transaction:
            self.write(b"BEGIN;\n")

    def write(self, data: bytes) -> None:
        """Send SQL; ``RestoreError`` once psql has stopped (it stops at the first error)."""
        if self.failed:
            raise RestoreError(self.reason())
        try:
            self._stdin.write(data)
        except (BrokenPipeError, OSError) as exc:
            self.failed = True
            self.wait()
            raise RestoreError(self.reason()) from exc

    def reason(self) -> str:
        """psql's first error, as one line."""
        line = self.errors[0] if self.errors else (self.tail[-1] if self.tail else "psql stopped")
        return f"psql failed at {error_line(line)}"[:600]

    def finish(self, commit: bool) -> int:
        """Send COMMIT (or nothing) and close stdin; psql's exit status."""
        try:
            if commit:
                self._stdin.write(b"COMMIT;\n")
            self._stdin.close()
        except (BrokenPipeError, OSError):
            self.failed = True
        return self.wait()

    def commit(self) -> None:
        code = self.finish(commit=True)
        if code != 0 or self.failed:
            raise RestoreError(self.reason() if self.errors else f"psql exited with status {code}")

    def abort(self) -> None:
        """Stop psql without COMMIT; the server rolls the open transaction back."""
        self.kill()
        try:
            self._stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.wait()
