"""The IAM policies of docs/iam-policies.md, checked offline: the docs show them as they are,
and only the prune policy deletes, inside the prefix.

The same for the Azure roles and the GCS roles (deploy/iam/azure/, deploy/iam/gcs/), which no
test can prove against a service: Azurite and fake-gcs-server enforce no RBAC or IAM. So the
files are held to what the page says of them: the actions each grants, the prefix, and (Azure)
that every granted data action is under the prefix condition, whose clauses name the actions
they restrict.

What is guarded and why, and the tests that run pgbackup, real services or a control plane:
tests/integration/test_least_privilege.py."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

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


def section(title: str) -> str:
    """The page's ``## title`` section, up to the next ``## `` heading."""
    after = policies_page().split(f"\n## {title}\n", 1)[1]
    return after.split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


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
    s3 = section("Amazon S3")
    assert [json.loads(block) for block in blocks(s3, "json")] == [policy(job) for job in JOBS]
    assert all(statement["Action"] in s3 for statement in SWEEP), "the page names the sweep's permissions"


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


AZURE = ROOT / "deploy" / "iam" / "azure"
GCS = ROOT / "deploy" / "iam" / "gcs"
BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/"


def azure_role(job: str) -> dict[str, Any]:
    return dict(json.loads((AZURE / f"{job}.json").read_text()))


def gcs_role(job: str) -> dict[str, Any]:
    return dict(yaml.safe_load((GCS / f"{job}.yaml").read_text()))


def azure_condition() -> str:
    return (AZURE / "prefix-condition.txt").read_text()


def test_the_docs_show_the_azure_and_gcs_files() -> None:
    azure, gcs = section("Azure Blob Storage"), section("Google Cloud Storage")
    assert [json.loads(block) for block in blocks(azure, "json")] == [azure_role(job) for job in JOBS]
    assert blocks(azure, "text") == [azure_condition()]
    shown = [yaml.safe_load(block) for block in blocks(gcs, "yaml")]
    condition = yaml.safe_load((GCS / "prefix-condition.yaml").read_text())
    assert shown == [gcs_role(job) for job in JOBS] + [condition]
    for job in JOBS:
        assert f"`deploy/iam/azure/{job}.json`" in azure and f"`deploy/iam/gcs/{job}.yaml`" in gcs
    assert "enforce no RBAC or IAM" in section("What the tests prove"), "the page says the emulators prove nothing"


def test_only_the_azure_prune_role_deletes_and_no_role_reaches_the_control_plane() -> None:
    granted_actions = {job: set(azure_role(job)["DataActions"]) for job in JOBS}
    assert granted_actions == {
        "backup": {BLOBS + "read", BLOBS + "write", BLOBS + "add/action"},
        "read": {BLOBS + "read"},
        "prune": {BLOBS + "read", BLOBS + "delete"},
    }
    for job in JOBS:
        role = azure_role(job)
        assert role["IsCustom"] is True and role["Name"] == f"pgbackup {job}"
        assert role["Actions"] == role["NotActions"] == role["NotDataActions"] == [], job
        assert all("*" not in action for action in role["DataActions"]), job


NAMED = re.compile(r"!\(ActionMatches\{'([^']+)'\}(?: AND (NOT )?SubOperationMatches\{'([^']+)'\})?\)")


def condition_clauses(condition: str) -> dict[str, str]:
    """What an Azure condition demands of each action it names: ``action`` (or
    ``action#Sub`` / ``action#NOT Sub`` for a suboperation) -> the expression that must hold.

    The condition is clauses joined by ``AND`` at the start of a line, each ``(named actions)
    OR (expression)``: an action it does not name passes the clause."""
    demands = {}
    for clause in condition.strip().split("\nAND\n"):
        named, expression = re.split(r"\n\s*OR\n", clause, maxsplit=1)
        for action, negated, suboperation in NAMED.findall(named):
            key = f"{action}#{negated}{suboperation}" if suboperation else action
            demands[key] = re.sub(r"^[\s()]+|[\s()]+$", "", expression)
    return demands


def outside_the_prefix(condition: str) -> list[str]:
    """The data actions the Azure roles grant that the condition does not keep inside the
    prefix: blob operations by the blob's path, listing by the prefix it asks for."""
    demands = condition_clauses(condition)
    path = f"@Resource[{BLOBS[:-1]}:path] StringStartsWith '{PREFIX}/'"
    listing = f"@Request[{BLOBS[:-1]}:prefix] StringStartsWith '{PREFIX}/'"
    wanted = {}
    for action in sorted({action for job in JOBS for action in azure_role(job)["DataActions"]}):
        if action == BLOBS + "read":  # two operations: reading a blob, and listing
            wanted[action + "#NOT Blob.List"], wanted[action + "#Blob.List"] = path, listing
        else:
            wanted[action] = path
    return [action for action, expression in wanted.items() if demands.get(action) != expression]


def test_the_azure_condition_keeps_every_granted_action_inside_the_prefix() -> None:
    condition = azure_condition()
    assert condition.count("(") == condition.count(")")
    assert outside_the_prefix(condition) == []
    # The check can fail: a clause dropped, and a listing let through at any prefix.
    without_delete = condition.replace(f"  AND\n  !(ActionMatches{{'{BLOBS}delete'}})\n", "")
    assert outside_the_prefix(without_delete) == [BLOBS + "delete"]
    assert outside_the_prefix(condition.replace("prefix] StringStartsWith 'prod/'", "prefix] StringStartsWith ''")) == [
        BLOBS + "read#Blob.List"
    ]


def test_only_the_gcs_prune_role_deletes_and_the_condition_admits_the_prefix_alone() -> None:
    permissions = {job: set(gcs_role(job)["includedPermissions"]) for job in JOBS}
    assert permissions == {
        "backup": {"storage.objects.create", "storage.objects.get", "storage.objects.list"},
        "read": {"storage.objects.get", "storage.objects.list"},
        "prune": {"storage.objects.delete", "storage.objects.get", "storage.objects.list"},
    }
    assert all(gcs_role(job)["stage"] == "GA" and gcs_role(job)["title"] == f"pgbackup {job}" for job in JOBS)
    expression = yaml.safe_load((GCS / "prefix-condition.yaml").read_text())["expression"]
    bucket = f"projects/_/buckets/{BUCKET}"
    assert sorted(part.strip() for part in expression.split("||")) == sorted(
        [f'resource.name == "{bucket}"', f'resource.name.startsWith("{bucket}/objects/{PREFIX}/")']
    )
