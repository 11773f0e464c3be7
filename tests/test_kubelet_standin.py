"""The stand-in kubelet refuses what it does not implement, so an e2e test never runs a Pod
with less than the Pod asks for. No cluster needed: every refusal comes before an API call."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from .kubeenv import Kubelet, NotImplementedByStandIn, _local

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "n"},
    "spec": {"restartPolicy": "Never", "containers": [{"name": "pgbackup", "image": "i", "command": ["true"]}]},
}


def pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(POD)
    body["spec"]["containers"][0].update(container or {})
    body["spec"].update(spec)
    return body


@pytest.mark.parametrize(("body", "message"), [
    (pod({"workingDir": "/work"}), "container fields ['workingDir']"),
    (pod({"env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}),
     "env NODE: valueFrom ['fieldRef']"),
    (pod({"envFrom": [{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}]}),
     "envFrom ['configMapRef', 'secretRef']"),
    (pod(volumes=[{"name": "data", "hostPath": {"path": "/srv"}}]), "volume data: ['hostPath']"),
    (pod({"volumeMounts": [{"name": "tmp", "mountPath": "/tmp", "subPath": "x"}]},
         volumes=[{"name": "tmp", "emptyDir": {}}]), "volumeMount ['mountPath', 'name', 'subPath']"),
    (pod(initContainers=[{"name": "init"}]), "pod fields ['initContainers']"),
])
def test_what_it_does_not_implement_fails_loudly(body: dict[str, Any], message: str, tmp_path: Path) -> None:
    kubelet = Kubelet(None, tmp_path, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedByStandIn, match=message.replace("[", r"\[").replace("]", r"\]")):
        kubelet.run(body)


def test_paths_inside_the_container_map_to_local_ones(tmp_path: Path) -> None:
    paths = {"/etc/pgbackup/tls/ca": tmp_path / "ca", "/dev/termination-log": tmp_path / "term", "/tmp": tmp_path}
    assert _local("/etc/pgbackup/tls/ca/ca.crt", paths) == f"{tmp_path}/ca/ca.crt"
    assert _local("/dev/termination-log", paths) == f"{tmp_path}/term"
    assert _local("/etc/pgbackup/tls/cabinet", paths) == "/etc/pgbackup/tls/cabinet"
    assert _local("s3://bucket/tmp", paths) == "s3://bucket/tmp"
