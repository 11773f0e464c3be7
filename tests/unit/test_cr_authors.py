"""The admission policy that keeps a PgBackup's or PgRestore's author within their own rights,
checked offline: it names every Secret reference and account field of both CRDs.

What is guarded and why, and the tests that run pgbackup, real services or a control plane:
tests/k8s/test_cr_authors.py."""

from __future__ import annotations

from typing import Any

import yaml

from ..kit.helpers import ROOT

POLICY = ROOT / "deploy" / "admission-policy.yaml"


def test_the_policy_names_every_secret_reference_and_account_of_both_crds() -> None:
    """A *SecretRef or serviceAccountName added to a CRD without the policy knowing of it would
    be a way around the policy."""
    policy = POLICY.read_text()
    found = []
    for crd in ("crd.yaml", "crd-pgrestore.yaml"):
        schema = yaml.safe_load((ROOT / "deploy" / crd).read_text())["spec"]["versions"][0]["schema"]
        stack: list[tuple[str, dict[str, Any]]] = [("spec", schema["openAPIV3Schema"]["properties"]["spec"])]
        while stack:
            path, node = stack.pop()
            for key, child in (node.get("properties") or {}).items():
                if key.endswith("SecretRef") or key == "serviceAccountName":
                    found.append(f"{path}.{key}")
                stack.append((f"{path}.{key}", child))
    assert len(found) == 28
    assert [path for path in found if f"'{path}" not in policy] == []
