"""``kubectl pgbackup`` end to end on the real control plane, as a user with only the rights
the documentation lists for it: no Secrets, no Jobs, no bucket credentials.

The operator makes the Jobs; the stand-in kubelet runs their pods against the real PostgreSQL
and S3 on a Node of its own (``LogNode``), so ``pods/log`` goes through the API server as on a
cluster. The plugin runs as kubectl runs it: the real ``kubectl`` finds ``kubectl-pgbackup``
on the ``PATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.kube import write_kubeconfig
from devenv.postgres import Cluster
from devenv.wait import wait_for
from pgbackup_operator import kube as operator_kube

from ..kit.helpers import Bucket
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from ..kit.lognode import LogNode
from .test_operator_day_two import _pods, _setup, _spec

# What docs/kubectl-plugin.md asks for each command, in one Role.
USER_RULES = [
    {"apiGroups": ["pgbackup.io"], "resources": ["pgbackups"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["pgbackup.io"], "resources": ["pgrestores"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["pgbackup-src-backups"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]
VIEWER_RULES = [{"apiGroups": ["pgbackup.io"], "resources": ["pgbackups"], "verbs": ["get", "list"]}]


def _user(kube: KubeEnv, namespace: str, name: str, rules: list[dict[str, Any]], directory: Path) -> Path:
    """A ServiceAccount bound to a Role of ``rules``, and a kubeconfig with its token."""
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac = kube.plane.kubectl
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    for obj in (role, binding):
        path = directory / f"{name}-{obj['kind']}.json"
        path.write_text(json.dumps(obj))
        rbac("apply", "-n", namespace, "-f", str(path))
    token = rbac("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    config = write_kubeconfig(directory / f"{name}.kubeconfig", kube.plane.server, kube.plane.pki, name, token)
    # The context's namespace, as `kubectl config set-context --current --namespace` sets it.
    rbac("config", f"--kubeconfig={config}", "set-context", "--current", f"--namespace={namespace}")
    return config


class Plugin:
    """``kubectl pgbackup ...`` through the real kubectl, with one user's kubeconfig."""

    def __init__(self, kube: KubeEnv, kubeconfig: Path) -> None:
        bindir = Path(sys.executable).parent  # where pip put kubectl-pgbackup
        self.argv = [str(kube.plane.bindir / "kubectl"), "pgbackup"]
        self.env = {"PATH": f"{bindir}:{os.environ['PATH']}", "KUBECONFIG": str(kubeconfig), "HOME": str(bindir)}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.argv, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True, timeout=120)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def _run_job_of(kube: KubeEnv, kubelet: Kubelet, namespace: str, label: str, value: str) -> None:
    """Run the new pod (not run yet) whose ``label`` is ``value`` once the Job controller made it."""

    def pod() -> dict[str, Any] | None:
        found = kube.core.list_namespaced_pod(namespace, label_selector=f"{label}={value}").items
        new = [kube.plain(p) for p in found if not p.spec.node_name]
        return new[0] if new else None

    wait_for(pod, timeout=60, what=f"the pod with {label}={value}")
    found = pod()
    assert found is not None
    result = kubelet.run(found)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def node(kube: KubeEnv) -> Iterator[LogNode]:
    with LogNode(kube) as found:
        yield found


def test_the_plugin_backs_up_lists_restores_and_shows_logs_with_a_users_rights(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    dbname: str,
    node: LogNode,
    tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n", dbname)
    _setup(kube, namespace, pg18)
    kube.create_pgbackup(namespace, "src", _spec(pg18, bucket, dbname))
    wait_for(lambda: kube.condition(namespace, "src", "Ready"), timeout=30, what="src reconciled")
    kubelet = Kubelet(kube, bindir18, tmp_path, node=node)
    user = Plugin(kube, _user(kube, namespace, "operator-of-backups", USER_RULES, tmp_path))

    shown = user.run("status")
    assert shown.returncode == 0, shown.stderr
    header, line = shown.stdout.splitlines()
    assert header.split() == ["NAME", "LAST", "RUN", "LAST", "SUCCESS", "FRESH", "LAST", "DRILL", "NEXT", "RUN"]
    assert line.split()[:3] == ["src", "-", "never"], line

    # backup --wait: the run's log, streamed through pods/log, and its exit code.
    waiting = user.start("backup", "src", "--wait")
    _run_job_of(kube, kubelet, namespace, "pgbackup.io/manual", "true")
    code, out, err = _finish(waiting)
    assert code == 0, err
    assert dbname in out, f"the run's log is printed: {out!r}"
    assert "succeeded" in err

    # list: the operator lists the bucket with the PgBackup's identity and publishes it. Whoever
    # writes the bucket chooses its names: one that would clear the screen and forge a line.
    listing = user.start("list", "src", "--database", dbname)
    _run_job_of(kube, kubelet, namespace, "app.kubernetes.io/component", "list")
    code, out, err = _finish(listing)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["DATABASE", dbname], out
    bucket.put("k8s/evil%1B%5B2J%0Aforged/20260101T000000Z.sql.gz", b"x")
    listing = user.start("list", "src")  # a second answer replaces the first in the ConfigMap
    _run_job_of(kube, kubelet, namespace, "app.kubernetes.io/component", "list")
    code, out, err = _finish(listing)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["DATABASE", "TIMESTAMP"], out
    assert [line.split()[0] for line in lines[1:]] == [dbname, "evil\\x1b[2J\\nforged", "(globals)"], out
    assert "complete" in lines[1], out
    assert "\x1b" not in out

    # logs: the last run's log again, read later.
    logs = user.run("logs", "src")
    assert logs.returncode == 0, logs.stderr
    assert dbname in logs.stdout

    # restore --wait: a PgRestore followed to Succeeded, with its log.
    restoring = user.start(
        "restore", "src", "--database", dbname, "--target", f"{dbname}_r", "--create", "--name", "back", "--wait"
    )
    wait_for(lambda: _pods(kube, namespace, "pgrestore-back"), timeout=60, what="the restore pod")
    assert kubelet.run(_pods(kube, namespace, "pgrestore-back")[0]).returncode == 0
    code, out, err = _finish(restoring)
    assert code == 0, err
    assert f"INFO    restore of '{dbname}' into '{dbname}_r' finished" in out, f"the restore's log: {out!r}"
    assert "pgrestore back: Succeeded" in err
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(1000,)]

    shown = user.run("status", "-o", "json")
    assert '"result": "Succeeded"' in shown.stdout, shown.stdout

    # Someone who may only look: one line naming what RBAC refused.
    viewer = Plugin(kube, _user(kube, namespace, "looker", VIEWER_RULES, tmp_path))
    refused = viewer.run("backup", "src")
    assert refused.returncode == 1
    assert refused.stderr == (
        f"kubectl pgbackup: you may not patch pgbackups.pgbackup.io in namespace {namespace} (RBAC); "
        "ask your cluster admin for that right\n"
    )


def test_the_operator_writes_only_its_own_listing_config_map(
    kube: KubeEnv, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without reading any ConfigMap: one of the name that is not the owner's is left alone.
    (The owners are ConfigMaps too: garbage collection deletes what an absent owner owns.)"""
    monkeypatch.setattr(operator_kube, "_api", lambda: kube.api)

    def config_map(name: str, data: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
        meta = {"name": name, "namespace": namespace, "ownerReferences": owners}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"listing": data}}

    def owner(name: str) -> dict[str, Any]:
        made = kube.core.create_namespaced_config_map(namespace, config_map(name, "", []))
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": made.metadata.uid, "controller": True}

    def data(name: str) -> str:
        return str(kube.core.read_namespaced_config_map(name, namespace).data["listing"])

    ours, another = owner("ours"), owner("another")
    operator_kube.put_config_map(config_map("mine", "first", [ours]))
    operator_kube.put_config_map(config_map("mine", "second", [ours]))
    assert data("mine") == "second"
    kube.core.create_namespaced_config_map(namespace, config_map("theirs", "kept", []))
    kube.core.create_namespaced_config_map(namespace, config_map("other", "kept", [another]))
    for name in ("theirs", "other"):
        with pytest.raises(operator_kube.NameTaken):
            operator_kube.put_config_map(config_map(name, "forged", [ours]))
        assert data(name) == "kept"
