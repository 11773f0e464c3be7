"""Test-side access to the control plane: API clients, the operator process, and the stand-in
kubelet (``tests/kit/kubelet.py``, re-exported here)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, cast

import kubernetes
from kubernetes.client import ApiException

from devenv.kube import ControlPlane, write_kubeconfig
from devenv.postgres import free_port
from devenv.process import stop as stop_process
from devenv.wait import wait_for

from .helpers import ROOT
from .kubelet import CreateContainerConfigError, Kubelet, NotImplementedByStandIn, now

__all__ = ["CreateContainerConfigError", "KubeEnv", "Kubelet", "NotImplementedByStandIn", "OperatorProcess", "now"]

GROUP, VERSION, PLURAL = "pgbackup.io", "v1alpha1", "pgbackups"
OPERATOR_NAMESPACE = "pgbackup-system"


class KubeEnv:
    """Admin clients for one control plane."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.api = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.batch = kubernetes.client.BatchV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    def plain(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))

    def create_pgbackup(self, namespace: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "PgBackup",
            "metadata": {"name": name, **metadata},
            "spec": spec,
        }
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        return cast(dict[str, Any], created)

    def pgbackup(self, namespace: str, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))

    def patch_pgbackup(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _content_type="application/merge-patch+json"
        )

    def cronjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.plain(self.batch.read_namespaced_cron_job(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        return [self.plain(j) for j in self.batch.list_namespaced_job(namespace).items]

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        found = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return [self.plain(e) for e in found.items]

    def start_job(self, cronjob: dict[str, Any], suffix: str) -> str:
        """A Job from the CronJob's template, as the CronJob controller would make one at its
        next slot; returns the Job's name once the Job controller has created its Pod."""
        namespace, name = cronjob["metadata"]["namespace"], f"{cronjob['metadata']['name']}-{suffix}"
        template = cronjob["spec"]["jobTemplate"]
        self.batch.create_namespaced_job(
            namespace, {"metadata": {"name": name, "labels": template["metadata"]["labels"]}, "spec": template["spec"]}
        )
        wait_for(lambda: self.pod_of(namespace, name), timeout=60, what=f"the Pod of Job {name}")
        return name

    def pod_of(self, namespace: str, job_name: str) -> dict[str, Any] | None:
        """The (first) Pod the Job controller created for a Job."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}").items
        return self.plain(pods[0]) if pods else None

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        conditions = self.pgbackup(namespace, name).get("status", {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)


class OperatorProcess:
    """``pgbackup-operator`` as a subprocess, authenticated as its ServiceAccount."""

    def __init__(
        self,
        kube: KubeEnv,
        service_account: tuple[str, str] = ("pgbackup-operator", OPERATOR_NAMESPACE),
        namespaces: list[str] | None = None,
    ) -> None:
        self.kube = kube
        self.service_account = service_account
        self.namespaces = namespaces or []
        self.directory = Path(tempfile.mkdtemp(prefix="pgbackup-operator-"))
        self.log = self.directory / "operator.log"
        self.port = free_port()
        self.metrics_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def _token_kubeconfig(self) -> Path:
        plane = self.kube.plane
        account, namespace = self.service_account
        if self.service_account == ("pgbackup-operator", OPERATOR_NAMESPACE):
            plane.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
            plane.kubectl("apply", "-f", str(ROOT / "deploy" / "rbac.yaml"))
        token = plane.kubectl("create", "token", account, "-n", namespace, "--duration=6h").stdout.strip()
        return write_kubeconfig(self.directory / "kubeconfig", plane.server, plane.pki, user=account, token=token)

    def _alive(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {self._proc.returncode}:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def __enter__(self) -> OperatorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PG", "AWS_", "BACKUP_"))}
        env.update(
            KUBECONFIG=str(self._token_kubeconfig()), PGBACKUP_IMAGE="pgbackup:test", PGBACKUP_FRESHNESS_INTERVAL="1s"
        )
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgbackup_operator",
                "--liveness",
                f"http://127.0.0.1:{self.port}/healthz",
                "--metrics-port",
                str(self.metrics_port),
                *(arg for n in self.namespaces for arg in ("--namespace", n)),
            ],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        wait_for(self._alive, timeout=60, what="operator liveness endpoint")
        return self

    def __exit__(self, *_exc: object) -> None:
        stop_process(self._proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def scrape(self) -> str:
        """The operator's ``/metrics`` text, as Prometheus would read it."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode("utf-8"))

    def wait_for_namespace_watch(self, prefix: str) -> None:
        """Return once the operator follows namespace events, not only its first listing.

        With namespace globs, kopf lists namespaces, then lists them again to start its watch
        and skips what that second listing holds; a namespace created between the two is not
        served until it changes. Liveness answers before either, so a test creating its
        namespace at once can hit that gap. A first probe namespace proves the first listing
        is done; a second one, created after, can only be served through the watch, and is
        touched until it is."""
        for step in ("a", "b"):
            namespace = f"{prefix}probe-{step}-{os.getpid()}"
            self.kube.core.create_namespace({"metadata": {"name": namespace}})
            try:
                self._wait_served(namespace)
            finally:
                self.kube.core.delete_namespace(namespace)

    def _wait_served(self, namespace: str) -> None:
        self.kube.create_pgbackup(
            namespace,
            "probe",
            {
                "schedule": "0 0 1 1 *",
                "postgres": {"host": "probe", "user": "probe", "passwordSecretRef": {"name": "probe"}},
                "destination": {"s3": {"bucket": "probe"}},
            },
        )
        touches = iter(range(1, 10**6))

        def served() -> bool:
            if self.kube.cronjob(namespace, "pgbackup-probe") is not None:
                return True
            self.kube.core.patch_namespace(namespace, {"metadata": {"labels": {"probe-touch": str(next(touches))}}})
            return False

        try:
            wait_for(served, timeout=60, interval=0.5, what=f"the operator serving namespace {namespace}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self._diagnosis(namespace)}") from None

    def _diagnosis(self, namespace: str) -> str:
        """What a failed probe leaves to look at: the probe's status and Events, the operator's log."""
        try:
            state = self.kube.pgbackup(namespace, "probe").get("status")
            events = [f"{e['reason']}: {e['message']}" for e in self.kube.events(namespace, "probe")]
        except ApiException as exc:
            state, events = f"unreadable ({exc.reason})", []
        log = self.output().splitlines()[-60:]
        return "\n".join([f"probe status: {state}", "probe events:", *events, "operator log (last 60 lines):", *log])
