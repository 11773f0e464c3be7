"""The Helm chart and deploy/: one source of truth, lint, server-side dry runs, and a real
install whose ServiceAccount runs the operator (so the chart's RBAC is what is exercised).

The tests on a real control plane or with Helm; the offline ones are in tests/unit/test_chart.py."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.kube import ControlPlane
from devenv.kube import build as build_control_plane
from devenv.wait import wait_for

from ..kit.helpers import ROOT
from ..kit.kubeenv import KubeEnv, OperatorProcess
from ..unit.test_chart import _example_backup, rbac_problems

CHART = ROOT / "charts" / "pgbackup"


@pytest.fixture(scope="module")
def helm() -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), "helm"], stdout=subprocess.PIPE, text=True)
    assert built.returncode == 0, "scripts/tools-build helm failed"
    return Path(built.stdout.strip().splitlines()[-1])


def run(helm: Path, kube: KubeEnv | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    extra = [f"--kubeconfig={kube.plane.kubeconfig}"] if kube else []
    result = subprocess.run([str(helm), *args, *extra], capture_output=True, text=True)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def test_helm_lint_is_clean(helm: Path) -> None:
    result = run(helm, None, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_values_schema_rejects_nonsense(helm: Path) -> None:
    result = run(helm, None, "template", "x", str(CHART), "--set", "rbac.clusterWide=false", check=False)
    assert result.returncode != 0 and "namespaces" in result.stderr


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"rbac": {"clusterWide": False, "namespaces": ["default", "kube-public"]}},
        {"backups": "example"},
        {
            "podSecurityContext": {"runAsUser": 1000680000, "fsGroup": 1000680000},
            "priorityClassName": "ops",
            "imagePullSecrets": [{"name": "registry"}],
        },
    ],
)
def test_rendered_manifests_pass_server_side_dry_run(
    helm: Path, kube: KubeEnv, tmp_path: Path, values: dict[str, Any]
) -> None:
    """In a namespace that warns on the restricted Pod Security Standard: the operator's pod
    template must not trip it."""
    if values.get("backups") == "example":
        values = {"backups": [_example_backup()]}
    (tmp_path / "values.json").write_text(json.dumps(values))
    kube.plane.kubectl("create", "namespace", "pgbackup-dry", check=False)
    kube.plane.kubectl(
        "label", "--overwrite", "namespace", "pgbackup-dry", "pod-security.kubernetes.io/warn=restricted"
    )
    rendered = run(
        helm,
        kube,
        "template",
        "pgb",
        str(CHART),
        "-n",
        "pgbackup-dry",
        "--include-crds",
        "-f",
        str(tmp_path / "values.json"),
    ).stdout
    (tmp_path / "rendered.yaml").write_text(rendered)
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment"} <= kinds
    applied = kube.plane.kubectl("apply", "--dry-run=server", "-f", str(tmp_path / "rendered.yaml"), check=False)
    assert applied.returncode == 0, applied.stderr
    assert "PodSecurity" not in applied.stderr, applied.stderr
    rules = [r for d in yaml.safe_load_all(rendered) if d and d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    assert rules and rbac_problems(rules) == []


def test_the_notes_warn_of_unsigned_backups_and_of_drills_without_a_scratch_server(
    helm: Path, kube: KubeEnv, tmp_path: Path
) -> None:
    example = _example_backup()
    unsigned = {**example, "name": "unsigned", "spec": {k: v for k, v in example["spec"].items() if k != "signing"}}
    lonely = {
        **example,
        "name": "lonely",
        "namespace": "db",
        "spec": {**example["spec"], "verify": {"schedule": "@weekly"}},
    }
    trusted = {
        **example,
        "name": "trusted",
        "spec": {**example["spec"], "verify": {"schedule": "@weekly", "onBackupServer": True}},
    }
    (tmp_path / "values.json").write_text(json.dumps({"backups": [example, unsigned, lonely, trusted]}))
    notes = run(
        helm, kube, "install", "pgb", str(CHART), "-n", "ops", "--dry-run=client", "-f", str(tmp_path / "values.json")
    ).stdout.split("NOTES:", 1)[1]
    warnings = [" ".join(w.split()) for w in notes.split("WARNING: ")[1:]]
    assert [w.split(" has ")[0] for w in warnings] == ["PgBackup default/unsigned", "PgBackup db/lonely"]
    assert "whoever can write its bucket is trusted like the database superuser" in warnings[0]
    assert "every drill fails" in warnings[1] and "Set spec.verify.server" in warnings[1]


def test_the_values_schema_checks_the_signing_keys(helm: Path, tmp_path: Path) -> None:
    backup = _example_backup()
    backup["spec"]["signing"]["publicKeys"] = ["ed25519:not-a-key="]
    (tmp_path / "values.json").write_text(json.dumps({"backups": [backup]}))
    result = run(helm, None, "template", "x", str(CHART), "-f", str(tmp_path / "values.json"), check=False)
    assert result.returncode != 0 and "/backups/0/spec/signing/publicKeys/0" in result.stderr, result.stderr


def test_monitoring_objects_render_only_when_asked(helm: Path, tmp_path: Path) -> None:
    def kinds(*sets: str) -> dict[str, dict[str, Any]]:
        args = [arg for item in sets for arg in ("--set", item)]
        rendered = run(helm, None, "template", "pgb", str(CHART), "-n", "ops", *args).stdout
        return {d["kind"]: d for d in yaml.safe_load_all(rendered) if d}

    default = kinds()
    assert "ServiceMonitor" not in default and "PrometheusRule" not in default and "ConfigMap" not in default
    service = default["Service"]
    assert service["spec"]["ports"][0]["port"] == 9090 and service["metadata"]["name"] == "pgb-pgbackup-metrics"
    env = {e["name"]: e.get("value") for e in default["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGBACKUP_METRICS_PORT"] == "9090"
    everything = kinds(
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
    )
    monitor = everything["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prom" and monitor["spec"]["endpoints"][0]["port"] == "metrics"
    rules = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus-rules.yaml").read_text())
    assert everything["PrometheusRule"]["spec"] == rules  # templates like {{ $labels.name }} survive Helm
    dashboard = everything["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["pgbackup.json"])["title"] == "pgbackup"
    off = kinds("metrics.enabled=false")
    assert "Service" not in off
    off_env = {e["name"]: e.get("value") for e in off["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert off_env["PGBACKUP_METRICS_PORT"] == "0"


def _deployment(helm: Path, *sets: str) -> dict[str, Any]:
    args = [arg for item in sets for arg in ("--set", item)]
    rendered = run(helm, None, "template", "pgb", str(CHART), "-n", "ops", *args).stdout
    return next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")


def test_the_operator_pod_fixes_no_ids_and_takes_overrides(helm: Path) -> None:
    pod = _deployment(helm)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "imagePullSecrets" not in pod and "priorityClassName" not in pod

    pod = _deployment(
        helm,
        "podSecurityContext.runAsUser=1000680000",
        "podSecurityContext.fsGroup=1000680000",
        "securityContext.runAsGroup=0",
        "imagePullSecrets[0].name=registry",
        "priorityClassName=ops",
    )["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1000680000,
        "fsGroup": 1000680000,
    }  # merged over the defaults
    assert pod["containers"][0]["securityContext"]["runAsGroup"] == 0
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["imagePullSecrets"] == [{"name": "registry"}] and pod["priorityClassName"] == "ops"


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("podSecurityContext.runAsUser=-1", "runAsUser"),
        ("imagePullSecrets[0].secret=registry", "imagePullSecrets"),
        ("priorityClassName=1", "priorityClassName"),
    ],
)
def test_values_schema_checks_the_pod_settings(helm: Path, setting: str, complaint: str) -> None:
    result = run(helm, None, "template", "x", str(CHART), "--set", setting, check=False)  # 1 is a number here
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_kustomize_deploy_passes_server_side_dry_run(kube: KubeEnv) -> None:
    kube.plane.kubectl("create", "namespace", "pgbackup-system", check=False)  # a dry run creates nothing
    applied = kube.plane.kubectl("apply", "-k", str(ROOT / "deploy"), "--dry-run=server", check=False)
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/pgbackup-operator created (server dry run)" in applied.stdout


@pytest.fixture(scope="module")
def bare_kube() -> Iterator[KubeEnv]:
    """A control plane of its own, without the CRD: the chart installs it from crds/."""
    plane = ControlPlane(build_control_plane(), Path(tempfile.mkdtemp(prefix="pgbackup-k8s-helm-")))
    try:
        plane.up()
        yield KubeEnv(plane)
    finally:
        plane.down()


def test_helm_install_runs_the_operator_with_the_chart_s_account_and_uninstall_cleans_up(
    helm: Path, bare_kube: KubeEnv, tmp_path: Path
) -> None:
    kube = bare_kube
    namespace, watched = "pgbackup-helm", "h-watched"
    for name in (namespace, watched):
        kube.plane.kubectl("create", "namespace", name, check=False)
    values = {
        "rbac": {"clusterWide": False, "namespaces": [watched]},
        "backups": [{**_example_backup(), "name": "via-helm", "namespace": watched}],
    }
    (tmp_path / "values.json").write_text(json.dumps(values))
    run(helm, kube, "install", "pgb", str(CHART), "-n", namespace, "-f", str(tmp_path / "values.json"), "--wait=false")
    assert kube.pgbackup(watched, "via-helm")["spec"]["schedule"] == "30 2 * * *"

    kube.plane.wait_for_discovery()  # the chart just created the CRD
    with OperatorProcess(kube, service_account=("pgb-pgbackup", namespace), namespaces=[watched]):
        wait_for(lambda: kube.cronjob(watched, "pgbackup-via-helm"), timeout=60, what="the CronJob")
        wait_for(
            lambda: (kube.condition(watched, "via-helm", "Ready") or {}).get("status") == "True",
            timeout=30,
            what="Ready",
        )

    run(helm, kube, "uninstall", "pgb", "-n", namespace, "--wait")

    def leftovers() -> list[str]:
        listed = kube.plane.kubectl("get", "all,sa,role,rolebinding", "-n", namespace, "-o", "name").stdout.split()
        listed += kube.plane.kubectl("get", "clusterrole,clusterrolebinding", "-o", "name").stdout.split()
        listed += kube.plane.kubectl("get", "pgb,cronjobs", "-n", watched, "-o", "name").stdout.split()
        return [x for x in listed if "pgb" in x or "via-helm" in x]

    # the Deployment's ReplicaSet and Pods, and the PgBackup's CronJob, go by garbage collection
    wait_for(lambda: leftovers() == [], timeout=90, what="nothing of the release left")
    assert kube.plane.kubectl("get", "crd", "pgbackups.pgbackup.io", check=False).returncode == 0, "the CRD is kept"


def test_allowed_endpoints_reach_the_operator_and_only_https_urls_pass(helm: Path) -> None:
    def env(*sets: str) -> dict[str, Any]:
        container = _deployment(helm, *sets)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert "PGBACKUP_ALLOWED_BLOB_ENDPOINTS" not in env()
    given = env("destinations.allowedEndpoints={https://a.blob.core.chinacloudapi.cn,https://psc.example/}")
    assert given["PGBACKUP_ALLOWED_BLOB_ENDPOINTS"] == "https://a.blob.core.chinacloudapi.cn,https://psc.example/"
    for entry in ("http://psc.example", "https://psc.example/?sig=x", "https://user@psc.example"):
        refused = run(
            helm, None, "template", "x", str(CHART), "--set", f"destinations.allowedEndpoints={{{entry}}}", check=False
        )
        assert refused.returncode != 0 and "allowedEndpoints" in refused.stderr, refused.stderr
