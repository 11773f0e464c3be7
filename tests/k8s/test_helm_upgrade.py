"""Upgrading a release on a real control plane: PgBackups made under the previous release's CRD
keep working after the CRDs are applied and ``helm upgrade`` runs, as docs/kubernetes.md#upgrading says to do.

``tests/kit/data/pgbackups-crd-0.1.yaml`` is the PgBackup CRD of release 0.1.0 (before PgRestore,
sharding, per-job credentials, signing and required scratch servers), kept as test data.
The release is installed with it (``--skip-crds``), PgBackups are made and reconciled, then
the new CRDs are applied server-side and the release upgraded; the operator's own code is
the current one throughout (a pod of the old image cannot run here).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.kube import ControlPlane
from devenv.kube import build as build_control_plane
from devenv.wait import wait_for

from ..kit.helpers import ROOT
from ..kit.kubeenv import KubeEnv, OperatorProcess
from .test_chart import CHART, helm, run  # noqa: F401  (helm is a fixture)

OLD_CRD = ROOT / "tests" / "kit" / "data" / "pgbackups-crd-0.1.yaml"
NAMESPACE, WATCHED = "pgbackup-up", "u-watched"


@pytest.fixture(scope="module")
def plane() -> Iterator[KubeEnv]:
    """A control plane of its own: the CRDs here are the old release's, then the new ones."""
    control = ControlPlane(build_control_plane(), Path(tempfile.mkdtemp(prefix="pgbackup-k8s-upgrade-")))
    try:
        control.up()
        yield KubeEnv(control)
    finally:
        control.down()


def _example_spec() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "examples" / "pgbackup-s3-compatible.yaml").read_text()))
    return dict(next(d for d in docs if d["kind"] == "PgBackup")["spec"])


def _old_spec() -> dict[str, Any]:
    """The example as a 0.1.0 user wrote it: unsigned (no spec.signing yet), drilling on the
    backup server (no verify.server, which drills then did not need)."""
    spec = {k: v for k, v in _example_spec().items() if k != "signing"}
    return {**spec, "verify": {"schedule": "0 5 * * 0"}}


def _condition(kube: KubeEnv, name: str, type_: str) -> tuple[str, str]:
    found = kube.condition(WATCHED, name, type_) or {}
    return found.get("status", ""), found.get("reason", "")


def _ready(kube: KubeEnv, name: str) -> bool:
    return (kube.condition(WATCHED, name, "Ready") or {}).get("status") == "True"


def test_helm_upgrade_with_the_new_crds_keeps_old_pgbackups_working(helm: Path, plane: KubeEnv, tmp_path: Path) -> None:
    kube = plane
    kube.plane.kubectl("apply", "--server-side", "-f", str(OLD_CRD))
    kube.plane.wait_for_crds("pgbackups.pgbackup.io")
    for name in (NAMESPACE, WATCHED):
        kube.plane.kubectl("create", "namespace", name)
    old_spec = _old_spec()
    values: dict[str, Any] = {
        "rbac": {"clusterWide": False, "namespaces": [WATCHED]},
        "backups": [{"name": "from-values", "namespace": WATCHED, "spec": old_spec}],
    }
    (tmp_path / "values.json").write_text(json.dumps(values))
    run(
        helm,
        kube,
        "install",
        "pgb",
        str(CHART),
        "-n",
        NAMESPACE,
        "--skip-crds",
        "-f",
        str(tmp_path / "values.json"),
        "--wait=false",
    )
    kube.create_pgbackup(WATCHED, "by-hand", {k: v for k, v in _example_spec().items() if k != "signing"})
    kube.plane.wait_for_discovery()
    with OperatorProcess(kube, service_account=("pgb-pgbackup", NAMESPACE), namespaces=[WATCHED]):
        for name in ("from-values", "by-hand"):
            wait_for(lambda name=name: _ready(kube, name), timeout=60, what=f"{name} Ready under the old CRD")
        wait_for(
            lambda: _condition(kube, "from-values", "VerifyIsolated") == ("False", "NoScratchServer"),
            timeout=30,
            what="the old drill without a scratch server reported",
        )
        assert kube.cronjob(WATCHED, "pgbackup-from-values-verify") is not None, "and still rendered"

    kube.plane.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))  # the documented upgrade step
    kube.plane.wait_for_crds("pgrestores.pgbackup.io")
    # New fields, through helm upgrade: sharding, and what the upgrade note (docs/kubernetes.md) asks of a
    # PgBackup with a drill (a scratch server) and of every one (a signing key).
    example = _example_spec()
    values["backups"][0]["spec"] = {
        **old_spec,
        "parallelism": 2,
        "signing": example["signing"],
        "verify": example["verify"],
    }
    (tmp_path / "values.json").write_text(json.dumps(values))
    run(helm, kube, "upgrade", "pgb", str(CHART), "-n", NAMESPACE, "-f", str(tmp_path / "values.json"), "--wait=false")
    kube.plane.wait_for_discovery()

    with OperatorProcess(kube, service_account=("pgb-pgbackup", NAMESPACE), namespaces=[WATCHED]):
        wait_for(
            lambda: (
                (
                    (kube.cronjob(WATCHED, "pgbackup-from-values") or {})
                    .get("spec", {})
                    .get("jobTemplate", {})
                    .get("spec", {})
                    .get("completionMode")
                )
                == "Indexed"
            ),
            timeout=60,
            what="the upgraded PgBackup's CronJob sharded",
        )
        old = kube.pgbackup(WATCHED, "by-hand")
        assert old["spec"]["parallelism"] == 1, "the new field's default, applied to an old object"
        wait_for(lambda: _ready(kube, "by-hand") and _ready(kube, "from-values"), timeout=60, what="both Ready")
        wait_for(
            lambda: _condition(kube, "from-values", "VerifyIsolated") == ("True", "ScratchServer"),
            timeout=60,
            what="the upgraded PgBackup's drill on its scratch server",
        )
        assert _condition(kube, "from-values", "Signed") == ("True", "SigningKeyConfigured")
        assert _condition(kube, "by-hand", "Signed") == ("False", "NoSigningKey"), "an old object works, unsigned"
        cronjob = kube.cronjob(WATCHED, "pgbackup-by-hand")
        assert cronjob is not None
        names = {e["name"] for e in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "BACKUP_RUN_ID" in names and "BACKUP_SHARD" not in names, "re-rendered by the new operator"
        assert kube.cronjob(WATCHED, "pgbackup-by-hand-prune") is None
        wide = kube.plane.kubectl("get", "pgb", "-n", WATCHED, "-o", "wide").stdout
        assert "SHARDS" in wide.splitlines()[0]
        restore = kube.plane.kubectl("explain", "pgr.spec.backupRef", check=False)
        assert restore.returncode == 0 and "The PgBackup whose backups to restore" in restore.stdout
