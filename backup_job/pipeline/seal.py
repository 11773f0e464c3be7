"""Sealing: compressed bytes in, an age-encrypted stream out, to the parts, in the same pass.

age (pyrage, the Rust implementation) encrypts in 64 KiB chunks, each authenticated, to
every recipient at once; ``age -d`` and pyrage read the result. pyrage's streaming call
pulls from a reader and pushes to a writer, so it runs on a thread of its own: the byte path
hands it the compressor's pieces through a queue of at most ``DEPTH`` (a reference each, no
copy), and its writer is the ``PartBuffer``, which it feeds 64 KiB chunks as they are
sealed. No plaintext is ever written anywhere but into that thread's memory; nothing of it
reaches storage unsealed.

``write`` raises the sealing thread's error (a failed upload travels back this way);
``finish`` sends the end, waits for the last chunk and the sealing thread, and raises its
error; ``close`` always ends the thread, also when the stream is abandoned (the rest is
then discarded, never written).
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..core import keys, signals
from ..core.errors import PgBackupError

DEPTH = 8  # compressed pieces waiting for the sealer, each at most about 1 MiB


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks: what pyrage reads from."""

    def __init__(self, chunks: Iterator[bytes | memoryview]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._current = memoryview(chunk)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count


class CallbackWriter(io.RawIOBase):
    """A writable file that hands each write to ``callback``: what pyrage writes to. The
    callback's own error is kept (pyrage reports it only as an I/O failure); once
    ``abandoned``, writes are discarded."""

    def __init__(self, callback: Callable[[bytes], None]) -> None:
        self._callback = callback
        self.error: BaseException | None = None
        self.abandoned = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if not self.abandoned:
            try:
                self._callback(bytes(data))
            except BaseException as exc:  # handed back to the caller of pyrage
                self.error = exc
                raise
        return len(data)


class Sealer:
    """Seals one stream to ``recipients`` (public keys as the settings hold them)."""

    def __init__(self, recipients: tuple[str, ...], write: Callable[[bytes], None]) -> None:
        self.recipients = recipients
        self._targets = keys.recipients(recipients)
        self._pieces: queue.Queue[bytes | None] = queue.Queue(DEPTH)
        self._sink = CallbackWriter(write)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="seal", daemon=True)
        signals.start(self._thread)

    def _run(self) -> None:
        import pyrage

        try:
            pyrage.encrypt_io(ChunkReader(iter(self._pieces.get, None)), self._sink, self._targets)
        except BaseException as exc:
            self._error = self._sink.error or exc
            while self._pieces.get() is not None:  # let a blocked writer go on, to see the error
                pass

    def _raise(self) -> None:
        error = self._error or self._sink.error
        if error is None:
            return
        if isinstance(error, (PgBackupError, OSError)):
            raise error
        raise PgBackupError(f"age encryption failed: {error}") from error

    def write(self, data: bytes) -> None:
        self._raise()
        if data:
            self._pieces.put(data)

    def finish(self) -> None:
        """The end of the stream: the last chunk is sealed and written, or the error raised."""
        self._raise()
        self._pieces.put(None)
        self._thread.join()
        self._raise()

    def close(self) -> None:
        if self._thread.is_alive():
            self._sink.abandoned = True
            self._pieces.put(None)
            self._thread.join()


def seal_bytes(data: bytes, recipients: tuple[str, ...]) -> bytes:
    """``data`` sealed with age to ``recipients`` in one piece (a manifest's database properties)."""
    import pyrage

    return bytes(pyrage.encrypt(data, keys.recipients(recipients)))
