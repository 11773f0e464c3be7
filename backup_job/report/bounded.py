"""Run a send with a deadline: a stalled receiver costs at most the timeout, never the run.

The send runs on a daemon thread; ``within`` waits for it at most ``seconds`` and then gives
up on it (the thread dies with the process). Exceptions come back as the error text, for
one WARNING line; nothing is ever raised to the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..core import logs, signals
from ..core.errors import one_line

log = logs.get("report")


def within(seconds: float, what: str, send: Callable[[], None]) -> bool:
    """Whether ``send`` finished without error in time; logs one WARNING line when not."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            send()
        except BaseException as exc:  # reported below, one line
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, name=f"report-{what}", daemon=True)
    signals.start(thread)
    thread.join(seconds)
    if not outcome:
        log.warning(
            "%s gave no answer within %.0f s; going on without it",
            what,
            seconds,
            extra=logs.fields(event="report.timeout", channel=what),
        )
        return False
    error = outcome[0]
    if error is not None:
        log.warning(
            "%s failed: %s",
            what,
            logs.redact(one_line(error) or type(error).__name__),
            extra=logs.fields(event="report.failed", channel=what),
        )
        return False
    return True
