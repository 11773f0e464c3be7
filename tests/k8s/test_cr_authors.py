"""A PgBackup or PgRestore lets its author do nothing the author could not do with pods and
Secrets directly: attacked on a real control plane (RBAC, the CRDs' schemas and
``deploy/admission-policy.yaml`` as ``deploy/`` installs them), as ``alice``, who may create
PgBackups and PgRestores in her namespace and read one Secret of her own, but may not create
pods nor read the namespace's other Secrets; and as ``bob``, who may also create pods and read
every Secret there, and so may shape the pods.

Requests are made as those users through impersonation (``kubectl --as``): the API server
authorizes and admits them exactly as their own requests.

The tests on a real control plane or with Helm; the offline ones are in tests/unit/test_cr_authors.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from devenv.wait import wait_for

from ..kit.kubeenv import KubeEnv, OperatorProcess

ALICE, BOB = "alice", "bob"


def _grant(kube: KubeEnv, namespace: str, user: str, rules: list[dict[str, Any]]) -> None:
    rbac = {"apiVersion": "rbac.authorization.k8s.io/v1"}
    documents = [
        {**rbac, "kind": "Role", "metadata": {"name": user, "namespace": namespace}, "rules": rules},
        {
            **rbac,
            "kind": "RoleBinding",
            "metadata": {"name": user, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]
    kube.plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in documents))


CR_AUTHOR = {
    "apiGroups": ["pgbackup.io"],
    "resources": ["pgbackups", "pgrestores"],
    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
}


@pytest.fixture
def team(kube: KubeEnv, namespace: str) -> str:
    """``namespace`` with the Secrets a backup uses, alice's own Secret, and the two users."""
    for name in ("pg", "s3", "alice-pg", "alice-s3"):
        kube.core.create_namespaced_secret(
            namespace, {"metadata": {"name": name}, "data": {"password": base64.b64encode(b"x").decode()}}
        )
    _grant(
        kube,
        namespace,
        ALICE,
        [
            CR_AUTHOR,
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["alice-pg", "alice-s3"]},
        ],
    )
    _grant(
        kube,
        namespace,
        BOB,
        [
            CR_AUTHOR,
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        ],
    )

    def enforced() -> bool:  # the policy is loaded a moment after it is created
        return "Forbidden" in _apply(kube, namespace, ALICE, _backup("probe", "pg", "s3"), dry_run=True).stderr

    wait_for(enforced, timeout=30, what="the admission policy in force")
    return namespace


def _backup(name: str, password: str = "alice-pg", credentials: str = "alice-s3", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pgbackup.io/v1alpha1",
        "kind": "PgBackup",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 3 * * *",
            "postgres": {"host": "db.example", "user": "backup", "passwordSecretRef": {"name": password}},
            "destination": {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": credentials}}},
            **spec,
        },
    }


def _apply(kube: KubeEnv, namespace: str, user: str, body: dict[str, Any], *options: str, dry_run: bool = False) -> Any:
    return kube.plane.kubectl(
        "--as",
        user,
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        *options,
        *(["--dry-run=server"] if dry_run else []),
        input=json.dumps(body),
        check=False,
    )


def test_alice_may_back_up_with_the_secrets_she_may_read(kube: KubeEnv, team: str) -> None:
    created = _apply(
        kube,
        team,
        ALICE,
        _backup("mine", pod={"resources": {"limits": {"memory": "1Gi"}}, "securityContext": {"runAsUser": 1000}}),
    )
    assert created.returncode == 0, created.stderr


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        (
            "spec.postgres.passwordSecretRef (Secret pg)",
            {"postgres": {"host": "evil.example", "user": "x", "passwordSecretRef": {"name": "pg"}}},
        ),
        (
            "spec.destination.s3.credentialsSecretRef (Secret s3)",
            {"destination": {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "s3"}}}},
        ),
        (
            "spec.signing.privateKeySecretRef (Secret pg)",
            {"signing": {"privateKeySecretRef": {"name": "pg"}, "publicKeys": ["ed25519:" + "A" * 43 + "="]}},
        ),
        ("spec.pod.envFrom (Secrets s3)", {"pod": {"envFrom": [{"secretRef": {"name": "s3"}}]}}),
    ],
)
def test_alice_cannot_name_a_secret_she_may_not_read(
    kube: KubeEnv, team: str, field: str, spec: dict[str, Any]
) -> None:
    refused = _apply(kube, team, ALICE, _backup("theirs", **spec))
    assert refused.returncode != 0 and field in refused.stderr, refused.stderr
    assert "you may not get this Secret" in refused.stderr


def test_alice_cannot_name_a_secret_she_may_not_read_as_an_azure_or_gcs_credential(kube: KubeEnv, team: str) -> None:
    for kind, destination in (
        ("azure", {"account": "acct01", "container": "backups", "credentialsSecretRef": {"name": "s3"}}),
        ("gcs", {"bucket": "backups", "credentialsSecretRef": {"name": "s3"}}),
    ):
        refused = _apply(kube, team, ALICE, _backup("theirs", destination={kind: destination}), dry_run=True)
        field = f"spec.destination.{kind}.credentialsSecretRef (Secret s3)"
        assert refused.returncode != 0 and field in refused.stderr, refused.stderr
        mine = {**destination, "credentialsSecretRef": {"name": "alice-s3"}}
        assert _apply(kube, team, ALICE, _backup("mine", destination={kind: mine}), dry_run=True).returncode == 0


def test_a_pgrestore_cannot_send_a_secret_alice_may_not_read_to_a_server_of_her_choice(
    kube: KubeEnv,
    team: str,
) -> None:
    restore = {
        "apiVersion": "pgbackup.io/v1alpha1",
        "kind": "PgRestore",
        "metadata": {"name": "out"},
        "spec": {
            "backupRef": {"name": "prod"},
            "database": "app",
            "target": {"server": {"host": "evil.example", "user": "postgres", "passwordSecretRef": {"name": "pg"}}},
        },
    }
    refused = _apply(kube, team, ALICE, restore, dry_run=True)
    assert "spec.target.server.passwordSecretRef (Secret pg)" in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    ("field", "pod"),
    [
        ("spec.pod.image", {"image": "evil.example/shell:latest"}),
        ("spec.pod.serviceAccountName", {"serviceAccountName": "cluster-admin-sa"}),
        ("spec.pod.tolerations", {"tolerations": [{"operator": "Exists"}]}),
        ("spec.pod.nodeSelector", {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}),
        (
            "spec.pod.env (valueFrom)",
            {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
        ),
        ("spec.pod.podAnnotations", {"podAnnotations": {"example.com/anything": "x"}}),
        ("spec.pod.priorityClassName", {"priorityClassName": "system-node-critical"}),
    ],
)
def test_alice_cannot_shape_the_pod(kube: KubeEnv, team: str, field: str, pod: dict[str, Any]) -> None:
    refused = _apply(kube, team, ALICE, _backup("shaped", pod=pod))
    assert refused.returncode != 0 and field in refused.stderr, refused.stderr
    assert "only users who may create pods" in refused.stderr


def test_alice_cannot_give_a_drill_another_account(kube: KubeEnv, team: str) -> None:
    refused = _apply(
        kube, team, ALICE, _backup("drilled", verify={"schedule": "0 4 * * 0", "serviceAccountName": "admin"})
    )
    assert "spec.verify.serviceAccountName" in refused.stderr, refused.stderr


def test_bob_who_may_create_pods_and_read_the_secrets_may_shape_the_pod(kube: KubeEnv, team: str) -> None:
    shaped = _backup(
        "bobs",
        "pg",
        "s3",
        pod={
            "image": "registry.example/pgbackup:1",
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
            "podAnnotations": {"example.com/team": "db"},
            "env": [{"name": "TZ_FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "password"}}}],
        },
    )
    created = _apply(kube, team, BOB, shaped)
    assert created.returncode == 0, created.stderr


def test_an_update_is_checked_against_the_rights_of_whoever_makes_it(kube: KubeEnv, team: str) -> None:
    """bob's PgBackups use an image and Secrets alice may not: she cannot change their specs (she
    would be re-using them), though bob can."""
    for name, secrets in (("shared", ("alice-pg", "alice-s3")), ("bobs-secrets", ("pg", "s3"))):
        assert (
            _apply(kube, team, BOB, _backup(name, *secrets, pod={"image": "registry.example/pgbackup:1"})).returncode
            == 0
        )
    later = _backup("shared", pod={"image": "registry.example/pgbackup:1"})
    later["spec"]["schedule"] = "0 5 * * *"
    refused = _apply(kube, team, ALICE, later)
    assert refused.returncode != 0 and "spec.pod.image" in refused.stderr, refused.stderr
    assert _apply(kube, team, BOB, later).returncode == 0
    theirs = _backup("bobs-secrets", "pg", "s3", pod={"image": "registry.example/pgbackup:1"})
    theirs["spec"]["schedule"] = "0 5 * * *"
    refused = _apply(kube, team, ALICE, theirs)
    assert refused.returncode != 0 and "spec.postgres.passwordSecretRef (Secret pg)" in refused.stderr


def test_the_schema_refuses_root_and_unconfined_and_drops_the_rest(kube: KubeEnv, team: str) -> None:
    for pod, complaint in (
        ({"securityContext": {"runAsUser": 0}}, "should be greater than or equal to 1"),
        ({"containerSecurityContext": {"allowPrivilegeEscalation": True}}, "Unsupported value"),
        ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "Unsupported value"),
    ):
        refused = _apply(kube, team, BOB, _backup("root", "pg", "s3", pod=pod))
        assert refused.returncode != 0 and complaint in refused.stderr, (pod, refused.stderr)
    hostile = {
        "containerSecurityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "runAsUser": 1000},
        "securityContext": {"sysctls": [{"name": "kernel.x", "value": "1"}], "fsGroup": 1000},
    }
    strict = _apply(kube, team, BOB, _backup("pruned", "pg", "s3", pod=hostile))  # kubectl asks for strict fields
    assert 'unknown field "spec.pod.containerSecurityContext.privileged"' in strict.stderr, strict.stderr
    assert _apply(kube, team, BOB, _backup("pruned", "pg", "s3", pod=hostile), "--validate=false").returncode == 0
    stored = kube.pgbackup(team, "pruned")["spec"]["pod"]
    assert stored == {"containerSecurityContext": {"runAsUser": 1000}, "securityContext": {"fsGroup": 1000}}


def test_the_env_names_that_steer_the_job_are_refused_by_the_schema(kube: KubeEnv, team: str) -> None:
    steering = ("PGHOST", "BACKUP_DESTINATION", "AWS_ENDPOINT_URL", "AZURE_STORAGE_KEY", "STORAGE_EMULATOR_HOST")
    for name in (*steering, "API_ENDPOINT_OVERRIDE"):
        refused = _apply(kube, team, BOB, _backup("steer", "pg", "s3", pod={"env": [{"name": name, "value": "x"}]}))
        reserved = "names starting BACKUP_, PG, AWS_, AZURE_ or GOOGLE_"
        assert refused.returncode != 0 and reserved in refused.stderr, refused.stderr


def test_alice_cannot_preload_her_file_or_trust_her_ca_in_the_pods(kube: KubeEnv, team: str) -> None:
    """Plain env values need no pod-create rights, and the pods mount a CA Secret alice names:
    her shared object or her CA there, named by LD_PRELOAD or REQUESTS_CA_BUNDLE, would run or
    be trusted in pods holding identities she lacks. PgRestore has no env of its own."""
    mounted = "/etc/pgbackup/tls/ca/ca.crt"
    tls = {"sslMode": "verify-full", "tls": {"caSecretRef": {"name": "alice-pg"}}}

    def attempt(name: str) -> Any:
        backup = _backup("loader", pod={"env": [{"name": name, "value": mounted}]})
        backup["spec"]["postgres"].update(tls)
        return _apply(kube, team, ALICE, backup, dry_run=True)

    assert attempt("TZ").returncode == 0, attempt("TZ").stderr  # plain env and her CA are hers to set
    for name in ("LD_PRELOAD", "REQUESTS_CA_BUNDLE"):
        refused = attempt(name)
        assert refused.returncode != 0 and "spec.pod.env[0]" in refused.stderr, refused.stderr
        assert "change which code the job's programs load" in refused.stderr, refused.stderr


def test_the_operator_s_own_writes_are_not_checked_and_it_refuses_what_the_policy_cannot_see(
    kube: KubeEnv,
    operator: OperatorProcess,
    team: str,
) -> None:
    """The operator may neither read Secrets nor create pods, yet it writes its annotations and
    status on bob's PgBackup. Where the policy cannot judge (an annotation that
    grants a cloud identity, which bob may set), the operator refuses at reconcile, naming the
    field, and renders nothing."""
    assert (
        _apply(kube, team, BOB, _backup("fine", "pg", "s3", pod={"image": "registry.example/pgbackup:1"})).returncode
        == 0
    )
    hostile = _backup("iam", "pg", "s3", pod={"podAnnotations": {"iam.amazonaws.com/role": "arn:aws:iam::1:role/x"}})
    assert _apply(kube, team, BOB, hostile).returncode == 0

    def ready(name: str) -> dict[str, Any]:
        return kube.condition(team, name, "Ready") or {}

    wait_for(lambda: ready("fine").get("status") == "True", timeout=60, what="the PgBackup Ready")
    assert "kopf.pgbackup.io/last-handled-configuration" in kube.pgbackup(team, "fine")["metadata"]["annotations"]
    wait_for(lambda: ready("iam").get("reason") == "PodNotAllowed", timeout=60, what="Ready=False, PodNotAllowed")
    assert "spec.pod.podAnnotations['iam.amazonaws.com/role']" in ready("iam")["message"]
    assert kube.cronjob(team, "pgbackup-iam") is None
    wait_for(
        lambda: any(e["reason"] == "PodNotAllowed" for e in kube.events(team, "iam")),
        timeout=30,
        what="a PodNotAllowed event",
    )
