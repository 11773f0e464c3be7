"""The byte path back: storage -> sha256 check -> gunzip -> psql, in one transaction.

Read this module to follow a restored byte::

    Storage.read(key)        1 MiB chunks of the stored object
      -> sha256, size        over the stored bytes, compared with the manifest at the end
      -> zlib (gzip)         bounded output per step, so a very compressible chunk cannot
                             balloon memory
      -> Psql.write          psql's stdin; psql runs with ON_ERROR_STOP inside BEGIN
    then, only when the whole object was read and matched its manifest:
      Psql.commit()          COMMIT, and psql must exit 0

On a checksum mismatch, a broken gzip stream, a psql error or an interruption, psql is never
sent COMMIT: it is stopped and the server rolls the transaction back, so the target holds
exactly what it held before. When psql fails first, the rest of the object is still read
(not loaded) so that a corrupted object is reported as corruption, not as the SQL error it
happened to cause.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from . import signals
from .dump import kill_group
from .errors import ChecksumError, RestoreError
from .manifest import Manifest

MAX_INFLATE_STEP = 8 * 1024 * 1024
_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC):")


class Psql:
    """One psql process reading SQL from its stdin into one database."""

    def __init__(self, executable: str, env: dict[str, str], *, transaction: bool, stop_on_error: bool = True) -> None:
        argv = [executable, "--no-psqlrc", "--quiet", "--no-password", "--set", "VERBOSITY=terse"]
        if stop_on_error:
            argv += ["--set", "ON_ERROR_STOP=1"]
        self.errors: deque[str] = deque(maxlen=50)
        self.error_count = 0
        self._tail: deque[str] = deque(maxlen=20)
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env, start_new_session=True,
            )
        except OSError as exc:
            raise RestoreError(f"cannot start {executable}: {exc.strerror}") from exc
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._reader = threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True)
        signals.start(self._reader)
        self.failed = False
        if transaction:
            self.write(b"BEGIN;\n")

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._tail.append(line)
            if _ERROR.search(line):
                self.error_count += 1
                self.errors.append(line)

    def write(self, data: bytes) -> None:
        """Send SQL; ``RestoreError`` once psql has stopped (it stops at the first error)."""
        if self.failed:
            raise RestoreError(self.reason())
        try:
            self._stdin.write(data)
        except (BrokenPipeError, OSError) as exc:
            self.failed = True
            self._wait()
            raise RestoreError(self.reason()) from exc

    def _wait(self) -> int:
        code = self._proc.wait()
        self._reader.join(timeout=10)
        return code

    def reason(self) -> str:
        """psql's first error, as one line."""
        line = self.errors[0] if self.errors else (self._tail[-1] if self._tail else "psql stopped")
        line = re.sub(r"^psql:<stdin>:(\d+): ", r"line \1: ", line)
        return f"psql failed at {line}"[:600]

    def finish(self, commit: bool) -> int:
        """Send COMMIT (or nothing) and close stdin; psql's exit status."""
        try:
            if commit:
                self._stdin.write(b"COMMIT;\n")
            self._stdin.close()
        except (BrokenPipeError, OSError):
            self.failed = True
        return self._wait()

    def commit(self) -> None:
        code = self.finish(commit=True)
        if code != 0 or self.failed:
            raise RestoreError(self.reason() if self.errors else f"psql exited with status {code}")

    def abort(self) -> None:
        """Stop psql without COMMIT; the server rolls the open transaction back."""
        kill_group(self._proc)
        try:
            self._stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._wait()


@dataclass
class ReadStats:
    """What a verified read measured."""

    compressed_bytes: int = 0
    raw_bytes: int = 0


def read_verified(
    chunks: Iterable[bytes], manifest: Manifest, sink: Callable[[bytes], None], stats: ReadStats | None = None
) -> ReadStats:
    """Feed the gunzipped object to ``sink`` and check it against ``manifest``.

    Raises ``ChecksumError`` when the stored bytes differ from the manifest (even when the
    sink or gunzip failed first), else the sink's or gunzip's error.
    """
    stats = stats or ReadStats()
    hasher = hashlib.sha256()
    inflater = zlib.decompressobj(wbits=31)
    failure: Exception | None = None
    for chunk in chunks:
        hasher.update(chunk)
        stats.compressed_bytes += len(chunk)
        if failure is not None:
            continue  # keep reading: corruption is reported before its side effects
        try:
            data = inflater.decompress(chunk, MAX_INFLATE_STEP)
            while data:
                stats.raw_bytes += len(data)
                sink(data)
                data = inflater.decompress(inflater.unconsumed_tail, MAX_INFLATE_STEP) if inflater.unconsumed_tail else b""
        except zlib.error as exc:
            failure = RestoreError(f"the object is not valid gzip data: {exc}")
        except RestoreError as exc:
            failure = exc
    digest = hasher.hexdigest()
    if stats.compressed_bytes != manifest.compressed_bytes or digest != manifest.sha256:
        raise ChecksumError(
            f"checksum mismatch for {manifest.key}: read {stats.compressed_bytes} bytes with sha256 "
            f"{digest[:16]}..., the manifest says {manifest.compressed_bytes} bytes with sha256 "
            f"{manifest.sha256[:16]}...; the object was changed or damaged after the backup"
        )
    if failure is not None:
        raise failure
    if not inflater.eof or inflater.unused_data:
        raise RestoreError(f"{manifest.key} is not one complete gzip stream")
    return stats
