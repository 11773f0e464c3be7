"""The chart as a release publishes it: pushed to an OCI registry, signed with cosign, verified,
then installed from the registry with Helm on a real control plane.

release.yml pushes to GHCR and signs keyless (the workflow's GitHub OIDC identity, logged in
Rekor). None of that is reachable here, so the same steps run against a registry on loopback
(devenv/oci_registry.py, go-containerregistry's ``crane registry serve``) with a local cosign
key pair and no transparency log: what is proven is the part that is ours, that the chart
Helm packages and pushes is an artifact cosign signs by digest, that a user's ``cosign
verify`` tells it apart from another key's signature and from a chart pushed over its tag
afterwards, and that ``helm install oci://`` of it brings up an operator that reconciles.
The operator runs as a process with the release's ServiceAccount token (tests/kit/kubeenv.py),
as tests/k8s/test_chart.py runs it: the image a pod would pull is not built here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devenv.oci_registry import OciRegistry
from devenv.wait import wait_for

from ..kit.helpers import ROOT
from ..kit.kubeenv import KubeEnv, OperatorProcess
from ..unit.test_chart import _example_backup
from .test_chart import CHART, helm, run  # noqa: F401  (helm is a fixture)

RELEASE, NAMESPACE, WATCHED = "pgb-oci", "pgbackup-oci", "oci-watched"  # not t-*: the session operator's
ACCOUNT = f"{RELEASE}-pgbackup"  # the chart's fullname for this release


def _tool(name: str) -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), name], stdout=subprocess.PIPE, text=True)
    assert built.returncode == 0, f"scripts/tools-build {name} failed (its output is above)"
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cosign() -> Path:
    return _tool("cosign")


@pytest.fixture(scope="module")
def registry() -> Iterator[OciRegistry]:
    with OciRegistry(_tool("crane")) as server:
        yield server


class Cosign:
    """cosign with the key pairs in one directory, offline: no Rekor, no Fulcio, no TUF."""

    def __init__(self, binary: Path, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        # Its own HOME: cosign keeps a TUF cache under ~/.sigstore and reads registry
        # credentials from ~/.docker, neither of them the user's to touch nor needed here.
        # A dead proxy on loopback: Go sends every request but loopback ones through it, so a
        # Sigstore service asked for by mistake fails at once and nothing leaves the machine.
        dead = "http://127.0.0.1:9"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(directory),
            "TUF_ROOT": str(directory / "tuf"),
            "HTTP_PROXY": dead,
            "HTTPS_PROXY": dead,
            "COSIGN_PASSWORD": "correct horse battery staple",
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, cwd=self.directory, timeout=120
        )
        assert not check or result.returncode == 0, f"cosign {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def key_pair(self, name: str) -> tuple[Path, Path]:
        self("generate-key-pair", f"--output-key-prefix={name}")
        return self.directory / f"{name}.key", self.directory / f"{name}.pub"

    def sign(self, key: Path, reference: str) -> None:
        # cosign v3 asks the public-good instance's TUF repository for a signing config (where
        # Rekor and the timestamp authority are) unless told not to. An empty config from
        # `cosign signing-config create` would do too, but v3.1 still tries TUF for the
        # trusted root first; --use-signing-config=false with --tlog-upload=false (deprecated
        # in v3, kept working) signs with the key alone and asks no service at all.
        self(
            "sign",
            "--key",
            str(key),
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--allow-http-registry",
            "--yes",
            reference,
        )

    def verify(self, public: Path, reference: str) -> subprocess.CompletedProcess[str]:
        # --insecure-ignore-tlog: no Rekor entry to check (none was made); the signature itself is.
        return self(
            "verify",
            "--key",
            str(public),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            reference,
            check=False,
        )


def _push(helm: Path, chart: Path, registry: OciRegistry, into: Path) -> str:
    """``helm package`` then ``helm push``; the digest the push reports."""
    into.mkdir(parents=True, exist_ok=True)
    run(helm, None, "package", str(chart), "-d", str(into))
    (package,) = into.glob("*.tgz")
    pushed = run(helm, None, "push", str(package), f"oci://{registry.host}/charts", "--plain-http")
    found = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", pushed.stdout + pushed.stderr, re.MULTILINE)
    assert found, pushed.stdout + pushed.stderr
    return found.group(1)


def test_the_chart_goes_through_an_oci_registry_signed_and_installs_from_it(
    helm: Path, cosign: Path, registry: OciRegistry, kube: KubeEnv, tmp_path: Path
) -> None:
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    repository = f"{registry.host}/charts/pgbackup"
    digest = _push(helm, CHART, registry, tmp_path / "package")

    keys = Cosign(cosign, tmp_path)
    key, public = keys.key_pair("release")
    _, stranger = keys.key_pair("stranger")
    keys.sign(key, f"{repository}@{digest}")
    for reference in (f"{repository}@{digest}", f"{repository}:{version}"):
        verified = keys.verify(public, reference)
        assert verified.returncode == 0, verified.stderr
        claims = json.loads(verified.stdout)
        assert [c["critical"]["image"]["docker-manifest-digest"] for c in claims] == [digest]
    refused = keys.verify(stranger, f"{repository}@{digest}")
    assert refused.returncode != 0 and "failed to verify signature" in refused.stderr, refused.stderr

    kube.plane.kubectl("create", "namespace", NAMESPACE, check=False)
    kube.plane.kubectl("create", "namespace", WATCHED, check=False)
    values = {
        "rbac": {"clusterWide": False, "namespaces": [WATCHED]},
        "backups": [{**_example_backup(), "name": "via-oci", "namespace": WATCHED}],
    }
    (tmp_path / "values.json").write_text(json.dumps(values))
    try:
        installed = run(
            helm,
            kube,
            "install",
            RELEASE,
            f"oci://{repository}",
            "--version",
            version,
            "--plain-http",
            "-n",
            NAMESPACE,
            "-f",
            str(tmp_path / "values.json"),
            "--wait=false",
        )
        assert f"Digest: {digest}" in installed.stdout + installed.stderr, "the signed chart, not another"
        with OperatorProcess(kube, service_account=(ACCOUNT, NAMESPACE), namespaces=[WATCHED]):
            wait_for(lambda: kube.cronjob(WATCHED, "pgbackup-via-oci"), timeout=60, what="the PgBackup's CronJob")
            wait_for(
                lambda: (kube.condition(WATCHED, "via-oci", "Ready") or {}).get("status") == "True",
                timeout=30,
                what="the PgBackup Ready",
            )
    finally:
        run(helm, kube, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
        kube.plane.kubectl("delete", "namespace", WATCHED, NAMESPACE, "--wait=false", check=False)

    # Someone with push rights moves the tag to a chart of their own: the tag no longer verifies,
    # the signed digest still does.
    forged = tmp_path / "forged"
    shutil.copytree(CHART, forged)
    (forged / "templates" / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n")
    forged_digest = _push(helm, forged, registry, tmp_path / "forged-package")
    assert forged_digest != digest
    moved = keys.verify(public, f"{repository}:{version}")
    assert moved.returncode != 0 and "no signatures found" in moved.stderr, moved.stderr
    assert keys.verify(public, f"{repository}@{digest}").returncode == 0
