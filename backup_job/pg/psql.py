"""psql as a child process: the sink end of a restore, in restricted mode.

``Psql`` reads SQL from its stdin into one database. For a restore it runs with
``ON_ERROR_STOP`` inside ``BEGIN``: the first failing statement stops it, and nothing is
committed until the caller says ``commit`` (after the whole object matched its manifest).
``abort`` stops it without COMMIT, so the server rolls the transaction back. For the globals
it runs without a transaction and without ``ON_ERROR_STOP``, and the caller judges the
error lines it collected.

A dump is SQL and psql meta-commands, and the meta-commands are a shell (``\\!``, ``\\o
|cmd``, ``\\copy ... program``), a way out of the transaction into another database
(``\\c``) and a way to write files. So before anything else psql is sent ``\\restrict`` with a
random key of this process's: from then on psql refuses every meta-command but the matching
``\\unrestrict``, which no dump knows. pg_dump 18 (and the August 2025 minor releases) write
their own ``\\restrict <key>`` at the top of a dump and ``\\unrestrict <key>`` at its end;
``DumpFilter`` removes exactly those two lines (the header's key, learned from the header),
and older dumps without them pass unchanged. A psql without ``\\restrict`` is refused in one
line (``check_restrict``): loading a dump with it would let the dump run commands.
"""

from __future__ import annotations

import re
import secrets
import string
import subprocess
from collections.abc import Mapping
from typing import IO

from ..core.errors import RestoreError
from ..core.settings import PG_BINDIR
from .process import ChildProcess

# The first psql of each supported major version that has \restrict (the August 2025 releases).
RESTRICT_SINCE = {13: (13, 22), 14: (14, 19), 15: (15, 14), 16: (16, 10), 17: (17, 6)}
HEADER_LIMIT = 64 * 1024  # the dump's header (comments before its first command) is read this far at most
_RESTRICT = re.compile(rb"\\restrict ([A-Za-z0-9]{1,256})\r?")


def error_line(line: str) -> str:
    """``psql:<stdin>:12: ERROR: ...`` as ``line 12: ERROR: ...``."""
    return re.sub(r"^psql:<stdin>:(\d+): ", r"line \1: ", line)


def supports_restrict(version: str) -> bool:
    """Whether psql ``version`` (``18.1``, ``15.14``) knows ``\\restrict``."""
    parts = (*tuple(int(p) for p in version.split(".")[:2]), 0)
    major, minor = parts[0], parts[1]
    if major >= 18:
        return True
    since = RESTRICT_SINCE.get(major)
    return since is not None and (major, minor) >= since


def check_restrict(path: str, version: str) -> None:
    """Refuse a psql that cannot be restricted: a dump loaded by it could run commands."""
    if not supports_restrict(version):
        raise RestoreError(
            f"psql {version} ({path}) cannot refuse a dump's meta-commands (\\restrict came with PostgreSQL 18 "
            "and the August 2025 minor releases: 17.6, 16.10, 15.14, 14.19, 13.22); pgbackup loads nothing "
            "from storage with it",
            hint=f"use a newer psql: the pgbackup image ships one, or point {PG_BINDIR.name} at a newer bin directory",
        )


def restrict_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


class DumpFilter:
    """Removes pg_dump's own ``\\restrict <key>`` header line and ``\\unrestrict <key>`` line
    from a dump streamed through it; everything else passes as it came."""

    def __init__(self) -> None:
        self._header = bytearray()  # the dump's start, until its first command is seen
        self._in_header = True
        self._pattern = b""  # b"\n\\unrestrict <key>\n" once the header named a key
        self._carry = b""  # the end of what passed, which may start the pattern

    def feed(self, data: bytes) -> bytes:
        if self._in_header:
            self._header += data
            return self._read_header(final=False)
        return self._strip(data)

    def finish(self) -> bytes:
        out = self._read_header(final=True) if self._in_header else b""
        tail, self._carry = self._carry, b""
        if self._pattern and tail.endswith(self._pattern[:-1]):  # the last line, without its newline
            tail = tail[: len(tail) - len(self._pattern) + 1]
        return out + tail

    def _read_header(self, final: bool) -> bytes:
        """Look at the header's lines (blank or ``--`` comments) up to its first command; drop
        that command when it is ``\\restrict <key>``, and learn the key."""
        start = 0
        while True:
            end = self._header.find(b"\n", start)
            if end == -1:
                if not final and len(self._header) < HEADER_LIMIT:
                    return b""  # the first command may still come
                break
            line = bytes(self._header[start:end])
            if line.strip() == b"" or line.startswith(b"--"):
                start = end + 1
                continue
            match = _RESTRICT.fullmatch(line)
            if match:
                self._pattern = b"\n\\unrestrict " + match.group(1) + b"\n"
                del self._header[start : end + 1]
            break
        self._in_header = False
        rest, self._header = bytes(self._header), bytearray()
        if self._pattern:
            self._carry = b"\n"  # a blank line first, so an \unrestrict right after the header is matched
        return self._strip(rest)

    def _strip(self, data: bytes) -> bytes:
        if not self._pattern:
            return data
        buffer = self._carry + data
        buffer = buffer.replace(self._pattern, b"\n")
        keep = len(self._pattern) - 1
        self._carry = buffer[-keep:] if len(buffer) > keep else buffer
        return buffer[: len(buffer) - len(self._carry)]


class Psql(ChildProcess):
    """One psql process reading SQL from its stdin into one database, restricted from the start."""

    ERROR_LINE = re.compile(r"\b(ERROR|FATAL|PANIC):|backslash commands are restricted|\\\w+: |invalid command \\")
    failure = RestoreError

    def __init__(
        self, executable: str, env: Mapping[str, str], *, transaction: bool, stop_on_error: bool = True
    ) -> None:
        argv = [executable, "--no-psqlrc", "--quiet", "--no-password", "--set", "VERBOSITY=terse"]
        if stop_on_error:
            argv += ["--set", "ON_ERROR_STOP=1"]
        super().__init__(argv, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.process.stdin is not None
        self._stdin: IO[bytes] = self.process.stdin
        self.failed = False
        self._filter = DumpFilter()
        self.write(f"\\restrict {restrict_key()}\n".encode())
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

    def write_dump(self, data: bytes) -> None:
        """Send part of a dump, without pg_dump's own ``\\restrict``/``\\unrestrict`` lines."""
        out = self._filter.feed(data)
        if out:
            self.write(out)

    def finish_dump(self) -> None:
        """The dump's end: what the filter still held back."""
        out = self._filter.finish()
        if out:
            self.write(out)

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
