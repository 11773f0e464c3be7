"""An OCI registry on loopback: where the tests push the Helm chart, sign it and pull it back,
as a release pushes it to GHCR.

The server is go-containerregistry's ``crane registry serve`` (``scripts/tools-build crane``,
built from the Go module proxy at a pinned version, cached outside the repository). It speaks
plain HTTP, keeps everything in memory, and takes no credentials, so clients need their
plain-HTTP switch (``helm --plain-http``, ``cosign --allow-http-registry``).

The kernel picks the port (``--address 127.0.0.1:0``) and the server logs the one it got, so
two sessions on one machine never race for a port; the registry is ready once its ``/v2/``
base endpoint answers 200, which the OCI distribution spec makes the "is this a registry"
probe. ``stop`` ends it (SIGTERM, then SIGKILL) and removes its directory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .process import stop as stop_process
from .wait import wait_for

_SERVING = re.compile(rb"serving on port (\d+)")


class OciRegistry:
    """``crane registry serve`` on 127.0.0.1:<port chosen by the kernel>."""

    def __init__(self, crane: Path, timeout: float = 30.0) -> None:
        self.crane = crane
        self.timeout = timeout
        self.directory = Path(tempfile.mkdtemp(prefix="pgbackup-oci-"))
        self.log = self.directory / "registry.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of a reference (``HOST/charts/pgbackup``)."""
        return f"127.0.0.1:{self.port}"

    def _exited(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the OCI registry exited with {self._proc.returncode}: {tail}")

    def _listening(self) -> bool:
        self._exited()
        found = _SERVING.search(self.log.read_bytes())
        if found:
            self.port = int(found.group(1))
        return found is not None

    def _answering(self) -> bool:
        self._exited()
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.HTTPError, OSError):
            return False

    def start(self) -> OciRegistry:
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [str(self.crane), "registry", "serve", "--address", "127.0.0.1:0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        try:
            wait_for(self._listening, timeout=self.timeout, what="the OCI registry's port in its log")
            wait_for(self._answering, timeout=self.timeout, what=f"the OCI registry answering on {self.host}/v2/")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self._proc, grace=5.0)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> OciRegistry:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
