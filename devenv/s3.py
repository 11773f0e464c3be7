"""A real S3 server over HTTP on loopback: moto's server, run as a subprocess.

The code under test talks to it with plain boto3 through ``AWS_ENDPOINT_URL_S3``, exactly
as it would talk to AWS or MinIO; nothing is patched in-process.

``IamS3Server`` is a second moto server that checks each S3 request against the IAM policies
of the user whose access key signed it, so a policy can be proved against real requests.
moto starts enforcing once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have passed; the server
is started with 0 (enforcing from the first request), and its ``/moto-api/reset-auth``
endpoint (what moto's own ``set_initial_no_auth_action_count`` calls against a server) lifts
enforcement only while users and buckets are being created. moto's checks, found by trying
them (moto 5.2): the action and the resource ARN of every S3 request are matched, with
moto's own action names (HeadObject is s3:GetObject, every multipart call but the abort
s3:PutObject, ListObjectsV2 s3:ListBucket, a conditional PutObject plain s3:PutObject), and
an unknown access key answers InvalidAccessKeyId; a policy's ``Condition`` is never
evaluated (``s3:prefix`` limits nothing), and DeleteObjects (the batch) is checked against
the bucket's ARN rather than each key's, so it answers AccessDenied per key where a policy
grants deletes under a prefix only.

Before it serves a test, ``IamS3Server`` checks that it authorizes a multipart upload as AWS
does: allowed to a user holding only ``s3:PutObject``, refused to one holding only
``s3:GetObject``. A moto that fails this (5.2.6 checks CreateMultipartUpload as
``s3:CreateMultipartUpload``, which is no IAM action) cannot stand in for IAM, and every test
on it would fail as if pgbackup's policies were wrong; it fails at start with one line saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

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

    server_env: ClassVar[dict[str, str]] = {}  # added to the server process's environment

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {self._proc.returncode}")
        try:
            with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> S3Server:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **self.server_env},
        )
        wait_for(self._up, timeout=60, what="moto S3 server answering")
        return self

    def stop(self) -> None:
        stop_process(self._proc)

    def env(self) -> dict[str, str]:
        """AWS SDK variables that reach this server."""
        return sdk_env(self.endpoint)

    def client(self) -> Any:
        """A boto3 client with the test keys, made once: making one costs as much as a request,
        and the tests' helpers ask for one per request (boto3 clients are thread-safe)."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
            )
        return self._client

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Identity:
    """An IAM user's access key on an ``IamS3Server``."""

    name: str
    access_key: str
    secret_key: str
    endpoint: str

    def env(self) -> dict[str, str]:
        """AWS SDK variables that sign as this user."""
        return {
            **sdk_env(self.endpoint),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )


class IamS3Server(S3Server):
    """moto's S3 server that allows each S3 request only as the signing user's IAM policies do."""

    server_env: ClassVar[dict[str, str]] = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"}

    def _post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    @contextmanager
    def unenforced(self) -> Iterator[None]:
        """Requests made inside are not checked (to create users and buckets)."""
        self._post("/moto-api/reset-auth", b"inf")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", b"0")

    def start(self) -> IamS3Server:
        super().start()
        try:
            self._check_multipart_is_authorized_as_aws_does()
        except Exception:
            self.stop()
            raise
        return self

    def _check_multipart_is_authorized_as_aws_does(self) -> None:
        import importlib.metadata

        from botocore.exceptions import ClientError

        self.create_bucket("iam-self-check")
        verdicts = {}
        for action in ("s3:PutObject", "s3:GetObject"):
            user = self.identity(
                f"self-check-{action[3:]}",
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": action, "Resource": "arn:aws:s3:::iam-self-check/*"}],
                },
            )
            try:
                user.client().create_multipart_upload(Bucket="iam-self-check", Key="k")
                verdicts[action] = "allowed"
            except ClientError as exc:
                verdicts[action] = exc.response["Error"]["Code"]
        self.reset()
        if verdicts != {"s3:PutObject": "allowed", "s3:GetObject": "AccessDenied"}:
            raise RuntimeError(
                f"moto {importlib.metadata.version('moto')} does not authorize CreateMultipartUpload as AWS does "
                f"(s3:PutObject required): a user holding only s3:PutObject was {verdicts['s3:PutObject']}, "
                f"one holding only s3:GetObject {verdicts['s3:GetObject']}; it cannot stand in for IAM "
                f"(requirements/constraints.txt holds moto back for this)"
            )

    def reset(self) -> None:
        """Forget every bucket, object, user and key."""
        self._post("/moto-api/reset")

    def create_bucket(self, name: str) -> None:
        with self.unenforced():
            self.client().create_bucket(Bucket=name)

    def identity(self, name: str, policy: dict[str, Any]) -> Identity:
        """A new IAM user with ``policy`` as its only (inline) policy, and an access key."""
        import boto3

        with self.unenforced():
            iam = boto3.client(
                "iam",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
            )
            iam.create_user(UserName=name)
            iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=name)["AccessKey"]
        return Identity(name, key["AccessKeyId"], key["SecretAccessKey"], self.endpoint)
