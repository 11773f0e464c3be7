"""The plugin's only way to the cluster: the user's kubeconfig, and each request named by the
verb and resource RBAC would check, so a refusal becomes one line saying what to ask for.

The kubeconfig is found as kubectl finds it (``KUBECONFIG``, else ``~/.kube/config``), with
``--context`` and ``--namespace`` (else the context's namespace, else ``default``) as kubectl
reads them. Nothing else is read: no bucket credentials, no Secrets; every request carries
the user's own identity, so the API server's RBAC decides, never this code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import kubernetes
from kubernetes.client import ApiException

from backup_job.core.errors import ClusterError, ForbiddenError

from ..api import GROUP, PLURAL, RESTORE_PLURAL, VERSION

Body = dict[str, Any]
T = TypeVar("T")

PGBACKUPS = f"{PLURAL}.{GROUP}"
PGRESTORES = f"{RESTORE_PLURAL}.{GROUP}"


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return f"{exc.status} {exc.reason}"


class Cluster:
    """API clients for the user's kubeconfig and context, and the namespace to work in."""

    def __init__(self, context: str | None, namespace: str | None) -> None:
        try:
            contexts, active = kubernetes.config.list_kube_config_contexts()
            chosen = next((c for c in contexts if c["name"] == context), None) if context else active
            if context and chosen is None:
                raise ClusterError(f'context "{context}" is not in your kubeconfig; see kubectl config get-contexts')
            self.api = kubernetes.config.new_client_from_config(context=context)
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise ClusterError(f"cannot read your kubeconfig: {exc}; check KUBECONFIG or ~/.kube/config") from exc
        self.namespace = namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    def call(self, verb: str, resource: str, namespace: str | None, request: Callable[[], T]) -> T:
        """``request()``, its refusal by RBAC as ``ForbiddenError`` naming ``verb`` and
        ``resource``, any other failure as one line."""
        where = f" in namespace {namespace}" if namespace else " in any namespace"
        try:
            return request()
        except ApiException as exc:
            if exc.status == 403:
                raise ForbiddenError(
                    f"you may not {verb} {resource}{where} (RBAC); ask your cluster admin for that right"
                ) from exc
            if exc.status == 401:
                raise ClusterError("the API server did not accept your credentials; log in again") from exc
            raise ClusterError(f"{verb} {resource}{where}: {_message(exc)}") from exc
        except OSError as exc:  # urllib3's connection errors are OSErrors
            raise ClusterError(f"cannot reach the API server: {exc}") from exc

    # -- PgBackups and PgRestores ------------------------------------------------------------

    def pgbackups(self, all_namespaces: bool) -> list[Body]:
        if all_namespaces:
            found = self.call(
                "list", PGBACKUPS, None, lambda: self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            )
        else:
            found = self.call(
                "list",
                PGBACKUPS,
                self.namespace,
                lambda: self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL),
            )
        return list(cast(Body, found).get("items") or [])

    def pgbackup(self, name: str) -> Body:
        try:
            return cast(
                Body,
                self.call(
                    "get",
                    PGBACKUPS,
                    self.namespace,
                    lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
                ),
            )
        except ClusterError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 404:
                raise ClusterError(f'pgbackup "{name}" not found in namespace {self.namespace}') from exc
            raise

    def annotate(self, name: str, annotations: dict[str, str | None]) -> None:
        """Set (or, with None, remove) annotations on a PgBackup: a merge patch, ``patch``."""
        patch = {"metadata": {"annotations": annotations}}
        self.call(
            "patch",
            PGBACKUPS,
            self.namespace,
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, patch, _content_type="application/merge-patch+json"
            ),
        )

    def create_pgrestore(self, body: Body) -> Body:
        return cast(
            Body,
            self.call(
                "create",
                PGRESTORES,
                self.namespace,
                lambda: self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, RESTORE_PLURAL, body
                ),
            ),
        )

    def pgrestore(self, name: str) -> Body:
        return cast(
            Body,
            self.call(
                "get",
                PGRESTORES,
                self.namespace,
                lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, RESTORE_PLURAL, name),
            ),
        )

    # -- what the operator publishes, and the pods' logs -------------------------------------

    def config_map(self, name: str) -> Body | None:
        def read() -> Body | None:
            try:
                return cast(
                    Body,
                    self.api.sanitize_for_serialization(self.core.read_namespaced_config_map(name, self.namespace)),
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        return self.call("get", "configmaps", self.namespace, read)

    def job_pods(self, job: str) -> list[Body]:
        selector = f"batch.kubernetes.io/job-name={job}"
        found = self.call(
            "list",
            "pods",
            self.namespace,
            lambda: self.core.list_namespaced_pod(self.namespace, label_selector=selector),
        )
        pods = [cast(Body, self.api.sanitize_for_serialization(p)) for p in found.items]
        return sorted(pods, key=lambda p: (str(p["metadata"].get("creationTimestamp")), p["metadata"]["name"]))

    def log(self, pod: str, follow: bool = False) -> Iterator[bytes]:
        """A pod's log (its one container, ``pgbackup``), in chunks as they come (``get pods/log``)."""
        response: Any = self.call(
            "get",
            "pods/log",
            self.namespace,
            lambda: self.core.read_namespaced_pod_log(
                pod, self.namespace, container="pgbackup", follow=follow, _preload_content=False
            ),
        )
        try:
            yield from response.stream(64 * 1024)
        finally:
            response.release_conn()
