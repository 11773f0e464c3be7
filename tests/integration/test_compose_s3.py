"""The compose stack's S3 service runs: its own ``weed`` command line (only the addresses,
ports and data directory swapped for this machine's), with the credentials and bucket of
.env.example, answers a signed S3 client, keeps objects on disk across a restart, and
refuses to overwrite with If-None-Match."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from devenv.postgres import free_port
from devenv.wait import wait_for

from ..kit.helpers import ROOT


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def _command(weed: Path, data: Path, s3_port: int) -> list[str]:
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["s3"]
    assert service["entrypoint"] == ["/usr/bin/weed"] and service["volumes"] == ["s3-data:/data"]
    local = {
        "-dir=/data": f"-dir={data}",
        "-ip=s3": "-ip=127.0.0.1",
        "-ip.bind=0.0.0.0": "-ip.bind=127.0.0.1",
        "-s3.port=9000": f"-s3.port={s3_port}",
    }
    args = [local.get(arg, arg) for arg in service["command"]]
    assert set(local.values()) <= set(args), "the compose command still has the flags this test swaps"
    ports = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
        "admin.port",
        "admin.port.grpc",
    )
    return [str(weed), *args, *(f"-{name}={free_port()}" for name in ports)]


def test_the_compose_s3_service_command_serves_the_env_example_bucket(weed: Path, tmp_path: Path) -> None:
    settings = _env_example()
    port = free_port()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": settings["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": settings["AWS_SECRET_ACCESS_KEY"],
        "S3_BUCKET": settings["BACKUP_BUCKET"],
    }
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )

    def bucket_ready() -> bool:
        try:
            client.head_bucket(Bucket=settings["BACKUP_BUCKET"])
            return True
        except Exception:
            return False

    for round_ in ("first start", "after a restart"):
        with open(tmp_path / "weed.log", "ab") as log:
            server = subprocess.Popen(
                _command(weed, tmp_path / "data", port), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        try:
            wait_for(bucket_ready, timeout=120, what=f"the compose S3 service's bucket ({round_})")
            if round_ == "first start":
                client.put_object(Bucket=settings["BACKUP_BUCKET"], Key="kept", Body=b"survives a restart")
            else:
                body = client.get_object(Bucket=settings["BACKUP_BUCKET"], Key="kept")["Body"].read()
                assert body == b"survives a restart"
                with pytest.raises(ClientError, match=r"PreconditionFailed|412"):
                    client.put_object(Bucket=settings["BACKUP_BUCKET"], Key="kept", Body=b"x", IfNoneMatch="*")
        finally:
            server.terminate()
            server.wait(timeout=30)
