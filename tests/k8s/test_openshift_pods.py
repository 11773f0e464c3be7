"""End to end, OpenShift-style pods: a PgBackup whose pods run as an assigned uid with an
fsGroup (``spec.pod.securityContext``), or with no ids at all (the image's 10001:0), in a
namespace that enforces the restricted Pod Security Standard, reading the server's CA and a
client certificate from Secrets (``spec.postgres.tls``) to back up a PostgreSQL 18 that admits
the backup role only with that certificate, and signing each manifest with the key mounted
from its Secret (``spec.signing``) the same way.

The Job controller creates the pod only if it passes the restricted standard; the stand-in
kubelet then runs it as its securityContext says, with the Secret files laid out as a kubelet
lays them out (root's, group root or the fsGroup, mode 0440).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devenv.postgres import Cluster
from devenv.s3 import ACCESS_KEY, SECRET_KEY
from devenv.wait import wait_for

from ..kit import anyuid
from ..kit.certs import TLS_ROLE, Pki, pki, tls_bindir, tls_pg  # noqa: F401 (fixtures)
from ..kit.helpers import SIGNING_KEY, SIGNING_PUBLIC_KEY, Bucket
from ..kit.kubeenv import KubeEnv, Kubelet, OperatorProcess
from ..kit.kubelet import identity


def _secrets(kube: KubeEnv, namespace: str, pki: Pki) -> None:
    def secret(name: str, data: dict[str, str], type_: str = "Opaque") -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        kube.core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "type": type_, "data": encoded})

    secret("pg", {"password": "unused: the server admits this role by its certificate"})
    secret("s3", {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    secret("pg-ca", {"ca.crt": pki.ca.read_text()})
    secret(
        "pg-client",
        {"tls.crt": pki.client_cert.read_text(), "tls.key": pki.client_key.read_text()},
        "kubernetes.io/tls",
    )
    secret("signing", {"signing-key": SIGNING_KEY.read_text()})


def _spec(pg: Cluster, bucket: Bucket, database: str, pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "schedule": "0 3 * * *",
        "postgres": {
            "host": pg.host,
            "port": pg.port,
            "sslMode": "verify-full",
            "user": TLS_ROLE,
            "passwordSecretRef": {"name": "pg"},
            "tls": {"caSecretRef": {"name": "pg-ca"}, "clientCertSecretRef": {"name": "pg-client"}},
        },
        "databases": {"include": [database]},
        "destination": {
            "s3": {
                "bucket": bucket.name,
                "prefix": "openshift",
                "region": "us-east-1",
                "endpoint": bucket.server.endpoint,
                "pathStyle": True,
                "credentialsSecretRef": {"name": "s3"},
            }
        },
        "signing": {"privateKeySecretRef": {"name": "signing"}, "publicKeys": [SIGNING_PUBLIC_KEY]},
        "pod": pod,
    }


@pytest.mark.parametrize(
    ("pod", "uid", "groups"),
    [
        (
            {"securityContext": {"runAsUser": anyuid.ANY_UID, "fsGroup": anyuid.ANY_UID}},
            anyuid.ANY_UID,
            [0, anyuid.ANY_UID],
        ),
        ({}, anyuid.IMAGE_UID, [0]),
    ],
    ids=["assigned-uid-and-fs-group", "no-ids"],
)
def test_a_backup_pod_runs_as_the_restricted_namespace_allows_and_reads_its_tls_secrets(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    tls_pg: Cluster,
    tls_bindir: Path,
    pki: Pki,
    bucket: Bucket,
    dbname: str,
    tmp_path: Path,
    pod: dict[str, Any],
    uid: int,
    groups: list[int],
) -> None:
    kube.core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    tls_pg.sql(f"CREATE DATABASE {dbname}")
    tls_pg.sql("CREATE TABLE t AS SELECT generate_series(1, 300) AS n", dbname)
    _secrets(kube, namespace, pki)
    kube.create_pgbackup(
        namespace, "restricted", _spec(tls_pg, bucket, dbname, pod), annotations={"pgbackup.io/backup-now": "first"}
    )

    wait_for(lambda: kube.jobs(namespace), timeout=30, what="the backup-now Job")
    job = kube.jobs(namespace)[0]["metadata"]["name"]
    wait_for(
        lambda: kube.pod_of(namespace, job),
        timeout=60,
        what="the Job controller's Pod (admitted under the restricted standard)",
    )
    backup_pod = kube.pod_of(namespace, job)
    assert backup_pod is not None
    context = backup_pod["spec"]["securityContext"]
    assert context.get("runAsUser") == pod.get("securityContext", {}).get("runAsUser")
    assert "runAsGroup" not in context

    result = Kubelet(kube, tls_bindir, tmp_path).run(backup_pod)

    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(
        lambda: (
            kube.pgbackup(namespace, "restricted").get("status", {}).get("lastRun", {}).get("result") == "Succeeded"
        ),
        timeout=60,
        what="lastRun.result == Succeeded",
    )
    segments = [key.split("/")[1] for key in bucket.keys("openshift/")]
    assert sorted(set(segments)) == ["_globals", dbname] and len(segments) == 4
    manifests = [json.loads(bucket.get(key)) for key in bucket.keys("openshift/") if key.endswith(".manifest.json")]
    assert len(manifests) == 2 and all(m.get("signature", {}).get("key_id") for m in manifests), (
        "the signing key's file (0440, root's) was read by the pod's user"
    )
    who = identity(backup_pod)  # what the stand-in ran it as
    assert (who.uid, who.gid, list(who.groups)) == (uid, 0, groups)


def test_the_restricted_namespace_really_refuses_a_pod_that_breaks_the_standard(
    kube: KubeEnv,
    operator: OperatorProcess,
    namespace: str,
    tls_pg: Cluster,
    pki: Pki,
    bucket: Bucket,
    dbname: str,
) -> None:
    """The check above means something: the backup pod the operator renders, with privilege
    escalation allowed (which no PgBackup can ask for: the CRD and the renderer keep the
    baseline), is refused by the namespace."""
    kube.core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    _secrets(kube, namespace, pki)
    kube.create_pgbackup(namespace, "loose", _spec(tls_pg, bucket, dbname, {}))
    wait_for(lambda: kube.cronjob(namespace, "pgbackup-loose"), timeout=30, what="the CronJob")
    cronjob = kube.cronjob(namespace, "pgbackup-loose")
    assert cronjob is not None
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_pod(namespace, {"metadata": {"name": "loose"}, "spec": pod})
    assert refused.value.status == 403 and "PodSecurity" in str(refused.value.body), refused.value.body
