"""Databases at once: a run's backups on ``BACKUP_PARALLEL_DATABASES`` worker threads.

A server with many small databases spends most of each backup waiting: pg_dump starting and
reading the catalogs, S3 round trips. Running several at once overlaps those waits; with one
large database the others simply finish beside it. Each job still fails alone (a job returns
its result; it never raises), every job shares the run's timestamp, and results come back in
the order the jobs were given, so the summary reads the same however the work interleaved.

The workers are daemon threads started with stop requests blocked (``core.signals``), so
SIGTERM and SIGINT still reach the main thread, which waits here. On a stop request the
main thread calls ``stop`` (the run kills every pg_dump and cancels every upload, so each
worker unwinds through its own abort path), waits for the workers until the stop's deadline
(``core.stopping``), and re-raises: jobs not yet begun never start. A worker blocked in a call
nothing can interrupt (a request to a stalled store) is not waited for, and what any worker
finishes after the stop is not counted: ``done`` is what was done before it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from ..core import signals, stopping

T = TypeVar("T")
POLL = 0.05  # seconds between looks at the workers while they clean up after a stop


class Parallel(Generic[T]):
    """Runs jobs on up to ``width`` threads; ``results`` is in job order."""

    def __init__(self, jobs: Sequence[Callable[[], T]], width: int) -> None:
        self._jobs: queue.Queue[tuple[int, Callable[[], T]]] = queue.Queue()
        for index, job in enumerate(jobs):
            self._jobs.put((index, job))
        self._results: dict[int, T] = {}
        self._error: BaseException | None = None  # a job that raised instead of returning
        self._count = len(jobs)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False  # results that come after a stop are not counted
        self._threads = [
            threading.Thread(target=self._work, name=f"database-{n + 1}", daemon=True)
            for n in range(max(1, min(width, len(jobs))))
        ]

    def _work(self) -> None:
        while True:
            try:
                index, job = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                result = job()
            except BaseException as exc:  # a bug: raised in the main thread, never lost
                self._error = exc
                self._done.set()
                return
            with self._lock:
                if self._stopped:
                    return
                self._results[index] = result
                if len(self._results) == self._count:
                    self._done.set()

    def run(self, stop: Callable[[], None]) -> list[T]:
        if not self._count:
            return []
        for thread in self._threads:
            signals.start(thread)
        try:
            self._done.wait()
            if self._error is not None:
                raise self._error
        except BaseException:
            with self._lock:
                self._stopped = True
            self._drain()
            stop()
            self._settle()
            raise
        return self.done()

    def done(self) -> list[T]:
        """The results of the jobs done (before a stop), in job order."""
        with self._lock:
            return [self._results[i] for i in sorted(self._results)]

    def _settle(self) -> None:
        """Wait until every worker has ended or sits in an abandonable call, or the stop's deadline."""
        deadline = stopping.settle_by()
        while busy := [t for t in self._threads if t.is_alive() and not stopping.abandoned(t)]:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            busy[0].join(min(POLL, left))

    def _drain(self) -> None:
        """Take every job not yet begun off the queue, so none starts after a stop."""
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                return
