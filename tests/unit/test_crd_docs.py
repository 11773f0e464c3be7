"""The field reference (docs/crd.md) is what devenv.crd_docs makes from the CRDs."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from devenv.crd_docs import CRDS, PAGE, render, section

from ..kit.helpers import ROOT


def test_the_committed_field_reference_is_made_from_the_crds() -> None:
    assert PAGE.read_text() == render(), "run: python -m devenv.crd_docs"


def test_every_field_and_every_rule_message_is_on_the_page() -> None:
    page = PAGE.read_text()

    def walk(path: str, schema: dict[str, Any]) -> None:
        assert f"| `{path}` |" in page, path
        for rule in schema.get("x-kubernetes-validations", []):
            assert rule["message"].split()[0] in page and f"`{rule['rule']}`" in page, rule
        for name, child in schema.get("properties", {}).items():
            walk(f"{path}.{name}", child)
        for name, child in schema.get("items", {}).get("properties", {}).items():
            walk(f"{path}[].{name}", child)

    for crd in (yaml.safe_load(path.read_text()) for path in CRDS):
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for top in ("spec", "status"):
            walk(top, schema["properties"][top])


def test_a_changed_schema_changes_the_page() -> None:
    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    changed = copy.deepcopy(crd)
    port = changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["postgres"]
    port["properties"]["port"]["maximum"] = 6000
    assert "≤ 65535" in section(crd) and "≤ 6000" in section(changed)
