"""The stand-in kubelet: runs a Pod that no node will run, here, as a kubelet would, and
writes its status back.

What it does, and how it stays honest:

- Identity: the command runs as the pod's effective ``runAsUser`` (container over pod; the
  image's ``USER 10001:0`` when neither sets one), primary group ``runAsGroup`` or GID 0,
  with ``supplementalGroups`` and ``fsGroup`` as supplementary groups. ``runAsNonRoot`` with
  uid 0 is refused with the kubelet's own message (``CreateContainerConfigError``). A uid
  with no passwd entry is the point: that is how OpenShift runs pods.
- Files as a kubelet lays them out: ``emptyDir`` world-writable (``0777``; group ``fsGroup``
  and setgid with one), ``secret`` volumes as the atomic writer makes them (files under a
  timestamped directory behind ``..data``, reached through symlinks), owned by root, group
  root or ``fsGroup`` (which also adds ``g+r``), with their ``defaultMode`` or item ``mode``;
  the termination log a ``0666`` file. They live in a node directory under the system temp
  directory, which any uid can reach, and go when the pod is done (a copy of the output and
  termination message stays in ``workdir``).
- Environment as the container sees it: the image's ``ENV`` (``IMAGE_ENV``), then
  ``envFrom``, then ``env`` (``value`` with ``$(VAR)`` expansion, ``secretKeyRef``,
  ``configMapKeyRef``, and ``fieldRef`` for the pod's name, namespace, uid, labels,
  annotations and service account), and ``$(VAR)`` in ``command``/``args`` from the result;
  nothing of the test process's environment leaks in, except what the stand-in is built with
  (``node_env``: an emulator's address, which no CR may name, as a node's runtime or an
  admission webhook would add it), under the pod's own variables. The ``PATH`` holds the PostgreSQL
  binaries given and the project's commands (``tests/kit/anyuid.py``), each checked reachable by
  the pod's uid before the run, so an unreachable program fails with the directory to blame.
- Paths are local: a mount path or the termination message path at the start of an
  environment value or argument is rewritten to the local directory standing in for it.

Fields about images, scheduling and the node's own enforcement (seccomp, capabilities that
are only dropped, a read-only root filesystem: an unprivileged uid has none of that power
here anyway) are left aside; anything else fails the test with ``NotImplementedByStandIn``,
so a rendered Pod never silently runs with less than it asks for.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes.client import ApiException

from . import anyuid

if TYPE_CHECKING:
    from .kubeenv import KubeEnv
    from .lognode import LogNode


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NotImplementedByStandIn(AssertionError):
    """The Pod asks for something this stand-in kubelet does not do: the test cannot run it."""


class CreateContainerConfigError(AssertionError):
    """A kubelet would not start this container (the message is the kubelet's)."""


# The image's ENV (Dockerfile) that the job reads: what the container starts with. (Its
# BACKUP_CRONTAB is for schedule mode, which no pod runs.)
IMAGE_ENV = {"HOME": "/tmp", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_IGNORED_POD_FIELDS = {
    "restartPolicy",
    "automountServiceAccountToken",
    "serviceAccountName",
    "serviceAccount",
    "nodeSelector",
    "tolerations",
    "affinity",
    "dnsPolicy",
    "enableServiceLinks",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "imagePullSecrets",
    "schedulerName",
    "terminationGracePeriodSeconds",
    "hostname",
    "subdomain",
}  # an Indexed Job's pods are named
_IGNORED_CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "resources", "terminationMessagePolicy"}
# securityContext: what decides who the process is, and what only the node enforces.
_IDENTITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot"}
_POD_SECURITY_FIELDS = _IDENTITY_FIELDS | {
    "fsGroup",
    "supplementalGroups",
    "seccompProfile",
    "seLinuxOptions",
    "fsGroupChangePolicy",
    "supplementalGroupsPolicy",
    "appArmorProfile",
}
_CONTAINER_SECURITY_FIELDS = _IDENTITY_FIELDS | {
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
    "privileged",
    "seccompProfile",
    "seLinuxOptions",
    "appArmorProfile",
}


@dataclass(frozen=True)
class Identity:
    """Who the container's process is."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    fs_group: int | None


def identity(pod: dict[str, Any]) -> Identity:
    """The single container's effective user and groups, as the kubelet and runtime decide them."""
    spec = pod["spec"]
    pod_context = spec.get("securityContext") or {}
    container = spec["containers"][0]
    context = container.get("securityContext") or {}
    for where, fields, allowed in (
        ("pod", pod_context, _POD_SECURITY_FIELDS),
        ("container", context, _CONTAINER_SECURITY_FIELDS),
    ):
        if set(fields) - allowed:
            raise NotImplementedByStandIn(f"{where} securityContext {sorted(set(fields) - allowed)} is not implemented")
    if context.get("privileged") or (context.get("capabilities") or {}).get("add"):
        raise NotImplementedByStandIn("privileged containers and added capabilities are not implemented")
    effective = {**{k: v for k, v in pod_context.items() if k in _IDENTITY_FIELDS}, **context}
    uid = int(effective.get("runAsUser", anyuid.IMAGE_UID))
    if effective.get("runAsNonRoot") and uid == 0:
        raise CreateContainerConfigError(
            f"container's runAsUser breaks non-root policy (pod: "
            f'"{pod["metadata"]["name"]}_{pod["metadata"]["namespace"]}", '
            f"container: {container['name']})"
        )
    gid = int(effective.get("runAsGroup", anyuid.ROOT_GID))  # the image's user has GID 0, as has a uid without entry
    fs_group = pod_context.get("fsGroup")
    groups = {gid, *pod_context.get("supplementalGroups", []), *([fs_group] if fs_group is not None else [])}
    return Identity(uid, gid, tuple(sorted(groups)), fs_group)


def expand(text: str, defined: Mapping[str, str]) -> str:
    """``$(NAME)`` references in ``text`` replaced as the kubelet does: by the value of a
    variable defined so far, else left as written; ``$$`` is one ``$``; any other ``$`` and
    the character after it stay as they are; an unclosed ``$(`` stays."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
            continue
        following = text[i + 1]
        close = text.find(")", i + 2) if following == "(" else -1
        if following == "$":
            out.append("$")
        elif close != -1:
            name = text[i + 2 : close]
            out.append(defined.get(name, f"$({name})"))
            i = close + 1
            continue
        else:
            out.append("$" + following)
        i += 2
    return "".join(out)


_SUBSCRIPTED = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")


def field_value(pod: dict[str, Any], entry: dict[str, Any]) -> str:
    """A ``fieldRef``: the downward API's view of the pod's own metadata and account."""
    ref = entry["valueFrom"]["fieldRef"]
    path = ref["fieldPath"]
    if ref.get("apiVersion", "v1") != "v1":
        raise NotImplementedByStandIn(
            f"env {entry['name']}: fieldRef apiVersion {ref['apiVersion']} is not implemented"
        )
    metadata = pod["metadata"]
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
    }
    if path in simple:
        return str(simple[path] or "")
    subscripted = _SUBSCRIPTED.fullmatch(path)
    if subscripted:
        which = "labels" if subscripted[1].endswith("labels") else "annotations"
        return str((metadata.get(which) or {}).get(subscripted[2], ""))
    raise NotImplementedByStandIn(f"env {entry['name']}: fieldRef {path} is not implemented")


class Kubelet:
    """Plays the kubelet for a Pod that no node will run: runs its command here, reports back.

    ``extra_path`` goes first on the pod's ``PATH`` (the PostgreSQL binaries); ``workdir``
    keeps each pod's output and termination message after the run; ``node_env`` is set in every
    container before the pod's own variables. With a ``node`` (``lognode.LogNode``) each pod is
    bound to it before it starts and its output is served as ``pods/log`` after the run.
    """

    def __init__(
        self,
        kube: KubeEnv,
        extra_path: Path,
        workdir: Path,
        node_env: Mapping[str, str] | None = None,
        node: LogNode | None = None,
    ) -> None:
        self.kube = kube
        self.extra_path = extra_path
        self.workdir = workdir
        self.node_env = dict(node_env or {})  # given to every container, under the pod's own variables
        self.node = node

    def _secret(self, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
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

    def _value(self, pod: dict[str, Any], entry: dict[str, Any], defined: Mapping[str, str]) -> str | None:
        """One ``env`` entry's value as the container sees it; None when it is left unset."""
        if entry.get("value"):
            return expand(str(entry["value"]), defined)
        source = entry.get("valueFrom")
        if not source:
            return ""
        if set(source) == {"fieldRef"}:
            return field_value(pod, entry)
        if len(source) != 1 or set(source) - {"secretKeyRef", "configMapKeyRef"}:
            raise NotImplementedByStandIn(f"env {entry['name']}: valueFrom {sorted(source)} is not implemented")
        kind, ref = next(iter(source.items()))
        read = self._secret if kind == "secretKeyRef" else self._config_map
        data = read(pod["metadata"]["namespace"], ref["name"], bool(ref.get("optional")))
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

    def environment(self, pod: dict[str, Any]) -> dict[str, str]:
        """The variables the pod defines (``envFrom``, then ``env`` in order), container paths."""
        container = pod["spec"]["containers"][0]
        defined: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            defined.update(self._env_from(pod["metadata"]["namespace"], source))
        for entry in container.get("env") or []:
            value = self._value(pod, entry, defined)
            if value is not None:
                defined[entry["name"]] = value
        return defined

    def _secret_volume(self, namespace: str, directory: Path, volume: dict[str, Any], who: Identity) -> None:
        spec = volume["secret"]
        if set(spec) - {"secretName", "defaultMode", "optional", "items"}:
            raise NotImplementedByStandIn(f"volume {volume['name']}: secret {sorted(spec)} is not implemented")
        data = self._secret(namespace, spec["secretName"], bool(spec.get("optional"))) or {}
        default_mode = spec.get("defaultMode", 0o644)
        files = {key: (value, default_mode) for key, value in data.items()}
        if "items" in spec:  # only the listed keys, each at its path (a missing key fails the pod)
            if any(set(item) - {"key", "path", "mode"} for item in spec["items"]):
                raise NotImplementedByStandIn(f"volume {volume['name']}: items {spec['items']} are not implemented")
            files = {item["path"]: (data[item["key"]], item.get("mode", default_mode)) for item in spec["items"]}
        _own(directory, 0o1777, who.fs_group)
        stamped = directory / f"..{datetime.now(UTC):%Y_%m_%d_%H_%M_%S.%f}"
        stamped.mkdir()
        _own(stamped, 0o755, who.fs_group)
        for path, (value, mode) in files.items():
            target = stamped / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(value)
            _own(target, mode | (0o440 if who.fs_group is not None else 0), who.fs_group)
        (directory / "..data").symlink_to(stamped.name)
        for top in {path.split("/")[0] for path in files}:
            (directory / top).symlink_to(f"..data/{top}")

    def _volumes(self, namespace: str, pod_dir: Path, pod: dict[str, Any], who: Identity) -> dict[str, Path]:
        """Each volume as a local directory, by volume name."""
        local: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            directory = pod_dir / "volumes" / volume["name"]
            directory.mkdir(parents=True)
            kinds = set(volume) - {"name"}
            if kinds == {"emptyDir"}:
                _own(directory, 0o777, who.fs_group)
            elif kinds == {"secret"}:
                self._secret_volume(namespace, directory, volume, who)
            else:
                raise NotImplementedByStandIn(f"volume {volume['name']}: {sorted(kinds)} is not implemented")
            local[volume["name"]] = directory
        return local

    def _check_fields(self, pod: dict[str, Any]) -> None:
        unknown = set(pod["spec"]) - _IGNORED_POD_FIELDS - {"containers", "volumes", "securityContext"}
        if unknown or len(pod["spec"]["containers"]) != 1:
            raise NotImplementedByStandIn(f"pod fields {sorted(unknown)} or several containers are not implemented")
        container = pod["spec"]["containers"][0]
        unknown = (
            set(container)
            - _IGNORED_CONTAINER_FIELDS
            - {"command", "args", "env", "envFrom", "volumeMounts", "terminationMessagePath", "securityContext"}
        )
        if unknown:
            raise NotImplementedByStandIn(f"container fields {sorted(unknown)} are not implemented")
        for mount in container.get("volumeMounts") or []:
            if set(mount) - {"name", "mountPath", "readOnly"}:
                raise NotImplementedByStandIn(f"volumeMount {sorted(mount)} is not implemented")

    def _path(self) -> str:
        return f"{self.extra_path}:{anyuid.command_dir()}:{SYSTEM_PATH}"

    def _check_reachable(self, argv: list[str], path: str, who: Identity) -> None:
        """The command and the PostgreSQL binaries are runnable by the pod's uid: or say why not."""
        program = shutil.which(argv[0], path=path)
        if program is None:
            raise AssertionError(f"{argv[0]} is not on the pod's PATH {path}")
        problems = [anyuid.why_cannot_run(Path(program), who.uid, who.groups)]
        if self.extra_path.is_dir():
            problems += [
                anyuid.why_cannot_run(p, who.uid, who.groups)
                for p in sorted(self.extra_path.iterdir())
                if p.is_file() and os.access(p, os.X_OK)
            ]
        found = [p for p in problems if p]
        if found:
            raise anyuid.Unreachable("the stand-in kubelet cannot run this pod as its user: " + "; ".join(found[:3]))

    def run(self, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Run the Pod's single container to completion and write its status as a kubelet would."""
        self._check_fields(pod)
        who = identity(pod)
        if os.geteuid() != 0:
            raise NotImplementedByStandIn(
                "the stand-in kubelet lays files out as root and switches to the pod's user: run the tests as root"
            )
        node = Path(tempfile.mkdtemp(prefix="pgbackup-kubelet-"))
        try:
            node.chmod(0o755)
            return self._run_in(node, pod, who)
        finally:
            shutil.rmtree(node, ignore_errors=True)

    def _run_in(self, pod_dir: Path, pod: dict[str, Any], who: Identity) -> subprocess.CompletedProcess[str]:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        volumes = self._volumes(namespace, pod_dir, pod, who)
        termination_log = pod_dir / "termination-log"
        termination_log.touch()
        termination_log.chmod(0o666)
        paths = {container.get("terminationMessagePath", "/dev/termination-log"): termination_log}
        for mount in container.get("volumeMounts") or []:
            paths[mount["mountPath"]] = volumes[mount["name"]]
        defined = self.environment(pod)
        env = {"HOSTNAME": name, "PATH": self._path(), **IMAGE_ENV, **self.node_env, **defined}
        env = {key: _local(value, paths) for key, value in env.items()}
        if "/tmp" in paths:
            env["TMPDIR"] = str(paths["/tmp"])
        argv = [_local(expand(arg, defined), paths) for arg in container.get("command", []) + container.get("args", [])]
        self._check_reachable(argv, env["PATH"], who)
        started = now()
        if self.node is not None:
            self.node.bind(pod)
        self._patch_status(namespace, name, {"phase": "Running", "startTime": started})
        result = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            cwd=pod_dir,
            timeout=300,
            user=who.uid,
            group=who.gid,
            extra_groups=list(who.groups),
        )
        message = termination_log.read_text()
        (self.workdir / f"{name}.termination-log").write_text(message)
        (self.workdir / f"{name}.output").write_text(result.stdout + result.stderr)
        if self.node is not None:
            self.node.finished(namespace, name, result.stdout + result.stderr)
        self.finish(pod, result.returncode, message, started)
        return result

    def finish(self, pod: dict[str, Any], exit_code: int, message: str, started: str | None = None) -> None:
        """Write the Pod's terminal status (exit code, termination message) without running it,
        for tests about what the operator makes of an outcome rather than about the job."""
        container = pod["spec"]["containers"][0]
        started = started or now()
        self._patch_status(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "startTime": started,
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {
                            "terminated": {
                                "exitCode": exit_code,
                                "reason": "Completed" if exit_code == 0 else "Error",
                                "message": message,
                                "startedAt": started,
                                "finishedAt": now(),
                            }
                        },
                    }
                ],
            },
        )

    def _patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.kube.core.patch_namespaced_pod_status(name, namespace, {"status": status})


def _own(path: Path, mode: int, fs_group: int | None) -> None:
    """``path`` owned by root, its group ``fs_group`` (directories setgid then) or root."""
    os.chown(path, 0, fs_group if fs_group is not None else 0)
    if fs_group is not None and path.is_dir():
        mode |= 0o2000
    path.chmod(mode)


def _local(value: str, paths: dict[str, Path]) -> str:
    """``value`` with a leading in-container path replaced by the local path standing in for it."""
    for inside, outside in sorted(paths.items(), key=lambda item: -len(item[0])):
        if value == inside or value.startswith(inside.rstrip("/") + "/"):
            return str(outside) + value[len(inside.rstrip("/")) :] if value != inside else str(outside)
    return value
