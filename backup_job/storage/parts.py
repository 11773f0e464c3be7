"""The part pool every destination's upload shares: bounded parts in flight, the first error
kept, cancel, and an abort that waits a bounded time.

A backend's upload extends ``PooledUpload`` and supplies three things: how one part is sent
(``send_block``, run on a worker thread; what it returns is kept for the commit), how the
object is committed from those results in part order (``commit``), and how what was written
is dropped (``drop``). Everything about waiting lives here, once:

- ``send_part`` takes a slot before queueing a part, so a slow destination blocks the
  pipeline instead of growing memory: at most ``concurrency`` parts are held. A backend that
  must send in order, one request at a time (a GCS resumable upload), asks for one slot.
- A part that fails is remembered, and the next ``send_part`` or ``complete`` raises it.
- No wait is unbounded for the caller: every blocking point polls (``POLL``), so a stop
  request (SIGTERM raises in the main thread) or ``cancel`` (the per-database timeout, from
  another thread) ends it at once, however long a worker's request hangs. Workers are daemon
  threads that never take a stop request (``core.signals``), so a request still hanging
  never keeps the process from exiting.
- ``abort`` gives the destination ``ABORT_WAIT`` seconds to drop the upload; what is left
  then is the store's own clean-up (or the next run's).
"""

from __future__ import annotations

import queue
import threading
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from ..core import signals
from ..core.errors import StorageError
from .base import Upload

POLL = 0.2  # seconds between checks for a cancel while waiting on workers
ABORT_WAIT = 5.0  # seconds dropping an upload may take on the way out

R = TypeVar("R")


class PartPool(Generic[R]):
    """Parts sent by up to ``concurrency`` worker threads, results kept in submission order."""

    def __init__(self, concurrency: int, send: Callable[[int, bytes], R], name: str) -> None:
        self.concurrency = concurrency
        self._send = send
        self._name = name
        self._slots = threading.BoundedSemaphore(concurrency)
        self._queue: queue.Queue[tuple[Future[R], int, bytes] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._futures: list[Future[R]] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.cancelled: StorageError | None = None

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, number, data = item
            if self.cancelled is not None or not future.set_running_or_notify_cancel():
                self._slots.release()
                continue
            try:
                future.set_result(self._send(number, data))
            except BaseException as exc:
                self.remember(exc)
                future.set_exception(exc)
            finally:
                self._slots.release()

    def remember(self, error: BaseException) -> None:
        """Keep a worker's first error for the next ``submit`` or ``results``."""
        with self._lock:
            if self._error is None:
                self._error = error

    def check(self) -> None:
        """Raise the cancel, or the first error a part met."""
        if self.cancelled is not None:
            raise self.cancelled
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def cancel(self, error: StorageError) -> None:
        """Make every wait end with ``error`` (from any thread)."""
        self.cancelled = error

    def submit(self, number: int, data: bytes) -> None:
        """Queue a part once a slot is free (back-pressure); raises a kept error or the cancel."""
        while not self._slots.acquire(timeout=POLL):
            self.check()
        try:
            self.check()
        except BaseException:
            self._slots.release()
            raise
        if len(self._workers) < self.concurrency:
            worker = threading.Thread(target=self._work, name=self._name, daemon=True)
            signals.start(worker)  # a worker must never take a stop request
            self._workers.append(worker)
        future: Future[R] = Future()
        self._futures.append(future)
        self._queue.put((future, number, data))

    def results(self) -> list[R]:
        """Every part's result, in submission order, once all are sent; the workers then stop."""
        try:
            done = []
            for future in self._futures:
                while True:
                    self.check()
                    try:
                        done.append(future.result(timeout=POLL))
                        break
                    except TimeoutError:
                        continue
            self.check()
            return done
        finally:
            self.close()

    def close(self) -> None:
        """Let the workers go once the queue drains (what is queued after a cancel is dropped)."""
        for _ in self._workers:
            self._queue.put(None)


def bounded(action: Callable[[], None], name: str, wait: float = ABORT_WAIT) -> None:
    """Run ``action`` on a daemon thread and wait for it at most ``wait`` seconds."""
    thread = threading.Thread(target=action, name=name, daemon=True)
    signals.start(thread)
    thread.join(timeout=wait)


class PooledUpload(Upload, Generic[R]):
    """An upload whose parts go through a ``PartPool``; a backend supplies the three verbs."""

    def __init__(self, key: str, where: str, concurrency: int, name: str) -> None:
        self.key = key
        self.where = where  # the object's URL, for messages
        self.sent = 0  # bytes handed to send_part
        self.pool: PartPool[R] = PartPool(concurrency, self.send_block, name)
        self._name = name

    @abstractmethod
    def send_block(self, number: int, data: bytes) -> R:
        """Send part ``number`` (on a worker thread); raise ``StorageError`` when it fails."""

    @abstractmethod
    def commit(self, results: list[R]) -> None:
        """Make the object visible from the parts' results (in part order)."""

    @abstractmethod
    def drop(self) -> None:
        """Discard what was written (on a thread of its own, waited for ``ABORT_WAIT``); never raises."""

    def accept(self, number: int, data: bytes) -> None:
        """See a part before it is queued, in the caller's thread (a running whole-object checksum)."""

    def send_part(self, number: int, data: bytes) -> None:
        self.sent += len(data)
        self.accept(number, data)
        self.pool.submit(number, data)

    def complete(self) -> None:
        self.commit(self.pool.results())

    def cancel(self, error: StorageError) -> None:
        self.pool.cancel(error)

    def abort(self) -> None:
        """Drop what is queued and then the upload, waiting at most ``ABORT_WAIT`` seconds."""
        if self.pool.cancelled is None:
            self.pool.cancel(StorageError(f"the upload of {self.where} was aborted"))
        self.pool.close()
        bounded(self.drop, f"{self._name}-abort")
