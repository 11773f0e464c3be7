"""Stopping a server the dev environment started: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes] | None, grace: float = 20.0) -> None:
    """End ``process`` if it still runs: politely first, by force after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
