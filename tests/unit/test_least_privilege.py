"""The IAM policies of docs/iam-policies.md, checked offline: the docs show them as they are,
and only the prune policy deletes, inside the prefix.

What is guarded and why, and the tests that run pgbackup, real services or a control plane:
tests/integration/test_least_privilege.py."""

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
