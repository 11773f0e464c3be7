"""Test-side access to the control plane: API clients, the operator process, a stand-in kubelet."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiException

from devenv.kube import ControlPlane, write_kubeconfig
from devenv.process import stop as stop_process
from devenv.postgres import free_port
from devenv.wait import wait_for

from .helpers import ROOT

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
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PgBackup",
                "metadata": {"name": name, **metadata}, "spec": spec}
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))

    def pgbackup(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))

    def patch_pgbackup(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch,
                                                   _content_type="application/merge-patch+json")

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
        self.batch.create_namespaced_job(namespace, {"metadata": {"name": name, "labels": template["metadata"]["labels"]},
                                                     "spec": template["spec"]})
        wait_for(lambda: self.pod_of(namespace, name), timeout=30, what=f"the Pod of Job {name}")
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

    def __init__(self, kube: KubeEnv, service_account: tuple[str, str] = ("pgbackup-operator", OPERATOR_NAMESPACE),
                 namespaces: list[str] | None = None) -> None:
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

    def __enter__(self) -> "OperatorProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PG", "AWS_", "BACKUP_"))}
        env.update(KUBECONFIG=str(self._token_kubeconfig()), PGBACKUP_IMAGE="pgbackup:test",
                   PGBACKUP_FRESHNESS_INTERVAL="1s")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pgbackup_operator", "--liveness", f"http://127.0.0.1:{self.port}/healthz",
             "--metrics-port", str(self.metrics_port),
             *(arg for n in self.namespaces for arg in ("--namespace", n))],
            env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=self.directory,
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
        self.kube.create_pgbackup(namespace, "probe", {
            "schedule": "0 0 1 1 *", "postgres": {"host": "probe", "user": "probe", "passwordSecretRef": {"name": "probe"}},
            "destination": {"s3": {"bucket": "probe"}}})
        touches = iter(range(1, 10**6))

        def served() -> bool:
            if self.kube.cronjob(namespace, "pgbackup-probe") is not None:
                return True
            self.kube.core.patch_namespace(namespace, {"metadata": {"labels": {"probe-touch": str(next(touches))}}})
            return False

        wait_for(served, timeout=60, interval=0.5, what=f"the operator serving namespace {namespace}")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NotImplementedByStandIn(AssertionError):
    """The Pod asks for something this stand-in kubelet does not do: the test cannot run it."""


# What the stand-in may leave aside: fields about images, scheduling, DNS, resources and the
# security of a real node (the API server fills several of them in). Everything else it
# either implements or refuses loudly.
_IGNORED_POD_FIELDS = {"restartPolicy", "automountServiceAccountToken", "securityContext", "serviceAccountName",
                       "serviceAccount", "nodeSelector", "tolerations", "affinity", "dnsPolicy", "enableServiceLinks",
                       "preemptionPolicy", "priority", "schedulerName", "terminationGracePeriodSeconds"}
_IGNORED_CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "resources", "securityContext",
                             "terminationMessagePolicy"}


class Kubelet:
    """Plays the kubelet for a Pod that no node will run: runs its command here, reports back.

    Implemented: one container's ``command``/``args``; ``env`` with ``value``,
    ``secretKeyRef`` and ``configMapKeyRef``; ``envFrom`` with ``secretRef`` and
    ``configMapRef`` (``prefix``, ``optional``); volumes ``emptyDir`` and ``secret`` (its
    keys written as files with their mode), mounted read-only or not; the termination
    message. Paths are local: a mount path or the termination message path at the start of
    an environment value is rewritten to the local directory that stands in for it (the
    command runs on this machine, not in a container). Anything else fails the test with
    ``NotImplementedByStandIn``, so a rendered Pod can never silently run with less.
    """

    def __init__(self, kube: KubeEnv, extra_path: Path, workdir: Path) -> None:
        self.kube = kube
        self.extra_path = extra_path
        self.workdir = workdir

    def _secret(self, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
        import base64

        try:
            secret = self.kube.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return None
            raise
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}

    def _config_map(self, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
        try:
            return dict(self.kube.core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as exc:
            if exc.status == 404 and optional:
                return None
            raise

    def _value(self, namespace: str, entry: dict[str, Any]) -> str | None:
        if "value" in entry:
            return str(entry["value"])
        source = entry.get("valueFrom") or {}
        kinds = set(source) - {"secretKeyRef", "configMapKeyRef"}
        if kinds or len(source) != 1:
            raise NotImplementedByStandIn(f"env {entry['name']}: valueFrom {sorted(source)} is not implemented")
        kind, ref = next(iter(source.items()))
        read = self._secret if kind == "secretKeyRef" else self._config_map
        data = read(namespace, ref["name"], bool(ref.get("optional")))
        if data is None or ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise AssertionError(f"env {entry['name']}: {kind} {ref['name']}/{ref['key']} does not exist")
        return data[ref["key"]]

    def _env_from(self, namespace: str, source: dict[str, Any]) -> dict[str, str]:
        kinds = set(source) - {"prefix"}
        if kinds not in ({"secretRef"}, {"configMapRef"}):
            raise NotImplementedByStandIn(f"envFrom {sorted(source)} is not implemented")
        ref = source["secretRef"] if "secretRef" in source else source["configMapRef"]
        read = self._secret if "secretRef" in source else self._config_map
        data = read(namespace, ref["name"], bool(ref.get("optional")))
        if data is None:
            return {}
        return {source.get("prefix", "") + key: value for key, value in data.items()}

    def _volumes(self, namespace: str, pod_name: str, pod: dict[str, Any]) -> dict[str, Path]:
        """Each volume as a local directory, by volume name."""
        local: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            directory = self.workdir / f"{pod_name}.volumes" / volume["name"]
            directory.mkdir(parents=True)
            kinds = set(volume) - {"name"}
            if kinds == {"emptyDir"}:
                pass
            elif kinds == {"secret"}:
                spec = volume["secret"]
                if set(spec) - {"secretName", "defaultMode", "optional", "items"}:
                    raise NotImplementedByStandIn(f"volume {volume['name']}: secret {sorted(spec)} is not implemented")
                data = self._secret(namespace, spec["secretName"], bool(spec.get("optional"))) or {}
                if "items" in spec:  # only the listed keys, each at its path (a missing key fails the pod)
                    if any(set(item) - {"key", "path"} for item in spec["items"]):
                        raise NotImplementedByStandIn(f"volume {volume['name']}: item modes are not implemented")
                    data = {item["path"]: data[item["key"]] for item in spec["items"]}
                for key, value in data.items():
                    (directory / key).write_text(value)
                    (directory / key).chmod(spec.get("defaultMode", 0o644))
            else:
                raise NotImplementedByStandIn(f"volume {volume['name']}: {sorted(kinds)} is not implemented")
            local[volume["name"]] = directory
        return local

    def run(self, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Run the Pod's single container to completion and write its status as a kubelet would."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        unknown = set(pod["spec"]) - _IGNORED_POD_FIELDS - {"containers", "volumes"}
        if unknown or len(pod["spec"]["containers"]) != 1:
            raise NotImplementedByStandIn(f"pod fields {sorted(unknown)} or several containers are not implemented")
        container = pod["spec"]["containers"][0]
        unknown = set(container) - _IGNORED_CONTAINER_FIELDS - {"command", "args", "env", "envFrom", "volumeMounts",
                                                               "terminationMessagePath"}
        if unknown:
            raise NotImplementedByStandIn(f"container fields {sorted(unknown)} are not implemented")
        volumes = self._volumes(namespace, name, pod)
        termination_log = self.workdir / f"{name}.termination-log"
        paths = {container.get("terminationMessagePath", "/dev/termination-log"): termination_log}
        for mount in container.get("volumeMounts") or []:
            if set(mount) - {"name", "mountPath", "readOnly"}:
                raise NotImplementedByStandIn(f"volumeMount {sorted(mount)} is not implemented")
            paths[mount["mountPath"]] = volumes[mount["name"]]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PG", "AWS_", "BACKUP_"))}
        for source in container.get("envFrom") or []:
            env.update(self._env_from(namespace, source))
        for entry in container.get("env") or []:
            value = self._value(namespace, entry)
            if value is not None:
                env[entry["name"]] = _local(value, paths)
        if "/tmp" in paths:
            env["TMPDIR"] = str(paths["/tmp"])
        env["PATH"] = f"{self.extra_path}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
        started = now()
        self._patch_status(namespace, name, {"phase": "Running", "startTime": started})
        result = subprocess.run(container["command"] + container.get("args", []), env=env,
                                capture_output=True, text=True, cwd=self.workdir, timeout=300)
        message = termination_log.read_text() if termination_log.exists() else ""
        self.finish(pod, result.returncode, message, started)
        return result

    def finish(self, pod: dict[str, Any], exit_code: int, message: str, started: str | None = None) -> None:
        """Write the Pod's terminal status (exit code, termination message) without running it,
        for tests about what the operator makes of an outcome rather than about the job."""
        container = pod["spec"]["containers"][0]
        started = started or now()
        self._patch_status(pod["metadata"]["namespace"], pod["metadata"]["name"], {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "startTime": started,
            "containerStatuses": [{
                "name": container["name"], "image": container["image"], "imageID": "", "ready": False,
                "restartCount": 0, "started": False,
                "state": {"terminated": {"exitCode": exit_code,
                                         "reason": "Completed" if exit_code == 0 else "Error",
                                         "message": message, "startedAt": started, "finishedAt": now()}},
            }],
        })

    def _patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.kube.core.patch_namespaced_pod_status(name, namespace, {"status": status})


def _local(value: str, paths: dict[str, Path]) -> str:
    """``value`` with a leading in-container path replaced by the local path standing in for it."""
    for inside, outside in sorted(paths.items(), key=lambda item: -len(item[0])):
        if value == inside or value.startswith(inside.rstrip("/") + "/"):
            return str(outside) + value[len(inside.rstrip("/")):] if value != inside else str(outside)
    return value
