"""A stop request (SIGTERM, SIGINT): heard from the first instant, bounded, said exactly once.

Kubernetes sends SIGTERM and kills the pod ``terminationGracePeriodSeconds`` later (30 s by
default); ``docker compose stop`` waits 10 s. So a stopped process ends within ``BOUND``
seconds of the signal, whatever it is doing, and says so:

- ``listen`` is the first thing the ``pgbackup`` entry point does, before any heavy import: a
  signal during Python's start-up is recorded instead of killing the process without a word.
  It also hands the interpreter a wakeup pipe, which the C-level handler writes to at once,
  even while the main thread sits in a C call that runs no Python handler (a query to a
  server that stopped answering). A watchdog thread reads it and, at the deadline, has the
  last word said and ends the process.
- The CLI ``armed`` block turns the first request into ``Interrupted`` in the main thread,
  which unwinds every stage (``core.signals``); a request that came earlier raises as the
  block opens. Outside the block, and for every later request, the request is only recorded:
  a clean-up under way is never cut short by a second signal.
- From the request on no write starts (``refuse_writes``: before each upload, part,
  completion and PUT, and each of the SDK's retries). A write already on the wire may land;
  the manifest is written last, so what lands is a complete backup or no backup.
- The run's workers get ``settle_by()`` to abort their uploads. A thread blocked in a call a
  stop cannot interrupt and that leaves nothing to clean up (a request to a stalled store)
  marks itself ``abandonable``; nobody waits for it: it is a daemon, left behind, and the next
  run's clean-up finds whatever it leaves.
- ``once`` says the stopped line and writes the termination message exactly once, from the
  main thread or from the watchdog, whichever gets there first; ``leave`` then ends the
  process without waiting for the threads left behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import signals
from .errors import Interrupted, StorageError

BOUND = 10.0  # seconds from the signal to the process's exit, at most (documented in docs/failures.md)
SETTLE = 6.0  # seconds from the signal the workers get to abort their uploads
REPORT_BY = 8.5  # seconds from the signal by which the outcome's notifications give up
WATCHDOG = 9.0  # seconds from the signal at which the watchdog says the last word and ends the process
EXIT_STOPPED = 1  # the documented exit code for a stopped process

_lock = threading.Lock()  # guards _abandonable; never taken in the signal handler
_listening = False
_request: tuple[str, float] | None = None  # the first request's signal name and monotonic time
_armed = False
_raised = False
_said = threading.Lock()  # held by whoever says the last word
_spoken = False
_last_word: Callable[[], None] | None = None
_abandonable: set[int] = set()  # threads blocked in a call a stop may walk away from


def _record(name: str) -> None:
    """Keep the first request. No lock: the signal handler runs in the main thread between any
    two bytecodes, perhaps while that thread holds one (the watchdog and the handler may both
    record one signal; either moment will do)."""
    global _request
    if _request is None:
        _request = (name, time.monotonic())


def _on_signal(signum: int, _frame: object) -> None:
    global _raised
    _record(signal.Signals(signum).name)
    if _armed and not _raised:
        _raised = True
        raise Interrupted(f"stopped by {signal.Signals(signum).name}")


def listen() -> None:
    """Take SIGTERM and SIGINT from now on, and start the watchdog (main thread; once, later calls do nothing)."""
    global _listening
    if _listening:
        return
    _listening = True
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    for number in signals.STOP_SIGNALS:
        signal.signal(number, _on_signal)
    signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    sys.unraisablehook = _quiet_when_stopped(sys.unraisablehook)
    signals.start(threading.Thread(target=_watch, args=(reader,), name="stop-watchdog", daemon=True))


def _quiet_when_stopped(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """The interpreter's hook for exceptions it cannot raise, minus ours: a stop request that
    raised inside a finalizer or a ``__del__`` is swallowed there, not lost (it is recorded,
    writes are refused, and the command says it when it returns), and needs no traceback."""

    def unraisable(unraisable: Any) -> object:
        if isinstance(unraisable.exc_value, Interrupted):
            return None
        return hook(unraisable)

    return unraisable


def _watch(reader: int) -> None:
    """Wait for a stop signal's byte on the wakeup pipe; at the deadline, end the process."""
    numbers = {int(number) for number in signals.STOP_SIGNALS}
    while True:
        data = os.read(reader, 256)  # blocks this thread only
        if not data:
            return
        heard = [n for n in data if n in numbers]
        if heard:
            _record(signal.Signals(heard[0]).name)
            break
    time.sleep(max(0.0, WATCHDOG - elapsed()))  # a daemon thread's plain wait: nothing to poll for
    leave(EXIT_STOPPED)  # says the last word first, unless the main thread has


def _plain_word() -> None:
    """The last word before the CLI could set up its logging."""
    print(f"pgbackup: {requested() or 'a stop request'} came before the command started; nothing was done", flush=True)


def requested() -> str:
    """The signal of the stop request (``SIGTERM``), or "" when none came."""
    request = _request
    return request[0] if request is not None else ""


def elapsed() -> float:
    """Seconds since the stop request (0 when none came)."""
    request = _request
    return time.monotonic() - request[1] if request is not None else 0.0


def remaining(by: float) -> float:
    """Seconds left until ``by`` seconds after the stop request (``by`` when none came)."""
    return max(0.0, by - elapsed())


def settle_by() -> float:
    """The monotonic moment by which the workers must have cleaned up."""
    return time.monotonic() + remaining(SETTLE)


@contextmanager
def armed() -> Iterator[None]:
    """Within the block, the first stop request raises ``Interrupted`` (at once if it came before)."""
    global _armed, _raised
    _armed = True
    try:
        if _request is not None and not _raised:
            _raised = True
            raise Interrupted(f"stopped by {requested()}")
        yield
    finally:
        _armed = False


def refuse_writes(what: str) -> None:
    """Raise when a stop was requested: ``what`` (a write) must not start."""
    name = requested()
    if name:
        raise StorageError(f"{what} not started: the run was stopped by {name}")


@contextmanager
def abandonable() -> Iterator[None]:
    """Mark this thread, for the block, as blocked in a call a stop need not wait for."""
    ident = threading.get_ident()
    with _lock:
        _abandonable.add(ident)
    try:
        yield
    finally:
        with _lock:
            _abandonable.discard(ident)


def abandoned(thread: threading.Thread) -> bool:
    """Whether ``thread`` is in an ``abandonable`` call now."""
    with _lock:
        return thread.ident in _abandonable


def last_word(say: Callable[[], None]) -> None:
    """What the watchdog says if the deadline comes first: the stopped line and the termination message."""
    global _last_word
    _last_word = say


def once(say: Callable[[], None]) -> bool:
    """Run ``say`` unless the last word was said already (by any thread); whether it ran."""
    global _spoken
    if not _said.acquire(timeout=BOUND - WATCHDOG):
        return False  # another thread is saying it, and it is late: leave now
    try:
        if _spoken:
            return False
        _spoken = True
        say()
        return True
    finally:
        _said.release()


def leave(code: int) -> int:
    """After a stop request, end the process now with ``code``: the threads left behind (in
    calls that may never return) are not waited for. A request nobody has spoken of yet (it
    came as the command returned) is said here, and the exit code says it. Without a
    request, return ``code``.

    From here on stop signals are blocked: one that comes while the interpreter shuts down
    would otherwise meet its default action (death by SIGTERM, no line, exit 143) or a
    handler raising into a finalizer. One already pending is taken as a request; one that
    comes later dies with the process, which is exiting with its outcome anyway."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.STOP_SIGNALS)
    pending = sorted(signal.sigpending() & signals.STOP_SIGNALS)
    if pending:
        _record(signal.Signals(pending[0]).name)
    if not requested():
        return code
    if once(_last_word or _plain_word):
        code = EXIT_STOPPED
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
