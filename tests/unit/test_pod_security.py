"""Rendered pods run under any cluster's pod security: no fixed uid, gid or fsGroup (the image's
``USER 10001:0`` or the cluster's own choice), restricted hardening always, and the spec's
overrides (``spec.pod.securityContext``, ``containerSecurityContext``, ``imagePullSecrets``,
``priorityClassName``) on every pod the operator renders."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from pgbackup_operator import render

from ..kit.helpers import ROOT

BODY: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgBackup",
    "metadata": {"name": "prod", "namespace": "db", "uid": "1234-uid", "generation": 1},
    "spec": {
        "schedule": "30 2 * * *",
        "postgres": {
            "host": "pg",
            "user": "backup",
            "sslMode": "verify-full",
            "passwordSecretRef": {"name": "pg"},
            "tls": {"caSecretRef": {"name": "pg-ca"}, "clientCertSecretRef": {"name": "pg-client"}},
        },
        "destination": {"s3": {"bucket": "backups"}},
        "retention": {"last": 3, "schedule": "0 4 * * *"},
        "verify": {"schedule": "0 5 * * 0", "decryptionSecretRef": {"name": "age"}},
        "signing": {
            "privateKeySecretRef": {"name": "signer"},
            "publicKeys": ["ed25519:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="],
        },
    },
}
FIXED_IDS = {"runAsUser", "runAsGroup", "fsGroup"}


def pods(**pod: Any) -> dict[str, dict[str, Any]]:
    """Every pod spec the operator renders for ``BODY`` with ``spec.pod`` = ``pod``, by component."""
    body = copy.deepcopy(BODY)
    body["spec"]["pod"] = copy.deepcopy(pod)
    rendered = {name: obj for name, obj in render.render_all(body, "img:1").items() if obj}
    assert len(rendered) >= 3, sorted(rendered)  # backup, verify, prune
    return {name: obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] for name, obj in rendered.items()}


def test_no_pod_fixes_a_uid_gid_or_fs_group_and_all_stay_restricted() -> None:
    for name, pod in pods().items():
        assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}, name
        assert pod["containers"][0]["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }, name
        assert "imagePullSecrets" not in pod and "priorityClassName" not in pod


def test_security_contexts_merge_over_the_defaults_key_by_key() -> None:
    rendered = pods(
        securityContext={
            "runAsUser": 1000680000,
            "fsGroup": 1000680000,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "pgbackup.json"},
        },
        containerSecurityContext={"runAsGroup": 0, "readOnlyRootFilesystem": True},
    )
    for name, pod in rendered.items():
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 1000680000,
            "fsGroup": 1000680000,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "pgbackup.json"},
        }, name
        assert pod["containers"][0]["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "runAsGroup": 0,
        }, name


def test_image_pull_secrets_and_priority_class_reach_every_pod() -> None:
    for name, pod in pods(imagePullSecrets=[{"name": "registry"}], priorityClassName="backups").items():
        assert pod["imagePullSecrets"] == [{"name": "registry"}] and pod["priorityClassName"] == "backups", name


def test_renders_share_no_mutable_defaults() -> None:
    first = pods()
    first["backup"]["securityContext"]["seccompProfile"]["type"] = "Unconfined"
    first["backup"]["containers"][0]["securityContext"]["capabilities"]["drop"].append("oops")
    again = pods()["backup"]
    assert again["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert again["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_secret_volumes_are_readable_through_gid_0_and_acceptable_to_libpq() -> None:
    """0440: the kubelet makes Secret files root's with group root (or the fsGroup), so the pod's
    GID 0 reads them under any uid; libpq accepts a root-owned key of 0640 or less."""
    checked = set()
    for name, pod in pods().items():
        for volume in pod["volumes"]:
            if "secret" in volume:
                mode = volume["secret"]["defaultMode"]
                assert mode & 0o040 and not mode & 0o137, (name, volume["name"], oct(mode))
                checked.add(volume["name"])
    assert {"tls-ca", "tls-client", "age-identity", "signing-key"} <= checked


@pytest.mark.parametrize(
    "field", ["securityContext", "containerSecurityContext", "imagePullSecrets", "priorityClassName"]
)
def test_the_crd_declares_the_pod_fields(field: str) -> None:
    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pod = schema["properties"]["spec"]["properties"]["pod"]["properties"]
    assert field in pod and pod[field].get("description")
