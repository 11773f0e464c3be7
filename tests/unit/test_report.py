"""Notifications, healthcheck pings and metrics from the job itself, against a local HTTP
receiver on loopback: the exact requests for a failure and a success, a receiver that is
down or stalls (the run still ends on time with its own exit code), and no secret in any
request or log line.

The offline tests; those that run pgbackup or real services are in tests/integration/test_report.py."""

from __future__ import annotations


def test_apprise_and_prometheus_client_load_only_when_configured() -> None:
    """A run without notifications or metrics never imports either library (the memory bound)."""
    import subprocess
    import sys

    probe = (
        "import sys; import backup_job.cli, backup_job.report.reporter; "
        "print([m for m in ('apprise', 'prometheus_client') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "[]"
