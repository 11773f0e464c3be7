"""A real S3 server over HTTP on loopback: moto's server, run as a subprocess.

The code under test talks to it with plain boto3 through ``AWS_ENDPOINT_URL_S3``, exactly
as it would talk to AWS or MinIO; nothing is patched in-process.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from typing import Any

from .postgres import free_port
from .process import stop as stop_process
from .wait import wait_for

ACCESS_KEY = "pgbackup-test-access-key"
SECRET_KEY = "pgbackup-test-secret-key-do-not-log"
REGION = "us-east-1"


def sdk_env(endpoint: str) -> dict[str, str]:
    """The AWS SDK variables that reach a test S3 server at ``endpoint`` with the test keys."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class S3Server:
    """moto's S3 server on 127.0.0.1:<port>."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {self._proc.returncode}")
        try:
            with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> "S3Server":
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, timeout=60, what="moto S3 server answering")
        return self

    def stop(self) -> None:
        stop_process(self._proc)

    def env(self) -> dict[str, str]:
        """AWS SDK variables that reach this server."""
        return sdk_env(self.endpoint)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
