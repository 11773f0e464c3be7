"""fake-gcs-server on loopback: the tests' Google Cloud Storage, speaking GCS's JSON API.

The binary is built by ``scripts/tools-build fake-gcs-server`` (from the Go module proxy, at a
pinned version, cached outside the repository). It serves plain HTTP on a free loopback port
and keeps objects in memory. A resumable upload's session URL is built from the server's
external URL, and the client sends every later request of the upload (each chunk, the
finalising one) there: it is named explicitly as the server's own address (the default today
too), as is the public host in the download links it hands out (storage.googleapis.com by
default), so no request of a test can leave the machine.

google-cloud-storage reaches an emulator through its own variable, ``STORAGE_EMULATOR_HOST``
(``env()``), and then signs nothing: the emulator takes anonymous requests, so Application
Default Credentials are neither needed nor read.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .postgres import free_port
from .process import stop as stop_process
from .wait import wait_for

PROJECT = "pgbackup-test"


def command(binary: str, port: int) -> list[str]:
    """The ``fake-gcs-server`` command line: HTTP on loopback, in memory, URLs pointing back at it."""
    return [
        binary,
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        f"http://127.0.0.1:{port}",
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]


class FakeGcsServer:
    """``fake-gcs-server`` on 127.0.0.1:<port>."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="pgbackup-fakegcs-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def emulator_host(self) -> str:
        """The value of ``STORAGE_EMULATOR_HOST`` that reaches this server."""
        return self.endpoint

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            log = (self.directory / "fake-gcs-server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"fake-gcs-server exited with {self._proc.returncode}: {log}")
        try:
            with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b?project={PROJECT}", timeout=1) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False
        except OSError:
            return False

    def start(self) -> FakeGcsServer:
        with open(self.directory / "fake-gcs-server.log", "wb") as log:
            self._proc = subprocess.Popen(
                command(str(self.binary), self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        wait_for(self._up, timeout=60, what="fake-gcs-server answering")
        return self

    def stop(self) -> None:
        stop_process(self._proc)
        shutil.rmtree(self.directory, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The variables that send google-cloud-storage to this server."""
        return {"STORAGE_EMULATOR_HOST": self.emulator_host}

    def client(self) -> Any:
        """A ``google.cloud.storage.Client`` on this server, anonymous, made once."""
        if self._client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage  # type: ignore[import-untyped]  # no py.typed

            self._client = storage.Client(
                project=PROJECT,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.endpoint},
            )
        return self._client

    def __enter__(self) -> FakeGcsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
