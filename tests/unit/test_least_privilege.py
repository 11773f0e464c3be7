"""The three IAM policies of docs/iam-policies.md, proved against an S3 server that enforces IAM.

Each job runs as an IAM user whose only policy is one of ``deploy/iam/*.json``, verbatim
(bucket ``my-backups``, prefix ``prod/``), on ``devenv.s3.IamS3Server`` (moto's server with
IAM enforced), with real PostgreSQL 18 behind it:

- backup (``backup.json``): ``pgbackup run`` succeeds; the only requests refused are the two
  listings (stale-upload sweep, shrink alarm) and the existence checks, each degrading as
  designed; the identity can neither read nor delete, and ``pgbackup prune`` with it fails in
  one line naming s3:ListBucket, deleting nothing. A failed dump's upload is aborted. A
  retried pod of the same run cannot recognise its own backups and fails them, saying so;
- read (``read.json``): ``list``, ``verify`` and ``restore`` succeed without one refused
  request; deletes and writes are refused, and ``pgbackup prune`` with it deletes nothing;
- prune (``prune.json``): ``pgbackup prune`` deletes exactly the backups retention drops and
  nothing else under the prefix, cannot write, and cannot delete outside the prefix.

Every S3 request of a job goes through ``devenv.faultproxy`` (forwarding only), whose log
says which operations each job made and which were refused.

What moto does not enforce (moto 5.2, see ``devenv/s3.py``): a policy's ``Condition`` is
never evaluated, so the ``s3:prefix`` condition of the read and prune policies limits nothing
there; instead the prefix of every listing pgbackup sent is matched against the condition's
patterns here, as IAM's StringLike would. DeleteObjects (the batch call, which pgbackup does
not use) is checked against the bucket's ARN rather than each key's. Everything pgbackup
does use (PutObject with and without If-None-Match, the multipart calls, HeadObject as
s3:GetObject, GetObject, ListObjectsV2 as s3:ListBucket, ListMultipartUploads, DeleteObject)
is checked by action and resource.

The offline tests; those that run pgbackup or real services are in tests/integration/test_least_privilege.py."""

from __future__ import annotations

import json
import re
from typing import Any

from ..kit.helpers import ROOT

BUCKET, PREFIX = "my-backups", "prod"
JOBS = ("backup", "read", "prune")
# What the docs add to the backup policy to keep the run's own sweep of killed runs' uploads.
SWEEP = [
    {"Effect": "Allow", "Action": "s3:ListBucketMultipartUploads", "Resource": f"arn:aws:s3:::{BUCKET}"},
    {"Effect": "Allow", "Action": "s3:ListMultipartUploadParts", "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}/*"},
]


def policy(job: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "deploy" / "iam" / f"{job}.json").read_text()))


def policies_page() -> str:
    return (ROOT / "docs" / "iam-policies.md").read_text()


def granted(document: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in document["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def admitted_prefixes(document: dict[str, Any]) -> list[str]:
    """The ``s3:prefix`` patterns under which the policy allows s3:ListBucket."""
    for statement in document["Statement"]:
        if statement["Action"] == "s3:ListBucket":
            patterns = statement["Condition"]["StringLike"]["s3:prefix"]
            return [patterns] if isinstance(patterns, str) else list(patterns)
    raise AssertionError("no s3:ListBucket statement")


def test_the_docs_show_the_policy_files() -> None:
    section = policies_page()
    shown = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]
    assert shown == [policy(job) for job in JOBS]
    assert all(statement["Action"] in section for statement in SWEEP), "the page names the sweep's permissions"


def test_only_the_prune_policy_deletes_and_none_reaches_past_the_prefix() -> None:
    actions = {job: granted(policy(job)) for job in JOBS}
    assert actions == {
        "backup": {"s3:PutObject", "s3:AbortMultipartUpload"},
        "read": {"s3:ListBucket", "s3:GetObject"},
        "prune": {"s3:ListBucket", "s3:GetObject", "s3:DeleteObject"},
    }
    for job in JOBS:
        for statement in policy(job)["Statement"]:
            assert statement["Effect"] == "Allow"
            expected = (
                f"arn:aws:s3:::{BUCKET}"
                if statement["Action"] == "s3:ListBucket"
                else f"arn:aws:s3:::{BUCKET}/{PREFIX}/*"
            )
            assert statement["Resource"] == expected, (job, statement)
    assert admitted_prefixes(policy("read")) == admitted_prefixes(policy("prune")) == [f"{PREFIX}/*"]
