"""SeaweedFS's S3 gateway on loopback: the tests' second, production-grade S3 implementation.

moto checks neither conditional writes atomically nor any checksum (it only reports, on a
HEAD, the CRC32C of what it holds), so a defect of concurrency or integrity can hide there;
SeaweedFS enforces ``If-None-Match: *`` on PutObject and CompleteMultipartUpload, verifies
``Content-MD5``, SigV4 signatures and CRC32C checksums (each part's, and a whole object's at
completion, and returns them), and reports real upload times. A local KMS (``S3_CONFIG``)
serves SSE-KMS for any key id given. ``weed mini`` runs master, volume server, filer and S3
gateway in one process; every port it opens is given a free loopback port (or turned off),
telemetry is off, and ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in its environment
create the one identity the tests sign with.

The binary is built by ``scripts/tools-build seaweedfs`` (from the Go module proxy, cached
outside the repository). ``command`` is also what ``tests/integration/test_compose_s3.py`` checks against
the compose file's S3 service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .postgres import free_port
from .process import stop as stop_process
from .s3 import ACCESS_KEY, REGION, SECRET_KEY, sdk_env
from .wait import wait_for

SERVICES_OFF = [
    "-webdav=false",
    "-admin.ui=false",
    "-master.telemetry=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-admin.port.legacy=0",
]


def command(weed: str, directory: str, s3_port: int, ports: dict[str, int]) -> list[str]:
    """The ``weed mini`` command line: loopback only, the given ports, no extra services."""
    return [
        weed,
        "mini",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3_port}",
        *(f"-{name}={port}" for name, port in sorted(ports.items())),
        *SERVICES_OFF,
    ]


VOLUMES = 2000
# The S3 gateway's configuration: no identities beyond the one from the environment, and a
# local KMS that makes keys on first use, so SSE-KMS works as on AWS (with a key id given).
S3_CONFIG = {
    "identities": [],
    "kms": {"default_provider": "local", "providers": {"local": {"type": "local", "enableOnDemandCreate": True}}},
}


class SeaweedServer:
    """``weed mini`` with its S3 gateway on 127.0.0.1:<port>."""

    def __init__(self, weed: Path) -> None:
        self.weed = weed
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="pgbackup-seaweed-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def _ports(self) -> dict[str, int]:
        names = (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "debug.port",
            "s3.debug.port",
            "webdav.port",
        )
        return {name: free_port() for name in names}

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            log = (self.directory / "weed.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"weed mini exited with {self._proc.returncode}: {log}")
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an S3 error answer (403 without a signature) means the gateway is serving
        except OSError:
            return False

    def start(self) -> SeaweedServer:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        (self.directory / "s3.json").write_text(json.dumps(S3_CONFIG))
        with open(self.directory / "weed.log", "wb") as log:
            argv = [
                *command(str(self.weed), str(self.directory / "data"), self.port, self._ports()),
                "-s3.autoCreateBucket=false",  # a missing bucket is an error, as on AWS
                f"-s3.config={self.directory / 's3.json'}",
                # Each bucket is a collection with volumes of its own; mini's default limit
                # (free disk / 128 MB) runs out after a few dozen buckets on a small disk, and
                # the tests make one per test. Volumes take disk only as data arrives.
                f"-volume.max={VOLUMES}",
            ]
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.directory)
        (self.directory / "data").mkdir(exist_ok=True)
        wait_for(self._up, timeout=120, what="SeaweedFS's S3 gateway answering")
        wait_for(self._serves_buckets, timeout=120, what="SeaweedFS accepting a bucket")
        return self

    def _serves_buckets(self) -> bool:
        try:
            self.client().create_bucket(Bucket="pgbackup-ready")
            return True
        except Exception as exc:  # the filer or volume server may still be starting
            return "BucketAlreadyOwnedByYou" in str(exc) or "BucketAlreadyExists" in str(exc)

    def stop(self) -> None:
        stop_process(self._proc)
        shutil.rmtree(self.directory, ignore_errors=True)

    def env(self) -> dict[str, str]:
        return sdk_env(self.endpoint)

    def client(self) -> Any:
        """A boto3 client with the test keys, made once (as ``S3Server.client``)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                config=Config(s3={"addressing_style": "path"}),
            )
        return self._client

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
