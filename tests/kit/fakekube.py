"""``FakeKube``: the Kubernetes API as the stand-in kubelet uses it, from dictionaries.

The stand-in (``kubelet.py``) reads a pod's Secrets and ConfigMaps and writes its status
back; these are the only calls it makes. Tests that want the stand-in's environment or a
run without a control plane give it this instead of an API client: a missing Secret or
ConfigMap is the API's own 404, and every status written is kept in ``statuses``.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

from kubernetes.client import ApiException


class FakeKube:
    """The two reads and the one write a kubelet makes, from dictionaries."""

    def __init__(
        self, secrets: dict[str, dict[str, str]] | None = None, config_maps: dict[str, dict[str, str]] | None = None
    ) -> None:
        self.secrets = secrets or {}
        self.config_maps = config_maps or {}
        self.statuses: list[dict[str, Any]] = []
        self.core = self

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        if name not in self.secrets:
            raise ApiException(status=404)
        return SimpleNamespace(data={k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()})

    def read_namespaced_config_map(self, name: str, namespace: str) -> Any:
        if name not in self.config_maps:
            raise ApiException(status=404)
        return SimpleNamespace(data=self.config_maps[name])

    def patch_namespaced_pod_status(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self.statuses.append(body["status"])
