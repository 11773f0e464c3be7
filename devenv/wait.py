"""Polling instead of sleeping: wait for a condition, fail loudly when it never comes."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> None:
    """Call ``condition`` until it returns something true; ``TimeoutError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout} s")
