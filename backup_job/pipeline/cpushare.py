"""The CPUs of one run, shared among the database streams running at once.

A run may dump several databases at once (``BACKUP_PARALLEL_DATABASES``); each stream's
compressor asks ``threads()`` how many threads it may use. With ``BACKUP_COMPRESSION_THREADS``
set the answer is that number. Otherwise it is the usable CPUs (``core.cpus``: affinity and
cgroup quota) divided by the streams running now, at least one. The gzip compressor asks
again for every block, so when the small databases of a run finish, the large one still
running gets their CPUs; a zstd stream asks once, when it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CpuShare:
    """Counts the streams running and answers how many threads one of them may use."""

    def __init__(self, usable: int, fixed: int | None = None) -> None:
        self.usable = max(1, usable)
        self.fixed = fixed
        self._running = 0
        self._lock = threading.Lock()

    @property
    def most(self) -> int:
        """The most threads any stream can be given (the size of its thread pool)."""
        return self.fixed or self.usable

    @contextmanager
    def stream(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1

    def threads(self) -> int:
        if self.fixed:
            return self.fixed
        return max(1, self.usable // max(1, self._running))
