"""Work beside the byte path: a thread that sees every chunk without slowing the stream.

Counting COPY rows (``pg.copycount``) costs about 1 ms per MiB of Python-held time. Done in
the thread that reads pg_dump, that time adds to every byte's path; done here it overlaps
with the time the reader spends blocked on pg_dump's pipe. Chunks are passed by reference
(no copy) through a queue of at most ``DEPTH`` chunks, so memory stays bounded and a slow
consumer slows the stream rather than growing without limit. An error in the consumer is
raised by the next ``feed`` or by ``finish``; ``close`` always stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ..core import signals

DEPTH = 16  # chunks of up to 1 MiB


class Sidecar:
    """Runs ``consume(chunk)`` on its own thread for every chunk fed, in order."""

    def __init__(self, consume: Callable[[bytes], None], name: str) -> None:
        self._consume = consume
        self._queue: queue.Queue[bytes | None] = queue.Queue(DEPTH)  # None: the end
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        signals.start(self._thread)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._consume(chunk)
                except BaseException as exc:  # handed to the stream's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def feed(self, chunk: bytes) -> None:
        self._raise()
        if chunk:
            self._queue.put(chunk)

    def finish(self) -> None:
        """Wait until every chunk is consumed; raise the consumer's error, if any."""
        self.close()
        self._raise()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
