"""Stop requests (SIGTERM, SIGINT): always to the main thread, and held where they must wait.

The CLI turns a stop request into ``Interrupted`` (``stopping``: when, and how long the
stop may take), raised in the main thread, which unwinds
every stage (pg_dump killed, upload aborted, psql stopped without COMMIT, scratch database
dropped). For that the signal must interrupt the main thread even when it sits in a blocking
call, such as a write to a psql that stopped reading. The kernel hands a process-directed
signal to any thread that does not block it, and a signal taken by a helper thread interrupts
nothing. So every helper thread pgbackup starts (stderr readers, progress timers, upload
workers) is started through ``start`` or ``held`` and inherits a mask that blocks both
signals; only the main thread ever receives them.

``held`` also keeps a stop request waiting for a few statements that must not be cut in two:
creating a database and recording that it exists, and dropping it again. A request that came
meanwhile is delivered when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


@contextmanager
def held() -> Iterator[None]:
    """Block SIGTERM and SIGINT in this thread (and threads it starts) for the duration."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start(thread: threading.Thread) -> None:
    """Start a helper thread that never receives stop requests."""
    with held():
        thread.start()
