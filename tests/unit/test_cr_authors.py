"""A PgBackup or PgRestore lets its author do nothing the author could not do with pods and
Secrets directly: attacked on a real control plane (RBAC, the CRDs' schemas and
``deploy/admission-policy.yaml`` as ``deploy/`` installs them), as ``alice``, who may create
PgBackups and PgRestores in her namespace and read one Secret of her own, but may not create
pods nor read the namespace's other Secrets; and as ``bob``, who may also create pods and read
every Secret there, and so may shape the pods.

Requests are made as those users through impersonation (``kubectl --as``): the API server
authorizes and admits them exactly as their own requests.

The offline tests; those on a real control plane or with Helm are in tests/k8s/test_cr_authors.py."""

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
    assert len(found) == 26
    assert [path for path in found if f"'{path}" not in policy] == []
