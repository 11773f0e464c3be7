"""Progress lines while bytes flow: a thread that reports at intervals until stopped.

Time-driven rather than data-driven, so a dump that stalls (waiting on a lock, a slow
bucket) or a restore behind a slow server keeps saying where it stands. The thread is
started with stop signals blocked (``core.signals``), so it never takes a SIGTERM meant for
the main thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..core import signals

Report = Callable[[float], None]  # called with the seconds since the start


class ProgressReporter:
    """Calls ``report`` every ``interval`` seconds from a thread, inside a ``with`` block."""

    def __init__(self, report: Report | None, interval: float) -> None:
        self.report = report
        self.interval = interval
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            assert self.report is not None
            self.report(time.monotonic() - self.started)

    def __enter__(self) -> ProgressReporter:
        if self.report is not None and self.interval > 0:
            signals.start(self._thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
