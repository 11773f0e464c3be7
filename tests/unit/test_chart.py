"""The Helm chart and deploy/: one source of truth, lint, server-side dry runs, and a real
install whose ServiceAccount runs the operator (so the chart's RBAC is what is exercised).

The offline tests; those on a real control plane or with Helm are in tests/k8s/test_chart.py."""

from __future__ import annotations

from typing import Any

import yaml

from devenv import chart_sync

from ..kit.helpers import ROOT


def test_chart_copies_match_deploy() -> None:
    for path, text in chart_sync.expected().items():
        assert path.read_text() == text, f"{path} is out of date: run scripts/sync-chart"


def _example_backup() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "examples" / "pgbackup-s3-compatible.yaml").read_text()))
    pgbackup = next(d for d in docs if d["kind"] == "PgBackup")
    return {"name": "from-values", "namespace": "default", "spec": pgbackup["spec"]}


def test_the_example_backup_is_signed_and_drills_on_a_scratch_server() -> None:
    """The example every doc points at sets a deployment up as the security model wants it."""
    spec = _example_backup()["spec"]
    assert spec["signing"]["privateKeySecretRef"]["name"] and spec["signing"]["publicKeys"]
    assert spec["verify"]["server"]["host"] != spec["postgres"]["host"] and not spec["verify"].get("onBackupServer")


def rbac_problems(rules: list[dict[str, Any]]) -> list[str]:
    """What least privilege forbids: any access to Secrets, and wildcards anywhere."""
    problems = []
    for rule in rules:
        if "secrets" in rule.get("resources", []):
            problems.append(f"grants {rule.get('verbs')} on secrets")
        for field in ("resources", "apiGroups", "verbs"):
            if any("*" in item for item in rule.get(field, [])):
                problems.append(f"wildcard in {field}: {rule.get(field)}")
    return problems


def test_rbac_rules_grant_no_secrets_and_no_wildcards() -> None:
    rules = [
        r
        for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text())
        if d and d["kind"] in ("ClusterRole", "Role")
        for r in d["rules"]
    ]
    assert rules and rbac_problems(rules) == []
    broken = [
        *rules,
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": ["batch"], "resources": ["jobs/*"], "verbs": ["*"]},
    ]
    assert rbac_problems(broken) == [
        "grants ['get'] on secrets",
        "wildcard in apiGroups: ['*']",
        "wildcard in resources: ['jobs/*']",
        "wildcard in verbs: ['*']",
    ]
