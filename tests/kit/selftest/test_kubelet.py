"""The stand-in kubelet does what a kubelet does with what it implements, and refuses the
rest loudly, so an e2e test never runs a Pod with less than the Pod asks for.

No cluster needed: refusals come before any API call, and the runs below read their Secrets
and ConfigMaps from ``FakeKube`` (``tests/kit/fakekube.py``) and run real commands as the
pod's user (the tests run as root, as the stand-in requires)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from .. import anyuid
from ..fakekube import FakeKube
from ..helpers import dockerfile_final_stage
from ..kubelet import (
    IMAGE_ENV,
    CreateContainerConfigError,
    Identity,
    Kubelet,
    NotImplementedByStandIn,
    _local,
    expand,
    field_value,
    identity,
)

POD: dict[str, Any] = {
    "metadata": {
        "name": "p",
        "namespace": "n",
        "uid": "0b5e-11",
        "labels": {"app": "pgbackup"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
    },
    "spec": {"restartPolicy": "Never", "containers": [{"name": "pgbackup", "image": "i", "command": ["true"]}]},
}


def pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(POD)
    body["spec"]["containers"][0].update(container or {})
    body["spec"].update(spec)
    return body


def kubelet(tmp_path: Path, **data: Any) -> Kubelet:
    return Kubelet(FakeKube(**data), Path("/nonexistent"), tmp_path)  # type: ignore[arg-type]


def sh(script: str, **container: Any) -> dict[str, Any]:
    return {"command": ["sh", "-c", script], **container}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (pod({"workingDir": "/work"}), "container fields ['workingDir']"),
        (
            pod({"env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}),
            "env NODE: fieldRef spec.nodeName",
        ),
        (
            pod({"env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}),
            "env IP: fieldRef status.podIP",
        ),
        (
            pod({"env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}),
            "env CPU: valueFrom ['resourceFieldRef']",
        ),
        (
            pod({"envFrom": [{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}]}),
            "envFrom ['configMapRef', 'secretRef']",
        ),
        (pod(volumes=[{"name": "data", "hostPath": {"path": "/srv"}}]), "volume data: ['hostPath']"),
        (
            pod(
                {"volumeMounts": [{"name": "tmp", "mountPath": "/tmp", "subPath": "x"}]},
                volumes=[{"name": "tmp", "emptyDir": {}}],
            ),
            "volumeMount ['mountPath', 'name', 'subPath']",
        ),
        (pod(initContainers=[{"name": "init"}]), "pod fields ['initContainers']"),
        (
            pod(securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}),
            "pod securityContext ['sysctls']",
        ),
        (pod({"securityContext": {"windowsOptions": {}}}), "container securityContext ['windowsOptions']"),
        (pod({"securityContext": {"privileged": True}}), "privileged containers"),
        (pod({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}), "added capabilities"),
    ],
)
def test_what_it_does_not_implement_fails_loudly(body: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(NotImplementedByStandIn, match=message.replace("[", r"\[").replace("]", r"\]")):
        kubelet(tmp_path).run(body)


def test_paths_inside_the_container_map_to_local_ones(tmp_path: Path) -> None:
    paths = {"/etc/pgbackup/tls/ca": tmp_path / "ca", "/dev/termination-log": tmp_path / "term", "/tmp": tmp_path}
    assert _local("/etc/pgbackup/tls/ca/ca.crt", paths) == f"{tmp_path}/ca/ca.crt"
    assert _local("/dev/termination-log", paths) == f"{tmp_path}/term"
    assert _local("/etc/pgbackup/tls/cabinet", paths) == "/etc/pgbackup/tls/cabinet"
    assert _local("s3://bucket/tmp", paths) == "s3://bucket/tmp"


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)", "alpha"),
        ("$(A)/$(B)", "alpha/"),  # defined as empty: replaced by nothing
        ("x$(A)y$(A)z", "xalphayalphaz"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),  # not defined (yet): left as written
        ("$$(A)", "$(A)"),  # $$ is one literal $, the rest is text
        ("$$$(A)", "$alpha"),
        ("$$$$", "$$"),
        ("100$", "100$"),  # a $ at the end stays
        ("$A and $1", "$A and $1"),  # a $ not followed by ( stays, with its character
        ("$(A", "$(A"),  # unclosed: left as written
        ("$()", "$()"),
        ("$(A)$(", "alpha$("),
        ("$(A$(B))", "$(A$(B))"),  # the name runs to the first ): "A$(B" is not defined
        ("é$(A)é", "éalphaé"),
        ("", ""),
    ],
)
def test_expansion_follows_the_kubelet(text: str, expanded: str) -> None:
    assert expand(text, {"A": "alpha", "B": ""}) == expanded


def test_env_values_see_only_the_variables_before_them_and_env_from(tmp_path: Path) -> None:
    body = pod(
        {
            "envFrom": [{"configMapRef": {"name": "base"}, "prefix": "CM_"}],
            "env": [
                {"name": "LATER_REF", "value": "$(SHARD)"},  # defined below: stays as written
                {
                    "name": "SHARD_INDEX",
                    "valueFrom": {
                        "fieldRef": {
                            "apiVersion": "v1",
                            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
                        }
                    },
                },
                {"name": "SHARD", "value": "$(SHARD_INDEX)/4"},
                {"name": "FROM_CM", "value": "$(CM_REGION)-x"},
                {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "NOT_EXPANDED", "valueFrom": {"secretKeyRef": {"name": "s", "key": "ref"}}},
                {"name": "EMPTY"},
                {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k", "optional": True}}},
                {"name": "ESCAPED", "value": "$$(SHARD)"},
            ],
        }
    )
    env = kubelet(
        tmp_path, secrets={"s": {"k": "v", "ref": "$(SHARD)"}}, config_maps={"base": {"REGION": "eu"}}
    ).environment(body)
    assert env == {
        "CM_REGION": "eu",
        "LATER_REF": "$(SHARD)",
        "SHARD_INDEX": "3",
        "SHARD": "3/4",
        "FROM_CM": "eu-x",
        "SECRET": "v",
        "NOT_EXPANDED": "$(SHARD)",
        "EMPTY": "",
        "ESCAPED": "$(SHARD)",
    }


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "p"),
        ("metadata.namespace", "n"),
        ("metadata.uid", "0b5e-11"),
        ("metadata.labels['app']", "pgbackup"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['batch.kubernetes.io/job-completion-index']", "3"),
        ("spec.serviceAccountName", "backup-irsa"),
    ],
)
def test_field_refs_read_the_pod(path: str, value: str) -> None:
    body = pod(serviceAccountName="backup-irsa")
    assert field_value(body, {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}) == value


@pytest.mark.parametrize(
    ("pod_context", "container_context", "expected"),
    [
        ({}, {}, Identity(10001, 0, (0,), None)),  # the image's USER 10001:0
        ({"runAsUser": 1000680000, "fsGroup": 1000680000}, {}, Identity(1000680000, 0, (0, 1000680000), 1000680000)),
        ({"runAsUser": 5, "runAsGroup": 6}, {"runAsUser": 7}, Identity(7, 6, (6,), None)),  # the container wins
        ({"runAsUser": 5, "supplementalGroups": [8, 9]}, {"runAsGroup": 4}, Identity(5, 4, (4, 8, 9), None)),
    ],
)
def test_identity_merges_pod_and_container(
    pod_context: dict[str, Any], container_context: dict[str, Any], expected: Identity
) -> None:
    assert identity(pod({"securityContext": container_context}, securityContext=pod_context)) == expected


@pytest.mark.parametrize(
    ("pod_context", "container_context"),
    [
        ({"runAsNonRoot": True, "runAsUser": 0}, {}),
        ({"runAsNonRoot": True}, {"runAsUser": 0}),
        ({"runAsUser": 0}, {"runAsNonRoot": True}),
    ],
)
def test_run_as_non_root_with_uid_0_is_refused_like_the_kubelet(
    pod_context: dict[str, Any], container_context: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(CreateContainerConfigError, match="container's runAsUser breaks non-root policy"):
        kubelet(tmp_path).run(pod({"securityContext": container_context}, securityContext=pod_context))


def test_the_pod_runs_as_its_user_with_the_files_a_kubelet_makes(tmp_path: Path) -> None:
    """OpenShift-style: an arbitrary uid with no passwd entry, GID 0, an fsGroup; the image's
    HOME on the emptyDir; a Secret readable through its group; image/scheduling fields ignored."""
    script = (
        'id -u; id -g; id -G; echo "$HOME|$0"; touch "$HOME/written" && echo home-writable; '
        'stat -L -c \'%u:%g %a\' "$KEYDIR/tls.key"; cat "$KEYDIR/tls.key"; echo; '
        "echo done > \"$1\"; ls -A \"$KEYDIR\" | tr '\\n' ' '"
    )
    body = pod(
        sh(
            script,
            args=["$(GREETING)", "/dev/termination-log"],
            env=[{"name": "GREETING", "value": "hi $(USER_NAME)"}, {"name": "KEYDIR", "value": "/etc/tls/client"}],
            volumeMounts=[
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "client", "mountPath": "/etc/tls/client", "readOnly": True},
            ],
        ),
        securityContext={
            "runAsNonRoot": True,
            "runAsUser": anyuid.ANY_UID,
            "fsGroup": anyuid.ANY_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        volumes=[
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "client", "secret": {"secretName": "client", "defaultMode": 0o400}},
        ],
        priorityClassName="backups",
        imagePullSecrets=[{"name": "registry"}],
    )
    stand_in = kubelet(tmp_path, secrets={"client": {"tls.key": "KEY", "tls.crt": "CERT"}})
    result = stand_in.run(body)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [str(anyuid.ANY_UID), "0", f"0 {anyuid.ANY_UID}"]
    home, argument = lines[3].split("|")
    assert Path(home).name == "tmp" and argument == "hi $(USER_NAME)"
    assert lines[4] == "home-writable"
    assert lines[5] == f"0:{anyuid.ANY_UID} 440"  # root-owned, fsGroup adds g+r to the 0400
    assert lines[6] == "KEY"
    stamped, *names = lines[7].split()
    assert stamped.startswith("..20") and names == ["..data", "tls.crt", "tls.key"]  # the atomic writer's layout
    assert (tmp_path / "p.termination-log").read_text() == "done\n"
    assert [s["phase"] for s in stand_in.kube.core.statuses] == ["Running", "Succeeded"]  # type: ignore[attr-defined]
    assert not Path(home).exists(), "the node directory goes with the pod"


def test_without_fs_group_a_secret_is_root_root_and_its_mode_decides(tmp_path: Path) -> None:
    """GID 0 reads a 0440 Secret file; 0400 locks the pod's uid out (the check can fail)."""

    def read(mode: int) -> str:
        body = pod(
            sh(
                'stat -L -c \'%u:%g %a\' "$0" && cat "$0"',
                args=["/s/k"],
                volumeMounts=[{"name": "s", "mountPath": "/s"}],
            ),
            securityContext={"runAsUser": anyuid.ANY_UID},
            volumes=[{"name": "s", "secret": {"secretName": "s", "defaultMode": mode}}],
        )
        result = kubelet(tmp_path, secrets={"s": {"k": "value"}}).run(body)
        return result.stdout + result.stderr

    assert read(0o440) == "0:0 440\nvalue"
    assert "Permission denied" in read(0o400)


def test_the_environment_is_the_image_s_and_the_pod_s_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-test-process")
    monkeypatch.setenv("USER", "root")
    result = kubelet(tmp_path).run(pod(sh("env", env=[{"name": "MINE", "value": "1"}])))
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["MINE"] == "1" and env["HOME"] == IMAGE_ENV["HOME"]  # no /tmp volume: nothing to map it to
    assert "AWS_SECRET_ACCESS_KEY" not in env and "USER" not in env
    assert env["PATH"].split(":")[1] == str(anyuid.command_dir())


def test_an_unreachable_program_is_named_with_the_directory_to_blame(tmp_path: Path) -> None:
    private = tmp_path / "private"  # like a home directory below /root
    private.mkdir(mode=0o700)
    hidden = private / "bin"
    hidden.mkdir()
    (hidden / "pg_dump").write_text("#!/bin/sh\n")
    (hidden / "pg_dump").chmod(0o755)
    stand_in = Kubelet(FakeKube(), hidden, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(
        anyuid.Unreachable,
        match=r"uid 10001 \(groups 0\) cannot run .*/pg_dump: /\S+ is drwx------ 0:0: not searchable",
    ):
        stand_in.run(pod())


def test_the_pods_start_with_the_image_s_environment() -> None:
    """The stand-in's IMAGE_ENV is the Dockerfile's."""
    stage = dockerfile_final_stage()
    env = dict(pair.split("=", 1) for name, args in stage if name == "ENV" for pair in args.split())
    assert IMAGE_ENV == {k: v for k, v in env.items() if k != "BACKUP_CRONTAB"}
