"""Azurite's Blob service on loopback: the tests' Azure Blob Storage, Microsoft's own emulator.

Azurite comes from the npm registry, pinned by ``devenv/npm/package-lock.json`` and
installed by ``scripts/tools-build azurite`` into a cache outside the repository; only its
Blob service (``azurite-blob``) is run. It keeps everything in memory (nothing written to
disk, nothing left behind), accepts any API version the SDK sends (the Python SDK moves ahead
of Azurite's list), collects no telemetry, and reads the account from the URL's first path
segment, so the service URL is ``http://127.0.0.1:<port>/devstoreaccount1``.

The account is Azurite's built-in development account, whose name and key Microsoft publishes
for every emulator user: they sign requests as a real account key would (Shared Key), so the
code under test authenticates as it would against Azure. ``env()`` is a connection string
that carries the endpoint (``BlobEndpoint=``), the way a job reaches Azurite.
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

ACCOUNT = "devstoreaccount1"
# Azurite's published development key: not a secret, the same in every Azurite.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# In-memory blobs are capped (Azurite's default is half the machine's memory).
MEMORY_LIMIT_MB = 1024


def command(azurite_blob: str, port: int) -> list[str]:
    """The ``azurite-blob`` command line: loopback only, in memory, no telemetry."""
    return [
        azurite_blob,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--extentMemoryLimit",
        str(MEMORY_LIMIT_MB),
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
        "--disableTelemetry",
    ]


class AzuriteServer:
    """``azurite-blob`` on 127.0.0.1:<port>, serving the development account."""

    account = ACCOUNT
    account_key = ACCOUNT_KEY

    def __init__(self, azurite_blob: Path) -> None:
        self.azurite_blob = azurite_blob
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        self.directory = Path(tempfile.mkdtemp(prefix="pgbackup-azurite-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def connection_string(self) -> str:
        """A connection string for the development account that names this server's endpoint."""
        parts = {"DefaultEndpointsProtocol": "http", "AccountName": ACCOUNT, "AccountKey": ACCOUNT_KEY}
        return "".join(f"{key}={value};" for key, value in {**parts, "BlobEndpoint": self.endpoint}.items())

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            log = (self.directory / "azurite.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"azurite-blob exited with {self._proc.returncode}: {log}")
        try:
            with urllib.request.urlopen(f"{self.endpoint}?comp=list", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an unsigned request refused (403): the service is serving
        except OSError:
            return False

    def start(self) -> AzuriteServer:
        with open(self.directory / "azurite.log", "wb") as log:
            self._proc = subprocess.Popen(
                command(str(self.azurite_blob), self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        wait_for(self._up, timeout=60, what="Azurite's Blob service answering")
        return self

    def stop(self) -> None:
        stop_process(self._proc)
        shutil.rmtree(self.directory, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The job's variables that reach this Azurite as the development account."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def client(self) -> Any:
        """An ``azure.storage.blob.BlobServiceClient`` for the development account, made once."""
        if self._client is None:
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(self.connection_string)
        return self._client

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
